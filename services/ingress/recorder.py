"""Turns one proxied exchange into its request and response events, hands them to the bus, and counts it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from plumbing.bus.base import Bus
from providers.base import ProviderAdapter
from providers.registry import adapter_for
from schemas import topics
from schemas.cost import Cost
from schemas.events import PolicyDecision, RequestEvent, ResponseEvent, TraceContext, UpstreamAttempt
from schemas.view import CompletionView, ConversationView, Usage
from services.detection.credentials import scrub_credentials
from services.ingress.metering import Held
from services.ingress.metrics import IngressMetrics
from services.ingress.policy.redaction import Redaction
from services.ingress.tracecontext import OpenAttempt
from services.pricing.catalogue import Catalogue
from services.pricing.cost import cost_of
from services.pricing.estimate import estimated_usage

log = logging.getLogger(__name__)
_TRUNCATED = "\n…[truncated by warden: {size} bytes in all]"


def body_text(body: bytes, limit: int, size: int | None = None) -> str:
    """``body`` for the record, cut at ``limit`` bytes; ``size``: the whole body's size when ``body`` is only its
    first bytes."""
    size = len(body) if size is None else size
    if size <= limit and len(body) == size:
        return body.decode("utf-8", "replace")
    return body[:limit].decode("utf-8", "ignore") + _TRUNCATED.format(size=size)


@dataclass(slots=True)
class Exchange:
    """What the ingress knows about one interaction as it goes."""

    interaction_id: str
    started_at: datetime
    started: float
    """perf_counter() at arrival: latencies come from the monotonic clock."""
    provider: str
    profile_id: str
    route: str
    method: str
    agent_id: str = ""
    user_id: str = ""
    session_id: str = ""
    model: str = ""
    stream: bool = False
    first_byte: float | None = None
    auth: str = ""
    key_prefix: str = ""
    decisions: list[PolicyDecision] = field(default_factory=list)
    unmetered_prompt: bytes | None = None
    """The request as forwarded (its first ``max_recorded_body_bytes``), kept only for a stream that will report no
    usage, so its tokens can be counted when it ends."""
    trace: TraceContext | None = None
    attempts: list[OpenAttempt] = field(default_factory=list)
    """The upstream requests, when tracing is on."""
    held: Held | None = None
    """Its reservation against budgets and rate limits, settled when the answer is priced."""
    routed: list[UpstreamAttempt] | None = None
    """Every attempt of a request a model alias routes (None: not routed)."""
    served_model: str = ""
    """The model the answering deployment was asked for, when an alias renamed it: the one priced."""
    served_provider: str = ""
    """The answering deployment's provider, when it is not the client's (an Azure deployment in an OpenAI alias):
    the answer is priced as that provider prices it (Azure: as the model the answer names)."""
    priced_model: str = ""
    """The model the answer is priced as: the one the answering deployment was asked for (``served_model``, else
    ``model``), or the one the answer names where that is no model's name (an Azure deployment's)."""


class Recorder:
    def __init__(
        self,
        bus: Bus,
        metrics: IngressMetrics,
        max_recorded_body_bytes: int,
        catalogue: Catalogue | None = None,
    ) -> None:
        self._bus = bus
        self._metrics = metrics
        self._limit = max_recorded_body_bytes
        self.catalogue = catalogue or Catalogue()
        self._estimating: set[asyncio.Future[Usage]] = set()

    def keep_for_estimate(self, ex: Exchange, sent: bytes) -> None:
        """Keep what is needed to count the tokens of a request whose streamed answer will report none."""
        ex.unmetered_prompt = sent if len(sent) <= self._limit else sent[: self._limit]

    def request(
        self,
        ex: Exchange,
        received: bytes,
        sent: bytes | None = None,
        untrusted_since: str | None = None,
        view: ConversationView | None = None,
    ) -> None:
        """``view``: the common view of the body as forwarded, when the guardrails built it, for in-process readers."""
        event = RequestEvent(
            interaction_id=ex.interaction_id,
            started_at=ex.started_at,
            profile_id=ex.profile_id,
            agent_id=ex.agent_id,
            user_id=ex.user_id,
            session_id=ex.session_id,
            provider=ex.provider,
            model=ex.model,
            auth=ex.auth,
            key_prefix=ex.key_prefix,
            route=scrub_credentials(ex.route),
            method=ex.method,
            stream=ex.stream,
            request_received=body_text(received, self._limit),
            request_sent=None if sent is None else body_text(sent, self._limit),
            decisions=list(ex.decisions),
            untrusted_since=untrusted_since,
            trace=ex.trace,
        )
        if view is not None:
            event.attach_view(view)
        self._publish(topics.REQUESTS, ex.interaction_id, event)

    def response(
        self,
        ex: Exchange,
        *,
        adapter: ProviderAdapter,
        status: int,
        body: bytes,
        finished: float,
        body_size: int | None = None,
        error: str | None = None,
        aborted: bool = False,
        completion: CompletionView | None = None,
        blocked_tool_calls: list[Any] | None = None,
        decisions: list[PolicyDecision] | None = None,
    ) -> None:
        """``body``: the answer as the client got it, or its first bytes when ``body_size`` (the whole size) is larger:
        then its completion (usage, tool calls) is read from what was kept."""
        if completion is None and status < 400 and body:
            completion = parse_completion(adapter, ex, body)
        completion = completion or CompletionView()
        pricing = adapter if not ex.served_provider else adapter_for(ex.served_provider)
        ex.priced_model = pricing.priced_model(ex.served_model or ex.model, completion)
        error = None if error is None else scrub_credentials(error)
        event = ResponseEvent(
            interaction_id=ex.interaction_id,
            started_at=ex.started_at,
            profile_id=ex.profile_id,
            agent_id=ex.agent_id,
            user_id=ex.user_id,
            session_id=ex.session_id,
            provider=ex.provider,
            model=ex.model,
            auth=ex.auth,
            key_prefix=ex.key_prefix,
            route=scrub_credentials(ex.route),
            status=status,
            response_body=body_text(adapter.recorded_answer(ex.route, body), self._limit, body_size),
            usage=completion.usage,
            finished_at=ex.started_at + timedelta(seconds=finished - ex.started),
            latency_ms=(finished - ex.started) * 1000.0,
            ttft_ms=None if ex.first_byte is None else (ex.first_byte - ex.started) * 1000.0,
            finish_reason=completion.finish_reason,
            answer_text=completion.text,
            tool_calls=completion.tool_calls,
            blocked_tool_calls=blocked_tool_calls or [],
            decisions=decisions or [],
            error=error,
            aborted=aborted,
            trace=ex.trace,
            upstream_attempts=(
                ex.routed
                if ex.routed is not None
                else [attempt.closed(ex.started, finished, error) for attempt in ex.attempts]
            ),
        )
        prompt, ex.unmetered_prompt = ex.unmetered_prompt, None
        if prompt is not None and completion.usage.input_tokens is None and status < 400:
            # The request is read here (the adapters' caches belong to this thread); counting its tokens takes
            # milliseconds for a long prompt: done on a worker thread, the event published when the count is ready.
            estimating = asyncio.get_running_loop().run_in_executor(
                None, estimated_usage, ex.priced_model, _prompt_view(adapter, ex.route, prompt), completion
            )
            self._estimating.add(estimating)
            estimating.add_done_callback(lambda done: self._estimated(ex, event, done, finished))
            return
        self._priced(ex, event, finished)

    def _estimated(self, ex: Exchange, event: ResponseEvent, done: asyncio.Future[Usage], finished: float) -> None:
        self._estimating.discard(done)
        failure = None if done.cancelled() else done.exception()
        if not done.cancelled() and failure is None:
            event.usage = done.result()
        else:  # the usage stays unknown, and so does the cost
            log.warning("could not count the tokens of an answer without usage", exc_info=failure)
        self._priced(ex, event, finished)

    async def drain(self) -> None:
        """Wait for the token counts still running, so their events are published before the bus closes."""
        while self._estimating:
            await asyncio.gather(*self._estimating, return_exceptions=True)

    def _priced(self, ex: Exchange, event: ResponseEvent, finished: float) -> None:
        """Price the answer's usage, publish its event and count it."""
        try:
            provider = ex.served_provider or ex.provider
            event.cost = cost_of(self.catalogue, provider, ex.priced_model, event.usage, ex.started_at)
        except Exception:  # a price that cannot be worked out leaves the cost unknown, never breaks the record
            log.exception("could not price an answer")
            event.cost = Cost(estimated=event.usage.estimated, note="the price could not be worked out")
        if ex.held is not None:
            ex.held.priced(event.status, event.usage, event.cost, ex.first_byte is not None and event.error is not None)
        self._publish(topics.RESPONSES, ex.interaction_id, event)
        blocked = event.blocked_tool_calls
        if blocked:
            metrics = self._metrics
            provider, profile = metrics.provider_label(ex.provider), metrics.profile_label(ex.profile_id)
            metrics.blocked_tools.labels(provider, profile, metrics.agent_label(ex.agent_id)).inc(len(blocked))
        self._metrics.observe(
            provider=ex.provider,
            model=ex.model,
            profile_id=ex.profile_id,
            agent_id=ex.agent_id,
            status=event.status,
            duration_s=finished - ex.started,
            ttft_s=None if ex.first_byte is None else ex.first_byte - ex.started,
            input_tokens=event.usage.input_tokens,
            output_tokens=event.usage.output_tokens,
            cost_usd=event.cost.usd,
        )

    def count_redactions(self, ex: Exchange, redactions: Iterable[Redaction]) -> None:
        metrics = self._metrics
        provider, profile = metrics.provider_label(ex.provider), metrics.profile_label(ex.profile_id)
        agent = metrics.agent_label(ex.agent_id)
        for redaction in redactions:
            metrics.redactions.labels(provider, profile, agent, redaction.kind).inc(redaction.count)

    def _publish(self, topic: str, key: str, event: RequestEvent | ResponseEvent) -> None:
        try:
            self._bus.publish(topic, key, event)
        except Exception:  # recording must never break the proxy
            log.exception("could not hand an event to the bus", extra={"fields": {"interaction_id": key}})


def parse_completion(adapter: ProviderAdapter, ex: Exchange, body: bytes) -> CompletionView | None:
    try:
        if ex.stream or body.startswith(b"data:") or body.startswith(b"event:"):
            return adapter.stream_view(ex.route, body)
        return adapter.completion_view(ex.route, orjson.loads(body))
    except Exception:  # an answer Warden cannot read is still proxied and recorded, only without usage
        log.debug("could not read the upstream answer", exc_info=True)
        return None


def _prompt_view(adapter: ProviderAdapter, route: str, prompt: bytes) -> ConversationView | str:
    """The request as forwarded, to count its tokens: its common view, or its text when it cannot be read (cut at the
    record's limit, or not JSON)."""
    try:
        return adapter.request_view(route, orjson.loads(prompt))
    except Exception:
        return prompt.decode("utf-8", "ignore")


def now() -> datetime:
    return datetime.now(UTC)
