"""What the budget and rate-limit counters cost a request: reserve then settle (what admission and completion do),
round trips per second and µs per request, the in-process counter table against Redis on loopback, in one run.

    .venv/bin/python bench/counters_cost.py --seconds 3 --charges 4 --concurrency 1,16

Redis is Debian's ``redis-server`` started on a free loopback port (tests/support/redis_server.py), or the server
``--redis-url`` names. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from plumbing.counters.base import Charge, Counters, Reservation
from plumbing.counters.redis import RedisCounters
from tests.support.redis_server import RedisServer


def in_process() -> Counters:
    try:
        from plumbing.counters.table import CounterTable
    except ImportError:
        sys.exit("the in-process counter table (plumbing/counters/table.py) is not in this tree")
    return CounterTable()


def charges_for(request: int, count: int, window_end: float) -> list[Charge]:
    # Like a profile with budgets and rate limits: a few counters shared by every request (profile, agent, the
    # minute's requests and tokens), each far from its limit so every reservation is admitted.
    return [Charge(f"bench:{n}", 1 + request % 7, 10**15, window_end if n % 2 else 0) for n in range(count)]


async def run(store: Counters, seconds: float, charges: int, concurrency: int) -> tuple[int, float, float]:
    """(requests, wall seconds, CPU seconds of this process) for ``concurrency`` clients in a closed loop."""
    window_end = time.time() + 3600
    done = 0
    stop = time.monotonic() + seconds

    async def client(offset: int) -> None:
        nonlocal done
        request = offset
        while time.monotonic() < stop:
            wanted = charges_for(request, charges, window_end)
            held = await store.reserve(wanted)
            assert isinstance(held, Reservation), held
            await store.settle(held, {c.counter: c.amount // 2 for c in wanted})
            done += 1
            request += concurrency

    began, cpu = time.monotonic(), time.process_time()
    await asyncio.gather(*(client(i) for i in range(concurrency)))
    return done, time.monotonic() - began, time.process_time() - cpu


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per store and concurrency")
    parser.add_argument("--charges", type=int, default=4, help="counters each request reserves and settles")
    parser.add_argument("--concurrency", default="1,16", help="clients in a closed loop, comma-separated")
    parser.add_argument("--redis-url", default=None, help="an existing Redis (default: start redis-server)")
    args = parser.parse_args()
    server = None
    if args.redis_url is None:
        server = RedisServer()
        server.start()
    url = args.redis_url or server.url  # type: ignore[union-attr]
    print(f"load average {os.getloadavg()[0]:.2f}, {args.charges} counters a request, {args.seconds:g} s a run")
    print(f"{'store':8} {'conc':>4} {'req/s':>9} {'µs/req wall':>12} {'µs/req CPU':>11}")
    try:
        for concurrency in [int(c) for c in args.concurrency.split(",")]:
            rates = {}
            for label in ("table", "redis"):
                prefix = uuid.uuid4().hex[:8]
                store: Counters = (
                    in_process()
                    if label == "table"
                    else RedisCounters(url, timeout_s=1.0, key_prefix=prefix, max_connections=max(concurrency, 1))
                )
                await run(store, min(0.5, args.seconds), args.charges, concurrency)  # warm up: connections, scripts
                done, wall, cpu = await run(store, args.seconds, args.charges, concurrency)
                await store.close()
                rates[label] = done / wall
                print(
                    f"{label:8} {concurrency:>4} {done / wall:>9.0f} {wall / done * 1e6 * concurrency:>12.1f}"
                    f" {cpu / done * 1e6:>11.1f}"
                )
            print(f"{'':8} {concurrency:>4} redis/table throughput ratio {rates['redis'] / rates['table']:.4f}")
    finally:
        if server is not None:
            server.close()


if __name__ == "__main__":
    try:  # the ingress runs on uvloop (uvicorn picks it when installed): measure on the same loop
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())
