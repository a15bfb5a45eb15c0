"""Custom OpenAI-compatible providers: configured by name and base URL (environment or configuration file), served
at ``/v1/{name}[/{profile_id}]/chat/completions`` with streaming, recorded under their name, never shadowing a
built-in provider."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest
from pydantic import ValidationError

from services.ingress.settings import IngressSettings
from services.ingress.upstreams import configured_upstreams
from tests.conftest import API_KEY, CUSTOM_PROVIDER
from tests.support.agents import attribution, new_agent
from tests.support.serve_process import ServeProcess

MESSAGES = [{"role": "user", "content": "Say hello to Warden"}]


def client(warden, agent: str, profile: str = "") -> openai.OpenAI:
    base = f"{warden.url}/v1/{CUSTOM_PROVIDER}" + (f"/{profile}" if profile else "")
    return openai.OpenAI(base_url=base, api_key=API_KEY, default_headers=attribution(agent), max_retries=0)


# -- through the shared Warden --------------------------------------------------------------------------------------


def test_chat_completions_reach_the_custom_upstream_and_are_recorded_under_its_name(
    warden, fake_openai, fake_compatible
):
    agent = new_agent()
    before = len(fake_openai.received)
    answer = client(warden, agent).chat.completions.create(model="llama-3.1-8b", messages=MESSAGES)
    assert answer.choices[0].message.content == "echo: Say hello to Warden"
    assert fake_compatible.last.path == "/v1/chat/completions"
    assert fake_compatible.last.header("authorization") == f"Bearer {API_KEY}"
    assert len(fake_openai.received) == before, "the request went to OpenAI instead of the custom upstream"

    (item,) = warden.wait_for(lambda i: i["status"] == 200, agent_id=agent)
    assert (item["provider"], item["model"], item["route"]) == (CUSTOM_PROVIDER, "llama-3.1-8b", "/chat/completions")
    assert item["usage"]["input_tokens"] == answer.usage.prompt_tokens
    assert item["usage"]["output_tokens"] == answer.usage.completion_tokens
    assert API_KEY not in json.dumps(warden.detail(item["interaction_id"]))


def test_a_streamed_chat_completion_with_a_profile_segment(warden):
    agent = new_agent()
    stream = client(warden, agent, profile="default").chat.completions.create(
        model="llama-3.1-8b", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    text, usage = "", None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
        usage = chunk.usage or usage
    assert text == "echo: Say hello to Warden"
    (item,) = warden.wait_for(lambda i: i["status"] == 200, agent_id=agent)
    assert item["provider"] == CUSTOM_PROVIDER and item["stream"] is True and item["profile_id"] == "default"
    assert item["usage"]["output_tokens"] == usage.completion_tokens
    assert item["ttft_ms"] is not None and item["finish_reason"] == "stop"


def test_tool_calls_through_a_custom_provider_are_recorded(warden):
    agent = new_agent()
    answer = client(warden, agent).chat.completions.create(
        model="llama-3.1-8b", messages=[{"role": "user", "content": '[[tool:search {"q": "warden"}]]'}]
    )
    assert answer.choices[0].finish_reason == "tool_calls"
    (item,) = warden.wait_for(lambda i: i["status"] == 200, agent_id=agent)
    (call,) = warden.detail(item["interaction_id"])["tool_calls"]
    assert (call["name"], call["arguments"]) == ("search", {"q": "warden"})


def test_warden_asks_no_credentials_of_its_own_for_a_custom_provider(warden, fake_compatible):
    agent = new_agent()
    response = httpx.post(
        f"{warden.url}/v1/{CUSTOM_PROVIDER}/chat/completions",
        json={"model": "llama-3.1-8b", "messages": MESSAGES},
        headers=attribution(agent),
        timeout=10,
    )
    # The request went on without credentials; this upstream happens to want one and says so in its own words.
    assert fake_compatible.last.header("authorization") is None
    assert response.status_code == 401
    assert "You didn't provide an API key" in response.json()["error"]["message"]
    (item,) = warden.wait_for(lambda i: i["status"] == 401, agent_id=agent)
    assert item["provider"] == CUSTOM_PROVIDER and item["error"] is None


def test_an_unknown_profile_on_a_custom_provider_is_openais_not_found(warden):
    with pytest.raises(openai.NotFoundError) as caught:
        client(warden, new_agent(), profile="0d5b5a7e-8a41-4e55-9d7e-5b0d8a6c1f00").chat.completions.create(
            model="llama-3.1-8b", messages=MESSAGES
        )
    assert "unknown profile" in caught.value.message


# -- settings -------------------------------------------------------------------------------------------------------


@pytest.fixture
def no_env(monkeypatch):
    for name in ("WARDEN_CONFIG", "WARDEN_CUSTOM_PROVIDERS", "WARDEN_PORT", "WARDEN_OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_custom_providers_from_a_toml_file_merge_with_the_environment(tmp_path, no_env):
    config = tmp_path / "warden.toml"
    config.write_text(
        'port = 9100\nopenai_base_url = "http://file/v1"\n\n'
        '[custom_providers]\nvllm = "http://127.0.0.1:8000/v1"\nollama = "http://127.0.0.1:11434/v1"\n'
    )
    no_env.setenv("WARDEN_CONFIG", str(config))
    no_env.setenv("WARDEN_CUSTOM_PROVIDERS", '{"groq": "https://api.groq.com/openai/v1"}')
    no_env.setenv("WARDEN_OPENAI_BASE_URL", "http://env/v1")
    settings = IngressSettings()
    assert settings.custom_providers == {
        "vllm": "http://127.0.0.1:8000/v1",
        "ollama": "http://127.0.0.1:11434/v1",
        "groq": "https://api.groq.com/openai/v1",
    }
    assert settings.port == 9100
    assert settings.openai_base_url == "http://env/v1", "the environment must win over the file"
    assert IngressSettings(port=1).port == 1, "arguments must win over the file"
    upstreams = configured_upstreams(settings)
    assert upstreams["vllm"].adapter.name == "vllm" and upstreams["vllm"].base_url == "http://127.0.0.1:8000/v1"
    assert upstreams["openai"].base_url == "http://env/v1"


def test_custom_providers_from_a_json_file_given_as_an_argument(tmp_path, no_env):
    config = tmp_path / "warden.json"
    config.write_text(json.dumps({"custom_providers": {"lmstudio": "http://127.0.0.1:1234/v1/"}}))
    settings = IngressSettings(config=config)
    assert settings.custom_providers == {"lmstudio": "http://127.0.0.1:1234/v1/"}
    assert configured_upstreams(settings)["lmstudio"].base_url == "http://127.0.0.1:1234/v1"


def test_a_missing_or_unknown_configuration_file_is_a_clear_error(tmp_path, no_env):
    with pytest.raises(ValueError, match="does not exist"):
        IngressSettings(config=tmp_path / "nowhere.toml")
    odd = tmp_path / "warden.yaml"
    odd.write_text("custom_providers: {}\n")
    with pytest.raises(ValueError, match=r"neither a \.toml nor a \.json"):
        IngressSettings(config=odd)


@pytest.mark.parametrize("name", ["openai", "anthropic", "gemini"])
def test_a_custom_provider_may_not_shadow_a_builtin_one(name, no_env):
    with pytest.raises(ValidationError, match="shadow the built-in provider"):
        IngressSettings(custom_providers={name: "http://127.0.0.1:8000/v1"})


@pytest.mark.parametrize(
    ("providers", "fragment"),
    [
        ({"My LLM": "http://x/v1"}, "lower-case letters"),
        ({"a/b": "http://x/v1"}, "lower-case letters"),
        ({"vllm": "127.0.0.1:8000/v1"}, "must start with http"),
    ],
)
def test_custom_provider_names_and_urls_are_checked(providers, fragment, no_env):
    with pytest.raises(ValidationError, match=fragment):
        IngressSettings(custom_providers=providers)


def test_provider_base_urls_point_any_builtin_elsewhere(no_env):
    settings = IngressSettings(provider_base_urls={"anthropic": "http://127.0.0.1:7000/"})
    upstreams = configured_upstreams(settings)
    assert upstreams["anthropic"].base_url == "http://127.0.0.1:7000"
    assert upstreams["gemini"].base_url == "https://generativelanguage.googleapis.com"


# -- warden serve ---------------------------------------------------------------------------------------------------


def test_warden_serve_refuses_to_start_with_a_shadowing_custom_provider(tmp_path):
    process = ServeProcess(tmp_path / "data", env={"WARDEN_CUSTOM_PROVIDERS": '{"anthropic": "http://127.0.0.1:9/v1"}'})
    try:
        with pytest.raises(RuntimeError, match="shadow the built-in provider") as caught:
            process.start()
        assert "'anthropic'" in str(caught.value)
    finally:
        process.kill()


def test_warden_serve_reads_custom_providers_from_its_configuration_file(tmp_path, fake_compatible):
    config = tmp_path / "warden.toml"
    config.write_text(f'[custom_providers]\nfromfile = "{fake_compatible.base_url}"\n')
    process = ServeProcess(tmp_path / "data", env={"WARDEN_CONFIG": str(config)}).start()
    try:
        agent = new_agent()
        sdk = openai.OpenAI(
            base_url=f"{process.url}/v1/fromfile", api_key=API_KEY, default_headers=attribution(agent), max_retries=0
        )
        answer = sdk.chat.completions.create(model="qwen2.5", messages=MESSAGES)
        assert answer.choices[0].message.content == "echo: Say hello to Warden"
        items: list = []
        # The interaction crosses from the proxy worker to the background process through the hand-off log and
        # is stored in a logger batch: wait for it (a bound that only ends a hung run, not a latency check).
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            items = httpx.get(f"{process.url}/api/interactions", params={"agent_id": agent}, timeout=10).json()["items"]
            if items and all(item["status"] is not None for item in items):
                break  # both halves stored: the request's and the answer's
            time.sleep(0.05)
        (item,) = items
        assert (item["provider"], item["model"], item["status"]) == ("fromfile", "qwen2.5", 200)
    finally:
        process.kill()
