from __future__ import annotations

from schemas.events import PolicyDecision
from services.guard.detectors import findings_from_decisions


def test_each_blocking_or_redacting_decision_becomes_a_policy_finding():
    decisions = [
        PolicyDecision(kind="tool_call_allowed", tool="search", tool_call_id="c0"),
        PolicyDecision(kind="tool_call_blocked", tool="shell", tool_call_id="c1", reason="tool not allowed"),
        PolicyDecision(kind="tool_result_untrusted", tool="fetch", tool_call_id="c2", reason="web content"),
        PolicyDecision(kind="tool_result_blocked", tool="fetch", tool_call_id="c3", enforced=False),
        PolicyDecision(kind="redaction", reason="masked 2 secrets"),
    ]
    findings = findings_from_decisions(decisions)
    assert [(f.detector, f.action, f.severity) for f in findings] == [
        ("policy.tool_call_blocked", "blocked", "high"),
        ("policy.tool_result_untrusted", "logged", "medium"),
        ("policy.tool_result_blocked", "logged", "high"),  # permissive mode: decided, not applied
        ("policy.redaction", "redacted", "medium"),
    ]
    assert all(f.category == "policy" for f in findings)
    assert findings[0].location == "request_decisions[1].tool_call_id=c1"
    assert findings[0].excerpt == "tool_call_blocked shell: tool not allowed"


def test_a_reason_quoting_a_credential_is_masked(fake_keys):
    decision = PolicyDecision(kind="redaction", reason=f"masked {fake_keys['github']}")
    (finding,) = findings_from_decisions([decision], column="response_decisions")
    assert fake_keys["github"] not in finding.excerpt
    assert finding.location == "response_decisions[0]"


def test_a_decision_quoting_a_megabyte_tool_name_is_not_memoised():
    """A reason can quote a tool name of any length from a request: such texts stay out of the excerpt cache, which
    would otherwise hold thousands of them."""
    from services.guard.detectors.policy import _masked

    before = _masked.cache_info().currsize
    tool = "t" * 1_000_000
    decisions = [PolicyDecision(kind="tool_result_untrusted", tool=tool, reason=f"results of the {tool} tool")]
    (finding,) = findings_from_decisions(decisions)
    assert finding.excerpt.startswith("tool_result_untrusted ttt") and len(finding.excerpt) == 200
    assert _masked.cache_info().currsize == before


def test_an_answer_too_large_to_judge_is_a_policy_finding():
    decision = PolicyDecision(kind="answer_unjudged", reason="the answer is larger than 16 bytes", enforced=True)
    (finding,) = findings_from_decisions([decision], column="response_decisions")
    assert (finding.detector, finding.action) == ("policy.answer_unjudged", "blocked")
