"""The evaluation's interface to a detection tier: a tier is trained on rows and gives back a scorer.

    class Tier(Protocol):
        name: str
        def fit(self, rows: list[Row]) -> Scorer      # train (or not) on these rows only
    Scorer = Callable[[str, Position], float]          # text, where it appears -> score; >= FLAG (0.5) flags it

``bench/guard_eval.py`` calls ``fit`` once per held-out source with that source's rows removed (leave one source
out) and scores the source with the scorer it got back; a tier that learns nothing ignores the rows. The score is on
the findings' scale (0.5 = the report threshold). A new tier (a learned embedding model, a normaliser in front of the
others) is a class with these two members added to ``TIERS``; ``combined`` flags what any of its tiers flags.
Fitted n-gram models are cached in ``bench/guard_eval/.cache/`` by the hash of their training rows and trainer code.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from services.guard.detectors.injection import REPORT_THRESHOLD, find_injections, model_score  # noqa: E402
from services.guard.detectors.injection_model import InjectionModel, model_from_dict  # noqa: E402

Row = dict[str, Any]
Position = Literal["user", "tool"]
Scorer = Callable[[str, Position], float]
FLAG = REPORT_THRESHOLD
CACHE = HERE / ".cache"
C = 30.0  # the n-gram model's regularisation strength, as chosen by train_injection.py's grouped search
FOLD_SPLITS = 2  # grouped folds for a fitted model's alarm threshold (the shipped model uses 4; fewer fits here)


class Tier(Protocol):
    name: str

    def fit(self, rows: list[Row]) -> Scorer: ...


def _ngram_model(rows: list[Row]) -> InjectionModel:
    """train_injection.train on ``rows``, memoised on disk (a fit takes tens of seconds)."""
    code = b"".join(
        p.read_bytes()
        for p in (HERE / "train_injection.py", HERE.parents[1] / "services/guard/detectors/injection_model.py")
    )
    h = hashlib.sha256(code)
    h.update(f"{C}/{FOLD_SPLITS}".encode())
    for r in rows:
        h.update(json.dumps([r["text"], r["label"], r["source"], r["subtype"], r.get("span")]).encode())
    path = CACHE / f"ngram-{h.hexdigest()[:24]}.json"
    if not path.exists():
        import train_injection  # scikit-learn is needed only when a model must be trained

        CACHE.mkdir(exist_ok=True)
        path.write_text(json.dumps(train_injection.train(rows, C, n_splits=FOLD_SPLITS)), encoding="utf-8")
    return model_from_dict(json.loads(path.read_text(encoding="utf-8")))


@dataclass
class Rules:
    """The hand-written rules and character checks alone (nothing to train)."""

    name: str = "rules"

    def fit(self, rows: list[Row]) -> Scorer:
        return lambda text, position: _score(find_injections(text, source=position, use_model=False))


@dataclass
class Ngram:
    """The word n-gram logistic regression alone, trained on the fold's rows."""

    name: str = "n-gram model"

    def fit(self, rows: list[Row]) -> Scorer:
        model = _ngram_model(rows)
        return lambda text, position: model_score(text, position, model=model)[0]


@dataclass
class RulesAndNgram:
    """What the guard runs: rules and the n-gram model combined by ``find_injections``, the model trained on the
    fold's rows."""

    name: str = "rules + n-gram"

    def fit(self, rows: list[Row]) -> Scorer:
        model = _ngram_model(rows)
        return lambda text, position: _score(find_injections(text, source=position, model=model))


def _score(hits: Sequence[Any]) -> float:
    return max((h.score for h in hits), default=0.0)


@dataclass
class Combined:
    """Flags what any of its tiers flags; its score is the highest."""

    tiers: tuple[Tier, ...]
    name: str = "combined"

    def fit(self, rows: list[Row]) -> Scorer:
        scorers = [t.fit(rows) for t in self.tiers]
        return lambda text, position: max(s(text, position) for s in scorers)


# The guard as shipped is the first; the others are shown to judge each part on its own. A learned tier is added
# here and to the guard's composition: ``Combined((RulesAndNgram(), Learned()))``.
GUARD: Tier = RulesAndNgram()
TIERS: tuple[Tier, ...] = (GUARD, Rules(), Ngram())
