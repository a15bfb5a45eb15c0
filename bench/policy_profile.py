"""The restrictive profile and the long tool-using history the overhead benchmark's policy scenarios use."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

POLICY_PROFILE_ID = "5f0c1c9e-7b1d-4c3a-9e2f-0a1b2c3d4e5f"


def policy_profile(count: int = 50) -> dict[str, Any]:
    """A restrictive profile with ``count`` policies, half of each kind, most with conditions."""
    invocation, trusted = [], []
    for n in range(count // 2):
        conditions = (
            []
            if n % 3 == 0
            else [
                {
                    "key": "path" if n % 2 else "args[*].value",
                    "operator": ("startsWith", "regex", "contains")[n % 3],
                    "value": ("/etc/", r"^/(root|var)/", "secret")[n % 3],
                }
            ]
        )
        invocation.append(
            {
                "tool": f"tool_{n}",
                "action": ("block_always", "block_when_context_is_untrusted", "allow_when_context_is_untrusted")[n % 3],
                "reason": f"rule {n}",
                "conditions": conditions,
            }
        )
        trusted.append(
            {
                "tool": f"tool_{n}",
                "action": ("mark_as_trusted", "mark_as_untrusted", "block_always")[n % 3]
                if n % 5
                else "mark_as_trusted",
                "reason": f"data rule {n}",
                "conditions": conditions,
            }
        )
    return {
        "id": POLICY_PROFILE_ID,
        "name": "bench-restrictive-50",
        "mode": "restrictive",
        "redact_secrets": True,
        "tool_invocation_policies": invocation,
        "trusted_data_policies": trusted,
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
    }


def history(messages: int = 40) -> list[dict[str, Any]]:
    """A system prompt, then user / assistant tool call / tool result / assistant turns, ``messages`` in all."""
    out: list[dict[str, Any]] = [{"role": "system", "content": "You are an operations assistant with tools."}]
    n = 0
    while len(out) < messages:
        call_id = f"call_{n:04d}"
        out.append({"role": "user", "content": f"Step {n}: check the status of service {n} and summarise it."})
        out.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": f"tool_{n % 25}", "arguments": json.dumps({"path": f"/srv/app/{n}.log"})},
                    }
                ],
            }
        )
        out.append(
            {
                "role": "tool",
                "tool_call_id": call_id,
                "content": json.dumps({"status": "ok", "lines": [f"line {k} of service {n}" for k in range(5)]}),
            }
        )
        out.append({"role": "assistant", "content": f"Service {n} is healthy; five log lines were read."})
        n += 1
    return out[:messages]


def seed(data_dir: Path, count: int = 50) -> None:
    """Write the profile where the embedded default keeps profiles, before Warden starts."""
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "profiles.json").write_text(json.dumps({POLICY_PROFILE_ID: policy_profile(count)}))
