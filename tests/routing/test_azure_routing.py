"""Azure OpenAI deployments in OpenAI aliases, and OpenAI deployments in Azure aliases, with the official SDK: the
Azure deployment gets Azure's path, ``api-version`` and ``api-key`` (the deployment's stored credential, never the
client's Warden key), a 429 (``retry-after-ms``) or 500 there falls back to the next deployment, streamed and not,
every attempt is on the record under the right deployment, and a failing Azure deployment's breaker opens."""

from __future__ import annotations

import json

import genai_prices
import httpx
import openai
import pytest

from plumbing.keyring import Keyring, parse_master_keys
from tests.conftest import API_KEY, MASTER_KEY
from tests.fakes.azure_api import DEPLOYMENTS
from tests.fakes.wire import Fault
from tests.routing.clients import ask
from tests.routing.conftest import metric, route_over
from tests.routing.test_failover import ECHO, PROMPT, record_of
from tests.support.agents import attribution, new_agent
from tests.support.serve_process import ServeProcess

API_VERSION = "2024-10-21"
AZURE_KEY_A = "azure-key-a-" + "0123456789abcdef0123456789abcdef"
AZURE_KEY_B = "azure-key-b-" + "fedcba9876543210fedcba9876543210"
OPENAI_KEY = "sk-routed-" + "0123456789abcdef0123456789abcdef"


def azure_spec(fake, key: str, **more) -> dict:
    return {"provider": "azure", "base_url": fake.base_url, "credential": key, "api_version": API_VERSION, **more}


def openai_spec(fake, **more) -> dict:
    return {"provider": "openai", "base_url": fake.base_url, "credential": OPENAI_KEY, **more}


def azure_then_openai(warden, fakes, **first):
    """An OpenAI alias over two Azure deployments (``chat-prod`` at A, ``mini`` at B), then OpenAI itself."""
    (azure_a, azure_b), (openai_fake, _) = fakes["azure"], fakes["openai"]
    specs = [azure_spec(azure_a, AZURE_KEY_A, **first), azure_spec(azure_b, AZURE_KEY_B), openai_spec(openai_fake)]
    return route_over(warden, "openai", specs, send_models=["chat-prod", "mini", "gpt-4o"])


def assert_azure_request(received, deployment: str, key: str) -> None:
    assert received.path == f"/openai/deployments/{deployment}/chat/completions"
    assert received.query == {"api-version": API_VERSION}
    assert received.headers["api-key"] == key
    assert "authorization" not in received.headers
    assert API_KEY not in json.dumps(received.headers), "the client's Warden key went to Azure"


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("status", "headers"),
    [(500, ()), (429, (("retry-after-ms", "3600000"), ("retry-after", "3600")))],  # Azure's own 429 headers
)
def test_an_azure_deployment_that_fails_falls_back_to_the_next(warden, fakes, status, headers, stream):
    (azure_a, azure_b), (openai_fake, _) = fakes["azure"], fakes["openai"]
    alias = azure_then_openai(warden, fakes)
    azure_a.fail_next(Fault(directives=f"[[error:{status}]]", headers=headers))
    agent = new_agent()

    text, output_tokens = ask(warden, "openai", alias.model, PROMPT, agent, stream)

    assert text == ECHO
    assert (len(azure_a.received), len(azure_b.received), len(openai_fake.received)) == (1, 1, 0)
    assert_azure_request(azure_a.last, "chat-prod", AZURE_KEY_A)
    assert_azure_request(azure_b.last, "mini", AZURE_KEY_B)
    assert azure_b.last.body.get("stream", False) is stream
    record = record_of(warden, agent)
    assert record["status"] == 200 and record["usage"]["output_tokens"] == output_tokens
    assert [(a["deployment"], a["model"], a["status"], a["answered"]) for a in record["upstream_attempts"]] == [
        (alias.deployments[0], "chat-prod", status, False),
        (alias.deployments[1], "mini", 200, True),
    ]
    # Priced as Azure prices the model its answer names (the deployment's name is no model's).
    usage = record["usage"]
    served = genai_prices.Usage(input_tokens=usage["input_tokens"], output_tokens=usage["output_tokens"])
    price = genai_prices.calc_price(served, DEPLOYMENTS["mini"], provider_id="azure").total_price
    assert record["cost"]["usd"] == pytest.approx(float(price), rel=1e-9) and record["cost"]["usd"] > 0
    outcome = "status_5xx" if status == 500 else "status_429"
    assert metric(warden, "llm_upstream_attempts_total", deployment=alias.deployments[0], outcome=outcome) == 1
    assert metric(warden, "llm_upstream_attempts_total", deployment=alias.deployments[1], outcome="success") == 1
    if status == 429:  # Azure's wait is honoured: the deployment rests, the next request does not go there
        assert ask(warden, "openai", alias.model, PROMPT, new_agent(), stream)[0] == ECHO
        assert (len(azure_a.received), len(azure_b.received)) == (1, 2)


