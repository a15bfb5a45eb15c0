"""Sends one request over a model alias's deployments: picks a deployment, sends, and on a failure it may repeat
(``retry.py`` says which) tries the next one, or the same one again after a backoff, until one answers, the alias's
``max_attempts`` are spent or the deadline passes. Nothing has reached the client while this runs: a stream's first
chunk is read here, before the client's answer starts, so a stream that breaks before it falls back too.

Every attempt is kept for the record (deployment, model sent, status, latency, error class, which one answered) and
counted in ``llm_upstream_attempts_total``. Breakers and in-flight counts live in this process."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from yarl import URL

from schemas.events import UpstreamAttempt
from services.detection.credentials import scrub_credentials
from services.ingress.credentials import query_without_key
from services.ingress.failover import retry
from services.ingress.failover.balance import Candidate, pick
from services.ingress.failover.breaker import Breaker, State
from services.ingress.failover.table import AliasRoute, Target
from services.ingress.failover.wire import Untranslatable
from services.ingress.headers import upstream_headers
from services.ingress.signing import NoAwsCredentials
from services.ingress.tracecontext import TraceStarter

_ERROR_BODY_MAX = 64 * 1024
"""What is read of a failed attempt's answer before it is let go (its connection goes back to the pool)."""


@dataclass(frozen=True, slots=True)
class RouterSettings:
    deadline_s: float = 30.0
    backoff_base_s: float = 0.25
    backoff_cap_s: float = 8.0
    breaker_threshold: int = 5
    breaker_cooldown_s: float = 30.0


@dataclass(slots=True)
class Outgoing:
    """One client request, as each attempt sends it."""

    method: str
    route: str
    query: bytes
    client_headers: list[tuple[bytes, bytes]]
    own_credential: tuple[tuple[str, str], ...] | None
    """What the request authenticates with where a deployment holds no credential of its own."""
    body: bytes
    streams: Callable[[str], bool]
    """Whether an answer of this content type is a stream."""
    traces: TraceStarter
    trace: Any
    record: list[UpstreamAttempt]
    interaction_started: float


