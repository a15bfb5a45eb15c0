"""The sentence-embedding tier of the injection detector: a logistic head over all-MiniLM-L6-v2 embeddings.

The n-gram tier (:mod:`injection_model`) learns the wording of its training sources; an embedding places a
paraphrase, an unusual phrasing or (partly) another language near the attacks it resembles, so this tier catches
injections that share no n-gram with the training data. It costs tens of milliseconds of CPU per ~420-character
window, three orders of magnitude more than the fast tiers, so ``gated`` reads only the windows that the fast tiers
find borderline (see :func:`suspicious_windows`), within a CPU budget; ``wide`` lowers that gate (more recall, several
times the CPU), ``every`` reads every window of every text (for evaluation: it cannot keep up with live traffic on
one core), ``off`` (the default, see ``DEFAULT_MODE``) disables it.

The head (384 weights, a bias and the alarm threshold) is trained offline by ``bench/guard_eval/train_learned.py``
and committed as ``model/learned_head.json``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np

from services.guard.detectors.injection_model import load_model, windows

HEAD_PATH = Path(__file__).with_name("model") / "learned_head.json"
Mode = Literal["gated", "wide", "every", "off"]
MODE_ENV = "WARDEN_GUARD_LEARNED_TIER"
DEFAULT_MODE: Mode = "off"
"""Off until the head tells intent from topic: on the held-out hard negatives (questions about system prompts,
security discussions) ``gated`` raises the false-positive rate from 2.2% to 8.6% (bench/guard_eval/README.md)."""

MAX_WINDOWS = 4
"""Windows of one text the gated modes read at most (the most suspicious first), which bounds the cost per text."""
EVENT_WINDOWS_ENV = "WARDEN_GUARD_LEARNED_EVENT_WINDOWS"
DEFAULT_EVENT_WINDOWS = 1
"""Windows the gated modes read per event at most, over all its texts. A window costs 8-27 ms of CPU (the encoder's
time grows with the window's tokens and does not shrink per window when several are batched), so an event that read
every borderline window of its texts could take ten times the fast tiers' few milliseconds; with one, an event takes
at most the fast tiers' time plus one window. Windows past it are counted as left over and the text's result is not
remembered, so a text re-sent on the next turn (as agents do) is read again with that turn's allowance."""
MAX_EVERY_WINDOWS = 256
"""Windows of one text the ``every`` mode reads at most (~100 KB of text)."""


@dataclass(frozen=True, slots=True)
class LearnedHead:
    weights: list[float]
    bias: float
    threshold: float
    """Window probability from which the tier alarms when it reads every window (1% of training negatives above)."""
    gates: dict[str, list[float]] = field(default_factory=dict)
    """Per gated mode, [gate, threshold]: the n-gram window probability from which a window is borderline enough for
    the tier to read it, and the tier's alarm threshold there (both chosen in training: ``gated`` lets 0.3% of
    negative windows through and may add 0.1% false alarms, ``wide`` 2% and 0.5%)."""

    def probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        z = embeddings @ np.asarray(self.weights, dtype=np.float32) + self.bias
        return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))

    def to_json(self) -> dict[str, object]:
        return {
            "weights": self.weights,
            "bias": self.bias,
            "threshold": self.threshold,
            "gates": self.gates,
        }


@lru_cache(maxsize=1)
def load_head(path: Path = HEAD_PATH) -> LearnedHead:
    data = json.loads(path.read_text(encoding="utf-8"))
    return LearnedHead(
        weights=list(map(float, data["weights"])),
        bias=float(data["bias"]),
        threshold=float(data["threshold"]),
        gates={name: [float(v) for v in pair] for name, pair in data.get("gates", {}).items()},
    )


def event_windows() -> int:
    value = os.environ.get(EVENT_WINDOWS_ENV, "").strip()
    try:
        limit = int(value) if value else DEFAULT_EVENT_WINDOWS
    except ValueError:
        raise ValueError(f"{EVENT_WINDOWS_ENV} must be a number of windows, not {value!r}") from None
    if limit < 0:
        raise ValueError(f"{EVENT_WINDOWS_ENV} must be 0 (no cap) or more, not {limit}")
    return limit


Candidate = tuple[float, int, str]
"""A window the tier may read: its n-gram probability (its rank in the event), its offset and its text."""


