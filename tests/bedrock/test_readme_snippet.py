"""The README's boto3 snippet runs as written against Warden, with a Warden key in place of ``wk_…``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_boto3_snippet_runs(warden, upstream, bedrock_profile, key_of):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)
    (snippet,) = [block for block in blocks if "bedrock-runtime" in block]
    key = key_of(bedrock_profile)
    assert "http://127.0.0.1:9000" in snippet and '"wk_…"' in snippet
    code = snippet.replace("http://127.0.0.1:9000", warden.url).replace('"wk_…"', repr(key.secret))
    environment = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    done = subprocess.run(
        [sys.executable, "-c", code], env=environment, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "echo: Hello"
    assert upstream.last.header("authorization").startswith("AWS4-HMAC-SHA256 Credential=AKIA")
