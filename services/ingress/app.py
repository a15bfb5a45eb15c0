"""The ingress: attribute, check, forward, stream back, record. Raw ASGI, since this is the hot path."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson
from yarl import URL

from plumbing.bus.base import Bus
from plumbing.counters.base import Counters
from plumbing.counters.table import CounterTable
from plumbing.http_limits import refusal
from plumbing.keyring import Keyring
from providers.base import ProviderAdapter, error_kind
from providers.openai import OpenAIAdapter
from schemas.events import PolicyDecision
from schemas.profiles import ProfileLookup
from schemas.quarantine import Quarantine, quarantine_key
from services.detection.credentials import scrub_credentials
from services.ingress import attribution, routing
from services.ingress.admission import Gate
from services.ingress.asgi import BodyTooLarge, ClientGone, Receive, Scope, Send, read_body, send_bytes
from services.ingress.capture import Capture
from services.ingress.credentials import query_without_key
from services.ingress.enforcement import Enforcement, Judged, is_active, recordable
from services.ingress.failover.router import Outgoing, RoutingFailed
from services.ingress.failover.routing import UpstreamRouting
from services.ingress.failover.table import AliasRoute
from services.ingress.headers import INTERACTION_ID_HEADER, client_headers, upstream_headers
from services.ingress.history import ProviderHistory
from services.ingress.ids import new_interaction_id
from services.ingress.keys import KeyIndex
from services.ingress.metering import Meter, Refused
from services.ingress.metrics import IngressMetrics
from services.ingress.paths import unsafe_path
from services.ingress.quota import Who
from services.ingress.recorder import Exchange, Recorder, now
from services.ingress.settings import IngressSettings
from services.ingress.signing import BedrockSigner, NoAwsCredentials, bedrock_region_of
from services.ingress.tracecontext import TraceStarter
from services.ingress.upstreams import Upstream, bedrock_signer, configured_upstreams
from services.pricing.catalogue import Catalogue

log = logging.getLogger(__name__)
_JSON = [(b"content-type", b"application/json")]
_FALLBACK_ADAPTER = OpenAIAdapter()
_BODY_METHODS = {"POST", "PUT", "PATCH"}

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
        keys: KeyIndex | None = None,
        keyring: Keyring | None = None,
        traces: TraceStarter | None = None,
        counters: Counters | None = None,
        routing: UpstreamRouting | None = None,
    ) -> None:
        """``counters``: where budgets and rate limits are counted (default: this process's own table); ``routing``:
        the model aliases and deployments (None: those of ``settings`` alone, if any)."""
        self.settings = settings
        self.upstreams: dict[str, Upstream] = configured_upstreams(settings)
        self._regional_signers: dict[str, BedrockSigner] = {}
        """Bedrock signers for the regions profiles' own endpoints name (a few: admins write the endpoints)."""
        if routing is None and settings.model_aliases:
            routing = UpstreamRouting(
                settings,
                self.upstreams,
                keyring,
                attempts_counter=metrics.upstream_attempts,
                breaker_gauge=metrics.breaker_state,
            )
        self.routing = routing
        self.recorder = Recorder(
            bus, metrics, settings.max_recorded_body_bytes, Catalogue(settings.prices, settings.price_providers)
        )
        self.profiles = profiles
        self.meter = Meter(
            counters if counters is not None else CounterTable(),
            self.recorder.catalogue,
            metrics,
            settings.counters_pending_max_bytes,
        )
        self.keys = keys if keys is not None else KeyIndex(None, keyring)
        self.gate = Gate(profiles, self.keys, keyring, metrics.count_auth_failure)
        self._count_auth_failure = metrics.count_auth_failure
        self.quarantines: QuarantineLookup = quarantines or (lambda _: None)
        self.history = history if history is not None else ProviderHistory()
        self.traces = traces or TraceStarter(None)
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
        await self.recorder.drain()
        await self.meter.close()
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
        raw_path = scope.get("raw_path") or scope["path"].encode()
        # Judged before anything reads the path: a '..' here would climb above the provider's base path upstream.
        unsafe = unsafe_path(raw_path, encoded_slash=adapter.forwards_raw_path)
        if unsafe is not None:
            await _error(send, adapter, 400, unsafe, new_interaction_id())
            return
        if adapter.forwards_raw_path:
            raw_route = routing.parse(raw_path.decode("latin-1"), self._provider_paths)
            if raw_route is not None and raw_route.named == route.named:
                route = dataclasses.replace(route, upstream_path=raw_route.upstream_path)
        started_at = now()
        query = scope.get("query_string", b"")
        # A custom provider may be called with no credential; a signing upstream signs with Warden's own.
        optional = route.provider in self.settings.custom_providers or upstream.signer is not None
        admission = self.gate.admit(route, adapter.name, scope["headers"], query, started_at, optional)
        if not admission.status and admission.credential is None:
            unforwardable = adapter.unforwardable_credential(scope["headers"])
            if unforwardable is not None:
                admission.auth, admission.status, admission.message = "refused", 401, unforwardable
                admission.reason = "unforwardable_credential"
                self._count_auth_failure(admission.reason)
        profile = admission.profile
        if admission.status == 404:
            await _error(send, adapter, 404, admission.message, new_interaction_id())
            return
        ex = Exchange(
            interaction_id=new_interaction_id(),
            started_at=started_at,
            started=time.perf_counter(),
            provider=adapter.name,
            profile_id=profile.id if profile is not None else route.profile_id,
            route=route.upstream_path,
            method=scope["method"],
            auth=admission.auth,
            key_prefix=admission.key_prefix,
            trace=self.traces.begin(scope["headers"]),
        )
        refused = refusal(scope)
        if refused is not None:
            await self._refused_by_server(send, adapter, ex, scope, refused)
            return
        try:
            who = attribution.read(scope["headers"])
            ex.agent_id, ex.user_id, ex.session_id = who.agent_id, who.user_id, who.session_id
            if admission.status or profile is None:
                # Refused for its credential: answered before its body is read (the connection is closed).
                if admission.key is not None:
                    ex.agent_id = admission.key.agent_id  # a known key's attempt is its agent's, whatever it claims
                recorded = f"{admission.message} ({admission.reason})" if admission.reason else None
                await self._refuse(
                    send, adapter, ex, admission.status, admission.message, b"", close=True, recorded_error=recorded
                )
                return
            who, mismatch = self.gate.bind(admission, who)
            ex.agent_id, ex.user_id, ex.session_id = who.agent_id, who.user_id, who.session_id
            if mismatch is not None:
                ex.auth = "refused"
                await self._refuse(send, adapter, ex, 403, mismatch, b"", close=True)
                return
            async with asyncio.timeout(self.settings.body_timeout_s):
                body = await read_body(scope, receive, self.settings.max_body_bytes)
        except attribution.AttributionError as exc:
            await self._refuse(send, adapter, ex, 400, str(exc), b"")
            return
        except BodyTooLarge:
            await self._refuse(
                send, adapter, ex, 413, f"request body is larger than {self.settings.max_body_bytes} bytes", b""
            )
            return
        except TimeoutError:
            message = f"the request body did not arrive within {self.settings.body_timeout_s:g} s"
            await self._refuse(send, adapter, ex, 408, message, b"", close=True)
            return
        except ClientGone as gone:
            # Nothing can be answered; the attempt is still on the record, with what arrived of it.
            self.recorder.request(ex, b"")
            message = (
                "the client closed the connection before its request body was complete "
                f"({gone.received} bytes received)"
            )
            self.recorder.response(
                ex, adapter=adapter, status=499, body=b"", finished=time.perf_counter(), error=message, aborted=True
            )
            return
        quarantine = self.quarantines(quarantine_key(ex.profile_id, ex.agent_id)) if ex.agent_id else None
        if quarantine is not None and quarantine.active(ex.started_at):
            message = (
                f"agent {ex.agent_id} is quarantined until {quarantine.expires_at.isoformat()}: {quarantine.reason}"
            )
            await self._refuse(send, adapter, ex, 403, message, recordable(profile, body))
            return
        parsed: Any = None
        if body and ex.method in _BODY_METHODS:
            try:
                parsed = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                await self._refuse(
                    send, adapter, ex, 400, f"the request body is not valid JSON: {exc}", recordable(profile, body)
                )
                return
        meta = adapter.request_meta(route.upstream_path, parsed, query.decode("latin-1"))
        ex.model, ex.stream = meta.model, meta.stream
        not_allowed = self.gate.model_refusal(admission, meta.model, bool(body))
        if not_allowed is not None:
            ex.auth = "refused"
            await self._refuse(send, adapter, ex, 403, not_allowed, recordable(profile, body))
            return
        if profile.limited:
            who = Who(ex.profile_id, ex.agent_id, ex.user_id, admission.key.id if admission.key is not None else "")
            metered = await self.meter.admit(
                profile, who, ex.started_at, parsed, len(body), ex.route, adapter.name, meta.model
            )
            if isinstance(metered, Refused):
                await self._refuse(
                    send, adapter, ex, metered.status, metered.message, recordable(profile, body), extra=metered
                )
                return
            ex.held = metered
        enforcement = None
        sent = recorded = body
        view = None
        if is_active(profile):
            enforcement = Enforcement(profile, adapter, route.upstream_path, self.history)
            prepared = enforcement.prepare(body, parsed)
            sent, recorded = prepared.sent, prepared.recorded
            ex.decisions = enforcement.request_decisions
            self.recorder.count_redactions(ex, enforcement.redactions)
            if prepared.unjudgeable is not None:
                await self._refuse(send, adapter, ex, 403, prepared.unjudgeable, recorded)
                return
            # The view the guardrails built is the guard's too, unless they changed what is forwarded.
            view = None if prepared.modified else enforcement.view
            del prepared
        self.recorder.request(
            ex, recorded, sent if sent is not body else None, enforcement.untrusted_since if enforcement else None, view
        )
        if ex.stream and not adapter.stream_reports_usage(route.upstream_path, parsed):
            self.recorder.keep_for_estimate(ex, sent)
        # An exchange can last minutes (a stream): from here only the body to forward is kept, and only until sent
        # (and, for a stream that will report no usage, up to the record's size of it, to count its tokens).
        outgoing = [sent]
        del body, sent, recorded, parsed, view
        endpoint = profile.endpoints.get(adapter.name)
        if endpoint is not None:  # the profile's own upstream for this provider (a team's Azure resource)
            signer = self._signer_at(endpoint, upstream.signer) if upstream.signer is not None else None
            upstream = Upstream(adapter, endpoint, signer)
        aliases = self.routing
        routed = aliases.lookup(route.provider, ex.model) if aliases is not None and aliases.table else None
        if not upstream.base_url and routed is None:  # a provider without a default endpoint (Azure's resources)
            setting = f"WARDEN_{adapter.name.upper()}_BASE_URL"
            message = (
                f"no upstream endpoint is configured for provider {adapter.name}: set {setting} "
                f"or the profile's endpoints.{adapter.name}"
            )
            await self._upstream_failed(send, adapter, ex, 502, message)
            if ex.held is not None:  # never left: what it reserved goes back
                ex.held.release()
            return
        try:
            await self._forward(scope, receive, send, ex, upstream, outgoing, enforcement, admission.credential, routed)
        except BaseException:
            if ex.held is not None:  # ended without its record (cancelled, a fault): what it reserved goes back
                ex.held.release()
            raise

    def _signer_at(self, endpoint: str, default: BedrockSigner) -> BedrockSigner:
        """The signer for a profile's own Bedrock endpoint: for the region its host names, else the configured one."""
        region = bedrock_region_of(endpoint)
        if region is None or region == default.region:
            return default
        signer = self._regional_signers.get(region)
        if signer is None:
            signer = self._regional_signers[region] = bedrock_signer(self.settings, region)
        return signer

    async def _refuse(
        self,
        send: Send,
        adapter: ProviderAdapter,
        ex: Exchange,
        status: int,
        message: str,
        body: bytes,
        close: bool = False,
        recorded_error: str | None = None,
        extra: Refused | None = None,
    ) -> None:
        """Answer an error of Warden's own, and record it like any other interaction. ``close``: end the connection
        too (what is left of the request was not read). ``recorded_error``: what the record says, when it says more
        than the client is told. ``extra``: a budget's or rate limit's refusal, with its own headers and body."""
        self.recorder.request(ex, body)
        payload = await _error(send, adapter, status, message, ex.interaction_id, close, extra)
        ex.first_byte = time.perf_counter()
        error = recorded_error or message
        self.recorder.response(ex, adapter=adapter, status=status, body=payload, finished=ex.first_byte, error=error)

    async def _refused_by_server(
        self, send: Send, adapter: ProviderAdapter, ex: Exchange, scope: Scope, refused: dict[str, Any]
    ) -> None:
        """A request the server stopped reading (headers too large, too many, too slow): answered in the provider's
        shape and recorded with whatever attribution arrived in full."""
        with contextlib.suppress(attribution.AttributionError):
            who = attribution.read(scope["headers"])
            ex.agent_id, ex.user_id, ex.session_id = who.agent_id, who.user_id, who.session_id
        await self._refuse(send, adapter, ex, refused["status"], refused["message"], b"", close=True)

    async def _forward(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        ex: Exchange,
        upstream: Upstream,
        outgoing: list[bytes],
        enforcement: Enforcement | None,
        credential: tuple[tuple[str, str], ...] | None = None,
        routed: AliasRoute | None = None,
    ) -> None:
        """``outgoing`` holds the body to forward; it is emptied, so the body is let go once the upstream has it.
        ``credential``: the headers Warden authenticates upstream with, in place of every credential the client sent.
        ``routed``: the model alias whose deployments the request goes to (None: the provider's one upstream)."""
        assert self._session is not None, "startup() was not awaited"
        adapter = upstream.adapter
        query = scope.get("query_string", b"")
        if routed is not None:
            response = await self._routed(scope, send, ex, adapter, outgoing, credential, routed)
            if response is None:
                return
            await self._relay(receive, send, ex, adapter, response, enforcement)
            return
        url = upstream.url(ex.route, query_without_key(query) if credential is not None else query)
        headers = upstream_headers(scope["headers"], credential)
        attempt = self.traces.attempt(ex.trace, headers)
        if attempt is not None:
            ex.attempts.append(attempt)
        data = outgoing.pop() or None
        target: str | URL = url
        try:
            if upstream.signer is not None:
                target, headers = await upstream.signer.sign(ex.method, url, headers, data, credential)
            response = await self._session.request(
                ex.method,
                target,
                headers=headers,
                data=data,
                allow_redirects=False,
            )
        except NoAwsCredentials as exc:
            await self._upstream_failed(send, adapter, ex, 502, str(exc))
            return
        except (TimeoutError, aiohttp.ServerTimeoutError):
            await self._upstream_failed(send, adapter, ex, 504, "the upstream did not answer in time")
            return
        except aiohttp.ClientError as exc:
            await self._upstream_failed(send, adapter, ex, 502, f"the upstream could not be reached: {exc}")
            return
        if attempt is not None:
            attempt.status = response.status
        await self._relay(receive, send, ex, adapter, response, enforcement)

    async def _relay(
        self,
        receive: Receive,
        send: Send,
        ex: Exchange,
        adapter: ProviderAdapter,
        response: Any,
        enforcement: Enforcement | None,
    ) -> None:
        """The upstream's answer to the client, as a stream or whole, and the response let go after."""
        try:
            if adapter.answer_streams(ex.route, ex.stream, response.headers.get("Content-Type", "")):
                await self._stream(receive, send, ex, adapter, response, enforcement)
            else:
                await self._whole(receive, send, ex, adapter, response, enforcement)
        finally:
            response.release()

    async def _routed(
        self,
        scope: Scope,
        send: Send,
        ex: Exchange,
        adapter: ProviderAdapter,
        outgoing: list[bytes],
        credential: tuple[tuple[str, str], ...] | None,
        routed: AliasRoute,
    ) -> Any:
        """The answer of the first of the alias's deployments that answered (retries and fallbacks), or None when
        none did (the client has been answered with the last failure)."""
        assert self._session is not None and self.routing is not None
        query = scope.get("query_string", b"")
        ex.routed = []
        try:
            outgoing_request = Outgoing(
                method=ex.method,
                route=ex.route,
                query=query_without_key(query) if credential is not None else query,
                client_headers=scope["headers"],
                own_credential=credential,
                body=outgoing.pop() or b"",
                streams=lambda content_type: adapter.answer_streams(ex.route, ex.stream, content_type),
                traces=self.traces,
                trace=ex.trace,
                record=ex.routed,
                interaction_started=ex.started,
            )
            response, target = await self.routing.router.send(self._session, routed, outgoing_request)
        except RoutingFailed as failed:
            if failed.answer is None:
                await self._upstream_failed(send, adapter, ex, failed.status, failed.message)
                return None
            # The last deployment's own error answer (a 429 with its Retry-After, a 5xx), as it came.
            status, raw_headers, payload = failed.answer
            ex.first_byte = time.perf_counter()
            await send_bytes(send, status, payload, client_headers(raw_headers, ex.interaction_id.encode()))
            self.recorder.response(ex, adapter=adapter, status=status, body=payload, finished=time.perf_counter())
            return None
        if target.model != ex.model:
            ex.served_model = target.model
        if target.answers_as is not None:  # another wire format's deployment (Azure for an OpenAI client)
            ex.served_provider = target.answers_as
        return response

    async def _whole(
        self,
        receive: Receive,
        send: Send,
        ex: Exchange,
        adapter: ProviderAdapter,
        response: aiohttp.ClientResponse,
        enforcement: Enforcement | None,
    ) -> None:
        """A non-streamed answer. A restrictive profile holds it (up to ``max_judged_answer_bytes``) and judges it
        before releasing it; otherwise answers up to the record's size are read whole (a broken one is still a
        clean 502), and larger ones pass through as they arrive with only their first bytes kept."""
        restrictive = enforcement is not None and enforcement.restrictive
        limit = self.settings.max_judged_answer_bytes if restrictive else self.settings.max_recorded_body_bytes
        if enforcement is not None and not restrictive:
            limit = max(limit, self.settings.max_judged_answer_bytes)  # permissive: judged after, up to this size
        head: list[bytes] = []  # the answer's first chunks, whole, up to the first one past ``limit``
        size = 0
        chunks = response.content.iter_any()
        try:
            async for chunk in chunks:
                head.append(chunk)
                size += len(chunk)
                if size > limit:
                    break
        except (TimeoutError, aiohttp.ServerTimeoutError):
            await self._upstream_failed(send, adapter, ex, 504, "the upstream did not finish its answer in time")
            return
        except aiohttp.ClientError as exc:
            await self._upstream_failed(send, adapter, ex, 502, f"the upstream broke off its answer: {exc}")
            return
        headers = client_headers(response.raw_headers, ex.interaction_id.encode())
        if size > limit:
            if restrictive:
                await self._too_large_to_judge(send, adapter, ex, enforcement)
                return
            await self._pass_through(receive, send, ex, adapter, response, headers, head, chunks, enforcement)
            return
        payload = head[0] if len(head) == 1 else b"".join(head)
        del head
        judged = Judged()
        if restrictive:
            assert enforcement is not None
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

    async def _pass_through(
        self,
        receive: Receive,
        send: Send,
        ex: Exchange,
        adapter: ProviderAdapter,
        response: aiohttp.ClientResponse,
        headers: list[tuple[bytes, bytes]],
        head: list[bytes],
        chunks: Any,
        enforcement: Enforcement | None,
    ) -> None:
        """The rest of a large non-streamed answer, sent as it arrives: memory holds the first bytes, not the
        whole. The upstream's declared length is passed on, so a client can tell a cut-off answer from a whole one."""
        length = response.headers.get("Content-Length")
        if length is not None and length.isdigit():
            headers = [*headers, (b"content-length", length.encode())]
        ex.first_byte = time.perf_counter()
        error = None
        aborted = False
        kept = Capture(self.settings.max_recorded_body_bytes)
        watch = ClientWatch(receive)
        try:
            await send({"type": "http.response.start", "status": response.status, "headers": headers})
            while head:
                chunk = head.pop(0)
                kept.add(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            try:
                async for chunk in chunks:
                    kept.add(chunk)
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except (TimeoutError, aiohttp.ClientError) as exc:
                error = scrub_credentials(f"the upstream broke off its answer: {exc or type(exc).__name__}")
            if error is None:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            # else the response is left unfinished: the server drops the connection, the client sees it cut off
        except asyncio.CancelledError:
            if not watch.left:
                raise
            aborted, error = True, "the client closed the connection before the answer ended"
        finally:
            await watch.close()
        decisions = None
        if enforcement is not None:  # permissive: the answer was too large to be judged, say so
            decisions = [_unjudged(self.settings.max_judged_answer_bytes, enforced=False)]
        self.recorder.response(
            ex,
            adapter=adapter,
            status=502 if error and not aborted else response.status,
            body=kept.value(),
            body_size=kept.total,
            finished=time.perf_counter(),
            error=error,
            aborted=aborted,
            decisions=decisions,
        )

    async def _too_large_to_judge(
        self, send: Send, adapter: ProviderAdapter, ex: Exchange, enforcement: Enforcement | None
    ) -> None:
        """Fail closed: an answer a restrictive profile cannot hold to judge is not released."""
        limit = self.settings.max_judged_answer_bytes
        message = f"the upstream's answer is larger than {limit} bytes, too large to judge; it was withheld"
        payload = await _error(send, adapter, 502, message, ex.interaction_id)
        self.recorder.response(
            ex,
            adapter=adapter,
            status=502,
            body=payload,
            finished=time.perf_counter(),
            error=message,
            decisions=[_unjudged(limit, enforced=True)],
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
        """A stream passes through as it arrives. Memory keeps the first bytes of what the client got, for the record,
        and, when a profile judges the answer's tool calls at its end, what the upstream sent up to
        ``max_judged_answer_bytes``: a restrictive profile ends a longer stream with the provider's error event
        (held tool calls never released), a permissive one records that it was not judged."""
        settings = self.settings
        held = enforcement.held_stream(response.content_type) if enforcement is not None else None
        recorded = Capture(settings.max_recorded_body_bytes)  # what the client got
        # What the judgement reads: the upstream's events (they differ from the client's only while calls are held).
        upstream = Capture(settings.max_judged_answer_bytes) if held is not None else None
        if enforcement is not None and held is None:
            recorded = Capture(max(settings.max_recorded_body_bytes, settings.max_judged_answer_bytes))
        judged = Judged()
        decisions: list[PolicyDecision] | None = None
        error: str | None = None
        aborted = False
        watch = ClientWatch(receive)
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
                        assert upstream is not None
                        upstream.add(chunk)
                        if not upstream.complete:
                            raise _TooLargeToJudge
                        chunk = held.feed(chunk)
                        if not chunk:
                            continue
                    if ex.first_byte is None:
                        ex.first_byte = time.perf_counter()
                    recorded.add(chunk)
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                if enforcement is not None:
                    judging = upstream if upstream is not None else recorded
                    if judging.complete:
                        tail, judged = enforcement.judge_stream(judging.value(), held)
                    else:
                        tail, decisions = b"", [_unjudged(settings.max_judged_answer_bytes, enforced=False)]
                    if tail:
                        if ex.first_byte is None:
                            ex.first_byte = time.perf_counter()
                        recorded.add(tail)
                        await send({"type": "http.response.body", "body": tail, "more_body": True})
            except _TooLargeToJudge:
                error = (
                    f"the upstream's answer is larger than {settings.max_judged_answer_bytes} bytes, too large to "
                    "judge; its held tool calls were withheld"
                )
                decisions = [_unjudged(settings.max_judged_answer_bytes, enforced=True)]
                tail = adapter.stream_error_event(
                    error, route=ex.route, content_type=response.content_type, started=recorded.total > 0
                )
                recorded.add(tail)
                await send({"type": "http.response.body", "body": tail, "more_body": True})
            except (TimeoutError, aiohttp.ClientError) as exc:
                error = scrub_credentials(f"the upstream stream broke off: {exc or type(exc).__name__}")
                tail = adapter.stream_error_event(
                    error, route=ex.route, content_type=response.content_type, started=recorded.total > 0
                )
                recorded.add(tail)
                await send({"type": "http.response.body", "body": tail, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not watch.left:
                raise  # cancelled from outside (shutdown), not by the client going away
            aborted, error = True, "the client closed the connection before the stream ended"
        finally:
            await watch.close()
        # A stream that broke off upstream is recorded as failed, though the client saw the upstream's status.
        status = 502 if error is not None and not aborted else response.status
        self.recorder.response(
            ex,
            adapter=adapter,
            status=status,
            body=recorded.value(),
            body_size=recorded.total,
            finished=time.perf_counter(),
            error=error,
            aborted=aborted,
            completion=judged.completion,
            decisions=decisions if decisions is not None else judged.decisions,
            blocked_tool_calls=judged.blocked_tool_calls,
        )

    async def _upstream_failed(
        self, send: Send, adapter: ProviderAdapter, ex: Exchange, status: int, message: str
    ) -> None:
        message = scrub_credentials(message)  # exception texts name the upstream URL, ?key= included
        payload = await _error(send, adapter, status, message, ex.interaction_id)
        self.recorder.response(
            ex, adapter=adapter, status=status, body=payload, finished=time.perf_counter(), error=message
        )


class _TooLargeToJudge(Exception):
    pass


class ClientWatch:
    """Cancels the task that relays an answer when the client goes away, so the exchange ends (and is recorded
    with what was sent) instead of reading the upstream for nobody."""

    def __init__(self, receive: Receive) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._relay = task
        self._receive = receive
        self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        self._relay.cancel()

    @property
    def left(self) -> bool:
        """The client went away (the relay was cancelled because of it)."""
        return self._watcher.done() and not self._watcher.cancelled()

    async def close(self) -> None:
        self._watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._watcher


def _unjudged(limit: int, enforced: bool) -> PolicyDecision:
    return PolicyDecision(
        kind="answer_unjudged",
        reason=f"the answer is larger than {limit} bytes (WARDEN_MAX_JUDGED_ANSWER_BYTES), too large to judge",
        enforced=enforced,
    )


async def _error(
    send: Send,
    adapter: ProviderAdapter,
    status: int,
    message: str,
    interaction_id: str,
    close: bool = False,
    extra: Refused | None = None,
) -> bytes:
    if status >= 500:  # Warden's own server errors are logged whether or not the access log is on
        fields = {"status": status, "provider": adapter.name, "interaction_id": interaction_id}
        log.warning("answered %d: %s", status, message, extra={"fields": fields})
    payload = adapter.error_body(status, message, error_kind(status)) if extra is None else extra.payload(adapter)
    headers = [*_JSON, *adapter.error_headers(status), (INTERACTION_ID_HEADER, interaction_id.encode())]
    if extra is not None:
        headers += extra.headers
    if close:
        headers.append((b"connection", b"close"))
    await send_bytes(send, status, payload, headers)
    return payload
