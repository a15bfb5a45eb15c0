"""Tool invocation policies: judging the tool calls in a model's answer."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.profiles import ToolInvocationPolicy
from schemas.view import ToolCall
from services.ingress.policy.tool_invocation import judge_tool_calls, refusal_text
from services.ingress.policy.trusted_data import UntrustedSource

UNTRUSTED = UntrustedSource(tool_call_id="call_web", tool="fetch_url")
DECLARED = {"send_email", "fetch_url", "read_file"}


def _policy(tool: str, action: str, *conditions: tuple[str, str, str], reason: str = "") -> ToolInvocationPolicy:
    return ToolInvocationPolicy.model_validate(
        {
            "tool": tool,
            "action": action,
            "reason": reason,
            "conditions": [{"key": k, "operator": o, "value": v} for k, o, v in conditions],
        }
    )


def _call(name: str, arguments: Any = None, call_id: str = "c1") -> ToolCall:
    return ToolCall(id=call_id, name=name, arguments=arguments if arguments is not None else {})


@pytest.mark.parametrize(("untrusted", "allowed"), [(None, True), (UNTRUSTED, False)])
def test_without_policies_a_call_is_blocked_only_when_the_context_is_untrusted(
    untrusted: UntrustedSource | None, allowed: bool
) -> None:
    verdict = judge_tool_calls([], [_call("send_email")], DECLARED, untrusted)
    assert verdict.calls[0].allowed is allowed
    assert verdict.blocked is not allowed


def test_the_untrusted_reason_names_the_tainting_result() -> None:
    verdict = judge_tool_calls([], [_call("send_email", {"to": "x@evil.com"})], DECLARED, UNTRUSTED)
    reason = verdict.calls[0].reason
    assert "untrusted" in reason and "fetch_url" in reason and "call_web" in reason and "send_email" in reason


def test_block_always_blocks_even_in_a_trusted_context() -> None:
    verdict = judge_tool_calls(
        [_policy("read_file", "block_always", reason="no files")], [_call("read_file")], DECLARED, None
    )
    assert not verdict.calls[0].allowed and verdict.calls[0].reason == "no files"


def test_block_when_untrusted_policy_uses_its_reason() -> None:
    policies = [_policy("send_email", "block_when_context_is_untrusted", reason="mail needs a clean context")]
    assert judge_tool_calls(policies, [_call("send_email")], DECLARED, None).calls[0].allowed
    blocked = judge_tool_calls(policies, [_call("send_email")], DECLARED, UNTRUSTED).calls[0]
    assert not blocked.allowed and blocked.reason == "mail needs a clean context"


def test_allow_when_untrusted_allows_in_an_untrusted_context() -> None:
    policies = [_policy("read_file", "allow_when_context_is_untrusted")]
    verdict = judge_tool_calls(policies, [_call("read_file")], DECLARED, UNTRUSTED)
    assert verdict.calls[0].allowed and not verdict.blocked


def test_a_matching_conditional_policy_wins_over_the_default() -> None:
    policies = [
        _policy("send_email", "block_always", reason="no mail"),
        _policy("send_email", "allow_when_context_is_untrusted", ("to", "endsWith", "@corp.com")),
    ]
    inside = judge_tool_calls(policies, [_call("send_email", {"to": "ann@corp.com"})], DECLARED, UNTRUSTED)
    outside = judge_tool_calls(policies, [_call("send_email", {"to": "eve@evil.com"})], DECLARED, None)
    assert inside.calls[0].allowed and inside.calls[0].specific
    assert not outside.calls[0].allowed and outside.calls[0].reason == "no mail" and not outside.calls[0].specific


def test_a_conditional_block_applies_only_when_it_matches() -> None:
    policies = [_policy("send_email", "block_always", ("recipients[*].email", "notContains", "@corp.com"))]
    external = {"recipients": [{"email": "ann@corp.com"}, {"email": "eve@evil.com"}]}
    internal = {"recipients": [{"email": "ann@corp.com"}]}
    # one recipient outside corp.com is enough: an internal address added to the list never escapes the block
    assert not judge_tool_calls(policies, [_call("send_email", external)], DECLARED, None).calls[0].allowed
    all_external = {"recipients": [{"email": "eve@evil.com"}, {"email": "mal@evil.com"}]}
    assert not judge_tool_calls(policies, [_call("send_email", all_external)], DECLARED, None).calls[0].allowed
    assert judge_tool_calls(policies, [_call("send_email", internal)], DECLARED, None).calls[0].allowed


def test_a_lenient_policy_applies_only_when_every_value_matches() -> None:
    policies = [
        _policy("send_email", "block_always"),
        _policy("send_email", "allow_when_context_is_untrusted", ("recipients[*].email", "endsWith", "@corp.com")),
    ]
    internal = {"recipients": [{"email": "ann@corp.com"}]}
    mixed = {"recipients": [{"email": "ann@corp.com"}, {"email": "eve@evil.com"}]}
    assert judge_tool_calls(policies, [_call("send_email", internal)], DECLARED, None).calls[0].allowed
    assert not judge_tool_calls(policies, [_call("send_email", mixed)], DECLARED, None).calls[0].allowed


def test_among_matching_conditional_policies_the_most_restrictive_wins() -> None:
    policies = [
        _policy("fetch_url", "allow_when_context_is_untrusted", ("url", "startsWith", "https://")),
        _policy("fetch_url", "block_always", ("url", "contains", "evil"), reason="evil"),
    ]
    verdict = judge_tool_calls(policies, [_call("fetch_url", {"url": "https://evil.com"})], DECLARED, None)
    assert not verdict.calls[0].allowed and verdict.calls[0].reason == "evil"


def test_a_call_to_an_undeclared_tool_is_blocked_whatever_the_policies() -> None:
    policies = [_policy("delete_repo", "allow_when_context_is_untrusted")]
    verdict = judge_tool_calls(policies, [_call("delete_repo")], DECLARED, None)
    assert not verdict.calls[0].allowed and verdict.calls[0].basis == "undeclared"
    assert "delete_repo" in verdict.calls[0].reason and "not declared" in verdict.calls[0].reason


def test_one_blocked_call_blocks_the_answer_and_the_refusal_names_it() -> None:
    calls = [_call("read_file", {"path": "a"}, "c1"), _call("send_email", {"to": "x@evil.com"}, "c2")]
    verdict = judge_tool_calls([], calls, DECLARED, UNTRUSTED)
    assert verdict.blocked
    assert verdict.refusal is not None and verdict.refusal.count("I tried to invoke") == 2
    trusted = judge_tool_calls([], calls, DECLARED, None)
    assert not trusted.blocked and trusted.refusal is None


def test_refusal_text_format() -> None:
    text = refusal_text(_call("send_email", {"to": "x@evil.com", "subject": "hi"}), "mail is off")
    assert text == (
        'I tried to invoke the send_email tool with the following arguments: {"to": "x@evil.com", "subject": "hi"}. '
        "However, I was denied by a tool invocation policy: mail is off"
    )
    raw = ToolCall(id="c", name="t", arguments="{not json")
    assert "following arguments: {not json." in refusal_text(raw, "r")


def test_conditions_on_arguments_that_did_not_parse_see_only_the_raw_text() -> None:
    policies = [
        _policy("fetch_url", "block_always", ("", "contains", "evil")),
        _policy("fetch_url", "block_always", ("url", "contains", "x")),
    ]
    assert (
        not judge_tool_calls(policies, [ToolCall(id="c", name="fetch_url", arguments="evil")], DECLARED, None)
        .calls[0]
        .allowed
    )
    assert (
        judge_tool_calls(policies, [ToolCall(id="c", name="fetch_url", arguments="url=x")], DECLARED, None)
        .calls[0]
        .allowed
    )


def test_an_answer_without_tool_calls_is_not_blocked() -> None:
    verdict = judge_tool_calls([_policy("send_email", "block_always")], [], DECLARED, UNTRUSTED)
    assert not verdict.blocked and verdict.refusal is None
