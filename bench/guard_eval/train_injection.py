"""Train the learned tier of the injection detector and write ``services/guard/detectors/model/injection.json``.

    python bench/guard_eval/train_injection.py [--c 30]

The model is an L2-regularised logistic regression over binary word uni- and bigrams of ~420-character windows,
L2-normalised, exactly as ``services.guard.detectors.injection_model`` computes them at run time (the features and the
windowing are imported from there). scikit-learn is needed here only; inference is plain Python.

Training data are every pooled source's rows (``corpus.pooled()``) except the held-out split (``corpus.held_out``);
``bench/guard_eval.py`` trains the same way once per source with that source left out, to score it. For documents with
an injected span, only the windows that overlap the span are positive. Three choices keep the model from memorising
one dataset's quirks (a template's signature, a payload's canary string): a feature is kept only if it occurs in texts
of at least ``MIN_GROUPS`` different source/subtype groups; every group weighs the same in the loss however many rows
it has; and the regularisation strength is chosen by cross-validation grouped by source and subtype, i.e. for transfer
to unseen kinds of text, never on the held-out split. The weights are then pruned to the ``MAX_FEATURES`` largest,
to keep the model file small.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter
from functools import cache
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
from scipy.sparse import csr_matrix
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import GroupKFold

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpus  # noqa: E402

from services.guard.detectors.injection_model import MODEL_PATH, features, normalize, windows  # noqa: E402

MIN_DF = 2
MIN_GROUPS = 3
MAX_FEATURES = 40_000
TARGET_FPR = 0.01


@cache
def _text_windows(text: str) -> tuple[tuple[int, int, tuple[str, ...]], ...]:
    """(start, end, features) of each window of a text; memoised, as the evaluation trains once per source."""
    out, offset = [], 0
    for w in windows(text):
        out.append((offset, offset + len(w), tuple(features(normalize(w)))))
        offset += len(w)
    return tuple(out)


def window_examples(
    rows: list[dict[str, Any]],
) -> tuple[list[tuple[str, ...]], list[int], list[str], list[str], list[int]]:
    """(features, label, group, fine group, row) per window: CV folds hold out whole groups (source and kind of text);
    the fine group (the full subtype) is what a feature must be seen across to be kept."""
    feats, labels, groups, fine, owner = [], [], [], [], []
    for n, r in enumerate(rows):
        span = r.get("span")
        for lo, hi, f in _text_windows(r["text"]):
            label = int(r["label"])
            if span is not None:
                label = int(lo < span[1] and span[0] < hi)
            if f:
                feats.append(f)
                labels.append(label)
                groups.append(f"{r['source']}/{r['subtype'].split('.')[0]}")
                fine.append(f"{r['source']}/{r['subtype']}")
                owner.append(n)
    return feats, labels, groups, fine, owner


def vectorize(feats: list[tuple[str, ...]], vocab: dict[str, int]) -> csr_matrix:
    indptr, indices, values = [0], [], []
    for f in feats:
        known = sorted({vocab[g] for g in f if g in vocab})
        norm = 1.0 / math.sqrt(len(f))
        indices.extend(known)
        values.extend([norm] * len(known))
        indptr.append(len(indices))
    return csr_matrix((values, indices, indptr), shape=(len(feats), len(vocab)), dtype=np.float64)


def build_vocab(feats: list[tuple[str, ...]], groups: list[str]) -> dict[str, int]:
    df = Counter(chain.from_iterable(feats))
    by_group: dict[str, list[tuple[str, ...]]] = {}
    for f, group in zip(feats, groups, strict=True):
        by_group.setdefault(group, []).append(f)
    groups_with = Counter(chain.from_iterable(set().union(*fs) for fs in by_group.values()))
    kept = sorted(g for g, c in df.items() if c >= MIN_DF and groups_with[g] >= MIN_GROUPS)
    return {g: i for i, g in enumerate(kept)}


def group_weights(y: np.ndarray, groups: list[str]) -> np.ndarray:
    """Each (group, label) pair gets the same total weight, then the classes are balanced."""
    counts: dict[tuple[str, int], int] = {}
    for g, label in zip(groups, y, strict=True):
        counts[(g, int(label))] = counts.get((g, int(label)), 0) + 1
    w = np.array([1.0 / counts[(g, int(label))] for g, label in zip(groups, y, strict=True)])
    for label in (0, 1):
        mask = y == label
        w[mask] *= len(y) / (2 * w[mask].sum())
    return w


def fit(x: csr_matrix, y: np.ndarray, c: float, weights: np.ndarray) -> LogisticRegression:
    model = LogisticRegression(C=c, solver="liblinear", max_iter=5000)
    model.fit(x, y, sample_weight=weights)
    return model


def oof_scores(
    feats: list[tuple[str, ...]], y: np.ndarray, groups: list[str], fine: list[str], c: float, n_splits: int = 4
) -> np.ndarray:
    """Out-of-fold window scores, folds holding out whole groups (source and kind of text)."""
    scores = np.zeros(len(y))
    for train_idx, test_idx in GroupKFold(n_splits=n_splits).split(feats, y, groups):
        vocab = build_vocab([feats[i] for i in train_idx], [fine[i] for i in train_idx])
        weights = group_weights(y[train_idx], [groups[i] for i in train_idx])
        model = fit(vectorize([feats[i] for i in train_idx], vocab), y[train_idx], c, weights)
        scores[test_idx] = model.predict_proba(vectorize([feats[i] for i in test_idx], vocab))[:, 1]
    return scores


def alarm_threshold(rows: list[dict[str, Any]], owner: list[int], scores: np.ndarray) -> tuple[float, float]:
    """A text scores its highest window; the threshold is the out-of-fold text score that TARGET_FPR of the negative
    training texts exceed. Returns (threshold, out-of-fold text recall at it)."""
    text_score: dict[int, float] = {}
    for i, n in enumerate(owner):
        text_score[n] = max(text_score.get(n, 0.0), float(scores[i]))
    negatives = sorted(text_score[n] for n in text_score if not rows[n]["label"])
    threshold = negatives[int(len(negatives) * (1 - TARGET_FPR))]
    positives = [text_score[n] for n in text_score if rows[n]["label"]]
    return threshold, sum(p > threshold for p in positives) / max(1, len(positives))


def train(rows: list[dict[str, Any]], c: float, oof: np.ndarray | None = None, n_splits: int = 4) -> dict[str, Any]:
    """The model file's content for ``rows`` at regularisation ``c``; ``oof`` are out-of-fold window scores when the
    caller has them (else computed here, for the alarm threshold)."""
    feats, labels, groups, fine, owner = window_examples(rows)
    y = np.array(labels)
    if oof is None:
        oof = oof_scores(feats, y, groups, fine, c, n_splits)
    threshold, _ = alarm_threshold(rows, owner, oof)
    vocab = build_vocab(feats, fine)
    model = fit(vectorize(feats, vocab), y, c, group_weights(y, groups))
    coef = model.coef_[0]
    names = sorted(vocab, key=vocab.__getitem__)
    order = np.argsort(-np.abs(coef))[:MAX_FEATURES]
    weights = {names[i]: round(float(coef[i]), 3) for i in order if abs(coef[i]) >= 1e-3}
    return {
        "kind": "l2-logistic-regression/word-1-2-grams/binary-l2-normalised/window-420",
        "trained_on": sorted({f"{r['source']} ({r['licence']})" for r in rows}),
        "windows": len(feats),
        "c": c,
        "bias": round(float(model.intercept_[0]), 6),
        "threshold": round(threshold, 4),
        "weights": dict(sorted(weights.items())),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=MODEL_PATH)
    parser.add_argument("--c", type=float, default=None, help="skip the search and use this regularisation strength")
    args = parser.parse_args()

    # Every pooled source's rows except the held-out split (which no training or tuning decision sees).
    rows = [r for r in corpus.pooled() if not corpus.held_out(r)]
    feats, labels, groups, fine, owner = window_examples(rows)
    y = np.array(labels)
    print(f"{len(rows)} texts -> {len(feats)} windows ({int(y.sum())} positive)")

    candidates = [args.c] if args.c else [3.0, 10.0, 30.0]
    best_c, best_ap, best_scores = candidates[0], -1.0, np.zeros(len(y))
    for c in candidates:
        scores = oof_scores(feats, y, groups, fine, c)
        ap = average_precision_score(y, scores)
        print(f"C={c:g}: grouped-CV average precision {ap:.4f}, ROC AUC {roc_auc_score(y, scores):.4f}")
        if ap > best_ap:
            best_c, best_ap, best_scores = c, ap, scores
    threshold, recall = alarm_threshold(rows, owner, best_scores)
    print(f"threshold {threshold:.4f}: out-of-fold text recall {recall:.3f} at {TARGET_FPR:.0%} false positives")

    out = train(rows, best_c, oof=best_scores)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
    size = args.out.stat().st_size
    print(f"C={best_c:g}: {len(out['weights'])} non-zero weights; wrote {args.out} ({size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
