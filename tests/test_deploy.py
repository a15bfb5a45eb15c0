"""deploy/ stays in step with the code: every file parses, every dashboard query names real metrics and labels."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_deploy_files_parse_and_the_dashboard_uses_only_metrics_the_code_defines():
    done = subprocess.run(
        [sys.executable, str(ROOT / "deploy" / "check.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
