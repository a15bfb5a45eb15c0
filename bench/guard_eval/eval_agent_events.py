"""Report the injection detector on ``data/eval_agent_events.jsonl`` and ``data/eval_injection.jsonl``, tier by tier.

    python bench/guard_eval/eval_agent_events.py [--modes base,normalised,gated,wide,every] [--data FILE ...]

Configurations: ``base`` (rules and n-gram model on the bytes as they are), ``normalised`` (plus every reading of
:mod:`services.detection.normalise`), ``gated`` (plus the sentence-embedding tier on borderline windows, the default),
``wide`` (its lower gate) and ``every`` (the embedding tier on every window of every text), without CPU budget. A row
counts as flagged when the guard reports a prompt-injection finding at or above the alarm threshold for its position
(``role``: user message or tool result).

``eval_agent_events.jsonl`` was written for reporting only: no threshold, rule or training choice may be made by
looking at its results (see the README). CPU time per text is reported as well (``time.process_time``, one thread).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
import services.guard.detectors as detectors  # noqa: E402
from services.guard.detectors.learned import MODE_ENV, SHARE_ENV  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"
_SOURCE = {"user": "user", "tool": "tool", "tool_call": "tool"}


def _flagged(text: str, role: str) -> bool:
    _sensitive, injections = detectors._detect(text, _SOURCE.get(role, "text"))  # type: ignore[arg-type]
    return any(h.score >= 0.5 for h in injections)


def run(rows: list[dict[str, Any]], mode: str) -> tuple[dict[str, list[int]], float]:
    """Per subtype [flagged, total], and CPU seconds per row."""
    real_variants = detectors.variants
    os.environ[MODE_ENV] = "off" if mode in ("base", "normalised") else mode
    # Detection quality without the CPU budget (which depends on the machine's speed); its effect is measured by the
    # throughput run, as the share of borderline windows left unread.
    os.environ[SHARE_ENV] = "1.0"
    if mode == "base":
        detectors.variants = lambda text: []  # type: ignore[assignment]
    try:
        counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        started = time.process_time()
        for r in rows:
            hit = _flagged(r["text"], r.get("role", "user"))
            key = f"{'pos' if r['label'] else 'neg'}:{r.get('subtype', '')}"
            counts[key][0] += int(hit)
            counts[key][1] += 1
        return counts, (time.process_time() - started) / max(1, len(rows))
    finally:
        detectors.variants = real_variants  # type: ignore[assignment]
        os.environ.pop(MODE_ENV, None)
        os.environ.pop(SHARE_ENV, None)


def summary(counts: dict[str, list[int]]) -> tuple[float, float, int, int]:
    tp = sum(v[0] for k, v in counts.items() if k.startswith("pos:"))
    p = sum(v[1] for k, v in counts.items() if k.startswith("pos:"))
    fp = sum(v[0] for k, v in counts.items() if k.startswith("neg:"))
    n = sum(v[1] for k, v in counts.items() if k.startswith("neg:"))
    return tp / max(1, p), fp / max(1, n), p, n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--modes", default="base,normalised,gated,wide,every")
    ap.add_argument(
        "--data", nargs="*", type=Path, default=[DATA / "eval_agent_events.jsonl", DATA / "eval_injection.jsonl"]
    )
    args = ap.parse_args()
    modes = args.modes.split(",")
    if any(m in ("gated", "every") for m in modes):
        from services.guard.detectors.encoder import shared_encoder

        shared_encoder()  # built once, outside the timings
    for path in args.data:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        positives = sum(r["label"] for r in rows)
        print(f"\n## {path.name} ({positives} positive, {len(rows) - positives} negative)\n")
        results = {}
        for mode in modes:
            results[mode] = run(rows, mode)
        print("| configuration | recall | FPR | CPU ms / text |")
        print("|---|---|---|---|")
        for mode, (counts, cpu) in results.items():
            recall, fpr, _, _ = summary(counts)
            print(f"| {mode} | {recall:.3f} | {fpr:.3f} | {cpu * 1000:.1f} |")
        subtypes = sorted({k for c, _ in results.values() for k in c})
        if len(subtypes) <= 24:
            print("\n| subtype | n | " + " | ".join(modes) + " |")
            print("|---|---|" + "---|" * len(modes))
            for k in subtypes:
                n = results[modes[0]][0][k][1]
                cells = " | ".join(f"{results[m][0][k][0] / max(1, n):.2f}" for m in modes)
                print(f"| {k} | {n} | {cells} |")


if __name__ == "__main__":
    main()
