"""What the access log (``WARDEN_ACCESS_LOG``) costs per request: the ingress's middleware and one JSON log line,
around an ASGI app that answers at once, on and off, in the same run.

    .venv/bin/python bench/access_log.py                 # 20 000 requests each way, 5 rounds
    .venv/bin/python bench/access_log.py --requests 5000 --rounds 3

Lines go through Warden's own JSON formatter to a file (stderr in production: a terminal is slower, a pipe to a
collector about the same as a file). The figure is the difference of the medians of CPU time (so a busy machine
does not inflate it), in microseconds per request.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from plumbing.logs import JsonFormatter
from services.ingress.access_log import with_access_log

SCOPE = {"type": "http", "method": "POST", "path": "/v1/openai/chat/completions", "headers": []}
START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"application/json"), (b"x-warden-interaction-id", b"0" * 36)],
}
BODY = {"type": "http.response.body", "body": b"{}"}


async def answer(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    await send(START)
    await send(BODY)


async def receive() -> dict:
    return {"type": "http.request", "body": b""}


async def send(message: dict) -> None:
    return None


async def per_request_us(app, requests: int) -> float:  # type: ignore[no-untyped-def]
    started = time.thread_time()  # CPU time: what the machine's other work does to wall time does not count
    for _ in range(requests):
        await app(SCOPE, receive, send)
    return (time.thread_time() - started) / requests * 1e6


async def main(requests: int, rounds: int) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".log") as sink:
        handler = logging.StreamHandler(sink)
        handler.setFormatter(JsonFormatter())
        logging.getLogger().handlers[:] = [handler]
        logging.getLogger().setLevel("INFO")
        off, on = with_access_log(answer, False), with_access_log(answer, True)
        times: dict[str, list[float]] = {"off": [], "on": []}
        for _ in range(rounds):
            times["off"].append(await per_request_us(off, requests))
            times["on"].append(await per_request_us(on, requests))
        sink.flush()
        lines = Path(sink.name).read_text().count("\n")
    median = {name: statistics.median(values) for name, values in times.items()}
    print(f"off: {median['off']:.2f} µs/request   on: {median['on']:.2f} µs/request")
    print(f"the access log adds {median['on'] - median['off']:.1f} µs per request ({lines} lines written)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.rounds))
