"""The ingress: attribute, check, forward, stream back, record. Raw ASGI, since this is the hot path."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson

from plumbing.bus.base import Bus
from providers.base import ProviderAdapter, error_kind
from providers.openai import OpenAIAdapter
from schemas.quarantine import Quarantine, quarantine_key
from services.ingress import attribution, routing
from services.ingress.asgi import BodyTooLarge, ClientGone, Receive, Scope, Send, read_body, send_bytes
from services.ingress.enforcement import Enforcement, Judged, is_active
from services.ingress.headers import client_headers, upstream_headers
from services.ingress.history import ProviderHistory
from services.ingress.ids import new_interaction_id
from services.ingress.metrics import IngressMetrics
from services.ingress.recorder import Exchange, Recorder, now
from services.ingress.settings import IngressSettings
from services.ingress.upstreams import Upstream, configured_upstreams

log = logging.getLogger(__name__)
_JSON = [(b"content-type", b"application/json")]
_FALLBACK_ADAPTER = OpenAIAdapter()
_BODY_METHODS = {"POST", "PUT", "PATCH"}

ProfileLookup = Callable[[str], Any | None]
QuarantineLookup = Callable[[str], Quarantine | None]


class Ingress:
    def __init__(
        self,
        settings: IngressSettings,
        bus: Bus,
        metrics: IngressMetrics,
        profiles: ProfileLookup,
        quarantines: QuarantineLookup | None = None,
        history: ProviderHistory | None = None,
    ) -> None:
        self.settings = settings
        self.upstreams: dict[str, Upstream] = configured_upstreams(settings)
        self.recorder = Recorder(bus, metrics, settings.max_recorded_body_bytes)
        self.profiles = profiles
        self.quarantines: QuarantineLookup = quarantines or (lambda _: None)
        self.history = history if history is not None else ProviderHistory()
        self._session: aiohttp.ClientSession | None = None

    def _provider_paths(self, provider: str) -> frozenset[str]:
        upstream = self.upstreams.get(provider)
        return upstream.adapter.top_level_paths if upstream is not None else frozenset()

    async def startup(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=self.settings.upstream_max_connections, ttl_dns_cache=300, enable_cleanup_closed=True
        )
        timeout = aiohttp.ClientTimeout(
            total=None,
            sock_connect=self.settings.upstream_connect_timeout_s,
            sock_read=self.settings.upstream_read_timeout_s,
        )
        # auto_decompress off and Accept-Encoding: identity upstream: bytes pass through as they are.
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            auto_decompress=False,
            skip_auto_headers=("User-Agent",),
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def shutdown(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = routing.parse(scope["path"], self._provider_paths)
        upstream = self.upstreams.get(route.provider) if route else None
        if route is None or upstream is None:
            await _error(
                send, _FALLBACK_ADAPTER, 404, f"no provider is configured at {scope['path']}", new_interaction_id()
            )
            return
        adapter = upstream.adapter
        profile = self.profiles(route.profile_id)
        if profile is None:
            await _error(send, adapter, 404, f"unknown profile {route.profile_id}", new_interaction_id())
            return
        ex = Exchange(
            interaction_id=new_interaction_id(),
            started_at=now(),
            started=time.perf_counter(),
            provider=adapter.name,
            profile_id=profile.id,
            route=route.upstream_path,
            method=scope["method"],
        )
        try:
            who = attribution.read(scope["headers"])
            ex.agent_id, ex.user_id, ex.session_id = who.agent_id, who.user_id, who.session_id
            body = await read_body(scope, receive, self.settings.max_body_bytes)
        except attribution.AttributionError as exc:
            await self._refuse(send, adapter, ex, 400, str(exc), b"")
            return
        except BodyTooLarge:
            await self._refuse(
                send, adapter, ex, 413, f"request body is larger than {self.settings.max_body_bytes} bytes", b""
            )
            return
        except ClientGone:
            return
        quarantine = self.quarantines(quarantine_key(ex.profile_id, ex.agent_id)) if ex.agent_id else None
        if quarantine is not None and quarantine.active(ex.started_at):
            message = (
                f"agent {ex.agent_id} is quarantined until {quarantine.expires_at.isoformat()}: {quarantine.reason}"
            )
            await self._refuse(send, adapter, ex, 403, message, body)
            return
        parsed: Any = None
        if body and ex.method in _BODY_METHODS:
            try:
                parsed = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                await self._refuse(send, adapter, ex, 400, f"the request body is not valid JSON: {exc}", body)
                return
        meta = adapter.request_meta(route.upstream_path, parsed, scope.get("query_string", b"").decode("latin-1"))
        ex.model, ex.stream = meta.model, meta.stream
        enforcement = None
        sent = recorded = body
        view = None
        if is_active(profile):
            enforcement = Enforcement(profile, adapter, route.upstream_path, self.history)
            prepared = enforcement.prepare(body, parsed)
            sent, recorded = prepared.sent, prepared.recorded
            ex.decisions = enforcement.request_decisions
            self.recorder.count_redactions(ex, enforcement.verdict)
            # The view the guardrails built is the guard's too, unless they changed what is forwarded.
            view = None if prepared.modified else enforcement.view
        self.recorder.request(
            ex, recorded, sent if sent is not body else None, enforcement.untrusted_since if enforcement else None, view
        )
        await self._forward(scope, receive, send, ex, upstream, sent, enforcement)

    async def _refuse(
        self, send: Send, adapter: ProviderAdapter, ex: Exchange, status: int, message: str, body: bytes
    ) -> None:
        """Answer an error of Warden's own, and record it like any other interaction."""
        self.recorder.request(ex, body)
        payload = await _error(send, adapter, status, message, ex.interaction_id)
        ex.first_byte = time.perf_counter()
        self.recorder.response(ex, adapter=adapter, status=status, body=payload, finished=ex.first_byte, error=message)

    async def _forward(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        ex: Exchange,
        upstream: Upstream,
        body: bytes,
        enforcement: Enforcement | None,
    ) -> None:
        assert self._session is not None, "startup() was not awaited"
        adapter = upstream.adapter
        url = upstream.url(ex.route, scope.get("query_string", b""))
        try:
            response = await self._session.request(
                ex.method,
                url,
                headers=upstream_headers(scope["headers"]),
                data=body or None,
                allow_redirects=False,
            )
        except (TimeoutError, aiohttp.ServerTimeoutError):
            await self._upstream_failed(send, adapter, ex, 504, "the upstream did not answer in time")
            return
        except aiohttp.ClientError as exc:
            await self._upstream_failed(send, adapter, ex, 502, f"the upstream could not be reached: {exc}")
            return
        try:
            if adapter.answer_streams(ex.route, ex.stream, response.headers.get("Content-Type", "")):
                await self._stream(receive, send, ex, adapter, response, enforcement)
            else:
                await self._whole(send, ex, adapter, response, enforcement)
        finally:
            response.release()

    async def _whole(
        self,
        send: Send,
        ex: Exchange,
        adapter: ProviderAdapter,
        response: aiohttp.ClientResponse,
        enforcement: Enforcement | None,
    ) -> None:
        try:
            payload = await response.read()
        except (TimeoutError, aiohttp.ServerTimeoutError):
            await self._upstream_failed(send, adapter, ex, 504, "the upstream did not finish its answer in time")
            return
        except aiohttp.ClientError as exc:
            await self._upstream_failed(send, adapter, ex, 502, f"the upstream broke off its answer: {exc}")
            return
        headers = client_headers(response.raw_headers, ex.interaction_id.encode())
        judged = Judged()
        if enforcement is not None and enforcement.restrictive:
            payload, judged = enforcement.judge_whole(response.status, payload)
        status = judged.status or response.status
        ex.first_byte = time.perf_counter()
        await send_bytes(send, status, payload, headers)
        if enforcement is not None and not enforcement.restrictive:
            _, judged = enforcement.judge_whole(response.status, payload)  # recorded, not applied
        self.recorder.response(
            ex,
            adapter=adapter,
            status=status,
            body=payload,
            finished=time.perf_counter(),
            error=judged.error,
            completion=judged.completion,
            decisions=judged.decisions,
            blocked_tool_calls=judged.blocked_tool_calls,
        )

    async def _stream(
        self,
        receive: Receive,
        send: Send,
        ex: Exchange,
        adapter: ProviderAdapter,
        response: aiohttp.ClientResponse,
        enforcement: Enforcement | None,
    ) -> None:
        recorded: list[bytes] = []  # what the client got
        upstream: list[bytes] = []  # what the upstream sent: differs from `recorded` only while tool calls are held
        held = enforcement.held_stream(response.content_type) if enforcement is not None else None
        judged = Judged()
        error: str | None = None
        aborted = False
        # A client that goes away ends the exchange: the watcher cancels the copy loop, and what was sent is recorded.
        copier = asyncio.current_task()
        assert copier is not None

        async def watch_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            copier.cancel()

        watcher = asyncio.get_running_loop().create_task(watch_disconnect())
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status,
                    "headers": client_headers(response.raw_headers, ex.interaction_id.encode()),
                }
            )
            try:
                async for chunk in response.content.iter_any():
                    if held is not None:
                        upstream.append(chunk)
                        chunk = held.feed(chunk)
                        if not chunk:
                            continue
                    if ex.first_byte is None:
                        ex.first_byte = time.perf_counter()
                    recorded.append(chunk)
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                if enforcement is not None:
                    tail, judged = enforcement.judge_stream(b"".join(upstream if held else recorded), held)
                    if tail:
                        if ex.first_byte is None:
                            ex.first_byte = time.perf_counter()
                        recorded.append(tail)
                        await send({"type": "http.response.body", "body": tail, "more_body": True})
            except (TimeoutError, aiohttp.ClientError) as exc:
                error = f"the upstream stream broke off: {exc or type(exc).__name__}"
                tail = adapter.stream_error_event(
                    error, route=ex.route, content_type=response.content_type, started=bool(recorded)
                )
                recorded.append(tail)
                await send({"type": "http.response.body", "body": tail, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not watcher.done():
                raise  # cancelled from outside (shutdown), not by the client going away
            aborted, error = True, "the client closed the connection before the stream ended"
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        # A stream that broke off upstream is recorded as failed, though the client saw the upstream's status.
        status = 502 if error is not None and not aborted else response.status
        self.recorder.response(
            ex,
            adapter=adapter,
            status=status,
            body=b"".join(recorded),
            finished=time.perf_counter(),
            error=error,
            aborted=aborted,
            completion=judged.completion,
            decisions=judged.decisions,
            blocked_tool_calls=judged.blocked_tool_calls,
        )

    async def _upstream_failed(
        self, send: Send, adapter: ProviderAdapter, ex: Exchange, status: int, message: str
    ) -> None:
        payload = await _error(send, adapter, status, message, ex.interaction_id)
        self.recorder.response(
            ex, adapter=adapter, status=status, body=payload, finished=time.perf_counter(), error=message
        )


async def _error(send: Send, adapter: ProviderAdapter, status: int, message: str, interaction_id: str) -> bytes:
    payload = adapter.error_body(status, message, error_kind(status))
    await send_bytes(send, status, payload, [*_JSON, (b"x-warden-interaction-id", interaction_id.encode())])
    return payload
