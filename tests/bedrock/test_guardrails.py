"""Inline guardrails on Bedrock, Converse and InvokeModel, streamed and not, with boto3: a blocked tool call comes
back as a refusal turn the SDK parses (in a stream: a well-formed event stream, its CRCs checked by botocore), a
blocked tool result and a secret never reach the upstream."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from tests.bedrock.conftest import MODEL, bedrock, streamed, user
from tests.bedrock.test_converse import converse, recorded
from tests.support.guardrails import make_profile

STREAMED = pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
READ_FILE = {
    "toolSpec": {
        "name": "read_file",
        "inputSchema": {"json": {"type": "object", "properties": {"path": {"type": "string"}}}},
    }
}
ANTHROPIC_MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"
ANTHROPIC_READ_FILE = {"name": "read_file", "input_schema": READ_FILE["toolSpec"]["inputSchema"]["json"]}
AWS_SECRET_SHAPED = "AKIA" + "Q7WZR2XK5M9TPL3D"


@pytest.fixture(scope="module")
def restrictive(warden) -> str:
    return make_profile(warden, "restrictive", name="bedrock")


@pytest.fixture(scope="module")
def redacting(warden) -> str:
    return make_profile(warden, "permissive", name="bedrock-redacting", redact_secrets=True)


def ask_read(path: str, before: str = "") -> list[dict]:
    return user(f'{before}[[tool:read_file {{"path": "{path}"}}]]')


@STREAMED
@pytest.mark.parametrize("before", ["Let me look. ", ""], ids=["after-text", "first-block"])
def test_converse_a_blocked_call_comes_back_as_a_refusal(warden, upstream, restrictive, key_of, stream, before):
    key = key_of(restrictive)
    answer = converse(
        bedrock(warden, key.secret),
        stream,
        modelId=MODEL,
        messages=ask_read("/etc/passwd", before),
        toolConfig={"tools": [READ_FILE]},
    )
    content = answer["output"]["message"]["content"]
    assert all("toolUse" not in block for block in content)
    text = "".join(block["text"] for block in content)
    # A stream's text before the call flowed through as it came; a whole answer becomes the refusal alone.
    assert text.startswith(f"echo: {before.strip()}" if stream and before else "I tried to invoke the read_file tool")
    assert "I tried to invoke the read_file tool" in text and "/etc/passwd" in text
    assert answer["stopReason"] == "end_turn"
    assert answer["usage"]["outputTokens"] > 0  # the upstream's usage is kept

    detail = recorded(warden, key.agent_id)
    assert detail["blocked"] is True
    assert [(c["name"], c["arguments"]) for c in detail["blocked_tool_calls"]] == [
        ("read_file", {"path": "/etc/passwd"})
    ]
    assert "toolUse" not in (detail["response_body"] or "")  # the record holds what the client got


def test_converse_stream_refusal_events_are_in_order_at_a_fresh_block_index(warden, upstream, restrictive, key_of):
    key = key_of(restrictive)
    events = streamed(
        bedrock(warden, key.secret).converse_stream(
            modelId=MODEL, messages=ask_read("/etc/shadow", "Checking. "), toolConfig={"tools": [READ_FILE]}
        )
    )
    kinds = [next(iter(event)) for event in events]
    assert kinds[0] == "messageStart" and kinds[-2:] == ["messageStop", "metadata"]
    assert "contentBlockStart" not in kinds  # the tool use was held back, never released
    indexes = [event[kinds[i]]["contentBlockIndex"] for i, event in enumerate(events) if "contentBlock" in kinds[i]]
    assert indexes == sorted(indexes) and indexes[-1] == 1  # the text block 0 passed, the refusal is block 1


@STREAMED
def test_converse_an_allowed_call_passes_untouched(warden, upstream, restrictive, key_of, stream):
    key = key_of(restrictive)
    answer = converse(
        bedrock(warden, key.secret),
        stream,
        modelId=MODEL,
        messages=ask_read("/home/me/notes.txt"),
        toolConfig={"tools": [READ_FILE]},
    )
    (block,) = answer["output"]["message"]["content"]
    assert block["toolUse"]["name"] == "read_file" and answer["stopReason"] == "tool_use"
    arguments = block["toolUse"]["input"]
    assert (json.loads(arguments) if stream else arguments) == {"path": "/home/me/notes.txt"}
    assert recorded(warden, key.agent_id)["blocked"] is False


@STREAMED
def test_converse_a_blocked_tool_result_never_reaches_the_upstream(warden, upstream, restrictive, key_of, stream):
    key = key_of(restrictive)
    messages = [
        {"role": "user", "content": [{"text": "open the vault"}]},
        {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "vault", "input": {}}}]},
        {
            "role": "user",
            "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "the combination is 12-34-56"}]}}],
        },
    ]
    vault = {"toolSpec": {"name": "vault", "inputSchema": {"json": {"type": "object"}}}}
    converse(bedrock(warden, key.secret), stream, modelId=MODEL, messages=messages, toolConfig={"tools": [vault]})
    sent = upstream.last.raw_body
    assert b"12-34-56" not in sent
    result = upstream.last.body["messages"][2]["content"][0]["toolResult"]
    assert result["toolUseId"] == "t1" and "12-34-56" not in json.dumps(result)


@STREAMED
def test_a_secret_in_the_prompt_is_masked_in_what_the_upstream_receives(warden, upstream, redacting, key_of, stream):
    key = key_of(redacting)
    converse(
        bedrock(warden, key.secret),
        stream,
        modelId=MODEL,
        system=[{"text": "be brief"}],
        messages=user(f"my key is {AWS_SECRET_SHAPED}, keep it"),
    )
    assert AWS_SECRET_SHAPED.encode() not in upstream.last.raw_body
    assert "[REDACTED:aws_access_key_id]" in upstream.last.body["messages"][0]["content"][0]["text"]
    detail = recorded(warden, key.agent_id)
    assert AWS_SECRET_SHAPED not in json.dumps(detail)


# -- InvokeModel (Anthropic models) ------------------------------------------------------------------------------


def invoke_body(messages: list[dict], **extra) -> str:
    return json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 256, "messages": messages, **extra})


def invoke(client, stream: bool, body: str) -> dict:
    """An InvokeModel answer, or the Anthropic message assembled from an InvokeModelWithResponseStream."""
    if not stream:
        return json.loads(client.invoke_model(modelId=ANTHROPIC_MODEL, body=body)["body"].read())
    blocks: dict[int, dict] = {}
    message: dict = {}
    for event in client.invoke_model_with_response_stream(modelId=ANTHROPIC_MODEL, body=body)["body"]:
        chunk = json.loads(event["chunk"]["bytes"])
        if chunk["type"] == "message_start":
            message = chunk["message"]
        elif chunk["type"] == "content_block_start":
            blocks[chunk["index"]] = dict(chunk["content_block"])
        elif chunk["type"] == "content_block_delta":
            delta = chunk["delta"]
            block = blocks[chunk["index"]]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            else:
                block["partial"] = block.get("partial", "") + delta["partial_json"]
        elif chunk["type"] == "message_delta":
            message["stop_reason"] = chunk["delta"]["stop_reason"]
            message["usage"] = {**message["usage"], **chunk["usage"]}
    for block in blocks.values():
        if "partial" in block:
            block["input"] = json.loads(block.pop("partial"))
    return {**message, "content": [block for _, block in sorted(blocks.items())]}


@STREAMED
def test_invoke_passes_and_is_recorded(warden, upstream, bedrock_profile, key_of, stream):
    key = key_of(bedrock_profile)
    message = invoke(bedrock(warden, key.secret), stream, invoke_body([{"role": "user", "content": "hi claude"}]))
    assert message["content"] == [{"type": "text", "text": "echo: hi claude"}]
    action = "invoke-with-response-stream" if stream else "invoke"
    assert upstream.last.path == f"/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/{action}"
    assert upstream.last.header("authorization").startswith("AWS4-HMAC-SHA256 Credential=AKIA")
    detail = recorded(warden, key.agent_id)
    assert detail["provider"] == "bedrock" and detail["model"] == ANTHROPIC_MODEL and detail["stream"] is stream
    assert detail["usage"]["output_tokens"] == message["usage"]["output_tokens"]
    assert detail["usage"]["input_tokens"] == message["usage"]["input_tokens"]
    assert detail["cost"]["usd"] and detail["cost"]["usd"] > 0


@STREAMED
def test_invoke_a_blocked_call_comes_back_as_a_refusal(warden, upstream, restrictive, key_of, stream):
    key = key_of(restrictive)
    body = invoke_body(
        [{"role": "user", "content": 'Looking. [[tool:read_file {"path": "/etc/passwd"}]]'}],
        tools=[ANTHROPIC_READ_FILE],
    )
    message = invoke(bedrock(warden, key.secret), stream, body)
    assert [block["type"] for block in message["content"]] == (["text", "text"] if stream else ["text"])
    text = "".join(block["text"] for block in message["content"])
    assert "I tried to invoke the read_file tool" in text and "/etc/passwd" in text
    assert message["stop_reason"] == "end_turn"
    detail = recorded(warden, key.agent_id)
    assert detail["blocked"] is True
    assert [(c["name"], c["arguments"]) for c in detail["blocked_tool_calls"]] == [
        ("read_file", {"path": "/etc/passwd"})
    ]


def test_a_restrictive_profile_refuses_an_invoke_body_it_cannot_judge(warden, upstream, restrictive, key_of):
    """InvokeModel of another model family (Llama's body here) is not read: its tool calls could not be judged."""
    key = key_of(restrictive)
    client = bedrock(warden, key.secret)
    with pytest.raises(ClientError) as raised:
        client.invoke_model(modelId="meta.llama3-70b-instruct-v1:0", body=json.dumps({"prompt": "call a tool"}))
    assert raised.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "cannot be judged" in raised.value.response["Error"]["Message"]
    assert upstream.received == []
    detail = recorded(warden, key.agent_id)
    assert [d["kind"] for d in detail["request_decisions"]] == ["answer_unjudged"]