@dataclass(slots=True)
class Reading:
    """One text the tier may read for an event (a message's text, or a hidden or decoded reading of it): the windows
    it would read, most suspicious first, and those the event's allowance gave it (:meth:`EventAllowance.share_out`).
    ``complete`` turns false when a window was left unread, for want of CPU budget or of the event's allowance: the
    text's result is then not remembered, so the text is read again when it comes back."""

    windows: list[Candidate]
    threshold: float
    capped: bool
    """Whether the event's allowance and the CPU budget apply (the gated modes; ``every`` reads all, for evaluation)."""
    chosen: list[tuple[int, str]] = field(default_factory=list)
    complete: bool = True


class EventAllowance:
    """The windows one event may have read (``WARDEN_GUARD_LEARNED_EVENT_WINDOWS``; 0 = no cap), shared out over all
    its texts at once by how suspicious each window is, so that no text's place in the request decides what is read:
    a borderline decoy placed before the payload no longer spends the payload's allowance by its place alone (it
    would have to look more suspicious to the n-gram model than the payload does)."""

    def __init__(self, windows: int | None = None) -> None:
        limit = event_windows() if windows is None else windows
        self.left: int | None = limit or None
        self.left_windows = 0

    def share_out(self, readings: list[Reading]) -> None:
        """Give each reading the windows the allowance covers: the most suspicious over all of ``readings`` (ties in
        their order); the rest are counted as left over and their readings marked incomplete."""
        left = self.left
        ranked: list[tuple[float, int, int]] = []
        for k, r in enumerate(readings):
            if not r.capped or left is None:
                r.chosen = [(at, w) for _, at, w in r.windows]
            else:
                ranked += [(-p, k, j) for j, (p, _, _) in enumerate(r.windows)]
        if left is None or not ranked:
            return
        ranked.sort()
        kept, over = ranked[:left], ranked[left:]
        self.left = left - len(kept)
        for _, k, j in sorted(kept, key=lambda c: c[1:]):  # each reading's windows stay most suspicious first
            _, at, w = readings[k].windows[j]
            readings[k].chosen.append((at, w))
        for _, k, _ in over:
            readings[k].complete = False
        self.left_windows += len(over)
        BUDGET.over_event_windows += len(over)


def mode() -> Mode:
    value = os.environ.get(MODE_ENV, DEFAULT_MODE).strip().lower()
    if value not in ("gated", "wide", "every", "off"):
        raise ValueError(f"{MODE_ENV} must be gated, wide, every or off, not {value!r}")
    return value  # type: ignore[return-value]


def suspicious_windows(text: str, *, borderline: bool, gate: float) -> list[Candidate]:
    """(probability, offset, window) of ``text`` that the gated tier reads: windows whose n-gram probability reaches
    the head's ``gate`` (and stays below the n-gram tier's own alarm, which needs no second opinion), or every window
    when ``borderline`` (hidden or decoded text); at most ``MAX_WINDOWS``, the most suspicious first."""
    model = load_model()
    # The injection detector scored these windows just before (the model remembers the latest texts' scores).
    scored = [(p, offset, w) for offset, w, p in model.window_scores(text) if borderline or gate <= p < model.threshold]
    scored.sort(key=lambda s: -s[0])
    return scored[:MAX_WINDOWS]


def all_windows(text: str) -> list[tuple[int, str]]:
    out, offset = [], 0
    for w in windows(text):
        out.append((offset, w))
        offset += len(w)
    return out


SHARE_ENV = "WARDEN_GUARD_LEARNED_CPU_SHARE"
DEFAULT_SHARE = 0.1
BURST_S = 1.0
"""CPU seconds of other work whose share may be saved up: after a quiet spell the tier may spend up to
``share x BURST_S`` at once."""


