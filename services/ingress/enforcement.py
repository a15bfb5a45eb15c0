"""Applies a profile's inline guardrails to one exchange, in the provider's own wire format.

Only profiles that configure something (policies, redaction, restrictive mode) are judged: the plain default
profile costs the hot path nothing. The request is judged before it leaves (blocked tool results replaced, secrets
masked); the answer is judged before its tool calls reach the client (in restrictive mode a blocked answer becomes a
refusal turn, streams included), or after it was sent when the profile only records (permissive mode).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import orjson

from providers.base import ProviderAdapter
from providers.common import NotJSON, loads_lenient, without_surrogates
from providers.held_stream import HeldStream
from schemas.events import PolicyDecision
from schemas.profiles import Profile
from schemas.view import CompletionView, ConversationView, ToolCall
from services.ingress.history import ProviderHistory
from services.ingress.policy import (
    CompletionVerdict,
    Inherited,
    Redaction,
    RequestVerdict,
    answer_untrusted_since,
    evaluate_completion,
    evaluate_request,
    exact,
    redact_json,
    redact_secrets,
    redaction_decisions,
    serialise,
)

log = logging.getLogger(__name__)


def is_active(profile: Profile) -> bool:
    return bool(
        profile.mode == "restrictive"
        or profile.redact_secrets
        or profile.tool_invocation_policies
        or profile.trusted_data_policies
    )


@dataclass(slots=True)
class PreparedRequest:
    sent: bytes
    """The body to forward."""
    recorded: bytes
    """The body as received, for the record (secrets masked when the profile redacts)."""
    modified: bool
    unjudgeable: str | None = None
    """Why the answer could not be judged, in a restrictive profile: the request is refused (fail closed)."""


def recordable(profile: Profile, body: bytes) -> bytes:
    """A request body refused before it was judged, as it may be recorded: masked when the profile redacts (as decoded
    JSON when it parses, as text when it does not)."""
    if not body or not profile.redact_secrets:
        return body
    try:
        masked, found = redact_json(exact(body))
    except ValueError:  # not JSON, or not UTF-8
        return redact_secrets(body.decode("utf-8", "replace"))[0].encode()
    return serialise(masked) if found else body


@dataclass(slots=True)
class Judged:
    """The outcome for an answer: what it became and what was decided."""

    completion: CompletionView | None = None
    decisions: list[PolicyDecision] | None = None
    blocked_tool_calls: list[ToolCall] | None = None
    status: int | None = None
    """The status the client gets instead of the upstream's, when the answer could not be judged."""
    error: str | None = None


