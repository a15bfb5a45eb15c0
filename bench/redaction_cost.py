"""What redaction costs the hot path: ``Enforcement.prepare`` on a 40-message tool-using history (about 7 KB), for a
profile that only redacts, a profile that redacts nothing, and with a secret in the history.

    python bench/redaction_cost.py [--rounds 300]

Cases: ``cold`` (every text new, as a first request), ``warm`` (the same history resent, as an agent does every
turn), ``secret`` (a warm history plus a new user turn holding a key: the body is masked and written back). Prints the
median per request in microseconds. Run it on two checkouts (``PYTHONPATH=<checkout>``) to compare them.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.policy_profile import history  # noqa: E402
from providers.openai import OpenAIAdapter  # noqa: E402
from schemas.profiles import ProfileSpec, new_profile  # noqa: E402
from services.ingress.enforcement import Enforcement  # noqa: E402

KEY = "sk-proj-" + "a1B2c3D4e5F6g7H8i9J0" * 3


def _body(turn: int, fresh: bool, secret: bool) -> bytes:
    messages: list[dict[str, Any]] = history(40)
    if fresh:  # new texts: nothing remembered from an earlier request
        messages = [{**m, "content": f"{m['content']} #{turn}"} if m.get("content") else m for m in messages]
    if secret:
        messages.append({"role": "user", "content": f"turn {turn}: deploy with {KEY} please"})
    return orjson.dumps({"model": "gpt-4o", "messages": messages})


def _median_us(profile: Any, rounds: int, fresh: bool, secret: bool) -> float:
    adapter = OpenAIAdapter()
    samples = []
    for turn in range(rounds):
        body = _body(turn, fresh, secret)
        parsed = orjson.loads(body)
        started = time.perf_counter()
        Enforcement(profile, adapter, "/chat/completions").prepare(body, parsed)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=300)
    rounds = parser.parse_args().rounds
    redacting = new_profile(ProfileSpec(name="redacting", redact_secrets=True))
    restrictive = new_profile(ProfileSpec(name="restrictive", mode="restrictive"))
    for label, profile in (("redact_secrets", redacting), ("restrictive, no redaction", restrictive)):
        for case, fresh, secret in (("cold", True, False), ("warm", False, False), ("secret", False, True)):
            print(f"{label:28s} {case:7s} {_median_us(profile, rounds, fresh, secret):9.1f} µs")


if __name__ == "__main__":
    main()
