"""``warden scan --profile``: thresholds and allowed domains from a profile file or from the profile store, through the
command line as an analyst runs it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from plumbing.config.file_map import FileMap
from schemas.events import RequestEvent, ResponseEvent
from schemas.profiles import Profile, ProfileSpec, new_profile
from schemas.view import ToolCall

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
PASSWORD = "Kx9#mP2vLq7w"


def warden_scan(*args: str, stdin: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "warden.cli", "scan", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )


def events() -> str:
    """A request whose tool result carries a password and a phone number, and a response calling two tools."""
    common = {
        "interaction_id": "5b1d3c2a-7e6f-4a9b-8c0d-1e2f3a4b5c6d",
        "started_at": NOW,
        "profile_id": "default",
        "provider": "openai",
        "route": "/chat/completions",
    }
    request = RequestEvent(
        **common,
        request_received=json.dumps(
            {
                "model": "gpt-4o",
                "messages": [
                    {"role": "user", "content": "what did the admin write?"},
                    {
                        "role": "tool",
                        "tool_call_id": "c0",
                        "content": f"Note from IT: the VPN password is {PASSWORD}. Questions: call +44 20 7946 0958.",
                    },
                ],
            }
        ),
    )
    response = ResponseEvent(
        **common,
        status=200,
        response_body=json.dumps({"object": "chat.completion", "choices": []}),
        finished_at=NOW,
        latency_ms=12.0,
        tool_calls=[
            ToolCall(
                id="c1", name="http_request", arguments={"url": "https://api.corp.example/v1/tickets", "body": "x"}
            ),
            ToolCall(id="c2", name="http_request", arguments={"url": "https://uploads.other.test/put", "body": "x"}),
        ],
    )
    return "\n".join([request.model_dump_json(), response.model_dump_json()]) + "\n"


def spec(**changes: object) -> ProfileSpec:
    base = {
        "name": "scan-test",
        "allowed_domains": ["*.corp.example"],
        "guard": {"thresholds": {"pii": 0.99}},
    }
    return ProfileSpec.model_validate(base | changes)


def check_output(done: subprocess.CompletedProcess[str]) -> list[dict]:
    assert done.returncode == 0, done.stderr
    out = [json.loads(line) for line in done.stdout.splitlines()]
    assert PASSWORD not in done.stdout and "7946 0958" not in done.stdout
    for finding in out:
        assert {"finding", "category", "severity", "position", "location", "excerpt"} <= finding.keys()
    found = {(f["finding"], f["category"], f["position"]) for f in out}
    # The password is a secret in a tool result; the phone number is below the profile's PII threshold.
    assert ("secrets.password_in_text", "secret", "tool_result") in found
    assert not any(f["category"] == "pii" for f in out)
    # *.corp.example covers api.corp.example; uploads.other.test is outside the allowlist.
    exfiltration = [f for f in out if f["category"] == "exfiltration"]
    assert [(f["finding"], f["position"], f["location"]) for f in exfiltration] == [
        ("exfiltration.unlisted_destination", "tool_call_arguments", "response.tool_calls[1].arguments.url")
    ]
    secret = next(f for f in out if f["category"] == "secret")
    assert secret["severity"] == "high" and "[REDACTED]" in secret["excerpt"]
    return out


def test_scan_with_a_profile_file(tmp_path: Path) -> None:
    path = tmp_path / "profile.json"
    path.write_text(spec().model_dump_json())
    check_output(warden_scan("--profile", str(path), stdin=events()))
    # The same events against the default profile: no allowlist, PII at the default threshold.
    done = warden_scan(stdin=events())
    assert done.returncode == 0, done.stderr
    categories = [json.loads(line)["category"] for line in done.stdout.splitlines()]
    assert "pii" in categories and "exfiltration" not in categories


def test_scan_with_a_stored_profile_id(tmp_path: Path) -> None:
    profile = new_profile(spec(), now=NOW)
    store = FileMap(tmp_path / "profiles.json", Profile)
    asyncio.run(store.put(profile.id, profile))
    store.close()
    data = tmp_path / "events.jsonl"
    data.write_text(events())
    env = {"WARDEN_DATA_DIR": str(tmp_path)}
    check_output(warden_scan(str(data), "--profile", profile.id, stdin="", env=env))
    check_output(warden_scan(str(data), "--profile", profile.id.upper(), stdin="", env=env))


def test_an_unknown_profile_is_an_error_not_the_default(tmp_path: Path) -> None:
    done = warden_scan(
        "--profile", "3f6c1e0a-0000-4000-8000-000000000000", stdin=events(), env={"WARDEN_DATA_DIR": str(tmp_path)}
    )
    assert done.returncode == 2 and "neither a profile file nor a profile" in done.stderr
    assert done.stdout == ""
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "x", "allowed_domains": ["https://not a domain"]}))
    done = warden_scan("--profile", str(bad), stdin=events())
    assert done.returncode == 2 and "not a valid profile" in done.stderr
