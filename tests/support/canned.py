"""Exact answers for the fake upstreams to serve (``FakeUpstream.answer_next``), in each wire format, streamed and
not, built by hand so a test controls every byte: the tool calls of each choice or candidate, their arguments as raw
JSON text (strict or not), and how keys are spelled.

``Call`` arguments are raw text: for OpenAI (chat, Responses) they travel inside a JSON string, as the API sends them;
for Anthropic and Gemini they are inserted as the JSON value itself (and, streamed by Anthropic, as
``input_json_delta`` pieces).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

Spell = Callable[[str], str]
"""How a JSON key is written (default: as it is); e.g. with ``\\u`` escapes."""


def plain(key: str) -> str:
    return key


def escaped(key: str) -> str:
    """Every character of the key as a ``\\uXXXX`` escape: the same key to any JSON parser."""
    return "".join(f"\\u{ord(c):04x}" for c in key)


@dataclass(frozen=True)
class Call:
    name: str
    arguments: str
    """Raw JSON text (may be invalid on purpose)."""
    id: str = "call_1"


def _k(spell: Spell, key: str) -> str:
    return '"' + spell(key) + '"'


def _s(text: str) -> str:
    return json.dumps(text)


def _sse(data: str, event: str | None = None) -> str:
    return (f"event: {event}\n" if event else "") + f"data: {data}\n\n"


# -- OpenAI chat completions ---------------------------------------------------------------------------------------


def chat_whole(choices: Sequence[Sequence[Call]], spell: Spell = plain, legacy: bool = False) -> bytes:
    """``legacy``: each choice's first call as a ``function_call`` (the pre-tools API)."""
    out = []
    for index, calls in enumerate(choices):
        if legacy:
            call = calls[0]
            function = f"{{{_k(spell, 'name')}:{_s(call.name)},{_k(spell, 'arguments')}:{_s(call.arguments)}}}"
            message = f'{{"role":"assistant","content":null,{_k(spell, "function_call")}:{function}}}'
            reason = "function_call"
        else:
            items = ",".join(
                f'{{"id":{_s(c.id)},"type":"function","function":{{{_k(spell, "name")}:{_s(c.name)},'
                f"{_k(spell, 'arguments')}:{_s(c.arguments)}}}}}"
                for c in calls
            )
            message = f'{{"role":"assistant","content":null,{_k(spell, "tool_calls")}:[{items}]}}'
            reason = "tool_calls"
        out.append(f'{{"index":{index},"message":{message},"finish_reason":"{reason}"}}')
    body = (
        '{"id":"chatcmpl-canned","object":"chat.completion","created":1,"model":"gpt-4o",'
        f'"choices":[{",".join(out)}],"usage":{{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}}}'
    )
    return body.encode()


def chat_stream(choices: Sequence[Sequence[Call]], spell: Spell = plain, legacy: bool = False, piece: int = 6) -> bytes:
    head = '"id":"chatcmpl-canned","object":"chat.completion.chunk","created":1,"model":"gpt-4o"'
    events = []
    for index in range(len(choices)):
        events.append(
            _sse(f'{{{head},"choices":[{{"index":{index},"delta":{{"role":"assistant","content":"ok "}}}}]}}')
        )
    for index, calls in enumerate(choices):
        for position, call in enumerate(calls[:1] if legacy else calls):
            parts = [call.arguments[i : i + piece] for i in range(0, len(call.arguments), piece)] or [""]
            for number, part in enumerate(parts):
                if legacy:
                    name = f"{_k(spell, 'name')}:{_s(call.name)}," if number == 0 else ""
                    delta = f"{{{_k(spell, 'function_call')}:{{{name}{_k(spell, 'arguments')}:{_s(part)}}}}}"
                else:
                    ident = f'"id":{_s(call.id)},"type":"function",' if number == 0 else ""
                    name = f"{_k(spell, 'name')}:{_s(call.name)}," if number == 0 else ""
                    function = f"{{{name}{_k(spell, 'arguments')}:{_s(part)}}}"
                    delta = f'{{{_k(spell, "tool_calls")}:[{{"index":{position},{ident}"function":{function}}}]}}'
                events.append(_sse(f'{{{head},"choices":[{{"index":{index},"delta":{delta}}}]}}'))
        reason = "function_call" if legacy else "tool_calls"
        events.append(_sse(f'{{{head},"choices":[{{"index":{index},"delta":{{}},"finish_reason":"{reason}"}}]}}'))
    events.append("data: [DONE]\n\n")
    return "".join(events).encode()


# -- OpenAI Responses ------------------------------------------------------------------------------------------------


def _response_items(calls: Sequence[Call], spell: Spell) -> list[str]:
    return [
        f'{{"id":"fc_{n}",{_k(spell, "type")}:"function_call","status":"completed","call_id":{_s(c.id)},'
        f'"name":{_s(c.name)},"arguments":{_s(c.arguments)}}}'
        for n, c in enumerate(calls)
    ]


