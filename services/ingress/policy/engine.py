"""The ingress's one entry point to the inline policies: judge a request, then judge the model's answer to it.

Pure functions over the common view: nothing here does I/O or keeps per-conversation state. A profile snapshot is
compiled once (policies grouped by tool, conditions and regexes compiled) and reused for every request it serves.

Modes: in ``permissive`` every policy is evaluated and every decision recorded with ``enforced=False``, but nothing is
blocked or replaced; in ``restrictive`` the decisions apply. Redaction (``redaction.py``, applied to the body by the
ingress) follows the profile's ``redact_secrets`` in either mode. The context's trust is judged as restrictive mode
would apply it (a blocked result, being replaced there, does not make the context untrusted) so a permissive profile
records exactly what turning it restrictive would do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from schemas.events import PolicyDecision
from schemas.profiles import Profile, ToolInvocationPolicy, TrustedDataPolicy
from schemas.view import CompletionView, ConversationView, Message, ToolCall
from services.ingress.policy.memo import MISSING, IdentityMemo
from services.ingress.policy.redaction import redact_secrets
from services.ingress.policy.rules import RuleBook
from services.ingress.policy.tool_invocation import InvocationVerdict, compile_tool_invocation, judge_tool_calls
from services.ingress.policy.trusted_data import (
    Inherited,
    TrustVerdict,
    UntrustedSource,
    compile_trusted_data,
    judge_result,
    judge_tool_results,
)


@dataclass(frozen=True, slots=True, eq=False)
class CompiledProfile:
    """A profile snapshot ready for the hot path."""

    profile: Profile
    enforced: bool
    redact: bool
    tool_invocation: RuleBook[ToolInvocationPolicy]
    trusted_data: RuleBook[TrustedDataPolicy]
    trusted_data_memo: IdentityMemo[Any] = field(default_factory=IdentityMemo)
    """The decision on a tool result already judged under this snapshot."""
    decision_memo: IdentityMemo[PolicyDecision] = field(default_factory=IdentityMemo)
    """The recorded decision made from such a judgement."""

    @classmethod
    def build(cls, profile: Profile) -> CompiledProfile:
        return cls(
            profile=profile,
            enforced=profile.mode == "restrictive",
            redact=profile.redact_secrets,
            tool_invocation=compile_tool_invocation(profile.tool_invocation_policies),
            trusted_data=compile_trusted_data(profile.trusted_data_policies),
        )


_compiled: dict[int, CompiledProfile] = {}
_COMPILED_CAPACITY = 1024


def compile_profile(profile: Profile | CompiledProfile) -> CompiledProfile:
    """The compiled form of ``profile``, built once per snapshot object.

    Keyed by identity: a snapshot is replaced, never mutated, when an admin changes a profile. The cache holds the
    profile, so an id is never reused while its entry lives.
    """
    if isinstance(profile, CompiledProfile):
        return profile
    cached = _compiled.get(id(profile))
    if cached is not None and cached.profile is profile:
        return cached
    compiled = CompiledProfile.build(profile)
    if len(_compiled) >= _COMPILED_CAPACITY:
        del _compiled[next(iter(_compiled))]  # the oldest snapshot
    _compiled[id(profile)] = compiled
    return compiled


@dataclass(frozen=True, slots=True)
class RequestVerdict:
    enforced: bool
    trust: TrustVerdict
    view: ConversationView
    """The request as it should be forwarded: blocked results replaced (when enforced). The very view passed in when
    nothing changed. Secrets are masked in the body itself (``redaction.redact_json``), not here."""
    replacements: Mapping[str, str] = field(default_factory=dict)
    """Tool call id -> the content that replaced a blocked result's, as applied (empty in permissive mode)."""
    decisions: list[PolicyDecision] = field(default_factory=list)

    @property
    def context_trusted(self) -> bool:
        return self.trust.trusted

    @property
    def untrusted_since(self) -> str | None:
        """Tool call id of the first untrusted result (``RequestEvent.untrusted_since``)."""
        return self.trust.untrusted_since.tool_call_id if self.trust.untrusted_since else None

    @property
    def modified(self) -> bool:
        return bool(self.replacements)


@dataclass(frozen=True, slots=True)
class CompletionVerdict:
    enforced: bool
    invocation: InvocationVerdict
    blocked: bool
    """The answer's tool calls are withheld and replaced by ``refusal`` (restrictive mode only)."""
    refusal: str | None = None
    decisions: list[PolicyDecision] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    """The calls that reach the client."""
    blocked_tool_calls: list[ToolCall] = field(default_factory=list)

    @property
    def would_block(self) -> bool:
        """The policies blocked a call, whether or not the mode enforced it."""
        return self.invocation.blocked


