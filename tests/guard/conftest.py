"""Fake credentials for the guard's tests, assembled at run time so that no literal in the repository looks like one."""

from __future__ import annotations

import pytest


def fake(prefix: str, body: str, times: int) -> str:
    return prefix + body * times


@pytest.fixture
def fake_keys() -> dict[str, str]:
    """One syntactically valid, obviously fake credential per provider format."""
    return {
        "openai": fake("sk-proj-", "Ab3dE6gH9j", 8) + "T3Blbk" + "FJ" + fake("", "Zy8xW7vU6t", 8),
        "anthropic": fake("sk-ant-api03-", "Qw3rTy7uIo", 9) + "AA",
        "google": "AIza" + fake("", "Sy9kLm2Np", 3) + "Xq4Rs6Tu",
        "aws": "AKIA" + fake("", "Q7WZ", 4),
        "github": "ghp_" + fake("", "k2M9pQ", 6),
        "stripe": "sk_" + "live_" + fake("", "Tz8Rk3Wq", 3),
        "slack": "xoxb-" + "417366284015-2298157703964-" + fake("", "qT7mZ2", 4),
    }
