"""What routing over one deployment adds to a request's CPU, measured inside one process: the same request sent
straight with the ingress's HTTP client, and through the router (alias lookup, choice, breaker, the attempt's
record and metrics), to a local upstream answering canned bytes. CPU time (not wall time) per request, the best of
several alternating rounds, so other load on the machine weighs on both sides alike.

    .venv/bin/python bench/routing_cost.py --requests 2000 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import time

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry

from services.ingress.failover.router import Outgoing, Router, RouterSettings
from services.ingress.failover.routing import UpstreamRouting
from services.ingress.headers import upstream_headers
from services.ingress.metrics import IngressMetrics
from services.ingress.settings import IngressSettings
from services.ingress.tracecontext import TraceStarter

ANSWER = (
    b'{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant",'
    b'"content":"hi"},"finish_reason":"stop"}]}'
)
BODY = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}'
HEADERS = [(b"content-type", b"application/json"), (b"authorization", b"Bearer sk-test")]


async def main(requests: int, rounds: int) -> None:
    async def answer(_: web.Request) -> web.Response:
        return web.Response(body=ANSWER, content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    base = f"http://127.0.0.1:{port}/v1"
    settings = IngressSettings(
        deployments={"one": {"provider": "openai", "base_url": base}},
        model_aliases={"openai/gpt-4o-mini": {"targets": [{"deployment": "one"}]}},
    )
    metrics = IngressMetrics(CollectorRegistry(), 200)
    routing = UpstreamRouting(
        settings, ["openai"], None, attempts_counter=metrics.upstream_attempts, breaker_gauge=metrics.breaker_state
    )
    router: Router = routing.router
    assert isinstance(router.settings, RouterSettings)
    traces = TraceStarter(None)
    session = aiohttp.ClientSession(auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar())

    async def direct() -> None:
        response = await session.request(
            "POST", base + "/chat/completions", headers=upstream_headers(HEADERS), data=BODY, allow_redirects=False
        )
        await response.read()
        response.release()

    async def routed() -> None:
        alias = routing.lookup("openai", "gpt-4o-mini") if routing.table else None
        assert alias is not None
        request = Outgoing(
            method="POST",
            route="/chat/completions",
            query=b"",
            client_headers=HEADERS,
            own_credential=None,
            body=BODY,
            streams=lambda _: False,
            traces=traces,
            trace=None,
            record=[],
            interaction_started=time.perf_counter(),
        )
        response, _ = await router.send(session, alias, request)
        await response.read()
        response.release()

    best = {"direct": float("inf"), "routed": float("inf")}
    for _ in range(rounds):
        for name, call in (("direct", direct), ("routed", routed)):
            for _ in range(100):  # warm the pool
                await call()
            started = time.process_time()
            for _ in range(requests):
                await call()
            best[name] = min(best[name], (time.process_time() - started) / requests * 1e6)
    await session.close()
    await runner.cleanup()
    print(f"CPU per request, µs (best of {rounds} rounds of {requests}; the local upstream's CPU on both sides):")
    print(f"  direct {best['direct']:.1f}  routed {best['routed']:.1f}  added {best['routed'] - best['direct']:.1f}")
    print(
        f"the router's own work per request, µs (no network: a stand-in session): {await _logic(router, routing):.1f}"
    )


class _Answer:
    status = 200
    headers: dict[str, str] = {"Content-Type": "application/json"}
    raw_headers = ((b"Content-Type", b"application/json"),)
    content = None

    def release(self) -> None:
        pass


class _Session:
    """Answers at once: what is measured is what the router does around the request, not the request."""

    async def request(self, *args: object, **kwargs: object) -> _Answer:
        return _Answer()


async def _logic(router: Router, routing: UpstreamRouting, count: int = 20000) -> float:
    session, traces = _Session(), TraceStarter(None)

    async def direct() -> None:
        answer = await session.request("POST", "x", headers=upstream_headers(HEADERS), data=BODY)
        answer.release()

    async def routed() -> None:
        alias = routing.lookup("openai", "gpt-4o-mini") if routing.table else None
        assert alias is not None
        request = Outgoing(
            "POST", "/chat/completions", b"", HEADERS, None, BODY, lambda _: False, traces, None, [], 0.0
        )
        answer, _ = await router.send(session, alias, request)  # type: ignore[arg-type]
        answer.release()

    best = float("inf")
    for _ in range(5):
        timings = []
        for call in (direct, routed):
            started = time.process_time()
            for _ in range(count):
                await call()
            timings.append(time.process_time() - started)
        best = min(best, (timings[1] - timings[0]) / count * 1e6)
    return best


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.rounds))
