"""Azure OpenAI through Warden with the openai SDK's own Azure clients (``AzureOpenAI``, ``AsyncAzureOpenAI``) and
the v1 surface (``OpenAI(base_url=…/openai/v1/)``): deployments in the path, ``api-version`` kept, ``api-key`` as the
credential, Azure's content-filter annotations passed through, Azure's error envelope for Warden's own refusals; the
deployment is the recorded model, the answer's model is what it is priced as; policies, redaction and keys work as on
every other provider; the key is in no record, event or log line."""

from __future__ import annotations

import asyncio
import json
import time

import genai_prices
import httpx
import openai
import pytest

from tests.conftest import API_KEY
from tests.fakes.azure_api import DEPLOYMENTS, PROMPT_FILTER_RESULTS
from tests.fakes.upstream import FakeUpstream
from tests.guard.test_guard_service import poisoned_history, wait_violations
from tests.support.agents import attribution, new_agent
from tests.support.guardrails import make_profile
from tests.support.keys import create_key, create_profile
from tests.support.published import assert_secret_nowhere, published_events
from tests.support.serve_process import ServeProcess
from tests.test_readme import REPO, blocks, run_snippet

API_VERSION = "2024-10-21"
DEPLOYMENT = "chat-prod"
SERVED = DEPLOYMENTS[DEPLOYMENT]  # the model behind the deployment, as the answers name it
STORED_KEY = "azure-stored-" + "0123456789abcdef0123456789abcdef"
READ_FILE = {
    "type": "function",
    "function": {
        "name": "read_file",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
    },
}


def azure(warden, agent: str, profile: str = "", api_key: str = API_KEY) -> openai.AzureOpenAI:
    endpoint = f"{warden.url}/v1/azure" + (f"/{profile}" if profile else "")
    return openai.AzureOpenAI(
        azure_endpoint=endpoint,
        api_key=api_key,
        api_version=API_VERSION,
        default_headers=attribution(agent),
        max_retries=0,
    )


def v1(warden, agent: str, api_key: str = API_KEY) -> openai.OpenAI:
    """Azure's v1 surface through the plain OpenAI client (a bearer token, the deployment as ``model``)."""
    return openai.OpenAI(
        base_url=f"{warden.url}/v1/azure/openai/v1/",
        api_key=api_key,
        default_headers=attribution(agent),
        max_retries=0,
    )


def record(warden, agent: str, status: int = 200, timeout: float = 10.0) -> dict:
    """The one interaction of ``agent``, once its answer is recorded (``timeout`` only ends a hung run)."""
    (item,) = warden.wait_for(lambda i: i["status"] == status, timeout=timeout, agent_id=agent)
    return warden.detail(item["interaction_id"])


def catalogue_price(model: str, usage: dict) -> float:
    priced = genai_prices.Usage(input_tokens=usage["input_tokens"], output_tokens=usage["output_tokens"])
    return float(genai_prices.calc_price(priced, model, provider_id="azure").total_price)


@pytest.fixture(scope="module")
def published(warden) -> list[str]:
    return published_events(warden, "azure-key-audit")


def assert_key_nowhere(warden, detail: dict, published: list[str], caplog, key: str = API_KEY) -> None:
    assert_secret_nowhere(warden, detail, published, caplog, key)


# -- chat completions -------------------------------------------------------------------------------------------


