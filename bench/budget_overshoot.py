"""How far concurrent clients get past a small budget: N clients at once (64 by default) send chat completions
through `warden serve` (``--workers`` proxy processes sharing one counter table) to a fake OpenAI upstream, against a
profile whose budget holds a few requests' worst cases. Prints the budget, what was admitted and refused, what the
admitted requests cost (as Warden recorded them), what they reserved at most, and the spend over the limit (none is
expected: each admitted request reserved its worst case, and none costs more than that).

    .venv/bin/python bench/budget_overshoot.py
    .venv/bin/python bench/budget_overshoot.py --clients 64 --rounds 5 --workers 2 --usd 0.003

See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fakes.upstream import FakeUpstream
from tests.support.spend import concurrent_calls

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import WardenServer


def _recorded(url: str, agent: str, admitted: int) -> list[dict]:
    deadline = time.monotonic() + 60
    while True:
        items = httpx.get(f"{url}/api/interactions", params={"agent_id": agent, "limit": 500}, timeout=30).json()
        done = [item for item in items["items"] if item["status"] == 200]
        if len(done) >= admitted or time.monotonic() > deadline:
            return done
        time.sleep(0.2)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--rounds", type=int, default=3, help="each round a fresh profile and budget")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--usd", type=float, default=0.003, help="the budget (gpt-4o, worst case about $0.0005)")
    p.add_argument("--max-tokens", type=int, default=16)
    args = p.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="warden-overshoot-") as work, FakeUpstream("openai") as fake:
        warden = WardenServer(Path(work), fake.url + "/v1", None, workers=args.workers)
        warden.start()
        try:
            for n in range(args.rounds):
                body = {"name": f"overshoot-{n}", "budgets": [{"usd": args.usd, "period": "day"}]}
                profile = httpx.post(f"{warden.url}/api/profiles", json=body, timeout=30).json()["id"]
                agent = f"overshoot-{uuid.uuid4().hex[:8]}"
                statuses = asyncio.run(concurrent_calls(warden.url, profile, agent, args.clients, args.max_tokens))
                admitted = statuses.count(200)
                spent = sum(item["cost"]["usd"] for item in _recorded(warden.url, agent, admitted))
                row = {
                    "round": n,
                    "clients": args.clients,
                    "limit_usd": args.usd,
                    "admitted": admitted,
                    "refused_402": statuses.count(402),
                    "other": len(statuses) - admitted - statuses.count(402),
                    "spent_usd": round(spent, 9),
                    "over_limit_usd": round(max(spent - args.usd, 0.0), 9),
                }
                results.append(row)
                print(
                    f"round {n}: {args.clients} clients, budget ${args.usd}: admitted {admitted}, "
                    f"refused {row['refused_402']}, other {row['other']}; spent ${spent:.6f} "
                    f"({spent / args.usd:.0%} of the budget), over the limit ${row['over_limit_usd']:.6f}",
                    flush=True,
                )
        finally:
            warden.stop()
    worst = max(row["over_limit_usd"] for row in results)
    print(json.dumps({"workers": args.workers, "rounds": results, "most_over_limit_usd": worst}, indent=2))
    return 0 if worst == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
