"""The spans' attribute names are the semantic conventions' own (as the conventions package of the pinned version
spells them), and a guard finding's span never carries its evidence excerpt."""

from __future__ import annotations

from datetime import UTC, datetime

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes

from schemas.events import Evidence, PolicyDecision, ResponseEvent, ViolationEvent
from schemas.view import Usage
from services.tracing import spans

KNOWN = {value for name, value in vars(gen_ai_attributes).items() if name.startswith("GEN_AI_")}
# Not (yet) in the conventions: the guardrail and security-finding proposal.
PROPOSED = ("gen_ai.guardrail.", "gen_ai.security.")


def _response(**extra) -> ResponseEvent:
    now = datetime.now(UTC)
    fields = {
        "interaction_id": "0" * 8 + "-0000-0000-0000-" + "0" * 12,
        "started_at": now,
        "profile_id": "default",
        "provider": "gemini",
        "model": "gemini-2.0-flash",
        "route": "/v1beta/models/gemini-2.0-flash:streamGenerateContent",
        "status": 200,
        "finished_at": now,
        "latency_ms": 5.0,
        "ttft_ms": 1.0,
        "usage": Usage(input_tokens=3, output_tokens=4, cached_tokens=1),
        "finish_reason": "STOP",
        "session_id": "s1",
        "agent_id": "a1",
        "response_body": 'data: {"candidates": [], "modelVersion": "gemini-2.0-flash-001"}\n\n',
    }
    return ResponseEvent(**(fields | extra))


def test_every_gen_ai_attribute_is_one_the_conventions_define():
    decision = PolicyDecision(kind="tool_call_blocked", tool="read_file", tool_call_id="c1", reason="no")
    request = spans.RequestPart(stream=True, decisions=[decision])
    used = set(spans.server_attributes(_response(), request, content=False, content_max_bytes=100))
    used |= set(spans.decision_event(decision))
    for name in used:
        if name.startswith("gen_ai.") and not name.startswith(PROPOSED):
            assert name in KNOWN, name


def test_server_attributes_say_what_the_events_show():
    attributes = spans.server_attributes(_response(), spans.RequestPart(stream=True), False, 100)
    assert attributes["gen_ai.operation.name"] == "generate_content"
    assert attributes["gen_ai.provider.name"] == "gcp.gemini"
    assert attributes["gen_ai.response.model"] == "gemini-2.0-flash-001"
    assert attributes["gen_ai.usage.cache_read.input_tokens"] == 1
    assert attributes["gen_ai.response.finish_reasons"] == ["STOP"]
    assert (attributes["gen_ai.conversation.id"], attributes["gen_ai.agent.id"]) == ("s1", "a1")
    assert attributes["warden.blocked"] is False
    assert "warden.usage.estimated" not in attributes  # the provider reported these counts
    counted = _response(usage=Usage(input_tokens=3, output_tokens=4, estimated=True))
    assert spans.server_attributes(counted, spans.RequestPart(stream=True), False, 100)["warden.usage.estimated"]
    assert "warden.request.content" not in attributes and "warden.response.content" not in attributes


def test_a_permissive_decision_is_recorded_with_no_action():
    decision = PolicyDecision(kind="tool_call_blocked", tool="read_file", enforced=False)
    event = spans.decision_event(decision)
    assert (event["gen_ai.guardrail.decision.type"], event["gen_ai.guardrail.action.type"]) == ("deny", "none")
    blocked = spans.blocked(_response(), spans.RequestPart(decisions=[decision]))
    assert blocked is False


def test_a_finding_carries_no_excerpt():
    secret = "ghp_" + "k2M9pQ" * 6
    violation = ViolationEvent(
        violation_id="v1",
        interaction_id="i1",
        detected_at=datetime.now(UTC),
        detector="secrets.github_token",
        category="secret",
        severity="high",
        score=0.9,
        evidence=Evidence(location="request.messages[0]", excerpt=secret[:8] + "…"),
        profile_id="default",
    )
    attributes = spans.finding_attributes(violation)
    assert attributes["gen_ai.security.risk.category"] == "secret"
    assert not any(secret[:8] in str(value) for value in attributes.values())
