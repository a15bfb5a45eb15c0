"""``warden keys …`` against a running Warden: a key made, listed by prefix (never its secret), rotated, revoked;
and ``master-key`` makes a value WARDEN_MASTER_KEY accepts."""

from __future__ import annotations

import json

import httpx

from plumbing.keyring import parse_master_keys
from tests.support.agents import new_agent
from tests.test_cli import warden_cli


def test_keys_are_created_listed_rotated_and_revoked_from_the_command_line(warden):
    agent = new_agent("cli")
    made = warden_cli("keys", "--url", warden.url, "create", "--profile", "default", "--agent", agent)
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)
    assert key["secret"].startswith("wk_") and key["secret"].startswith(key["prefix"]) and key["agent_id"] == agent
    listed = warden_cli("keys", "--url", warden.url, "list", "--profile", "default")
    assert listed.returncode == 0 and key["prefix"] in listed.stdout and key["secret"] not in listed.stdout
    rotated = warden_cli("keys", "--url", warden.url, "rotate", key["id"], "--grace-seconds", "0")
    assert rotated.returncode == 0, rotated.stderr
    fresh = json.loads(rotated.stdout)["secret"]
    assert fresh != key["secret"]
    chat = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    url = f"{warden.url}/v1/openai/chat/completions"
    old = httpx.post(url, json=chat, headers={"Authorization": f"Bearer {key['secret']}"}, timeout=10)
    assert old.status_code == 401
    revoked = warden_cli("keys", "--url", warden.url, "revoke", key["id"])
    assert revoked.returncode == 0, revoked.stderr
    after = httpx.post(url, json=chat, headers={"Authorization": f"Bearer {fresh}"}, timeout=10)
    assert after.status_code == 401
    shown = json.loads(warden_cli("keys", "--url", warden.url, "get", key["id"]).stdout)
    assert shown["state"] == "revoked"


def test_master_key_prints_a_usable_key():
    made = warden_cli("keys", "master-key")
    assert made.returncode == 0 and len(parse_master_keys(made.stdout.strip())) == 1