@pytest.mark.parametrize("stream", [False, True])
def test_both_azure_deployments_failing_falls_back_to_openai_itself(warden, fakes, stream):
    (azure_a, azure_b), (openai_fake, _) = fakes["azure"], fakes["openai"]
    alias = azure_then_openai(warden, fakes)
    azure_a.fail_next(Fault(directives="[[error:500]]"))
    azure_b.fail_next(Fault(directives="[[error:429]]"))
    agent = new_agent()

    assert ask(warden, "openai", alias.model, PROMPT, agent, stream)[0] == ECHO

    sent = openai_fake.last
    assert sent.path == "/v1/chat/completions" and sent.query == {} and sent.body["model"] == "gpt-4o"
    assert sent.headers["authorization"] == f"Bearer {OPENAI_KEY}" and "api-key" not in sent.headers
    attempts = record_of(warden, agent)["upstream_attempts"]
    assert [(a["deployment"], a["status"], a["error_class"]) for a in attempts] == [
        (alias.deployments[0], 500, "status_5xx"),
        (alias.deployments[1], 429, "status_429"),
        (alias.deployments[2], 200, None),
    ]


def test_a_failing_azure_deployments_breaker_opens(warden, fakes):
    (azure_a, azure_b), _ = fakes["azure"], fakes["openai"]
    alias = azure_then_openai(warden, fakes, breaker_failures=2, breaker_cooldown_s=600)
    azure_a.fail_always(Fault(directives="[[error:500]]"))

    for _ in range(2):
        assert ask(warden, "openai", alias.model, PROMPT, new_agent(), False)[0] == ECHO
    assert metric(warden, "llm_upstream_breaker_state", deployment=alias.deployments[0]) == 2
    for stream in (False, True):  # open: the next requests go to the second deployment without trying the first
        assert ask(warden, "openai", alias.model, PROMPT, new_agent(), stream)[0] == ECHO
    assert (len(azure_a.received), len(azure_b.received)) == (2, 4)
    assert metric(warden, "llm_upstream_breaker_state", deployment=alias.deployments[1]) == 0


