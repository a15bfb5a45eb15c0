"""A deterministic local fake of the upstream LLM providers (OpenAI, Anthropic, Gemini, Azure OpenAI) for tests and
benchmarks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .script import Plan, ToolCall, Turn, plan
from .wire import FakeState, Received

if TYPE_CHECKING:
    from .upstream import PROVIDERS, FakeUpstream, Provider, build_app

__all__ = [
    "PROVIDERS",
    "FakeState",
    "FakeUpstream",
    "Plan",
    "Provider",
    "Received",
    "ToolCall",
    "Turn",
    "build_app",
    "plan",
]


def __getattr__(name: str) -> Any:
    # Imported lazily so that `python -m tests.fakes.upstream` does not find its module already imported.
    if name in ("PROVIDERS", "FakeUpstream", "Provider", "build_app"):
        from . import upstream

        return getattr(upstream, name)
    raise AttributeError(name)
