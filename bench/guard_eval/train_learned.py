"""Train the sentence-embedding tier of the injection detector and write
``services/guard/detectors/model/learned_head.json``.

    python bench/guard_eval/train_learned.py [--per-group 220] [--cache /tmp/learned_emb.npz]

Texts are cut into the n-gram tier's ~420-character windows (``injection_model.windows``), each window is encoded by
all-MiniLM-L6-v2 (``encoder.SentenceEncoder``, the same int8 graph as at run time), and a logistic regression is fit
on the 384-dimensional embeddings. For documents with an injected span only the windows overlapping the span are
positive. Encoding costs tens of milliseconds a window on one core, so the training windows are a sample: at most
``--per-group`` windows per source/subtype group and label, every group weighing the same in the loss (so that no one
dataset's style dominates). The regularisation strength is chosen by cross-validation grouped by source and subtype
(transfer to unseen kinds of text), the alarm threshold is the out-of-fold score exceeded by 1% of the negative
windows. Nothing held out (``eval_injection.jsonl``, ``eval_agent_events.jsonl``) is read here.

The scorer interface the benchmark plugs in (``LearnedScorer`` below): ``train(texts, labels)`` offline,
``score(text) -> float`` (the highest window probability) at run time.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from services.guard.detectors.encoder import shared_encoder  # noqa: E402
from services.guard.detectors.injection_model import load_model, normalize, windows  # noqa: E402
from services.guard.detectors.learned import HEAD_PATH, LearnedHead  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parent / "data" / "injection_train.jsonl.gz"
TARGET_FPR = 0.01
GATES = {"gated": (0.003, 0.001), "wide": (0.02, 0.005)}
"""Per gated mode: the share of negative windows its gate lets through to the tier (read off the n-gram scores), and
the false alarms (share of all negative windows) the tier may add there to the n-gram tier's own. ``gated`` is sized
for the guard's CPU budget, ``wide`` reads ~7 times more windows for more recall."""
SEED = 7


