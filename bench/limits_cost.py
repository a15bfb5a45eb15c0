"""What a budget and a rate limit add to one request, measured in-process as CPU time (a busy machine disturbs it
less than a load test): the ingress's admission (plan the charges, price the worst case, reserve them in the counter
table every proxy process shares) and its settlement once the answer is priced, for a profile with a budget and a
rate limit against one with neither.

    .venv/bin/python bench/limits_cost.py --rounds 20000

See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prometheus_client import CollectorRegistry

from plumbing.counters.table import CounterTable
from schemas.cost import Cost
from schemas.profiles import ProfileSpec, new_profile
from schemas.view import Usage
from services.ingress.metering import Held, Meter
from services.ingress.metrics import IngressMetrics
from services.ingress.quota import Who
from services.pricing.catalogue import Catalogue

BODY = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "What is the capital of France, and why has it been important?"}],
    "max_tokens": 128,
}


async def measure(meter: Meter, spec: ProfileSpec, rounds: int) -> float:
    profile = new_profile(spec)
    who = Who(profile.id, "bench-agent", "bench-user", "")
    usage, cost = Usage(input_tokens=30, output_tokens=20), Cost(usd=0.00002)
    start = time.process_time()
    for _ in range(rounds):
        at = datetime.now(UTC)
        if profile.limited:
            held = await meter.admit(profile, who, at, BODY, 420, "chat/completions", "openai", BODY["model"])
            assert isinstance(held, Held)
            held.priced(200, usage, cost, False)
    await meter.drain()
    return (time.process_time() - start) / rounds


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=20000)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as work:
        table = CounterTable(Path(work) / "counters.bin")
        meter = Meter(table, Catalogue(), IngressMetrics(CollectorRegistry(), 200))
        plain = ProfileSpec(name="plain")
        limited = ProfileSpec(
            name="limited",
            budgets=[{"scope": "agent", "period": "day", "usd": 1e6}],
            rate_limits=[{"scope": "user", "requests_per_minute": 10**8, "tokens_per_minute": 10**9}],
        )
        await measure(meter, limited, 1000)  # warm: the catalogue's lookup, the table's pages
        base = await measure(meter, plain, args.rounds)
        cost = await measure(meter, limited, args.rounds)
        await table.close()
    print(f"no limits: {base * 1e6:.1f} us CPU per request")
    print(f"a budget and a rate limit (3 counters, shared table): {cost * 1e6:.1f} us CPU per request (admit + settle)")


if __name__ == "__main__":
    asyncio.run(main())
