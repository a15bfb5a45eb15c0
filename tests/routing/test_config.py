"""Deployments and aliases from the configuration file and the admin API: credentials encrypted and write-only,
the deployment's credential sent in place of the client's, tables Warden cannot use refused with a reason; and the
weighted choice over an alias, counted with a seeded generator (the same counts on every run)."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from plumbing.keyring import Keyring, parse_master_keys
from schemas.upstreams import check_table, file_deployment
from services.ingress.failover.router import Router, RouterSettings
from services.ingress.failover.routing import UpstreamRouting, file_alias
from services.ingress.failover.table import AliasRoute, ConfigError, Target
from services.ingress.settings import IngressSettings
from tests.conftest import API_KEY, MASTER_KEY
from tests.routing.clients import ask
from tests.routing.conftest import configure
from tests.support.agents import new_agent

PROVIDERS = ["openai", "anthropic", "gemini", "azure", "bedrock"]


def test_the_configuration_file_names_deployments_and_aliases(tmp_path, monkeypatch):
    keyring = Keyring(parse_master_keys(MASTER_KEY))
    token = keyring.encrypt("sk-east-secret")
    monkeypatch.setenv("WEST_KEY", "sk-west-secret")
    path = tmp_path / "warden.toml"
    path.write_text(
        f"""
[deployments.east]
provider = "openai"
base_url = "https://east.example/v1/"
credential = "{token}"
weight = 3
models = ["gpt-4o"]

[deployments.west]
provider = "openai"
base_url = "https://west.example/v1"
credential_env = "WEST_KEY"

