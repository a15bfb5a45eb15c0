"""Converse and ConverseStream through Warden with boto3: the upstream gets Warden's own SigV4 signature (never the
Warden key), the answer and the stream reach the SDK as Bedrock sent them, and the record has the provider, the
model, the usage and the cost."""

from __future__ import annotations

import genai_prices
import httpx
import pytest

from tests.bedrock.conftest import MODEL, bedrock, streamed, user
from tests.conftest import BEDROCK_ACCESS_KEY_ID, BEDROCK_REGION

STREAMED = pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])


def converse(client, stream: bool, **request) -> dict:
    """One Converse answer, or a ConverseStream answer assembled from its events in Converse's shape."""
    if not stream:
        return client.converse(**request)
    text, calls, stop, usage = "", {}, None, None
    for event in streamed(client.converse_stream(**request)):
        if "contentBlockStart" in event:
            start = event["contentBlockStart"]
            calls[start["contentBlockIndex"]] = {**start["start"]["toolUse"], "input": ""}
        elif "contentBlockDelta" in event:
            delta = event["contentBlockDelta"]
            if "text" in delta["delta"]:
                text += delta["delta"]["text"]
            else:
                calls[delta["contentBlockIndex"]]["input"] += delta["delta"]["toolUse"]["input"]
        elif "messageStop" in event:
            stop = event["messageStop"]["stopReason"]
        elif "metadata" in event:
            usage = event["metadata"]["usage"]
    content = ([{"text": text}] if text else []) + [{"toolUse": call} for _, call in sorted(calls.items())]
    return {"output": {"message": {"role": "assistant", "content": content}}, "stopReason": stop, "usage": usage}


def recorded(warden, agent: str) -> dict:
    (item,) = warden.wait_for(lambda i: i["status"] is not None, agent_id=agent)
    return warden.detail(item["interaction_id"])


@STREAMED
def test_converse_reaches_the_upstream_signed_by_warden_and_is_recorded_with_its_cost(
    warden, upstream, bedrock_profile, key_of, stream
):
    key = key_of(bedrock_profile)
    client = bedrock(warden, key.secret, agent=key.agent_id)
    answer = converse(client, stream, modelId=MODEL, messages=user("[[cached:40]] [[cache_write:8]] hello bedrock"))
    assert answer["output"]["message"]["content"] == [{"text": "echo: hello bedrock"}]
    assert answer["stopReason"] == "end_turn"

    received = upstream.last
    action = "converse-stream" if stream else "converse"
    assert received.path == f"/model/us.anthropic.claude-sonnet-4-20250514-v1%3A0/{action}"  # as boto3 encoded it
    authorization = received.header("authorization")
    assert (
        authorization.startswith(f"AWS4-HMAC-SHA256 Credential={BEDROCK_ACCESS_KEY_ID}/")
        and f"/{BEDROCK_REGION}/bedrock/aws4_request" in authorization
    )  # the fake checked the signature itself
    assert key.secret not in str(received.headers) and key.secret.encode() not in received.raw_body

    detail = recorded(warden, key.agent_id)
    assert detail["provider"] == "bedrock" and detail["model"] == MODEL and detail["stream"] is stream
    assert detail["status"] == 200 and detail["auth"] == "warden_key"
    if stream:  # the event stream's binary framing is recorded as text, one event per message
        assert detail["response_body"].startswith('event: messageStart\ndata: {"role":"assistant"}')
        assert '"text":"echo:"' in detail["response_body"]
    # The logs viewer reads the record through the Bedrock adapter: the answer is assembled from its events.
    page = httpx.get(f"{warden.url}/logs/{detail['interaction_id']}", timeout=10).text
    assert "Bedrock Converse" in page and "echo: hello bedrock" in page
    usage, cost = detail["usage"], detail["cost"]
    reported = answer["usage"]
    assert usage["input_tokens"] == reported["inputTokens"] + 40 + 8
    assert usage["cached_tokens"] == reported["cacheReadInputTokens"] == 40
    assert usage["cache_write_tokens"] == reported["cacheWriteInputTokens"] == 8
    assert usage["output_tokens"] == reported["outputTokens"]
    priced = genai_prices.calc_price(
        genai_prices.Usage(
            input_tokens=usage["input_tokens"],
            cache_read_tokens=40,
            cache_write_tokens=8,
            output_tokens=usage["output_tokens"],
        ),
        MODEL,
        provider_id="aws",
    )
    assert cost["usd"] == pytest.approx(float(priced.total_price), rel=1e-9) and cost["usd"] > 0
    assert cost["estimated"] is False


@STREAMED
def test_a_model_arn_with_an_encoded_slash_is_forwarded_as_sent(warden, upstream, bedrock_profile, key_of, stream):
    key = key_of(bedrock_profile)
    arn = "arn:aws:bedrock:eu-west-3:123456789012:inference-profile/eu.anthropic.claude-3-7-sonnet-20250219-v1:0"
    answer = converse(bedrock(warden, key.secret), stream, modelId=arn, messages=user("which model"))
    assert answer["output"]["message"]["content"] == [{"text": "echo: which model"}]
    assert "inference-profile%2Feu.anthropic" in upstream.last.path
    detail = recorded(warden, key.agent_id)
    assert detail["model"] == arn
    assert detail["cost"]["usd"] and detail["cost"]["usd"] > 0  # priced as the model the ARN names


@STREAMED
def test_tool_calls_and_tool_results_pass_and_are_recorded(warden, upstream, bedrock_profile, key_of, stream):
    key = key_of(bedrock_profile)
    client = bedrock(warden, key.secret)
    tools = {"tools": [{"toolSpec": {"name": "lookup", "inputSchema": {"json": {"type": "object"}}}}]}
    answer = converse(
        client, stream, modelId=MODEL, messages=user('[[tool:lookup {"q": "weather"}]]'), toolConfig=tools
    )
    (block,) = answer["output"]["message"]["content"]
    call = block["toolUse"]
    assert call["name"] == "lookup" and answer["stopReason"] == "tool_use"
    detail = recorded(warden, key.agent_id)
    assert detail["finish_reason"] == "tool_use"
    assert [(c["name"], c["arguments"]) for c in detail["tool_calls"]] == [("lookup", {"q": "weather"})]


def test_a_profile_segment_in_the_endpoint_is_the_keys_profile(warden, upstream, bedrock_profile, key_of):
    key = key_of(bedrock_profile)
    answer = bedrock(warden, key.secret, profile=bedrock_profile).converse(modelId=MODEL, messages=user("by path"))
    assert answer["output"]["message"]["content"] == [{"text": "echo: by path"}]
    assert upstream.last.path == "/model/us.anthropic.claude-sonnet-4-20250514-v1%3A0/converse"  # no profile segment
    assert recorded(warden, key.agent_id)["profile_id"] == bedrock_profile