class Enforcement:
    """The guardrails of one exchange under an active profile."""

    def __init__(
        self, profile: Profile, adapter: ProviderAdapter, route: str, history: ProviderHistory | None = None
    ) -> None:
        self.profile = profile
        self.adapter = adapter
        self.route = route
        self.history = history if history is not None else _FORGETFUL
        self.restrictive = profile.mode == "restrictive"
        self.view: ConversationView | None = None
        self.verdict: RequestVerdict | None = None
        self.redactions: tuple[Redaction, ...] = ()
        self._unjudgeable: list[PolicyDecision] = []

    # -- the request ----------------------------------------------------------------------------------------------

    def prepare(self, body: bytes, parsed: Any) -> PreparedRequest:
        """What to forward and what to record. Secrets are masked in the decoded body, which is then serialised again:
        what is reported as masked is masked in the bytes sent and recorded."""
        if parsed is None:
            return PreparedRequest(body, body, False)
        recorded = sent = body
        if self.profile.redact_secrets:
            self.redactions = redact_json(parsed)[1]
            if self.redactions:
                # Written back from an exact parse: only the masked strings differ from what the client sent.
                recorded = sent = serialise(redact_json(exact(body))[0])
        if not isinstance(parsed, dict):
            return PreparedRequest(sent, recorded, sent is not body)
        unjudgeable = self.adapter.unjudgeable(self.route, parsed)
        if unjudgeable is not None:
            self._unjudgeable = [PolicyDecision(kind="answer_unjudged", reason=unjudgeable, enforced=self.restrictive)]
            if self.restrictive:
                return PreparedRequest(sent, recorded, sent is not body, unjudgeable)
        self.view = self.adapter.request_view(self.route, parsed)
        inherited: Inherited | None = None
        if self.view.provider_history:
            inherited = self.history.lookup(self.view.provider_history)
        self.verdict = evaluate_request(self.profile, self.view, inherited)
        if self.verdict.replacements:
            # On the body as received: the results are found by their call ids, which masking could alter.
            forwarded = exact(body)
            self.adapter.replace_tool_results(self.route, forwarded, self.verdict.replacements)
            if self.profile.redact_secrets:
                forwarded = redact_json(forwarded)[0]
            sent = serialise(forwarded)
        return PreparedRequest(sent, recorded, sent is not body)

    @property
    def request_decisions(self) -> list[PolicyDecision]:
        decisions = list(self.verdict.decisions) if self.verdict else []
        return self._unjudgeable + decisions + redaction_decisions(self.redactions)

    @property
    def untrusted_since(self) -> str | None:
        return self.verdict.untrusted_since if self.verdict else None

    # -- the answer -----------------------------------------------------------------------------------------------

    def _judge(self, completion: CompletionView) -> CompletionVerdict | None:
        if self.view is None or self.verdict is None:
            return None
        if completion.provider_refs:
            # The provider keeps this exchange for later requests: remember the trust it leaves the history in.
            untrusted = self.verdict.trust.untrusted_since or answer_untrusted_since(self.profile, completion)
            self.history.remember(
                completion.provider_refs, untrusted, {call.id: call.name for call in completion.tool_calls}
            )
        if not completion.tool_calls:
            return None
        return evaluate_completion(self.profile, self.view, self.verdict, completion)

    def judge_whole(self, status: int, payload: bytes) -> tuple[bytes, Judged]:
        """A non-streamed answer: the bytes for the client (a refusal when a blocked call is enforced)."""
        if status >= 400 or not payload:
            return payload, Judged()
        try:
            parsed = loads_lenient(payload)
        except NotJSON as exc:
            return self._unreadable(payload, str(exc))
        completion = self.adapter.completion_view(self.route, parsed)
        if _SURROGATE_ESCAPE.search(payload):
            completion = _recordable(completion)
        verdict = self._judge(completion)
        if verdict is None:
            return payload, Judged(completion=completion)
        judged = Judged(
            completion=completion,
            decisions=verdict.decisions,
            blocked_tool_calls=verdict.blocked_tool_calls if verdict.blocked else [],
        )
        if verdict.blocked and verdict.refusal is not None:
            refusal = self.adapter.refusal_body(self.route, parsed, verdict.refusal)
            judged.completion = _as_received(
                completion, self.adapter.completion_view(self.route, orjson.loads(refusal))
            )
            return refusal, judged
        return payload, judged

    def _unreadable(self, payload: bytes, why: str) -> tuple[bytes, Judged]:
        """An answer no JSON parser reads, to a request that offered tools: in restrictive mode it could carry a call
        nobody judged, so the client gets an error instead (recorded with the reason)."""
        if not (self.restrictive and self.view is not None and self.view.tools):
            return payload, Judged()
        reason = f"the upstream's answer is not JSON ({why}), so the guardrails could not judge its tool calls"
        decision = PolicyDecision(kind="tool_call_blocked", reason=reason, enforced=True)
        return self.adapter.error_body(502, reason, "upstream_error"), Judged(
            decisions=[decision], blocked_tool_calls=[], status=502, error=reason
        )

    def held_stream(self, content_type: str) -> HeldStream | None:
        """In restrictive mode, a filter that holds tool calls back until the stream ends and they are judged."""
        return self.adapter.held_stream(self.route, content_type) if self.restrictive else None

    def judge_stream(self, upstream: bytes, held: HeldStream | None) -> tuple[bytes, Judged]:
        """A streamed answer has ended upstream: what is left to send (held events, or the refusal instead)."""
        completion = self.adapter.stream_view(self.route, upstream)
        if _SURROGATE_ESCAPE.search(upstream):
            completion = _recordable(completion)
        verdict = self._judge(completion)
        judged = Judged(completion=completion)
        if verdict is not None:
            judged.decisions = verdict.decisions
            judged.blocked_tool_calls = verdict.blocked_tool_calls if verdict.blocked else []
        if held is None:
            return b"", judged
        if verdict is not None and verdict.blocked and verdict.refusal is not None:
            tail = held.refuse(verdict.refusal)
            judged.completion = _as_received(completion, self.adapter.stream_view(self.route, tail))
            return tail, judged
        return held.release(), judged


def _as_received(upstream: CompletionView, refusal: CompletionView) -> CompletionView:
    """The record of a refused answer: the calls the model asked for (they are what was judged), and the finish
    reason the client received with the refusal, not the upstream's (which said the turn ended in tool calls)."""
    return upstream.model_copy(update={"finish_reason": refusal.finish_reason or upstream.finish_reason})


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _recordable(completion: CompletionView) -> CompletionView:
    """The answer read as clients read it may hold lone surrogates (an escape strict JSON refuses), which no record
    can encode: they are kept as their escapes (the verdict on the arguments was made when they were read)."""
    dumped = completion.model_dump(exclude={"usage"})
    cleaned = without_surrogates(dumped)
    if cleaned is dumped:
        return completion
    errors = [call.arguments_error for call in completion.tool_calls]
    rebuilt = CompletionView.model_validate({**cleaned, "usage": completion.usage})
    for call, error in zip(rebuilt.tool_calls, errors, strict=True):
        call.arguments_error = error  # not part of the dump
    return rebuilt


class _Forgetful(ProviderHistory):
    """No memory of provider-held histories: every reference is unknown (for an ingress built without one)."""

    def remember(self, *args: object, **kwargs: object) -> None:
        return None


_FORGETFUL = _Forgetful()
