"""The evaluation's split: a source is never scored by a model that saw it, and the held-out split is fixed."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench" / "guard_eval"))

import corpus


def test_a_fold_trains_on_no_row_of_the_source_it_scores_nor_on_rows_derived_from_it():
    pool = [r for r in corpus.pooled() if not corpus.held_out(r)]
    for source in corpus.scored_sources(pool):
        training = corpus.fold_training_rows(pool, source)
        assert all(r["source"] != source for r in training)
        if source in corpus.DERIVED_FROM:
            assert all(r["source"] != corpus.DERIVED for r in training)
    assert corpus.DERIVED not in corpus.scored_sources(pool)


def test_the_held_out_split_is_about_fifteen_percent_of_every_large_source_and_depends_only_on_the_text():
    rows = corpus.pooled()
    by_source: dict[str, list[bool]] = {}
    for r in rows:
        by_source.setdefault(r["source"], []).append(corpus.held_out(r))
    for source, flags in by_source.items():
        if len(flags) >= 500:
            assert 0.10 < sum(flags) / len(flags) < 0.20, source
    assert corpus.held_out({"text": "same text"}) == corpus.held_out({"text": "same text", "source": "other"})


def test_every_positive_is_an_injection_or_a_jailbreak_and_both_kinds_occur():
    kinds = {r["kind"] for r in corpus.pooled() if r["label"]}
    assert kinds == {"injection", "jailbreak"}
    assert all(r["kind"] == "benign" for r in corpus.pooled() if not r["label"])
