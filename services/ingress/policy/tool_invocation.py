"""Judging the tool calls in a model's answer: may each reach the client?

In order, for each call:

1. a call to a tool the request did not declare is blocked (a model inventing tools is never forwarded);
2. a call whose arguments are not a strict JSON object (not JSON, ``NaN``, a lone surrogate, trailing text, a list…)
   is blocked when any policy names its tool: those policies cannot tell what the tool will make of them;
3. the tool's applicable policy (see ``rules``) decides: ``block_always`` blocks; ``block_when_context_is_untrusted``
   blocks when the context is untrusted; ``allow_when_context_is_untrusted`` allows;
4. with no applicable policy, a call is blocked only when the context is untrusted.

Conditions test the call's arguments (the parsed JSON object; the empty key is the whole arguments as text). One
blocked call withholds every tool call of the answer: a client acting on part of a plan the policy stopped is worse
than a refusal.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from schemas.profiles import ToolInvocationPolicy
from schemas.view import ToolCall
from services.ingress.policy.rules import RuleBook
from services.ingress.policy.trusted_data import UntrustedSource

INVOCATION_RANK: Mapping[str, int] = {
    "allow_when_context_is_untrusted": 0,
    "block_when_context_is_untrusted": 1,
    "block_always": 2,
}

Basis = Literal[
    "undeclared", "unparseable", "block_always", "block_when_context_is_untrusted", "allow_when_context_is_untrusted"
]


def compile_tool_invocation(policies: Iterable[ToolInvocationPolicy]) -> RuleBook[ToolInvocationPolicy]:
    return RuleBook.build(policies, INVOCATION_RANK, INVOCATION_RANK["block_when_context_is_untrusted"])


@dataclass(frozen=True, slots=True)
class CallDecision:
    tool_call: ToolCall
    allowed: bool
    reason: str
    basis: Basis
    """The rule that decided; ``block_when_context_is_untrusted`` also when no policy applied (the default rule)."""
    policy: ToolInvocationPolicy | None = None
    specific: bool = False


@dataclass(frozen=True, slots=True)
class InvocationVerdict:
    calls: tuple[CallDecision, ...] = ()

    @property
    def blocked(self) -> bool:
        """True when at least one call is blocked, which withholds every call of the answer."""
        return any(not decision.allowed for decision in self.calls)

    @property
    def refusal(self) -> str | None:
        """The answer's text in place of the withheld calls: one sentence per blocked call."""
        refusals = [refusal_text(d.tool_call, d.reason) for d in self.calls if not d.allowed]
        return "\n\n".join(refusals) if refusals else None


def _arguments_text(arguments: Any) -> str:
    text = (
        arguments
        if isinstance(arguments, str)
        else json.dumps({} if arguments is None else arguments, ensure_ascii=False, default=str)
    )
    # A lone surrogate cannot be encoded in the refusal sent back: it is quoted as its escape.
    return text if text.isascii() else text.encode("utf-8", "backslashreplace").decode("utf-8")


def refusal_text(call: ToolCall, reason: str) -> str:
    return (
        f"I tried to invoke the {call.name} tool with the following arguments: {_arguments_text(call.arguments)}. "
        f"However, I was denied by a tool invocation policy: {reason}"
    )


def _untrusted_reason(tool: str, source: UntrustedSource) -> str:
    if source.why:
        return f"{source.why}, and the {tool} tool may not be called while the context is untrusted"
    origin = f"the result of the {source.tool} tool" if source.tool else "a tool result of unknown origin"
    return (
        f"the context contains untrusted data ({origin}, call {source.tool_call_id}), "
        f"and the {tool} tool may not be called while the context is untrusted"
    )


def _judge(
    book: RuleBook[ToolInvocationPolicy], call: ToolCall, declared: Collection[str], untrusted: UntrustedSource | None
) -> CallDecision:
    if call.name not in declared:
        return CallDecision(call, False, f"the {call.name} tool was not declared in the request", "undeclared")
    if call.arguments_error is not None and book.governs(call.name):
        reason = (
            f"the arguments of the {call.name} call are {call.arguments_error}, "
            f"so the policies on the {call.name} tool cannot judge them"
        )
        return CallDecision(call, False, reason, "unparseable")
    policy, specific = book.select(call.name, call.arguments)
    if policy is not None and policy.action == "block_always":
        reason = policy.reason or f"the {call.name} tool is always blocked"
        return CallDecision(call, False, reason, "block_always", policy, specific)
    if policy is not None and policy.action == "allow_when_context_is_untrusted":
        reason = policy.reason or f"the {call.name} tool is allowed even when the context is untrusted"
        return CallDecision(call, True, reason, "allow_when_context_is_untrusted", policy, specific)
    # block_when_context_is_untrusted, by policy or by default
    if untrusted is not None:
        reason = (policy.reason if policy is not None else "") or _untrusted_reason(call.name, untrusted)
        return CallDecision(call, False, reason, "block_when_context_is_untrusted", policy, specific)
    return CallDecision(call, True, "the context is trusted", "block_when_context_is_untrusted", policy, specific)


def judge_tool_calls(
    policies: RuleBook[ToolInvocationPolicy] | Iterable[ToolInvocationPolicy],
    tool_calls: Sequence[ToolCall],
    declared: Collection[str],
    untrusted: UntrustedSource | None,
) -> InvocationVerdict:
    """Judge every call in an answer; ``declared`` are the tool names the request offered, ``untrusted`` the result
    that made the context untrusted (None when trusted). Pass a compiled RuleBook on the hot path."""
    book = policies if isinstance(policies, RuleBook) else compile_tool_invocation(policies)
    return InvocationVerdict(tuple(_judge(book, call, declared, untrusted) for call in tool_calls))
