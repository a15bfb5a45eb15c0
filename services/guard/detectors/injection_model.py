"""The learned tier of the injection detector: a linear model over word n-grams, scored window by window.

Inference is plain Python (a dict lookup per feature) so the guard needs no numpy or scikit-learn at run time; the
weights are trained offline by ``bench/guard_eval/train_injection.py`` and committed as ``model/injection.json``.
The feature extraction and the windowing below are shared by training and inference, so they cannot drift apart.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import pairwise
from pathlib import Path

MODEL_PATH = Path(__file__).with_name("model") / "injection.json"

_WINDOW = 420
"""Characters per window: long documents are scored piecewise so an injected paragraph is not averaged away."""

_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[#<>\[\]{}|*=]{2,}|[!?:]")
_ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\u2060\ufeff\u00ad]")  # removed (a regex: str.translate with a
# deletion table goes character by character through a dict on non-ASCII text, ten times slower)


_ESCAPES = re.compile(r"\\[nrt]")


def normalize(text: str) -> str:
    """Fold the disguises that do not change meaning: compatibility forms, zero-width characters, case, and the
    escaped line breaks and underscores of JSON and identifiers (``"…\\n\\nIgnore"``, ``External_Ignore``), which
    would otherwise glue words together. Keeps the length of ASCII text, so offsets still point into the original."""
    if not text.isascii():
        text = _ZERO_WIDTH.sub("", unicodedata.normalize("NFKC", text))
    if "\\" in text:
        text = _ESCAPES.sub("  ", text)
    return text.replace("_", " ").lower()


def windows(text: str) -> list[str]:
    """Split a text into windows of about ``_WINDOW`` characters at paragraph, line or sentence ends."""
    if len(text) <= _WINDOW:
        return [text]
    out: list[str] = []
    start = 0
    n = len(text)
    while start < n:
        end = min(n, start + _WINDOW)
        if end < n:
            cut = max(text.rfind("\n", start + _WINDOW // 2, end), text.rfind(". ", start + _WINDOW // 2, end))
            if cut > start:
                end = cut + 1
        out.append(text[start:end])
        start = end
    return out


def _grams(window: str) -> set[str]:
    tokens = _TOKEN.findall(window)
    grams = set(tokens)
    grams.update(map(" ".join, pairwise(tokens)))
    return grams


def features(window: str) -> list[str]:
    """Distinct word unigrams and bigrams of an already normalized window."""
    return list(_grams(window))


def _splits_escape(text: str, at: int) -> bool:
    """Whether offset ``at`` falls inside an escaped line break (``\\n``) that :func:`normalize` folds."""
    return 0 < at < len(text) and text[at - 1] == "\\" and text[at] in "nrt"


def _split_weights(weights: dict[str, float]) -> tuple[dict[str, float], dict[tuple[str, str], float]]:
    """The weights of unigrams, and of bigrams keyed by their two tokens (``"a b"`` -> ``("a", "b")``)."""
    unigrams: dict[str, float] = {}
    bigrams: dict[tuple[str, str], float] = {}
    for gram, weight in weights.items():
        first, space, second = gram.partition(" ")
        if space:
            bigrams[(first, second)] = weight
        else:
            unigrams[gram] = weight
    return unigrams, bigrams


@dataclass(frozen=True, slots=True)
class InjectionModel:
    weights: dict[str, float]
    bias: float
    threshold: float = 0.5
    """Window probability from which the model raises an alarm (chosen in training for 1% false positives)."""
    _unigrams: dict[str, float] = field(init=False, repr=False, compare=False)
    _bigrams: dict[tuple[str, str], float] = field(init=False, repr=False, compare=False)
    _recent: dict[str, list[tuple[int, str, float]]] = field(init=False, repr=False, compare=False)
    """The window scores of the most recently scored texts, oldest first (see :meth:`window_scores`)."""

    def __post_init__(self) -> None:
        # Bigrams are looked up as pairs of the tokens already found: joining them into strings (and hashing those)
        # cost more than the lookups. Tokens hold no space, so a pair stands for exactly one bigram string.
        unigrams, bigrams = _split_weights(self.weights)
        object.__setattr__(self, "_unigrams", unigrams)
        object.__setattr__(self, "_bigrams", bigrams)
        object.__setattr__(self, "_recent", {})

    def window_score(self, window: str) -> float:
        """Probability that one normalized window is an injection or jailbreak."""
        tokens = _TOKEN.findall(window)
        if not tokens:
            return 0.0
        # The features of :func:`features`: distinct unigrams and distinct bigrams (as pairs).
        unigrams = set(tokens)
        bigrams = set(pairwise(tokens))
        # Binary features, L2-normalised over every feature present (known or not), exactly as in training.
        total = sum(filter(None, map(self._unigrams.get, unigrams)))
        total += sum(filter(None, map(self._bigrams.get, bigrams)))
        z = self.bias + total / math.sqrt(len(unigrams) + len(bigrams))
        return 1.0 / (1.0 + math.exp(-z)) if z > -30 else 0.0

    def score(self, text: str, norm: str | None = None) -> tuple[float, int]:
        """Highest window probability over ``text`` and the character offset of that window.

        ``norm`` is ``normalize(text)`` when the caller has it: for ASCII text, normalizing keeps every character
        in place, so a window's normalized form is the slice of ``norm`` (unless the window edge cuts an escape)."""
        best, best_at = 0.0, 0
        for offset, _, s in self.window_scores(text, norm):
            if s > best:
                best, best_at = s, offset
        return best, best_at

    def forget(self) -> None:
        """Drop the remembered window scores (a benchmark measures cold work)."""
        self._recent.clear()

    def window_scores(self, text: str, norm: str | None = None) -> list[tuple[int, str, float]]:
        """(offset, window, probability) of every window of ``text``. The most recent texts' scores are remembered
        (up to ``RECENT_TEXTS`` of at most ``RECENT_MAX_CHARS``): the learned tier's gate reads the windows
        of a text right after the injection detector scored them. The list is shared: callers must not change it."""
        remember = len(text) <= RECENT_MAX_CHARS
        if remember:
            found = self._recent.get(text)
            if found is not None:
                return found
        reuse = norm is not None and len(norm) == len(text) and text.isascii()
        out: list[tuple[int, str, float]] = []
        offset = 0
        for w in windows(text):
            end = offset + len(w)
            if reuse and not _splits_escape(text, offset) and not _splits_escape(text, end):
                s = self.window_score(norm[offset:end])  # type: ignore[index]
            else:
                s = self.window_score(normalize(w))
            out.append((offset, w, s))
            offset = end
        if remember:
            self._recent[text] = out
            while len(self._recent) > RECENT_TEXTS:
                self._recent.pop(next(iter(self._recent)), None)
        return out


RECENT_TEXTS = 8
"""Texts whose window scores are remembered: one text and the readings of it scanned before the learned tier."""
RECENT_MAX_CHARS = 65_536
"""Longer texts are not remembered: what a model remembers stays under 8 texts and their windows of 64 K characters
each (~4 MiB at 4 bytes a character)."""


def model_from_dict(data: dict) -> InjectionModel:
    """A model from the content of a model file (as ``train_injection.train`` returns it)."""
    return InjectionModel(
        weights=data["weights"], bias=float(data["bias"]), threshold=float(data.get("threshold", 0.5))
    )


@lru_cache(maxsize=1)
def load_model(path: Path = MODEL_PATH) -> InjectionModel:
    return model_from_dict(json.loads(path.read_text(encoding="utf-8")))