def test_responses_and_embeddings_reach_azure_on_its_routes(warden, fakes):
    (azure_a, _), (openai_fake, _) = fakes["azure"], fakes["openai"]
    chat = route_over(
        warden, "openai", [azure_spec(azure_a, AZURE_KEY_A), openai_spec(openai_fake)], send_models=["chat-prod", None]
    )
    embed = route_over(
        warden, "openai", [azure_spec(azure_a, AZURE_KEY_A), openai_spec(openai_fake)], send_models=["embed", None]
    )
    client = openai.OpenAI(
        base_url=f"{warden.url}/v1/openai", api_key=API_KEY, default_headers=attribution(new_agent()), max_retries=0
    )

    answer = client.responses.create(model=chat.model, input=PROMPT)
    assert answer.output_text == ECHO and answer.model == DEPLOYMENTS["chat-prod"]
    sent = azure_a.last
    assert (sent.path, sent.query) == ("/openai/responses", {"api-version": API_VERSION})
    assert sent.body["model"] == "chat-prod"
    assert sent.headers["api-key"] == AZURE_KEY_A

    vectors = client.embeddings.create(model=embed.model, input="hello")
    assert len(vectors.data) == 1 and vectors.data[0].embedding
    assert azure_a.last.path == "/openai/deployments/embed/embeddings"
    assert azure_a.last.query == {"api-version": API_VERSION}
    assert openai_fake.received == []


@pytest.mark.parametrize("stream", [False, True])
def test_an_openai_deployment_stands_in_an_azure_alias(warden, fakes, stream):
    """``AzureOpenAI`` asks Warden for a deployment name; its alias falls back from Azure to OpenAI itself, which
    gets OpenAI's path, the model in the body, no ``api-version`` and a bearer key."""
    (azure_a, _), (openai_fake, _) = fakes["azure"], fakes["openai"]
    specs = [azure_spec(azure_a, AZURE_KEY_A), openai_spec(openai_fake)]
    alias = route_over(warden, "azure", specs, send_models=["chat-prod", "gpt-4o"])
    azure_a.fail_next(Fault(directives="[[error:500]]"))
    agent = new_agent()
    client = openai.AzureOpenAI(
        azure_endpoint=f"{warden.url}/v1/azure",
        api_key=API_KEY,
        api_version="2024-06-01",
        default_headers=attribution(agent),
        max_retries=0,
    )
    messages = [{"role": "user", "content": PROMPT}]
    if stream:
        text = "".join(
            chunk.choices[0].delta.content or ""
            for chunk in client.chat.completions.create(model=alias.model, messages=messages, stream=True)
            if chunk.choices
        )
    else:
        text = client.chat.completions.create(model=alias.model, messages=messages).choices[0].message.content

    assert text == ECHO
    # The Azure deployment's own api-version replaced the client's; the deployment name in the path is the one sent.
    assert azure_a.last.path == "/openai/deployments/chat-prod/chat/completions"
    assert azure_a.last.query == {"api-version": API_VERSION}
    sent = openai_fake.last
    assert (sent.path, sent.query, sent.body["model"]) == ("/v1/chat/completions", {}, "gpt-4o")
    assert sent.headers["authorization"] == f"Bearer {OPENAI_KEY}" and "api-key" not in sent.headers
    attempts = record_of(warden, agent)["upstream_attempts"]
    assert [(a["deployment"], a["model"], a["status"]) for a in attempts] == [
        (alias.deployments[0], "chat-prod", 500),
        (alias.deployments[1], "gpt-4o", 200),
    ]


def test_incompatible_or_incomplete_deployments_are_refused_with_the_reason(warden, fakes):
    (azure_a, _), (anthropic_fake, _) = fakes["azure"], fakes["anthropic"]
    put = lambda path, body: httpx.put(f"{warden.url}{path}", json=body, timeout=10)  # noqa: E731
    deployments = {
        "claude-x": {"provider": "anthropic", "base_url": anthropic_fake.base_url, "credential": "sk-ant"},
        "azure-nokey": {"provider": "azure", "base_url": azure_a.base_url, "api_version": API_VERSION},
        "azure-noversion": {"provider": "azure", "base_url": azure_a.base_url, "credential": AZURE_KEY_A},
    }
    for name, spec in deployments.items():
        assert put(f"/api/deployments/{name}", spec).status_code in (200, 201)
    refusals = {
        "claude-x": "speaks anthropic, which cannot answer openai clients (deployments of azure, openai can)",
        "azure-nokey": "needs a credential of its own",
        "azure-noversion": "needs an api_version",
    }
    for name, reason in refusals.items():
        answer = put("/api/model-aliases/openai/mixed-model", {"targets": [{"deployment": name}]})
        assert answer.status_code == 422 and reason in answer.json()["error"]["message"], answer.text
    # The same deployments are fine where their own format is spoken.
    assert put("/api/model-aliases/azure/mixed-model", {"targets": [{"deployment": "azure-nokey"}]}).status_code == 201
    wrong = put("/api/deployments/wrong", {"provider": "openai", "base_url": azure_a.base_url, "api_version": "x"})
    assert wrong.status_code == 422 and "only an azure deployment" in wrong.text


