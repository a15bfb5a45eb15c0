"""The policies every guardrail end-to-end test uses, whatever the provider, and creating a profile with them."""

from __future__ import annotations

import httpx

POLICIES = {
    "tool_invocation_policies": [
        {
            "tool": "read_file",
            "action": "block_always",
            "reason": "system files are off limits",
            "conditions": [{"key": "path", "operator": "startsWith", "value": "/etc/", "ignore_case": True}],
        },
        {"tool": "send_email", "action": "block_when_context_is_untrusted", "reason": "no e-mail after web content"},
        {"tool": "read_file", "action": "allow_when_context_is_untrusted"},
    ],
    "trusted_data_policies": [
        {"tool": "fetch_url", "action": "mark_as_untrusted"},
        {"tool": "lookup", "action": "mark_as_trusted"},
        {"tool": "vault", "action": "block_always", "reason": "vault output stays inside"},
    ],
}


def make_profile(warden, mode: str, name: str = "guardrails", **extra) -> str:
    """A profile with ``POLICIES`` in ``mode``, created through the admin API; returns its id."""
    response = httpx.post(
        f"{warden.url}/api/profiles", json={"name": f"{mode}-{name}", "mode": mode, **POLICIES, **extra}
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]
