"""The README's example policy holds against every spelling of a system path, through the policy engine and through
Warden in each wire format."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from schemas.profiles import ProfileSpec, ToolInvocationPolicy
from schemas.view import ToolCall
from services.ingress.policy import judge_tool_calls
from services.ingress.policy.normalisation import normalise, normalise_path
from tests.support.agents import new_agent
from tests.support.formats import FORMATS, ask

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_example() -> dict:
    """The profile the README's ``curl -X POST …/api/profiles`` example creates."""
    text = README.read_text()
    match = re.search(r"curl -X POST \S*/api/profiles .*? -d '(\{.*?\})'", text, re.DOTALL)
    assert match, "the README's example profile is missing"
    return json.loads(match.group(1))


VARIANTS = [
    "/etc/passwd",
    "/ETC/passwd",
    "//etc/passwd",
    "/./etc/passwd",
    "/tmp/../etc/passwd",
    "/../../etc/passwd",
    "file:///etc/passwd",
    "FILE://localhost/etc/passwd",
    "file:///%65tc/passwd",
    "\uff0fetc\uff0fpasswd",  # fullwidth solidus
    "/\uff45\uff54\uff43/passwd",  # fullwidth letters
    "/e\u200btc/passwd",  # a zero-width space
]
LIST_VARIANTS = [["/etc/passwd"], ["/tmp/x", "/etc/passwd"], [["/etc/shadow"]]]


def _policies() -> list[ToolInvocationPolicy]:
    return ProfileSpec.model_validate(readme_example()).tool_invocation_policies


@pytest.mark.parametrize("path", [*VARIANTS, *LIST_VARIANTS], ids=repr)
def test_the_readme_policy_blocks_every_spelling(path):
    call = ToolCall(id="c", name="read_file", arguments={"path": path})
    (decision,) = judge_tool_calls(_policies(), [call], {"read_file"}, None).calls
    assert not decision.allowed and decision.reason == "system files are off limits"


@pytest.mark.parametrize("path", ["/etcetera/x", "/home/etc/passwd", "etc/passwd", "/tmp/etc/x", ["/tmp/x"]])
def test_the_readme_policy_leaves_other_paths_alone(path):
    call = ToolCall(id="c", name="read_file", arguments={"path": path})
    (decision,) = judge_tool_calls(_policies(), [call], {"read_file"}, None).calls
    assert decision.allowed


def test_case_folding_only_when_the_condition_asks_for_it():
    strict = ToolInvocationPolicy.model_validate(
        {
            "tool": "read_file",
            "action": "block_always",
            "conditions": [{"key": "path", "operator": "startsWith", "value": "/etc/"}],
        }
    )
    upper = ToolCall(id="c", name="read_file", arguments={"path": "/ETC/passwd"})
    lower = ToolCall(id="c", name="read_file", arguments={"path": "/tmp/../etc/passwd"})
    assert judge_tool_calls([strict], [upper], {"read_file"}, None).calls[0].allowed
    assert not judge_tool_calls([strict], [lower], {"read_file"}, None).calls[0].allowed


def test_normalisation_is_a_pure_canonical_form():
    assert normalise_path("/a/b/../../../etc/") == "/etc/"
    assert normalise("/tmp/./x//y") == "/tmp/x/y"
    assert normalise("Hello", ignore_case=True) == "hello"
    assert normalise("not/a/path/..") == "not/a/path/.."  # only path-like values are resolved
    for text in VARIANTS:
        assert normalise(normalise(text, ignore_case=True), ignore_case=True) == normalise(text, ignore_case=True)


@pytest.fixture(scope="module")
def readme_profile(warden) -> str:
    import httpx

    response = httpx.post(f"{warden.url}/api/profiles", json={**readme_example(), "name": "readme-example"})
    assert response.status_code == 201, response.text
    return response.json()["id"]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("fmt", FORMATS)
def test_the_readme_policy_holds_through_warden(warden, readme_profile, fmt, stream):
    for path in ("/tmp/../ETC/passwd", "file:///etc/passwd"):
        answer = ask(
            warden, fmt, readme_profile, new_agent(), f'[[tool:read_file {{"path": "{path}"}}]]', stream=stream
        )
        assert answer.calls == [] and "system files are off limits" in answer.text