def test_a_chat_completion_reaches_the_deployment_and_is_recorded_and_priced_as_its_model(
    warden, fake_azure, published, caplog
):
    agent = new_agent()
    answer = azure(warden, agent).chat.completions.create(
        model=DEPLOYMENT, messages=[{"role": "user", "content": "Say hello to Warden"}]
    )
    assert answer.choices[0].message.content == "echo: Say hello to Warden"
    assert answer.model == SERVED
    assert answer.model_extra["prompt_filter_results"] == PROMPT_FILTER_RESULTS  # Azure's annotations kept
    assert answer.choices[0].model_extra["content_filter_results"]["hate"]["filtered"] is False

    upstream = fake_azure.last
    assert upstream.path == f"/openai/deployments/{DEPLOYMENT}/chat/completions"
    assert upstream.query == {"api-version": API_VERSION}
    assert upstream.header("api-key") == API_KEY  # passthrough: the client's own key

    detail = record(warden, agent)
    assert (detail["provider"], detail["model"]) == ("azure", DEPLOYMENT)
    assert detail["route"] == f"/openai/deployments/{DEPLOYMENT}/chat/completions"
    assert json.loads(detail["response_body"])["model"] == SERVED
    usage, cost = detail["usage"], detail["cost"]
    assert usage["input_tokens"] == answer.usage.prompt_tokens
    assert usage["output_tokens"] == answer.usage.completion_tokens
    assert cost["usd"] == pytest.approx(catalogue_price(SERVED, usage), rel=1e-9) and cost["usd"] > 0
    assert "gpt-4o" in cost["note"]
    assert_key_nowhere(warden, detail, published, caplog)


