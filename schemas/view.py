"""The common view of an LLM exchange, whatever the provider's wire format.

Provider adapters turn requests, responses and streams into these models; the policies, the recorder and the guard
read only these, so adding a provider never touches them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

Role = Literal["system", "user", "assistant", "tool"]


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


class Message(BaseModel):
    role: Role
    text: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_result: ToolResult | None = None
    index: int = 0
    """Position of the provider message this came from, so a finding can point back into the raw request."""


class ToolDefinition(BaseModel):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None


class Usage(BaseModel):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None


class ConversationView(BaseModel):
    """What the client asked for."""

    provider: str
    model: str | None = None
    messages: list[Message] = Field(default_factory=list)
    tools: list[ToolDefinition] = Field(default_factory=list)
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
