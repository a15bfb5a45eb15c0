"""The common view of an LLM exchange, whatever the provider's wire format.

Provider adapters turn requests, responses and streams into these models; the policies, the recorder, the guard and
the logs viewer read only these, so adding a provider never touches them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

Role = Literal["system", "user", "assistant", "tool"]
PartKind = Literal["text", "media", "reasoning", "refusal", "other"]


class Part(BaseModel):
    """One piece of a message's content, for readers that show a message whole (the logs viewer); the policies and
    detectors read ``Message.text``."""

    kind: PartKind
    text: str = ""
    """The words of a text, reasoning or refusal; a piece of a kind the adapter does not read, as JSON."""
    media: str | None = None
    """What a media piece is: ``image``, ``audio``, ``video``, ``document`` or ``file``."""


class ToolCall(BaseModel):
    id: str
    name: str
    arguments: Any = None
    """Parsed JSON arguments when they parse, else the raw string."""
    arguments_error: str | None = Field(default=None, exclude=True)
    """Why the arguments are not a strict JSON object (not JSON, NaN, a lone surrogate, trailing text, a list…). Not
    serialised: the record's decisions say it."""


class ToolResult(BaseModel):
    tool_call_id: str
    name: str | None = None
    """The tool's name when the wire format says it, or when it can be found from the call in the history."""
    content: str = ""
    is_error: bool = False
    """The tool reported a failure (when the wire format can say so)."""


class Message(BaseModel):
    role: Role
    text: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_result: ToolResult | None = None
    index: int = 0
    """Position of the provider message this came from, so a finding can point back into the raw request. One
    provider message may give several (a turn of text and tool results): they share its index."""
    parts: list[Part] = Field(default_factory=list)
    """The content piece by piece, in the wire format's order and text included, when it holds more than text (media,
    reasoning, a refusal, pieces of unknown kinds); empty when ``text`` says it all."""


class ToolDefinition(BaseModel):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None


class Usage(BaseModel):
    """Token counts as the provider reported them, in one shape for every provider. ``input_tokens`` counts every
    prompt token (read from a cache and written to one included), ``output_tokens`` every generated one (reasoning
    included); the other counts are parts of those, priced at their own rates."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    """Prompt tokens read from the provider's cache."""
    cache_write_tokens: int | None = None
    """Prompt tokens written to the provider's cache (Anthropic's ``cache_creation_input_tokens``)."""
    reasoning_tokens: int | None = None
    """Output tokens spent reasoning (OpenAI's ``reasoning_tokens``, Gemini's ``thoughtsTokenCount``)."""
    estimated: bool = False
    """The provider reported no usage: the counts were estimated by counting tokens with a tokenizer."""


class ConversationView(BaseModel):
    """What the client asked for."""

    provider: str
    wire_format: str = ""
    """The API's name as people know it (``OpenAI chat completions``), for those reading the record."""
    model: str | None = None
    messages: list[Message] = Field(default_factory=list)
    tools: list[ToolDefinition] = Field(default_factory=list)
    builtin_tools: list[str] = Field(default_factory=list)
    """Tools the provider runs itself that the request switched on, by their type (``web_search_preview``,
    ``code_interpreter``…): shown to readers, never counted among the declared functions a tool call may name."""
    stream: bool = False
    provider_history: list[str] = Field(default_factory=list)
    """History the request does not carry but names, held by the provider: ``response:<id>`` (the Responses API's
    ``previous_response_id``), ``conversation:<id>``."""


class CompletionView(BaseModel):
    """What the model answered (assembled from the stream when streamed)."""

    text: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    finish_reason: str | None = None
    tool_results: list[ToolResult] = Field(default_factory=list)
    """Results of tools the provider ran itself within this answer (web search, web fetch, MCP…): data that entered
    the context before the answer's own tool calls."""
    provider_refs: list[str] = Field(default_factory=list)
    """Under which references the provider keeps this exchange for later requests (``response:<id>``,
    ``conversation:<id>``)."""
    parts: list[Part] = Field(default_factory=list)
    """The answer's content piece by piece, as ``Message.parts``: empty when ``text`` says it all."""
    error: str | None = None
    """The provider's error message, when the answer is its error body or the stream carried an error event."""
    model: str | None = None
    """The model the answer says served it, when it says (OpenAI's ``model`` field): it may name a dated version of
    the one requested, or the model behind an Azure deployment."""
