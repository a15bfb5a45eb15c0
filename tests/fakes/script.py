"""What the fake model answers, independent of any provider's wire format.

A request is reduced to a `Turn` (the provider modules know how to read their own bodies); `plan()` turns it into a
`Plan`: the reply text, the tool calls, token counts and the scripted behaviour asked for by directives in the prompt.

Directives (anywhere in the text of the last input turn, removed from the echoed text):

- ``[[tool:NAME]]`` / ``[[tool:NAME {"json": "arguments"}]]``  answer with a call of tool NAME (repeatable)
- ``[[error:STATUS]]``          answer STATUS in the provider's own error envelope
- ``[[slow:SECONDS]]``          wait before answering
- ``[[stream_fail]]``           stream a few events, then drop the connection (non-streaming: half a body)
- ``[[stream_error]]`` / ``[[stream_error:STATUS]]``  stream a few events, then the provider's in-stream error event
- ``[[chunks:N]]`` / ``[[chunks:N:DELAY]]``  stream the text in exactly N deltas, DELAY seconds apart
- ``[[flood:BYTES]]``           pad the answer with BYTES more characters (streamed in deltas of 64 KiB)
- ``[[endless]]``               stream deltas of 64 KiB for ever (streaming requests only)
- ``[[cached:N]]``              N of the prompt's tokens were read from the provider's cache
- ``[[cache_write:N]]``         N of the prompt's tokens were written to the cache (Anthropic reports these)
- ``[[reasoning:N]]``           the model spent N more output tokens reasoning
- ``[[refusal]]``               the model refuses, quoting the prompt: ``I can't help with that: <prompt>`` (in the
  wire format's refusal field where it has one: OpenAI's ``refusal``; as the text elsewhere)

The usage counts prompt tokens the way OpenAI does (cached ones included); each provider module reports them in its
own fields (Anthropic's ``input_tokens`` leaves the cache's out).

A model whose name contains ``tool-call`` calls the first tool the request declares (or ``lookup``) unless the last
turn is a tool result, so an agent loop ends after one round trip.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import math
import random
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

TOOL_MODEL_MARKER = "tool-call"
DEFAULT_TOOL = "lookup"

_DIRECTIVE = re.compile(
    r"\[\[(tool|error|slow|stream_fail|stream_error|chunks|flood|endless|cached|cache_write|reasoning|refusal)(?::(.*?))?\]\]",
    re.DOTALL,
)
FLOOD_DELTA = 64 * 1024
_WORDS = re.compile(r"\s*\S+")


class DirectiveError(ValueError):
    """A directive in the prompt could not be read; the fake answers 400 so the typo is visible."""


@dataclass(frozen=True)
class ToolSpec:
    """A tool the request declares: its name and JSON schema of its parameters."""

    name: str
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Turn:
    """The provider-independent reading of a generation request."""

    model: str
    prompt: str
    prompt_is_tool_result: bool = False
    input_texts: tuple[str, ...] = ()
    tools: tuple[ToolSpec, ...] = ()


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]

    @property
    def arguments_json(self) -> str:
        # Compact, like the arguments the providers' models emit.
        return json.dumps(self.arguments, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class Plan:
    """Everything a provider module needs to write the answer."""

    text: str
    tool_calls: tuple[ToolCall, ...]
    input_tokens: int
    """Every prompt token, those read from and written to the cache included."""
    output_tokens: int
    """Every output token, reasoning included."""
    error_status: int | None = None
    slow: float = 0.0
    stream_fail: bool = False
    stream_error: int | None = None
    chunks: int | None = None
    chunk_delay: float | None = None
    flood: bool = False
    endless: bool = False
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    refusal: bool = False
    """``text`` is a refusal: written in the wire format's refusal field where it has one."""

    @property
    def uncached_input_tokens(self) -> int:
        return self.input_tokens - self.cached_tokens - self.cache_write_tokens

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def text_deltas(self) -> Iterable[str]:
        """The text as streamed: word by word, or exactly `chunks` pieces when asked; a flood in pieces of 64 KiB,
        and an endless answer for ever (a generator)."""
        if self.endless:
            return _endless(self.text)
        if self.flood:
            return [self.text[i : i + FLOOD_DELTA] for i in range(0, len(self.text), FLOOD_DELTA)]
        if not self.text:
            return []
        if self.chunks is None:
            return _WORDS.findall(self.text) or [self.text]
        return split_evenly(self.text, self.chunks)


def _endless(first: str) -> Iterator[str]:
    yield first
    while True:
        yield "x" * FLOOD_DELTA


def word_count(text: str) -> int:
    return len(text.split())


def split_evenly(text: str, parts: int) -> list[str]:
    """Split `text` into `parts` consecutive non-empty pieces (`text` has at least `parts` characters)."""
    size, extra = divmod(len(text), parts)
    pieces: list[str] = []
    start = 0
    for index in range(parts):
        end = start + size + (1 if index < extra else 0)
        pieces.append(text[start:end])
        start = end
    return pieces


def argument_pieces(arguments_json: str, width: int = 8) -> list[str]:
    """Tool-call arguments as streamed: several small pieces, as the providers send them."""
    return [arguments_json[i : i + width] for i in range(0, len(arguments_json), width)] or [""]


FORCED_DIRECTIVES: contextvars.ContextVar[str] = contextvars.ContextVar("forced_directives", default="")
"""Directives a scripted fault adds to the request being answered (set by the server around its handler)."""