class CpuBudget:
    """A token bucket of CPU seconds: refilled by ``share`` of the CPU time the process spends on everything else,
    drained by the CPU time the encoder spends. The gated tier's cost follows the traffic (how many windows look
    borderline); the budget caps it at that share of the guard's own work, so that the guard's throughput stays
    within ``1 / (1 + share)`` of the fast tiers' alone whatever the traffic, and counts what it left unread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens = 0.0
        self._cpu = time.process_time()
        self._spent = 0.0
        self._share = -1.0
        self.skipped_windows = 0
        """Borderline windows left unread for want of budget."""
        self.skipped_texts = 0
        """Texts not even looked at for borderline windows for want of budget."""
        self.read_windows = 0
        self.over_event_windows = 0
        """Borderline windows left unread because their event had read its allowance (:class:`EventAllowance`)."""

    def share(self) -> float:
        raw = os.environ.get(SHARE_ENV, "").strip()
        try:
            value = float(raw) if raw else DEFAULT_SHARE
        except ValueError:
            raise ValueError(f"{SHARE_ENV} must be a share of the CPU in (0, 1], not {raw!r}") from None
        if not 0.0 < value <= 1.0:
            raise ValueError(f"{SHARE_ENV} must be in (0, 1], not {value}")
        return value

    def _refill(self) -> bool:
        """Add the share of the CPU spent elsewhere since the last call; whether there is budget left."""
        share = self.share()
        cpu = time.process_time()
        if share != self._share:  # (re)configured: start with a full bucket
            self._share, self._tokens = share, share * BURST_S
        other = max(0.0, cpu - self._cpu - self._spent)
        self._tokens = min(share * BURST_S, self._tokens + other * share)
        self._cpu, self._spent = cpu, 0.0
        return share >= 1.0 or self._tokens > 0

    def available(self) -> bool:
        """Whether the tier may read anything now (checked before even choosing windows, which has a cost too)."""
        with self._lock:
            return self._refill()

    def take(self, windows: int) -> bool:
        with self._lock:
            if self._refill():
                self.read_windows += windows
                return True
            self.skipped_windows += windows
            return False

    def spend(self, cpu_s: float) -> None:
        with self._lock:
            self._tokens -= cpu_s
            self._spent += cpu_s


BUDGET = CpuBudget()


def score_windows(chosen: list[tuple[int, str]], budget: CpuBudget | None = None) -> tuple[float, int]:
    """Highest probability over the windows, and the offset of that window; (0, 0) for none, or when ``budget`` has
    no CPU left for them (they are counted as skipped)."""
    if not chosen or (budget is not None and not budget.take(len(chosen))):
        return 0.0, 0
    from services.guard.detectors.encoder import shared_encoder

    started = time.thread_time()
    probs = load_head().probabilities(shared_encoder().encode([w for _, w in chosen]))
    if budget is not None:
        budget.spend(time.thread_time() - started)
    k = int(np.argmax(probs))
    return float(probs[k]), chosen[k][0]


def reading(text: str, *, borderline: bool = False, how: Mode | None = None) -> Reading | None:
    """What the tier would read of ``text`` (None: nothing, the tier is off or the text too short). Choosing the
    windows costs the CPU budget too; with none left, the reading is empty and incomplete (counted as skipped)."""
    how = how or mode()
    if how == "off" or len(text.strip()) < 8:
        return None
    head = load_head()
    if how == "every":
        return Reading([(1.0, at, w) for at, w in all_windows(text)[:MAX_EVERY_WINDOWS]], head.threshold, capped=False)
    gate, threshold = head.gates[how]
    if not BUDGET.available():
        BUDGET.skipped_texts += 1
        return Reading([], threshold, capped=True, complete=False)
    started = time.thread_time()
    # Only the wide mode reads every hidden or decoded reading; the default gates them like any text.
    windows_ = suspicious_windows(text, borderline=borderline and how == "wide", gate=gate)
    BUDGET.spend(time.thread_time() - started)
    return Reading(windows_, threshold, capped=True)


def score(r: Reading) -> tuple[float, int]:
    """The tier's score of a reading's chosen windows on the findings' scale (threshold → 0.5, certainty → 1, below
    threshold → 0) and the offset of the window that scored. A reading the CPU budget refuses is marked incomplete."""
    if not r.chosen:
        return 0.0, 0
    if r.capped:
        skipped = BUDGET.skipped_windows
        p, at = score_windows(r.chosen, BUDGET)
        if BUDGET.skipped_windows != skipped:
            r.complete = False
    else:
        # Reading every window is for evaluation and has no budget.
        p, at = score_windows(r.chosen)
    if p < r.threshold:
        return 0.0, at
    return 0.5 + 0.5 * (p - r.threshold) / (1.0 - r.threshold), at


def learned_score(
    text: str, *, borderline: bool = False, how: Mode | None = None, allowance: EventAllowance | None = None
) -> tuple[float, int]:
    """:func:`score` of one text on its own. ``allowance``: the windows the text's event may still read (the gated
    modes only; None: no cap)."""
    r = reading(text, borderline=borderline, how=how)
    if r is None:
        return 0.0, 0
    (allowance or EventAllowance(0)).share_out([r])
    return score(r)
