"""Judging the tool results in a conversation's history: trusted, untrusted, or blocked.

Every tool result in the history a request carries is judged again, the same way, each time. A result is known only
by the call it answers (the call's tool, never a name the result gives itself); one that answers no call in the
history has no known tool. A result with no applicable policy is untrusted; one untrusted result makes the whole
context untrusted (which the tool invocation policies then act on). A blocked result's content is replaced before the
request is forwarded, so it does not make the context untrusted.

History the provider holds (``Inherited``: what the ingress remembered of the responses it relayed) contributes its
trust and the names of its calls; the caller decides what an unknown reference means.

What conditions see: a result's content is parsed as JSON when it looks like a JSON object or array and parses, and
keys address that. The empty key always means the raw content text, so ``{"key": "", "operator": "contains", ...}``
tests any result, JSON or not. On content that is not JSON, every other key finds nothing, so the condition does not
hold (and the policy does not apply).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from schemas.profiles import TrustedDataPolicy
from schemas.view import ConversationView, ToolResult
from services.ingress.policy.memo import MISSING, IdentityMemo
from services.ingress.policy.rules import RuleBook

TRUSTED_DATA_RANK: Mapping[str, int] = {
    "mark_as_trusted": 0,
    "mark_as_untrusted": 1,
    "block_always": 2,
}

ResultVerdict = Literal["trusted", "untrusted", "blocked"]


def compile_trusted_data(policies: Iterable[TrustedDataPolicy]) -> RuleBook[TrustedDataPolicy]:
    return RuleBook.build(policies, TRUSTED_DATA_RANK, TRUSTED_DATA_RANK["mark_as_untrusted"])


def blocked_content(reason: str) -> str:
    """What a blocked tool result's content is replaced with."""
    return f"[Content blocked by policy: {reason}]"


@dataclass(frozen=True, slots=True)
class ResultDecision:
    tool_call_id: str
    tool: str | None
    message_position: int
    """Position in ``ConversationView.messages`` (``Message.index`` there points into the provider's request)."""
    verdict: ResultVerdict
    reason: str
    policy: TrustedDataPolicy | None = None
    specific: bool = False
    """True when a policy with conditions decided, rather than the tool's default."""


@dataclass(frozen=True, slots=True)
class UntrustedSource:
    """The tool result that made the context untrusted."""

    tool_call_id: str
    tool: str | None
    why: str | None = None
    """Said instead of "the result of the … tool" when the untrusted data is not a tool result in sight."""


@dataclass(frozen=True, slots=True)
class Inherited:
    """What the provider-held history a request continues is known to contain."""

    untrusted_since: UntrustedSource | None = None
    calls: Mapping[str, str] = field(default_factory=dict)
    """Tool call id -> tool name, for the calls made in that history (their results come in this request)."""


@dataclass(frozen=True, slots=True)
class TrustVerdict:
    results: tuple[ResultDecision, ...] = ()
    untrusted_since: UntrustedSource | None = None
    """The first untrusted result in the history; None when the context is trusted."""
    replacements: Mapping[str, str] = field(default_factory=dict)
    """Tool call id -> the content a blocked result's content must be replaced with."""

    @property
    def trusted(self) -> bool:
        return self.untrusted_since is None

    @property
    def blocked_ids(self) -> list[str]:
        return list(self.replacements)


def _parsed(content: str) -> Any:
    stripped = content.lstrip()
    if not stripped or stripped[0] not in "{[":
        return None
    try:
        return orjson.loads(stripped)
    except orjson.JSONDecodeError:
        return None


def _decide(
    policy: TrustedDataPolicy | None, specific: bool, tool: str | None, call_id: str, position: int
) -> ResultDecision:
    if policy is None:
        reason = (
            f"no trusted-data policy marks results of the {tool} tool as trusted"
            if tool
            else "the tool that produced this result is unknown"
        )
        return ResultDecision(call_id, tool, position, "untrusted", reason)
    if policy.action == "mark_as_trusted":
        reason = policy.reason or f"results of the {tool} tool are marked as trusted"
        return ResultDecision(call_id, tool, position, "trusted", reason, policy, specific)
    if policy.action == "mark_as_untrusted":
        reason = policy.reason or f"results of the {tool} tool are marked as untrusted"
        return ResultDecision(call_id, tool, position, "untrusted", reason, policy, specific)
    reason = policy.reason or f"results of the {tool} tool are blocked"
    return ResultDecision(call_id, tool, position, "blocked", reason, policy, specific)


def judge_result(
    book: RuleBook[TrustedDataPolicy], result: ToolResult, tool: str | None, position: int
) -> ResultDecision:
    content = result.content
    policy, specific = book.select(tool, content, _parsed, content)
    return _decide(policy, specific, tool, result.tool_call_id, position)


def judge_tool_results(
    policies: RuleBook[TrustedDataPolicy] | Iterable[TrustedDataPolicy],
    view: ConversationView,
    memo: IdentityMemo[ResultDecision] | None = None,
    inherited: Inherited | None = None,
) -> TrustVerdict:
    """Judge every tool result in ``view``'s history (pass a compiled RuleBook on the hot path, and the memo that
    belongs to it: a result object already judged, under the same tool name at the same position, is not judged
    again). ``inherited``: what is known of the provider-held history the request continues."""
    book = policies if isinstance(policies, RuleBook) else compile_trusted_data(policies)
    names: dict[str, str] = dict(inherited.calls) if inherited is not None else {}
    decisions: list[ResultDecision] = []
    untrusted_since: UntrustedSource | None = inherited.untrusted_since if inherited is not None else None
    replacements: dict[str, str] = {}
    for position, message in enumerate(view.messages):
        if message.tool_calls:
            for call in message.tool_calls:
                names[call.id] = call.name
        result = message.tool_result
        if result is None:
            continue
        # The call the result answers names its tool; the adapter's name stands only where no call is in sight (a
        # provider-run tool's result, or a call made in provider-held history the adapter resolved).
        tool = names.get(result.tool_call_id) or result.name
        decision = memo.get(result, (tool, position)) if memo is not None else MISSING
        if decision is MISSING:
            decision = judge_result(book, result, tool, position)
            if memo is not None:
                memo.put(result, decision, (tool, position))
        decisions.append(decision)
        if decision.verdict == "blocked":
            replacements[result.tool_call_id] = blocked_content(decision.reason)
        elif decision.verdict == "untrusted" and untrusted_since is None:
            untrusted_since = UntrustedSource(result.tool_call_id, tool)
    return TrustVerdict(tuple(decisions), untrusted_since, replacements)