class RoutingFailed(Exception):
    """No deployment answered: what the client is told (in its provider's shape), or, when the last attempt's
    deployment answered an error (a 429, a 5xx), that answer as it came (``answer``: status, headers, body)."""

    def __init__(
        self,
        status: int,
        message: str,
        answer: tuple[int, tuple[tuple[bytes, bytes], ...], bytes] | None = None,
        final: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.answer = answer
        self.final = final
        """Not to be tried elsewhere (a timeout after the request was sent)."""


@dataclass(slots=True)
class _Health:
    breaker: Breaker
    outstanding: int = 0
    shown: State | None = None
    """The state ``llm_upstream_breaker_state`` shows."""


class Router:
    def __init__(
        self,
        settings: RouterSettings,
        attempts_counter: Any = None,
        breaker_gauge: Any = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.perf_counter,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self._health: dict[str, _Health] = {}
        self._counters: dict[tuple[str, str], Any] = {}
        self._attempts = attempts_counter
        self._breaker_gauge = breaker_gauge
        self._rng = rng or random.Random()
        self._clock = clock
        self._sleep = sleep

    def health(self, deployment: str, target: Target | None = None) -> _Health:
        found = self._health.get(deployment)
        if found is None:
            s = self.settings
            threshold = target.breaker_failures if target is not None and target.breaker_failures else None
            cooldown = target.breaker_cooldown_s if target is not None and target.breaker_cooldown_s else None
            breaker = Breaker(threshold or s.breaker_threshold, cooldown or s.breaker_cooldown_s)
            found = self._health[deployment] = _Health(breaker)
        return found

    def breaker_state(self, deployment: str) -> State:
        return self.health(deployment).breaker.state(self._clock())

    def _available(self, target: Target, now: float) -> bool:
        health = self.health(target.deployment, target)
        if target.max_concurrent is not None and health.outstanding >= target.max_concurrent:
            return False
        return health.breaker.available(now)

    def choose(self, alias: AliasRoute, tried: set[int], now: float) -> int | None:
        """The target of the next attempt: one not tried yet if any is available, else one tried before; None when
        none is available now."""
        if len(alias.targets) == 1:  # the common case: nothing to balance
            return 0 if self._available(alias.targets[0], now) else None
        fresh = [
            Candidate(i, t.priority, t.weight, self.health(t.deployment).outstanding)
            for i, t in enumerate(alias.targets)
            if i not in tried and self._available(t, now)
        ]
        if not fresh:
            fresh = [
                Candidate(i, t.priority, t.weight, self.health(t.deployment).outstanding)
                for i, t in enumerate(alias.targets)
                if self._available(t, now)
            ]
        chosen = pick(fresh, alias.strategy, self._rng)
        return None if chosen is None else chosen.index

    def _ready_at(self, alias: AliasRoute, now: float) -> float:
        return min(self.health(t.deployment).breaker.ready_at(now) for t in alias.targets)

    async def send(
        self,
        session: aiohttp.ClientSession,
        alias: AliasRoute,
        request: Outgoing,
    ) -> tuple[RoutedResponse, Target]:
        """The response of the attempt that answered (a stream's first chunk already read), and its target; raises
        ``RoutingFailed`` when none did. Every attempt is appended to ``request.record``."""
        settings = self.settings
        clock = self._clock
        deadline = clock() + settings.deadline_s
        tried: set[int] = set()
        failure: RoutingFailed | None = None
        for attempt_number in range(alias.max_attempts):
            now = clock()
            index = self.choose(alias, tried, now)
            if index is None or index in tried:
                # Everything was tried or is resting: wait (a backoff, or until a deployment may be called again)
                # if the deadline allows.
                wait = retry.backoff(attempt_number - 1, settings.backoff_base_s, settings.backoff_cap_s, self._rng)
                if index is None:
                    wait = max(wait, self._ready_at(alias, now) - now)
                if now + wait > deadline:
                    break
                await self._sleep(wait)
                now = clock()
                index = self.choose(alias, tried, now)
                if index is None:
                    break
            tried.add(index)
            target = alias.targets[index]
            last = attempt_number + 1 >= alias.max_attempts or clock() >= deadline
            outcome = await self._attempt(session, target, request, alias.model, last)
            if isinstance(outcome, RoutingFailed):
                failure = outcome
                if outcome.final:
                    raise outcome
                continue
            return outcome
        raise failure or RoutingFailed(503, f"no deployment of {alias.model} is available")

    async def _attempt(
        self,
        session: aiohttp.ClientSession,
        target: Target,
        request: Outgoing,
        requested: str,
        last: bool,
    ) -> tuple[RoutedResponse, Target] | RoutingFailed:
        """One attempt; ``requested``: the model the client asked for; ``last``: no other attempt will follow (an
        error answer is then passed on as it is)."""
        clock = self._clock
        health = self.health(target.deployment, target)
        breaker = health.breaker
        breaker.acquire(clock())
        credential = target.credential if target.credential is not None else request.own_credential
        headers = upstream_headers(request.client_headers, credential)
        span = request.traces.attempt(request.trace, headers)
        query = request.query
        if target.credential is not None:
            query = query_without_key(query)  # the deployment's own key replaces the client's
        unsendable: str | None = None
        if target.translate is None:
            url_route, payload = with_model(request.route, request.body, requested, target.model)
        else:  # another wire format's paths (Azure ↔ OpenAI), or a model named in the path (Bedrock)
            try:
                url_route, query, payload = target.translate(
                    request.route, query, request.body, requested, target.model
                )
            except Untranslatable as exc:
                url_route, payload, unsendable = request.route, b"", str(exc)
        url: str | URL = target.base_url + url_route
        if query:
            url = f"{url}?{query.decode('latin-1')}"
        started = clock()
        health.outstanding += 1
        error: retry.ErrorClass | None = None
        message = ""
        status: int | None = None
        answer: RoutedResponse | None = None
        refused: tuple[int, tuple[tuple[bytes, bytes], ...], bytes] | None = None
        wait: float | None = None
        try:
            try:
                if unsendable is not None:
                    raise Untranslatable(unsendable)
                if target.signer is not None:  # signed for this deployment's region and host, as it is sent
                    url, headers = await target.signer.sign(request.method, str(url), headers, payload, credential)
                response = await session.request(
                    request.method, url, headers=headers, data=payload or None, allow_redirects=False
                )
            except (Untranslatable, NoAwsCredentials) as exc:
                error, message = "unsendable", f"the request cannot be sent to this deployment: {exc}"
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
                error, message = "connect", f"the upstream could not be reached: {exc}"
            except (TimeoutError, aiohttp.ServerTimeoutError):
                error, message = "timeout", "the upstream did not answer in time"
            except aiohttp.ClientError as exc:
                error, message = "disconnected", f"the upstream closed the connection without answering: {exc}"
            else:
                status = response.status
                error = retry.status_class(status)
                if error is None and request.streams(response.headers.get("Content-Type", "")):
                    answer, error, message = await _peek(response)
                elif retry.retryable(error) and not last:
                    wait = retry.provider_wait({k.lower(): v for k, v in response.headers.items()}, time.time())
                    refused = (status, response.raw_headers, await _bounded_body(response))
                    response.release()
                    message = f"the upstream answered {status}"
                else:
                    answer = RoutedResponse(response)  # a success, or an error passed on (nothing else to try)
        except asyncio.CancelledError:
            breaker.released()
            health.outstanding -= 1
            raise
        finished = clock()
        if answer is None:
            health.outstanding -= 1
        else:  # in flight until the answer has been relayed (least_outstanding, max_concurrent)
            answer.track(health)
        answered = answer is not None
        retried = not answered and retry.retryable(error)
        if error is None or error == "status_4xx":
            breaker.succeeded()  # the deployment works; a request it refuses is the request's fault
        elif error == "unsendable" and unsendable is not None:
            breaker.released()  # a route it has no counterpart of says nothing of its health
        else:
            breaker.failed(finished, wait)
        self._count(target.deployment, error, finished)
        request.record.append(
            UpstreamAttempt(  # validated in pydantic-core: cheaper than model_construct's Python loop
                span_id=span.span_id if span is not None else "",
                started_ms=(started - request.interaction_started) * 1000.0,
                finished_ms=(finished - request.interaction_started) * 1000.0,
                status=status,
                error=scrub_credentials(message) if message and not answered else None,
                deployment=target.deployment,
                model=target.model,
                latency_ms=(finished - started) * 1000.0,
                error_class=error,
                answered=answered,
            )
        )
        if answered:
            assert answer is not None
            return answer, target
        return RoutingFailed(504 if error == "timeout" else 502, scrub_credentials(message), refused, final=not retried)

    def _count(self, deployment: str, error: str | None, now: float) -> None:
        if self._attempts is not None:
            key = (deployment, error or "success")
            counter = self._counters.get(key)
            if counter is None:  # looked up once: labels() costs more than the increment
                counter = self._counters[key] = self._attempts.labels(*key)
            counter.inc()
        if self._breaker_gauge is not None:
            health = self.health(deployment)
            state = health.breaker.state(now)
            if state is not health.shown:
                self._breaker_gauge.labels(deployment).set(int(state))
                health.shown = state


async def _bounded_body(response: aiohttp.ClientResponse) -> bytes:
    """A failed attempt's answer, up to ``_ERROR_BODY_MAX`` bytes (passed on if it is the last one)."""
    kept: list[bytes] = []
    size = 0
    try:
        async for chunk in response.content.iter_any():
            kept.append(chunk)
            size += len(chunk)
            if size >= _ERROR_BODY_MAX:
                break
    except (aiohttp.ClientError, TimeoutError):
        pass
    return b"".join(kept)[:_ERROR_BODY_MAX]


async def _peek(
    response: aiohttp.ClientResponse,
) -> tuple[RoutedResponse | None, retry.ErrorClass | None, str]:
    """Read a stream's first chunk before anything reaches the client: a stream that breaks before it can still go
    elsewhere. A timeout here is not retried (the upstream accepted the request and may be generating): the answer
    is passed on and breaks off the way a stream breaking later does."""
    try:
        first = await response.content.readany()
    except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
        return RoutedResponse(response, b"", exc), "timeout", "the upstream did not start its stream in time"
    except aiohttp.ClientError as exc:
        response.release()
        return None, "stream_broken", f"the upstream stream broke off before its first byte: {exc}"
    return RoutedResponse(response, first), None, ""


class RoutedResponse:
    """The answering attempt's response, read as the response itself is (a stream's first chunk, read already, comes
    first); ``release()`` also ends the attempt's count of requests in flight."""

    def __init__(
        self, response: aiohttp.ClientResponse, first: bytes = b"", failure: BaseException | None = None
    ) -> None:
        self._response = response
        # What relaying reads, as plain attributes: ``__getattr__`` costs a Python call per access on the hot path.
        self.status = response.status
        self.headers = response.headers
        self.raw_headers = response.raw_headers
        self.content = _PeekedContent(response.content, first, failure) if first or failure else response.content
        self._health: _Health | None = None

    def track(self, health: _Health) -> None:
        """Count the answer in its deployment's requests in flight until it is released."""
        self._health = health

    def release(self) -> None:
        self._response.release()
        health, self._health = self._health, None
        if health is not None:
            health.outstanding -= 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self._response, name)


class _PeekedContent:
    def __init__(self, content: aiohttp.StreamReader, first: bytes, failure: BaseException | None) -> None:
        self._content = content
        self._first = first
        self._failure = failure

    async def iter_any(self) -> AsyncIterator[bytes]:
        first, self._first = self._first, b""
        if first:
            yield first
        if self._failure is not None:
            raise self._failure
        async for chunk in self._content.iter_any():
            yield chunk

    def __getattr__(self, name: str) -> Any:
        return getattr(self._content, name)


def with_model(route: str, body: bytes, requested: str, model: str) -> tuple[str, bytes]:
    """The route and body that ask for ``model`` instead of ``requested``: Gemini names the model in the path, every
    other format in the body's ``model``. Unchanged (not even parsed) when the two are the same."""
    if model == requested:
        return route, body
    if route.startswith(("/v1beta/models/", "/v1/models/", "/v1alpha/models/")):
        version, _, rest = route[1:].partition("/models/")
        _, colon, method = rest.partition(":")
        return f"/{version}/models/{model}{colon}{method}", body
    try:
        parsed = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return route, body
    if not isinstance(parsed, dict) or parsed.get("model") != requested:
        return route, body
    parsed["model"] = model
    return route, orjson.dumps(parsed)
