"""The guard reads Bedrock's records like the others': an injection in a Converse tool result is a recorded violation
pointing at the tool result, with its evidence redacted."""

from __future__ import annotations

from tests.bedrock.conftest import MODEL, bedrock
from tests.guard.test_guard_service import INJECTION, wait_violations


def test_an_injection_in_a_converse_tool_result_is_a_violation(warden, upstream, bedrock_profile, key_of):
    key = key_of(bedrock_profile)
    messages = [
        {"role": "user", "content": [{"text": "summarise the page"}]},
        {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "fetch_url", "input": {}}}]},
        {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": INJECTION}]}}]},
    ]
    bedrock(warden, key.secret).converse(modelId=MODEL, messages=messages)
    (item,) = warden.wait_for(lambda i: i["status"] == 200, agent_id=key.agent_id)
    assert item["provider"] == "bedrock"
    violations = wait_violations(warden, item["interaction_id"])
    injection = [v for v in violations if v["category"] == "prompt_injection"]
    assert injection and injection[0]["location"].endswith("tool_result")
    assert "attacker@evil.test" not in injection[0]["excerpt"]