[model_aliases."openai/gpt-4o"]
strategy = "least_outstanding"
targets = [{{deployment = "east"}}, {{deployment = "west", model = "gpt-4o-2024-08-06", priority = 1}}]
"""
    )
    settings = IngressSettings(config=path)
    routing = UpstreamRouting(settings, PROVIDERS, keyring)
    route = routing.lookup("openai", "gpt-4o")
    assert route is not None and route.strategy == "least_outstanding"
    east, west = route.targets
    assert (east.base_url, east.model, east.weight) == ("https://east.example/v1", "gpt-4o", 3.0)
    assert east.credential == (("Authorization", "Bearer sk-east-secret"),)
    assert (west.model, west.priority, west.credential) == (
        "gpt-4o-2024-08-06",
        1,
        (("Authorization", "Bearer sk-west-secret"),),
    )
    assert routing.lookup("openai", "gpt-4o-mini") is None and routing.lookup("anthropic", "gpt-4o") is None


@pytest.mark.parametrize(
    ("deployments", "aliases", "problem"),
    [
        (
            {"a": {"provider": "openai", "base_url": "http://a"}},
            {"openai/m": {"targets": [{"deployment": "b"}]}},
            "no deployment named 'b'",
        ),
        (
            {"a": {"provider": "anthropic", "base_url": "http://a"}},
            {"openai/m": {"targets": [{"deployment": "a"}]}},
            "speaks anthropic",
        ),
        (
            {"a": {"provider": "openai", "base_url": "http://a", "models": ["x"]}},
            {"openai/m": {"targets": [{"deployment": "a"}]}},
            "does not serve m",
        ),
        (
            {"a": {"provider": "azure", "base_url": "http://a", "api_version": "2024-10-21"}},
            {"openai/m": {"targets": [{"deployment": "a"}]}},
            "needs a credential of its own",
        ),
        (
            {"a": {"provider": "azure", "base_url": "http://a", "credential_env": "AZ"}},
            {"openai/m": {"targets": [{"deployment": "a"}]}},
            "needs an api_version",
        ),
        (
            {"a": {"provider": "gemini", "base_url": "http://a", "credential_env": "AZ"}},
            {"azure/m": {"targets": [{"deployment": "a"}]}},
            "cannot answer azure clients",
        ),
        ({"a": {"provider": "nowhere", "base_url": "http://a"}}, {}, "not a configured provider"),
        (
            {"a": {"provider": "openai", "base_url": "http://a", "credential": "not-a-token"}},
            {"openai/m": {"targets": [{"deployment": "a"}]}},
            "decrypt",
        ),
        (
            {"a": {"provider": "openai", "base_url": "http://a", "credential_env": "WARDEN_TEST_UNSET"}},
            {"openai/m": {"targets": [{"deployment": "a"}]}},
            "is not set",
        ),
    ],
)
def test_a_table_warden_cannot_use_stops_it_with_the_reason(deployments, aliases, problem):
    settings = IngressSettings(deployments=deployments, model_aliases=aliases)
    with pytest.raises(ConfigError, match=problem):
        UpstreamRouting(settings, PROVIDERS, Keyring(parse_master_keys(MASTER_KEY)), environ={})


def test_weights_are_respected_by_the_router():
    targets = tuple(
        Target(name, "http://x", "m", 0, weight, None, None) for name, weight in (("light", 1.0), ("heavy", 3.0))
    )
    alias = AliasRoute("openai", "m", targets, "weighted", 3)
    router = Router(RouterSettings(), rng=random.Random(20260307))
    counts = [0, 0]
    for _ in range(4000):
        counts[router.choose(alias, set(), 0.0)] += 1
    # 1:3 expected; the seed fixes the counts, within 5% of the expectation.
    assert 950 <= counts[0] <= 1050 and 2950 <= counts[1] <= 3050
    # A target already tried is not chosen again while another is available.
    assert {router.choose(alias, {1}, 0.0) for _ in range(50)} == {0}


def test_a_deployments_credential_is_encrypted_write_only_and_replaces_the_clients(warden, fakes):
    first, _ = fakes["anthropic"]
    alias = configure(warden, "anthropic", [first.base_url], credential="sk-ant-deployment-secret")
    name = alias.deployments[0]

    shown = httpx.get(f"{warden.url}/api/deployments/{name}", timeout=10).json()
    assert shown["credential"] == {"set": True} and "sk-ant-deployment-secret" not in json.dumps(shown)
    stored = [path.read_bytes() for path in warden.settings.data_dir.glob("deployments.json*")]
    assert any(name.encode() in data for data in stored), "the deployment is not in the replicated map's files"
    assert not any(b"sk-ant-deployment-secret" in data for data in stored)

    agent = new_agent()
    ask(warden, "anthropic", alias.model, "hello", agent, stream=False)
    assert first.last.header("x-api-key") == "sk-ant-deployment-secret"
    assert API_KEY not in json.dumps(first.last.headers), "the client's own key went to the deployment too"

    # {"set": true} keeps it; a change of weight keeps the credential.
    kept = httpx.put(
        f"{warden.url}/api/deployments/{name}",
        json={"provider": "anthropic", "base_url": first.base_url, "credential": {"set": True}, "weight": 2},
        timeout=10,
    )
    assert kept.status_code == 200 and kept.json()["weight"] == 2
    ask(warden, "anthropic", alias.model, "hello", new_agent(), stream=False)
    assert first.last.header("x-api-key") == "sk-ant-deployment-secret"


def test_the_admin_api_refuses_what_the_ingress_could_not_use(warden, fakes):
    first, _ = fakes["openai"]
    put = lambda path, body: httpx.put(f"{warden.url}{path}", json=body, timeout=10)  # noqa: E731
    answer = put(
        "/api/deployments/leaky",
        {"provider": "openai", "base_url": first.base_url, "credential_env": "WARDEN_MASTER_KEY"},
    )
    assert answer.status_code == 422 and "configuration file" in answer.text
    assert put("/api/deployments/nowhere", {"provider": "nope", "base_url": first.base_url}).status_code == 422
    assert put("/api/deployments/Bad Name", {"provider": "openai", "base_url": first.base_url}).status_code == 422
    answer = put("/api/model-aliases/openai/some-model", {"targets": [{"deployment": "missing"}]})
    assert answer.status_code == 422 and "missing" in answer.text

    alias = configure(warden, "openai", [first.base_url])
    in_use = httpx.delete(f"{warden.url}/api/deployments/{alias.deployments[0]}", timeout=10)
    assert in_use.status_code == 409 and alias.model in in_use.text
    listed = httpx.get(f"{warden.url}/api/model-aliases", timeout=10).json()["items"]
    assert any(a["name"] == alias.model and a["provider"] == "openai" for a in listed)
    assert httpx.delete(f"{warden.url}/api/model-aliases/openai/{alias.model}", timeout=10).status_code == 204
    assert httpx.delete(f"{warden.url}/api/deployments/{alias.deployments[0]}", timeout=10).status_code == 204
    # Without its alias the model goes to the provider's own upstream again.
    assert warden.embedded.ingress.routing.lookup("openai", alias.model) is None


def test_a_deployment_at_its_concurrency_limit_is_skipped_and_least_outstanding_prefers_the_idle():
    busy = Target("busy", "http://x", "m", 0, 1.0, None, 2)
    idle = Target("idle", "http://y", "m", 0, 1.0, None, None)
    router = Router(RouterSettings(), rng=random.Random(5))
    router.health("busy").outstanding = 2
    weighted = AliasRoute("openai", "m", (busy, idle), "weighted", 3)
    assert {router.choose(weighted, set(), 0.0) for _ in range(50)} == {1}
    router.health("busy").outstanding = 1
    router.health("idle").outstanding = 3
    least = AliasRoute("openai", "m", (busy, idle), "least_outstanding", 3)
    assert {router.choose(least, set(), 0.0) for _ in range(50)} == {0}
    router.health("busy").outstanding = 2  # at its limit again: only the other one remains, however busy
    assert {router.choose(least, set(), 0.0) for _ in range(50)} == {1}


def test_the_readmes_example_is_a_table_warden_reads(tmp_path):
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    (example,) = [block for block in re.findall(r"```toml\n(.*?)```", readme, re.DOTALL) if "[deployments." in block]
    path = tmp_path / "warden.toml"
    path.write_text(example)
    settings = IngressSettings(config=path)
    deployments = {name: file_deployment(name, spec) for name, spec in settings.deployments.items()}
    aliases = {key: file_alias(key, spec) for key, spec in settings.model_aliases.items()}
    assert check_table(deployments, aliases) is None
    assert [t.deployment for t in aliases["openai/gpt-4o"].targets] == ["azure-sweden", "east", "west"]
    assert deployments["azure-sweden"].provider == "azure" and deployments["bedrock-eu"].region == "eu-central-1"
    assert deployments["bedrock-eu"].base_url == "https://bedrock-runtime.eu-central-1.amazonaws.com"


def test_warden_keys_encrypt_makes_the_token_a_configuration_file_holds(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "warden.cli", "keys", "encrypt"],
        input="sk-config-file-secret\n",
        env={**os.environ, "WARDEN_MASTER_KEY": MASTER_KEY, "WARDEN_DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert "sk-config-file-secret" not in token
    assert Keyring(parse_master_keys(MASTER_KEY)).decrypt(token) == "sk-config-file-secret"