def test_a_route_azure_lacks_is_not_sent_there_and_goes_to_the_next(warden, fakes):
    (azure_a, _), (openai_fake, _) = fakes["azure"], fakes["openai"]
    specs = [azure_spec(azure_a, AZURE_KEY_A, breaker_failures=1), openai_spec(openai_fake)]
    alias = route_over(warden, "openai", specs)
    agent = new_agent()
    client = openai.OpenAI(
        base_url=f"{warden.url}/v1/openai", api_key=API_KEY, default_headers=attribution(agent), max_retries=0
    )

    with pytest.raises(openai.NotFoundError):  # the OpenAI fake serves no images: its own 404 comes back
        client.images.generate(model=alias.model, prompt="a lighthouse")

    assert azure_a.received == [] and openai_fake.last.path == "/v1/images/generations"
    attempts = record_of(warden, agent)["upstream_attempts"]
    assert [(a["deployment"], a["status"], a["error_class"]) for a in attempts] == [
        (alias.deployments[0], None, "unsendable"),
        (alias.deployments[1], 404, "status_4xx"),
    ]
    assert "Azure OpenAI has no counterpart of /images/generations" in attempts[0]["error"]
    # Not the deployment's failure: its breaker (opened by one failure) stays closed.
    assert metric(warden, "llm_upstream_breaker_state", deployment=alias.deployments[0]) == 0


def test_an_azure_alias_needs_no_azure_endpoint_of_its_own(tmp_path, fakes):
    """OpenAI deployments answer an Azure alias in a Warden that has no Azure resource configured at all (``warden
    serve`` of its own); a deployment name no alias routes is still refused for the missing endpoint."""
    _, openai_fake = fakes["openai"]
    token = Keyring(parse_master_keys(MASTER_KEY)).encrypt(OPENAI_KEY)
    deployments = {"openai-only": {"provider": "openai", "base_url": openai_fake.base_url, "credential": token}}
    aliases = {"azure/chat-prod": {"targets": [{"deployment": "openai-only", "model": "gpt-4o"}]}}
    env = {
        "WARDEN_OPENAI_BASE_URL": openai_fake.base_url,
        "WARDEN_MASTER_KEY": MASTER_KEY,
        "WARDEN_DEPLOYMENTS": json.dumps(deployments),
        "WARDEN_MODEL_ALIASES": json.dumps(aliases),
        "WARDEN_WORKERS": "1",
    }
    process = ServeProcess(tmp_path / "data", env=env).start()
    try:
        client = openai.AzureOpenAI(
            azure_endpoint=f"{process.url}/v1/azure", api_key=API_KEY, api_version=API_VERSION, max_retries=0
        )
        messages = [{"role": "user", "content": PROMPT}]
        answer = client.chat.completions.create(model="chat-prod", messages=messages)
        assert answer.choices[0].message.content == ECHO
        assert openai_fake.last.body["model"] == "gpt-4o"
        assert openai_fake.last.headers["authorization"] == f"Bearer {OPENAI_KEY}"
        with pytest.raises(openai.APIStatusError, match="WARDEN_AZURE_BASE_URL") as refused:
            client.chat.completions.create(model="not-routed", messages=messages)
        assert refused.value.status_code == 502
    finally:
        process.kill()