def test_a_streamed_chat_completion_starts_with_the_prompt_filter_chunk(warden, fake_azure, published, caplog):
    agent = new_agent()
    stream = azure(warden, agent).chat.completions.create(
        model=DEPLOYMENT,
        messages=[{"role": "user", "content": "stream to me"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices == [] and chunks[0].model_extra["prompt_filter_results"] == PROMPT_FILTER_RESULTS
    text = "".join(choice.delta.content or "" for chunk in chunks for choice in chunk.choices)
    assert text == "echo: stream to me"
    usage = chunks[-1].usage

    detail = record(warden, agent)
    assert detail["provider"] == "azure" and detail["model"] == DEPLOYMENT and detail["stream"] is True
    assert detail["finish_reason"] == "stop" and detail["response_body"].startswith('data: {"choices":[]')
    assert detail["usage"]["output_tokens"] == usage.completion_tokens
    assert detail["cost"]["usd"] == pytest.approx(catalogue_price(SERVED, detail["usage"]), rel=1e-9)
    assert_key_nowhere(warden, detail, published, caplog)


def test_the_async_client_streams_too(warden):
    agent = new_agent()

    async def ask() -> str:
        client = openai.AsyncAzureOpenAI(
            azure_endpoint=f"{warden.url}/v1/azure/default",
            api_key=API_KEY,
            api_version=API_VERSION,
            default_headers=attribution(agent),
            max_retries=0,
        )
        async with client:
            stream = await client.chat.completions.create(
                model="mini", messages=[{"role": "user", "content": "async hello"}], stream=True
            )
            return "".join([choice.delta.content or "" async for chunk in stream for choice in chunk.choices])

    assert asyncio.run(ask()) == "echo: async hello"
    detail = record(warden, agent, timeout=60)  # the tokenizer loads its vocabulary on first use
    assert (detail["model"], detail["profile_id"], detail["stream"]) == ("mini", "default", True)
    # No usage in the stream: counted with the tokenizer, priced as the model the chunks name.
    assert detail["cost"]["estimated"] is True
    assert detail["cost"]["usd"] == pytest.approx(catalogue_price(DEPLOYMENTS["mini"], detail["usage"]), rel=1e-9)


# -- embeddings and the Responses API ---------------------------------------------------------------------------


def test_embeddings_through_a_deployment(warden, fake_azure):
    agent = new_agent()
    answer = azure(warden, agent).embeddings.create(model="embed", input=["one two three", "four"])
    assert len(answer.data) == 2 and len(answer.data[0].embedding) == 1536
    assert fake_azure.last.path == "/openai/deployments/embed/embeddings"
    detail = record(warden, agent)
    assert (detail["model"], detail["usage"]["input_tokens"]) == ("embed", 4)
    # Priced as the model the answer names, which the catalogue lists at Azure without a token price.
    assert detail["cost"]["usd"] is None
    assert detail["cost"]["note"].endswith(f"has no token prices for {DEPLOYMENTS['embed']!r}")


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_the_responses_api_with_the_deployment_as_model(warden, fake_azure, stream):
    agent = new_agent()
    client = azure(warden, agent)
    if stream:
        with client.responses.stream(model=DEPLOYMENT, input="respond please") as events:
            answer = events.get_final_response()
    else:
        answer = client.responses.create(model=DEPLOYMENT, input="respond please")
    assert answer.output_text == "echo: respond please"
    assert (fake_azure.last.path, fake_azure.last.query) == ("/openai/responses", {"api-version": API_VERSION})
    detail = record(warden, agent)
    assert (detail["provider"], detail["model"], detail["route"]) == ("azure", DEPLOYMENT, "/openai/responses")
    assert detail["cost"]["usd"] == pytest.approx(catalogue_price(SERVED, detail["usage"]), rel=1e-9)


def test_the_v1_surface_with_a_bearer_token(warden, fake_azure):
    agent = new_agent()
    chat = v1(warden, agent).chat.completions.create(model="mini", messages=[{"role": "user", "content": "v1 chat"}])
    assert chat.choices[0].message.content == "echo: v1 chat"
    assert fake_azure.last.path == "/openai/v1/chat/completions"
    assert fake_azure.last.header("authorization") == f"Bearer {API_KEY}"
    answer = v1(warden, agent).responses.create(model="mini", input="v1 responses")
    assert answer.output_text == "echo: v1 responses" and fake_azure.last.path == "/openai/v1/responses"
    items = warden.wait_for(lambda i: i["status"] == 200 and i["model"] == "mini", agent_id=agent)
    assert sorted(item["route"] for item in items) == ["/openai/v1/chat/completions", "/openai/v1/responses"]


# -- Warden keys and stored credentials -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def managed(warden) -> str:
    return create_profile(warden, auth="managed", credentials={"azure": STORED_KEY})


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_a_warden_key_in_api_key_reaches_azure_with_the_stored_key(
    warden, fake_azure, managed, published, caplog, stream
):
    agent = new_agent()
    key = create_key(warden, managed, agent)
    answer = azure(warden, "", api_key=key.secret).chat.completions.create(
        model=DEPLOYMENT, messages=[{"role": "user", "content": "managed hello"}], stream=stream
    )
    text = (
        "".join(c.delta.content or "" for chunk in answer for c in chunk.choices)
        if stream
        else answer.choices[0].message.content
    )
    assert text == "echo: managed hello"
    upstream = fake_azure.last
    assert upstream.header("api-key") == STORED_KEY and upstream.header("authorization") is None
    assert key.secret not in json.dumps(upstream.headers) and key.secret.encode() not in upstream.raw_body
    detail = record(warden, agent)
    assert (detail["auth"], detail["key_prefix"], detail["profile_id"]) == ("warden_key", key.prefix, managed)
    assert_key_nowhere(warden, detail, published, caplog, key=STORED_KEY)
    assert_key_nowhere(warden, detail, published, caplog, key=key.secret)


def test_a_warden_key_as_a_bearer_token_on_the_v1_surface(warden, fake_azure, managed):
    agent = new_agent()
    key = create_key(warden, managed, agent)
    v1(warden, "", api_key=key.secret).chat.completions.create(
        model="mini", messages=[{"role": "user", "content": "bearer"}]
    )
    assert fake_azure.last.header("api-key") == STORED_KEY and fake_azure.last.header("authorization") is None


def test_a_bad_warden_key_is_azures_401(warden, fake_azure, managed):
    before = len(fake_azure.received)
    bad = "wk_" + "Zq3x9Lm2Np8Rt4Vw6Yb1Cd5Ef7Gh0Jk2Mn4Pq6St8Uv"
    with pytest.raises(openai.AuthenticationError) as caught:
        azure(warden, new_agent(), api_key=bad).chat.completions.create(
            model=DEPLOYMENT, messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.code == "401" and caught.value.body["message"] == "invalid Warden key"
    assert len(fake_azure.received) == before


def test_a_provider_key_on_a_managed_profile_is_azures_401(warden, managed):
    with pytest.raises(openai.AuthenticationError) as caught:
        azure(warden, new_agent(), profile=managed).chat.completions.create(
            model=DEPLOYMENT, messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.code == "401" and "only Warden keys" in caught.value.body["message"]


def test_a_profile_holds_its_own_azure_resource_and_key(warden, fake_azure):
    """A team's profile names its resource's endpoint beside its key: its traffic goes there, and nowhere else."""
    team_key = "team-azure-" + "fedcba9876543210fedcba9876543210"
    with FakeUpstream("azure", accepted_keys={team_key}) as team_resource:
        profile = create_profile(
            warden, auth="managed", credentials={"azure": team_key}, endpoints={"azure": team_resource.url + "/"}
        )
        agent = new_agent()
        key = create_key(warden, profile, agent)
        before = len(fake_azure.received)
        answer = azure(warden, "", api_key=key.secret).chat.completions.create(
            model=DEPLOYMENT, messages=[{"role": "user", "content": "team hello"}]
        )
        assert answer.choices[0].message.content == "echo: team hello"
        assert team_resource.last.path == f"/openai/deployments/{DEPLOYMENT}/chat/completions"
        assert team_resource.last.header("api-key") == team_key
        assert len(fake_azure.received) == before, "the request went to the setting's resource"
        shown = httpx.get(f"{warden.url}/api/profiles/{profile}", timeout=10).json()
        assert shown["endpoints"] == {"azure": team_resource.url} and team_key not in json.dumps(shown)
        assert record(warden, agent)["provider"] == "azure"


@pytest.mark.parametrize(
    ("endpoints", "wrong"),
    [({"azure": "ftp://resource.example"}, "must start with http"), ({"azrue": "https://r.example"}, "azrue")],
)
def test_a_profile_endpoint_that_cannot_be_used_is_refused(warden, endpoints, wrong):
    response = httpx.post(
        f"{warden.url}/api/profiles", json={"name": f"endpoints-{new_agent()}", "endpoints": endpoints}, timeout=10
    )
    assert response.status_code == 422 and wrong in response.text


# -- policies -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def restrictive(warden) -> str:
    return make_profile(warden, "restrictive", name="azure")


def test_a_blocked_tool_call_comes_back_as_a_refusal(warden, restrictive, fake_azure):
    agent = new_agent()
    answer = azure(warden, agent, profile=restrictive).chat.completions.create(
        model=DEPLOYMENT,
        messages=[{"role": "user", "content": '[[tool:read_file {"path": "/etc/passwd"}]]'}],
        tools=[READ_FILE],
    )
    choice = answer.choices[0]
    assert choice.message.tool_calls is None and choice.finish_reason == "stop"
    assert "I tried to invoke the read_file tool" in choice.message.content and "/etc/passwd" in choice.message.content
    assert answer.model_extra["prompt_filter_results"] == PROMPT_FILTER_RESULTS
    detail = record(warden, agent)
    assert detail["blocked"] is True and [c["name"] for c in detail["blocked_tool_calls"]] == ["read_file"]
    assert detail["provider"] == "azure" and detail["model"] == DEPLOYMENT


def test_a_blocked_tool_call_in_a_stream_never_reaches_the_client(warden, restrictive):
    agent = new_agent()
    stream = azure(warden, agent, profile=restrictive).chat.completions.create(
        model=DEPLOYMENT,
        messages=[{"role": "user", "content": 'Checking. [[tool:read_file {"path": "/etc/shadow"}]]'}],
        tools=[READ_FILE],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices == []  # the prompt filter results chunk passed first
    text = "".join(choice.delta.content or "" for chunk in chunks for choice in chunk.choices)
    calls = [call for chunk in chunks for choice in chunk.choices for call in choice.delta.tool_calls or []]
    finishes = [choice.finish_reason for chunk in chunks for choice in chunk.choices if choice.finish_reason]
    assert calls == [] and finishes == ["stop"]
    assert text.startswith("echo: Checking.") and "I tried to invoke the read_file tool" in text
    detail = record(warden, agent)
    assert detail["blocked"] is True and detail["usage"]["output_tokens"] == chunks[-1].usage.completion_tokens


def test_an_allowed_tool_call_in_a_stream_passes(warden, restrictive):
    stream = azure(warden, new_agent(), profile=restrictive).chat.completions.create(
        model=DEPLOYMENT,
        messages=[{"role": "user", "content": '[[tool:read_file {"path": "/tmp/notes"}]]'}],
        tools=[READ_FILE],
        stream=True,
    )
    arguments = "".join(
        call.function.arguments or ""
        for chunk in stream
        for choice in chunk.choices
        for call in choice.delta.tool_calls or []
    )
    assert json.loads(arguments) == {"path": "/tmp/notes"}


def test_a_key_restricted_to_other_models_may_not_use_the_deployment(warden, managed):
    agent = new_agent()
    key = create_key(warden, managed, agent, models=["mini"])
    with pytest.raises(openai.PermissionDeniedError) as caught:
        azure(warden, "", api_key=key.secret).chat.completions.create(
            model=DEPLOYMENT, messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.code == "403" and DEPLOYMENT in caught.value.body["message"]


def test_a_secret_in_the_prompt_is_masked_before_azure_sees_it(warden, fake_azure):
    profile = make_profile(warden, "permissive", name="azure-redacting", redact_secrets=True)
    agent = new_agent()
    secret = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0" * 3
    azure(warden, agent, profile=profile).chat.completions.create(
        model=DEPLOYMENT, messages=[{"role": "user", "content": f"my key is {secret}, keep it safe"}]
    )
    sent = fake_azure.last.raw_body.decode()
    assert secret not in sent and "my key is [REDACTED:openai_api_key], keep it safe" in sent
    detail = record(warden, agent)
    assert detail["request_sent"] == sent  # the record is what left, byte for byte
    assert secret not in json.dumps(detail)
    reasons = [d["reason"] for d in detail["request_decisions"] if d["kind"] == "redaction"]
    assert reasons == ["masked 1 openai_api_key"]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_the_guard_reads_azure_traffic(warden, stream):
    """An injection in a tool result sent to an Azure deployment is a prompt-injection violation, located and
    with its evidence redacted, as on every other provider."""
    agent = new_agent()
    answer = azure(warden, agent).chat.completions.create(model=DEPLOYMENT, messages=poisoned_history(1), stream=stream)
    if stream:
        list(answer)
    detail = record(warden, agent, timeout=60)  # a stream without usage waits for the tokenizer's first load
    injections = [v for v in wait_violations(warden, detail["interaction_id"]) if v["category"] == "prompt_injection"]
    assert injections and injections[0]["location"].endswith("tool_result")
    assert "attacker@evil.test" not in injections[0]["excerpt"]
    flagged = warden.interactions(agent_id=agent, provider="azure", violation_category="prompt_injection")
    assert [i["interaction_id"] for i in flagged["items"]] == [detail["interaction_id"]]


# -- errors in Azure's shape ----------------------------------------------------------------------------------------


def test_a_body_that_is_not_json_is_azures_400(warden, fake_azure):
    before = len(fake_azure.received)
    agent = new_agent()
    response = httpx.post(
        f"{warden.url}/v1/azure/openai/deployments/{DEPLOYMENT}/chat/completions?api-version={API_VERSION}",
        content=b'{"messages": [',
        headers={"api-key": API_KEY, "content-type": "application/json", **attribution(agent)},
        timeout=10,
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_request_error" and "not valid JSON" in error["message"]
    assert set(error) == {"code", "message", "param", "type"}
    assert len(fake_azure.received) == before
    assert record(warden, agent, 400)["provider"] == "azure"


def test_an_unknown_profile_is_azures_404(warden):
    with pytest.raises(openai.NotFoundError) as caught:
        azure(warden, new_agent(), profile="0d5b5a7e-8a41-4e55-9d7e-5b0d8a6c1f00").chat.completions.create(
            model=DEPLOYMENT, messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.code == "404" and "unknown profile" in caught.value.body["message"]


def test_a_body_too_large_is_azures_413(warden, fake_azure):
    before = len(fake_azure.received)
    with pytest.raises(openai.APIStatusError) as caught:
        azure(warden, new_agent()).chat.completions.create(
            model=DEPLOYMENT, messages=[{"role": "user", "content": "x" * (2 * 1024 * 1024)}]
        )
    assert caught.value.status_code == 413 and caught.value.code == "413"
    assert len(fake_azure.received) == before


def test_azures_own_errors_pass_through_as_azure_sent_them(warden):
    agent = new_agent()
    client = azure(warden, agent)
    with pytest.raises(openai.BadRequestError) as filtered:
        client.chat.completions.create(model=DEPLOYMENT, messages=[{"role": "user", "content": "[[content_filter]]"}])
    assert filtered.value.code == "content_filter"
    assert filtered.value.body["innererror"]["code"] == "ResponsibleAIPolicyViolation"
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="no-such-deployment", messages=[{"role": "user", "content": "hi"}])
    assert missing.value.code == "DeploymentNotFound"
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(model=DEPLOYMENT, messages=[{"role": "user", "content": "[[error:429]]"}])
    assert limited.value.code == "429"
    items = warden.wait_for(lambda i: i["status"] is not None and i["status"] >= 400, agent_id=agent)
    assert sorted(item["status"] for item in items) == [400, 404, 429]
    filtered_record = warden.detail(next(i for i in items if i["status"] == 400)["interaction_id"])
    assert json.loads(filtered_record["response_body"])["error"]["code"] == "content_filter"


def test_without_an_endpoint_azure_requests_are_a_clear_502(tmp_path):
    """``warden serve`` with no Azure endpoint configured says so, in Azure's shape, and records it."""
    process = ServeProcess(tmp_path / "data").start()
    try:
        agent = new_agent()
        with pytest.raises(openai.APIStatusError) as caught:
            azure(process, agent).chat.completions.create(
                model=DEPLOYMENT, messages=[{"role": "user", "content": "hi"}]
            )
        assert caught.value.status_code == 502 and caught.value.code == "upstream_error"
        assert "WARDEN_AZURE_BASE_URL" in caught.value.body["message"]
        items: list = []
        # The record crosses to the background process and a logger batch: a bound that only ends a hung run.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            items = httpx.get(f"{process.url}/api/interactions", params={"agent_id": agent}, timeout=10).json()["items"]
            if items and all(item["status"] is not None for item in items):
                break
            time.sleep(0.05)
        (item,) = items
        assert (item["provider"], item["status"]) == ("azure", 502) and "WARDEN_AZURE_BASE_URL" in item["error"]
    finally:
        process.kill()


def test_the_fake_upstream_refuses_a_missing_api_version(fake_azure: FakeUpstream):
    """The fake holds Warden to Azure's rules: the api-version query parameter must arrive."""
    response = httpx.post(
        f"{fake_azure.url}/openai/deployments/{DEPLOYMENT}/chat/completions",
        json={"messages": [{"role": "user", "content": "hi"}]},
        headers={"api-key": "k"},
    )
    assert response.status_code == 404 and response.json()["error"]["code"] == "404"


def test_the_readme_snippet_runs_as_written(warden):
    readme = (REPO / "README.md").read_text()
    (snippet,) = [block for block in blocks(readme, "python") if "AzureOpenAI(" in block]
    done = run_snippet(snippet, warden.url, {"AZURE_OPENAI_API_KEY": API_KEY})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "echo: Hello"