def _response(output: list[str], response_id: str) -> str:
    return (
        f'{{"id":{_s(response_id)},"object":"response","created_at":1,"status":"completed","model":"gpt-4o",'
        f'"output":[{",".join(output)}],"parallel_tool_calls":true,"tool_choice":"auto","tools":[],'
        '"usage":{"input_tokens":1,"output_tokens":1,"total_tokens":2,'
        '"input_tokens_details":{"cached_tokens":0},"output_tokens_details":{"reasoning_tokens":0}}}'
    )


def responses_whole(calls: Sequence[Call], spell: Spell = plain, response_id: str = "resp_canned", extra=()) -> bytes:
    return _response([*extra, *_response_items(calls, spell)], response_id).encode()


def responses_stream(
    calls: Sequence[Call], spell: Spell = plain, response_id: str = "resp_canned", extra: Sequence[str] = ()
) -> bytes:
    items = [*extra, *_response_items(calls, spell)]
    created = _response([], response_id).replace('"status":"completed"', '"status":"in_progress"', 1)
    events = [_sse(f'{{"type":"response.created","sequence_number":0,"response":{created}}}', "response.created")]
    number = 1
    for index, item in enumerate(items):
        events.append(
            _sse(
                f'{{"type":"response.output_item.done","sequence_number":{number},"output_index":{index},'
                f'"item":{item}}}',
                "response.output_item.done",
            )
        )
        number += 1
    done = _response(items, response_id)
    events.append(
        _sse(f'{{"type":"response.completed","sequence_number":{number},"response":{done}}}', "response.completed")
    )
    return "".join(events).encode()


# -- Anthropic -------------------------------------------------------------------------------------------------------


def anthropic_whole(calls: Sequence[Call], spell: Spell = plain) -> bytes:
    blocks = ",".join(
        f'{{{_k(spell, "type")}:"tool_use","id":{_s(c.id)},"name":{_s(c.name)},"input":{c.arguments}}}' for c in calls
    )
    return (
        '{"id":"msg_canned","type":"message","role":"assistant","model":"claude-sonnet-4-6",'
        f'"content":[{blocks}],"stop_reason":"tool_use","stop_sequence":null,'
        '"usage":{"input_tokens":1,"output_tokens":1}}'
    ).encode()


def anthropic_stream(calls: Sequence[Call], spell: Spell = plain, piece: int = 6) -> bytes:
    message = (
        '{"id":"msg_canned","type":"message","role":"assistant","model":"claude-sonnet-4-6","content":[],'
        '"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":1}}'
    )
    events = [_sse(f'{{"type":"message_start","message":{message}}}', "message_start")]
    for index, c in enumerate(calls):
        block = f'{{{_k(spell, "type")}:"tool_use","id":{_s(c.id)},"name":{_s(c.name)},"input":{{}}}}'
        events.append(
            _sse(f'{{"type":"content_block_start","index":{index},"content_block":{block}}}', "content_block_start")
        )
        for i in range(0, len(c.arguments), piece):
            delta = f'{{"type":"input_json_delta","partial_json":{_s(c.arguments[i : i + piece])}}}'
            events.append(
                _sse(f'{{"type":"content_block_delta","index":{index},"delta":{delta}}}', "content_block_delta")
            )
        events.append(_sse(f'{{"type":"content_block_stop","index":{index}}}', "content_block_stop"))
    events.append(
        _sse(
            '{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},'
            '"usage":{"output_tokens":1}}',
            "message_delta",
        )
    )
    events.append(_sse('{"type":"message_stop"}', "message_stop"))
    return "".join(events).encode()


# -- Gemini ----------------------------------------------------------------------------------------------------------


def _candidates(candidates: Sequence[Sequence[Call]], spell: Spell) -> str:
    out = []
    for index, calls in enumerate(candidates):
        parts = ",".join(f'{{{_k(spell, "functionCall")}:{{"name":{_s(c.name)},"args":{c.arguments}}}}}' for c in calls)
        out.append(f'{{"content":{{"parts":[{parts}],"role":"model"}},"finishReason":"STOP","index":{index}}}')
    return ",".join(out)


def gemini_whole(candidates: Sequence[Sequence[Call]], spell: Spell = plain) -> bytes:
    return (
        f'{{"candidates":[{_candidates(candidates, spell)}],'
        '"usageMetadata":{"promptTokenCount":1,"candidatesTokenCount":1,"totalTokenCount":2},'
        '"modelVersion":"gemini-2.5-flash","responseId":"canned"}'
    ).encode()


def gemini_stream(candidates: Sequence[Sequence[Call]], spell: Spell = plain) -> bytes:
    first = '{"candidates":[{"content":{"parts":[{"text":"ok "}],"role":"model"},"index":0}]}'
    return ("data: " + first + "\r\n\r\n" + "data: " + gemini_whole(candidates, spell).decode() + "\r\n\r\n").encode()