def _apply(message: Message, replacements: Mapping[str, str]) -> Message:
    """``message`` with a blocked result replaced; the same object when nothing changed."""
    result = message.tool_result
    if result is None or result.tool_call_id not in replacements:
        return message  # the common case: most of a long history is not blocked
    return message.model_copy(
        update={"tool_result": result.model_copy(update={"content": replacements[result.tool_call_id]})}
    )


def evaluate_request(
    profile: Profile | CompiledProfile, view: ConversationView, inherited: Inherited | None = None
) -> RequestVerdict:
    """Judge the tool results in the request's history; ``inherited`` is what is known of the
    history the provider holds for the request (``ConversationView.provider_history``)."""
    compiled = compile_profile(profile)
    enforced = compiled.enforced
    trust = judge_tool_results(compiled.trusted_data, view, compiled.trusted_data_memo, inherited)

    decisions: list[PolicyDecision] = []
    if inherited is not None and inherited.untrusted_since is not None:
        source = inherited.untrusted_since
        reason = source.why or f"the history this request continues was untrusted since call {source.tool_call_id}"
        decisions.append(
            PolicyDecision(
                kind="tool_result_untrusted",
                tool=source.tool,
                tool_call_id=source.tool_call_id,
                reason=reason,
                enforced=enforced,
            )
        )
    memo = compiled.decision_memo
    for result in trust.results:
        if result.verdict == "trusted":
            continue
        decision = memo.get(result)
        if decision is MISSING:
            decision = memo.put(
                result,
                PolicyDecision(
                    kind="tool_result_blocked" if result.verdict == "blocked" else "tool_result_untrusted",
                    tool=result.tool,
                    tool_call_id=result.tool_call_id,
                    reason=result.reason,
                    enforced=enforced,
                ),
            )
        decisions.append(decision)

    replacements = trust.replacements if enforced else {}
    forwarded = view
    if replacements:
        messages = [_apply(message, replacements) for message in view.messages]
        forwarded = view.model_copy(update={"messages": messages})
    return RequestVerdict(enforced, trust, forwarded, replacements, decisions)


def answer_untrusted_since(profile: Profile | CompiledProfile, completion: CompletionView) -> UntrustedSource | None:
    """The first result of a provider-run tool inside the answer (a web search, a web fetch…) that no policy marks
    trusted: the answer's own tool calls were made in a context holding it. (Such a result cannot be replaced, so a
    blocked one counts as untrusted.)"""
    compiled = compile_profile(profile)
    for position, result in enumerate(completion.tool_results):
        decision = judge_result(compiled.trusted_data, result, result.name, position)
        if decision.verdict != "trusted":
            return UntrustedSource(result.tool_call_id, result.name)
    return None


def evaluate_completion(
    profile: Profile | CompiledProfile,
    request_view: ConversationView,
    request_verdict: RequestVerdict,
    completion: CompletionView,
) -> CompletionVerdict:
    """Judge the tool calls in the model's answer against the request's declared tools and context trust."""
    compiled = compile_profile(profile)
    enforced = compiled.enforced
    declared = {tool.name for tool in request_view.tools}
    untrusted = request_verdict.trust.untrusted_since or answer_untrusted_since(compiled, completion)
    invocation = judge_tool_calls(compiled.tool_invocation, completion.tool_calls, declared, untrusted)
    would_block = invocation.blocked
    first_blocked = next((d.tool_call.name for d in invocation.calls if not d.allowed), None)
    decisions = []
    for decision in invocation.calls:
        call = decision.tool_call
        if decision.allowed and not would_block:
            kind, reason = "tool_call_allowed", decision.reason
        elif decision.allowed:
            kind, reason = "tool_call_blocked", f"withheld with the blocked call to the {first_blocked} tool"
        else:
            kind, reason = "tool_call_blocked", decision.reason
        decisions.append(
            PolicyDecision(kind=kind, tool=call.name, tool_call_id=call.id, reason=reason, enforced=enforced)
        )

    blocked = would_block and enforced
    refusal = invocation.refusal if blocked else None
    if refusal is not None and compiled.redact:
        refusal = redact_secrets(refusal)[0]  # the refusal quotes the call's arguments
    calls = list(completion.tool_calls)
    return CompletionVerdict(
        enforced=enforced,
        invocation=invocation,
        blocked=blocked,
        refusal=refusal,
        decisions=decisions,
        tool_calls=[] if blocked else calls,
        blocked_tool_calls=calls if blocked else [],
    )
