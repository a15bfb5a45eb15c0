"""The README as a new user meets it: its quick start runs as written, and its links lead to files in the
repository."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import API_KEY

REPO = Path(__file__).resolve().parent.parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
QUICK_START_URL = "http://127.0.0.1:9000"
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, re.DOTALL)


def run_snippet(snippet: str, url: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A README snippet run as a new user runs it, against ``url`` in place of the quick start's address."""
    return subprocess.run(
        [sys.executable, "-c", snippet.replace(QUICK_START_URL, url)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_every_relative_link_leads_to_a_file_in_the_repository():
    assert (REPO / "docs" / "contract.md").is_file()
    checked = 0
    for doc in DOCS:
        text = doc.read_text()
        assert "../shared" not in text, f"{doc.name} points outside the repository"
        for target in _LINK.findall(text):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue
            path = (doc.parent / target.split("#")[0]).resolve()
            assert path.is_relative_to(REPO), f"{doc.name}: {target} is outside the repository"
            assert path.exists(), f"{doc.name}: {target} does not exist"
            checked += 1
    assert checked, "the README links to the contract"


def test_the_quick_start_runs_as_written(warden):
    readme = (REPO / "README.md").read_text()
    (snippet,) = [block for block in blocks(readme, "python") if "from openai import OpenAI" in block]
    assert QUICK_START_URL in snippet
    done = run_snippet(snippet, warden.url, {"OPENAI_API_KEY": API_KEY})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()

    # "and find the interaction": the commands after it, against the same Warden.
    (item, *_) = warden.wait_for(lambda i: i["status"] == 200 and i["user_id"] == "alice", agent_id="support-bot")
    commands = [line for block in blocks(readme, "sh") for line in block.splitlines() if line.startswith("curl")]
    assert len(commands) >= 3
    for command in commands[:3]:
        url = re.search(r"(http://\S+?)'?$", command.strip()).group(1)
        url = url.replace(QUICK_START_URL, warden.url).replace("<interaction_id>", item["interaction_id"])
        answer = httpx.get(url, timeout=10)
        assert answer.status_code == 200, url
    detail = httpx.get(f"{warden.url}/api/interactions/{item['interaction_id']}").json()
    assert done.stdout.strip() in detail["response_body"]