def load(path: Path) -> list[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def window_rows(rows: list[dict[str, Any]]) -> list[tuple[str, int, str]]:
    """(window text, label, group) for every window of every row."""
    out = []
    for r in rows:
        span = r.get("span")
        offset = 0
        group = f"{r['source']}/{r['subtype'].split('.')[0]}"
        for w in windows(r["text"]):
            lo, hi = offset, offset + len(w)
            offset = hi
            label = int(r["label"]) if span is None else int(lo < span[1] and span[0] < hi)
            if w.strip():
                out.append((w, label, group))
    return out


def sample(items: list[tuple[str, int, str]], per_group: int) -> list[tuple[str, int, str]]:
    by: dict[tuple[str, int], list[tuple[str, int, str]]] = defaultdict(list)
    for it in items:
        by[(it[2], it[1])].append(it)
    rng = random.Random(SEED)
    out = []
    for key in sorted(by):
        bucket = by[key]
        rng.shuffle(bucket)
        out += bucket[:per_group]
    return out


def embed(texts: list[str], cache: Path | None) -> np.ndarray:
    if cache is not None and cache.exists():
        data = np.load(cache, allow_pickle=False)
        if list(data["texts"]) == texts:
            return data["x"]
    enc = shared_encoder()
    started = time.time()
    parts = []
    for k in range(0, len(texts), 64):
        parts.append(enc.encode(texts[k : k + 64]))
        if k % 640 == 0:
            print(f"  encoded {k}/{len(texts)} in {time.time() - started:.0f}s", flush=True)
    x = np.concatenate(parts)
    if cache is not None:
        np.savez_compressed(cache, x=x, texts=np.array(texts))
    return x


def fit(x: np.ndarray, y: np.ndarray, groups: list[str], ngram: np.ndarray) -> tuple[LearnedHead, dict[str, float]]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import GroupKFold

    counts: dict[str, int] = defaultdict(int)
    for g in groups:
        counts[g] += 1
    weight = np.array([1.0 / counts[g] for g in groups])
    weight *= len(weight) / weight.sum()
    folds = list(GroupKFold(n_splits=5).split(x, y, groups))
    best: tuple[float, float, np.ndarray] | None = None
    for c in (0.3, 1.0, 3.0, 10.0, 30.0):
        oof = np.zeros(len(y))
        for tr, te in folds:
            model = LogisticRegression(C=c, max_iter=2000)
            model.fit(x[tr], y[tr], sample_weight=weight[tr])
            oof[te] = model.predict_proba(x[te])[:, 1]
        auc = roc_auc_score(y, oof)
        print(f"  C={c}: grouped-CV AUC {auc:.4f}")
        if best is None or auc > best[0]:
            best = (auc, c, oof)
    assert best is not None
    auc, c, oof = best
    model = LogisticRegression(C=c, max_iter=4000)
    model.fit(x, y, sample_weight=weight)
    threshold = float(np.quantile(oof[y == 0], 1 - TARGET_FPR))
    recall = float((oof[y == 1] >= threshold).mean())
    # Gated modes: the tier reads only windows the n-gram tier scores at or above a gate (and below its own alarm);
    # its threshold there lets it add at most the mode's share of false alarms over all negative windows.
    neg = y == 0
    ngram_alarm = ngram >= load_model().threshold
    gates: dict[str, list[float]] = {}
    stats: dict[str, float] = {}
    for name, (passing, extra_fpr) in GATES.items():
        gate = float(np.quantile(ngram[neg], 1 - passing))
        gated_neg = np.sort(oof[neg & (ngram >= gate) & ~ngram_alarm])[::-1]
        k = int(extra_fpr * neg.sum())
        gated_threshold = float(max(gated_neg[k], 0.5)) if k < len(gated_neg) else 0.5
        added = (ngram >= gate) & ~ngram_alarm & (oof >= gated_threshold)
        gates[name] = [gate, gated_threshold]
        stats[f"{name}_added_recall"] = round(float(added[y == 1].mean()), 4)
        stats[f"{name}_added_fpr"] = round(float(added[neg].mean()), 4)
    head = LearnedHead(
        weights=model.coef_[0].astype(float).tolist(),
        bias=float(model.intercept_[0]),
        threshold=threshold,
        gates=gates,
    )
    return head, {
        "C": c,
        "cv_auc": round(auc, 4),
        "cv_recall_at_1pct_fpr": round(recall, 4),
        **stats,
    }


class LearnedScorer:
    """The tier as a pluggable scorer for evaluations that retrain per split (e.g. leave one source out):
    ``train(texts, labels)`` fits a head on the window embeddings (a text's label on each of its windows), ``score``
    is the highest window probability of a text, ``threshold`` the probability exceeded by 1% of the training
    negatives' windows. Embeddings are memoised by window text, so retraining on another split re-encodes nothing."""

    name = "learned"

    def __init__(self, c: float = 10.0) -> None:
        self.c = c
        self.head: LearnedHead | None = None
        self._memo: dict[str, np.ndarray] = {}

    def _embed(self, windows_: list[str]) -> np.ndarray:
        missing = [w for w in dict.fromkeys(windows_) if w not in self._memo]
        if missing:
            for w, e in zip(missing, embed(missing, None), strict=True):
                self._memo[w] = e
        return np.stack([self._memo[w] for w in windows_]) if windows_ else np.zeros((0, 384), np.float32)

    def train(self, texts: list[str], labels: list[int]) -> None:
        from sklearn.linear_model import LogisticRegression

        pairs = [(w, int(label)) for t, label in zip(texts, labels, strict=True) for w in windows(t) if w.strip()]
        x = self._embed([w for w, _ in pairs])
        y = np.array([label for _, label in pairs])
        model = LogisticRegression(C=self.c, max_iter=4000, class_weight="balanced").fit(x, y)
        p = model.predict_proba(x)[:, 1]
        threshold = float(np.quantile(p[y == 0], 1 - TARGET_FPR)) if (y == 0).any() else 0.5
        self.head = LearnedHead(model.coef_[0].astype(float).tolist(), float(model.intercept_[0]), threshold)

    def score(self, text: str) -> float:
        assert self.head is not None, "train first"
        chosen = [w for w in windows(text) if w.strip()][:256]
        return float(self.head.probabilities(self._embed(chosen)).max()) if chosen else 0.0

    @property
    def threshold(self) -> float:
        assert self.head is not None, "train first"
        return self.head.threshold


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--per-group", type=int, default=220)
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=HEAD_PATH)
    args = ap.parse_args()
    items = sample(window_rows(load(args.data)), args.per_group)
    texts = [t for t, _, _ in items]
    y = np.array([lab for _, lab, _ in items])
    groups = [g for _, _, g in items]
    print(f"{len(items)} windows ({int(y.sum())} positive) from {len(set(groups))} groups")
    x = embed(texts, args.cache)
    model = load_model()
    ngram = np.array([model.window_score(normalize(t)) for t in texts])
    head, stats = fit(x, y, groups, ngram)
    args.out.write_text(
        json.dumps(
            {**head.to_json(), "training": {**stats, "windows": len(items), "positives": int(y.sum())}}, indent=1
        )
        + "\n",
        encoding="utf-8",
    )
    print(f"wrote {args.out}: {stats}, threshold {head.threshold:.4f}")


if __name__ == "__main__":
    main()