def plan(turn: Turn) -> Plan:
    """Read the directives of `turn.prompt` (and of a scripted fault) and decide the answer."""
    forced = FORCED_DIRECTIVES.get()
    if forced:
        turn = Turn(turn.model, turn.prompt + forced, turn.prompt_is_tool_result, turn.input_texts, turn.tools)
    tool_calls: list[ToolCall] = []
    error_status: int | None = None
    slow = 0.0
    stream_fail = False
    stream_error: int | None = None
    chunks: int | None = None
    chunk_delay: float | None = None
    flood = 0
    endless = False
    refusal = False
    counts = {"cached": 0, "cache_write": 0, "reasoning": 0}

    for match in _DIRECTIVE.finditer(turn.prompt):
        name, argument = match.group(1), (match.group(2) or "").strip()
        if name == "tool":
            tool_calls.append(_tool_directive(argument))
        elif name == "error":
            error_status = _status(argument, "error")
        elif name == "slow":
            slow = _number(argument, "slow")
        elif name == "stream_fail":
            stream_fail = True
        elif name == "stream_error":
            stream_error = _status(argument, "stream_error") if argument else 0
        elif name == "chunks":
            count, _, delay = argument.partition(":")
            chunks = int(_number(count, "chunks"))
            if chunks < 1:
                raise DirectiveError("[[chunks:N]] needs N >= 1")
            chunk_delay = _number(delay, "chunks") if delay else None
        elif name == "flood":
            flood = int(_number(argument, "flood"))
        elif name == "endless":
            endless = True
        elif name == "refusal":
            refusal = True
        else:
            counts[name] = int(_number(argument, name))

    cleaned = " ".join(_DIRECTIVE.sub(" ", turn.prompt).split())
    if not tool_calls and TOOL_MODEL_MARKER in turn.model and not turn.prompt_is_tool_result:
        tool_calls.append(_tool_for_model(turn.tools, cleaned))

    text = f"echo: {cleaned}" if cleaned or not tool_calls else ""
    if refusal:
        text = f"I can't help with that: {cleaned}"
    if chunks is not None and len(text) < chunks:
        # Pad so that every one of the N deltas carries at least one character.
        text = (text or "echo:").ljust(chunks, ".")

    if flood:
        text += "x" * flood
    output_tokens = word_count(text) + sum(1 + word_count(call.arguments_json) for call in tool_calls)
    input_tokens = sum(word_count(part) for part in turn.input_texts) + counts["cached"] + counts["cache_write"]
    return Plan(
        text=text,
        tool_calls=tuple(tool_calls),
        input_tokens=input_tokens,
        output_tokens=max(output_tokens, 1) + counts["reasoning"],
        cached_tokens=counts["cached"],
        cache_write_tokens=counts["cache_write"],
        reasoning_tokens=counts["reasoning"],
        error_status=error_status,
        slow=slow,
        stream_fail=stream_fail,
        stream_error=stream_error,
        chunks=chunks,
        chunk_delay=chunk_delay,
        flood=bool(flood),
        endless=endless,
        refusal=refusal,
    )


def _tool_directive(argument: str) -> ToolCall:
    name, _, raw_arguments = argument.partition(" ")
    if not name:
        raise DirectiveError("[[tool:NAME {...}]] needs a tool name")
    raw_arguments = raw_arguments.strip()
    try:
        arguments = json.loads(raw_arguments) if raw_arguments else {}
    except json.JSONDecodeError as exc:
        raise DirectiveError(f"[[tool:{name} ...]] arguments are not JSON: {exc}") from exc
    if not isinstance(arguments, dict):
        raise DirectiveError(f"[[tool:{name} ...]] arguments must be a JSON object")
    return ToolCall(name=name, arguments=arguments)


def _tool_for_model(tools: tuple[ToolSpec, ...], text: str) -> ToolCall:
    if not tools:
        return ToolCall(name=DEFAULT_TOOL, arguments={"query": text})
    tool = tools[0]
    properties = tool.parameters.get("properties") or {}
    wanted = tool.parameters.get("required") or list(properties)[:1]
    arguments = {key: _value_for(properties.get(key) or {}, text) for key in wanted}
    return ToolCall(name=tool.name, arguments=arguments)


def _value_for(schema: dict[str, Any], text: str) -> Any:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((item for item in kind if item != "null"), "string")
    if isinstance(kind, str):
        kind = kind.lower()  # Gemini's OpenAPI subset spells types in upper case
    if schema.get("enum"):
        return schema["enum"][0]
    return {"integer": 1, "number": 1, "boolean": True, "array": [], "object": {}}.get(str(kind), text)


def _status(argument: str, directive: str) -> int:
    value = int(_number(argument, directive))
    if not 400 <= value <= 599:
        raise DirectiveError(f"[[{directive}:STATUS]] needs a status between 400 and 599, got {value}")
    return value


def _number(argument: str, directive: str) -> float:
    try:
        return float(argument)
    except ValueError as exc:
        raise DirectiveError(f"[[{directive}:...]] needs a number, got {argument!r}") from exc


def embedding(text: str, dimensions: int) -> list[float]:
    """A deterministic unit-length vector for `text`: equal texts embed equally, different texts differ."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
    generator = random.Random(seed)
    vector = [generator.uniform(-1.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(value * value for value in vector)) or 1.0
    return [value / norm for value in vector]
