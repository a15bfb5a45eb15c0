"""``warden serve`` as processes: proxy workers on one port and a background process with the store, the logger and
the guard. Traffic through every worker reaches the API; what the API changes, every worker enforces; the background
killed or frozen under load costs the proxies nothing and loses or doubles nothing."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import API_KEY, CUSTOM_PROVIDER, MASTER_KEY
from tests.guard.test_guard_service import poisoned_history
from tests.support.agents import attribution, new_agent
from tests.support.formats import FORMATS, ask
from tests.support.keys import PROVIDER_KEYS, create_key, create_profile, revoke
from tests.support.serve_process import ServeProcess

WORKERS = 2


@pytest.fixture
def serve(tmp_path, fake_openai, fake_anthropic, fake_gemini, fake_compatible) -> Iterator[Callable[..., ServeProcess]]:
    started: list[ServeProcess] = []
    env = {
        "WARDEN_OPENAI_BASE_URL": fake_openai.url + "/v1",
        "WARDEN_ANTHROPIC_BASE_URL": fake_anthropic.base_url,
        "WARDEN_GEMINI_BASE_URL": fake_gemini.base_url,
        "WARDEN_CUSTOM_PROVIDERS": f'{{"{CUSTOM_PROVIDER}": "{fake_compatible.base_url}"}}',
        "WARDEN_MASTER_KEY": MASTER_KEY,
    }

    def start(**settings: str) -> ServeProcess:
        process = ServeProcess(tmp_path / "data", env={**env, **settings}, args=["--workers", str(WORKERS)])
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.kill()


def fresh_client(process: ServeProcess, agent: str, profile: str = "") -> openai.OpenAI:
    """A new connection per request: the kernel spreads connections, not requests, over the workers."""
    path = f"/{profile}" if profile else ""
    return openai.OpenAI(
        base_url=f"{process.url}/v1/openai{path}",
        api_key=API_KEY,
        default_headers=attribution(agent),
        max_retries=0,
        http_client=httpx.Client(limits=httpx.Limits(max_keepalive_connections=0)),
    )


def ask_once(process: ServeProcess, agent: str, n: int, profile: str = "") -> str:
    raw = fresh_client(process, agent, profile).chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": f"question {n}"}]
    )
    assert raw.status_code == 200
    return raw.headers["x-warden-interaction-id"]


def stored(process: ServeProcess, agent: str) -> list[dict]:
    items: list[dict] = []
    cursor = None
    while True:
        params = {"agent_id": agent, "limit": 500, **({"cursor": cursor} if cursor else {})}
        response = httpx.get(f"{process.url}/api/interactions", params=params, timeout=30)
        response.raise_for_status()  # a 503 while the background process starts again
        page = response.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def wait_stored(process: ServeProcess, agent: str, count: int, timeout: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout
    items: list[dict] = []
    while time.monotonic() < deadline:
        try:
            items = stored(process, agent)
        except httpx.HTTPError:  # the background process is starting again
            items = []
        if len(items) >= count and all(i["status"] is not None for i in items):
            return items
        time.sleep(0.2)
    return items


def handed_off(process: ServeProcess) -> dict[str, int]:
    """Per worker, the last hand-off record the background acknowledged."""
    root = process.data_dir / "handoff"
    return {d.name: int((d / "acked").read_text()) for d in sorted(root.iterdir()) if (d / "acked").exists()}


def test_traffic_in_every_format_through_every_worker_is_in_the_api_and_the_metrics(serve):
    process = serve()
    assert len(process.children("warden.proxy_worker")) == WORKERS
    agent = new_agent()
    profile = httpx.post(f"{process.url}/api/profiles", json={"name": "everyone"}).json()["id"]
    for fmt in FORMATS:
        for stream in (False, True):
            answer = ask(process, fmt, profile, agent, f"hello in {fmt}", stream=stream, tools=())
            assert answer.text
    ids = [ask_once(process, agent, n) for n in range(30)]
    expected = len(FORMATS) * 2 + len(ids)
    items = wait_stored(process, agent, expected)
    assert len(items) == expected
    assert set(ids) <= {i["interaction_id"] for i in items}
    assert {i["provider"] for i in items} == {"openai", "anthropic", "gemini", CUSTOM_PROVIDER}
    # Both workers carried traffic (30 connections all hashed to one worker: 2^-29) and handed it off.
    assert set(handed_off(process)) == {f"worker-{n}" for n in range(WORKERS)}
    # /metrics adds up the workers: every request of this agent is counted once.
    metrics = httpx.get(f"{process.url}/metrics").text
    counted = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("llm_requests_total{") and f'agent_id="{agent}"' in line
    )
    assert counted == expected
    assert len([line for line in metrics.splitlines() if line.startswith("# TYPE llm_requests_total ")]) == 1
    # One family per name across the background's and the workers' metrics: Prometheus refuses a scrape otherwise.
    families = [line.split()[2] for line in metrics.splitlines() if line.startswith("# TYPE ")]
    assert sorted(families) == sorted(set(families))
    assert "warden_serve_workers_unscraped 0.0" in metrics.splitlines()


def test_a_profile_made_through_the_api_is_enforced_by_every_worker_when_the_api_answers(serve):
    process = serve()
    agent = new_agent()
    made = httpx.post(f"{process.url}/api/profiles", json={"name": "made-now"})
    assert made.status_code == 201, made.text
    profile = made.json()["id"]
    # Every worker knows the profile as soon as the API answered: no request through any of them is a 404.
    ids = [ask_once(process, agent, n, profile) for n in range(20)]
    assert len(set(ids)) == 20
    gone = httpx.delete(f"{process.url}/api/profiles/{profile}")
    assert gone.status_code == 204
    for _ in range(20):
        with pytest.raises(openai.NotFoundError):
            ask_once(process, agent, 0, profile)


def ask_with_key(process: ServeProcess, secret: str, n: int) -> str:
    """One question over a fresh connection holding a Warden key; the upstream's answer."""
    client = openai.OpenAI(
        base_url=f"{process.url}/v1/openai",
        api_key=secret,
        max_retries=0,
        http_client=httpx.Client(limits=httpx.Limits(max_keepalive_connections=0)),
    )
    answer = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": f"keyed {n}"}])
    return answer.choices[0].message.content or ""


def test_a_key_made_through_the_api_works_through_every_worker_and_its_revocation_reaches_every_worker(
    serve, fake_openai
):
    process = serve()
    profile = create_profile(process, auth="managed")
    key = create_key(process, profile, new_agent())
    # Each worker knows the key as soon as the API answered, and relays the provider key the profile holds (the
    # master key that decrypts it reached the workers): 20 fresh connections, each worker missed with chance 2^-20.
    for n in range(20):
        assert ask_with_key(process, key.secret, n)
        upstream = [r for r in fake_openai.received if f"keyed {n}".encode() in r.raw_body]
        assert upstream[-1].headers["authorization"] == f"Bearer {PROVIDER_KEYS['openai']}"
    revoke(process, key)
    for n in range(20):
        with pytest.raises(openai.AuthenticationError) as caught:
            ask_with_key(process, key.secret, n)
        assert caught.value.body["message"] == "invalid Warden key"


def test_a_quarantine_the_guard_trips_is_enforced_by_every_worker(serve):
    process = serve()
    spec = {
        "name": "guarded",
        "guard": {
            "quarantine": {"max_violations": 2, "min_severity": "high", "window_seconds": 600, "duration_seconds": 600}
        },
    }
    profile = httpx.post(f"{process.url}/api/profiles", json=spec).json()["id"]
    agent = new_agent()
    for n in range(2):
        fresh_client(process, agent, profile).chat.completions.create(model="gpt-4o", messages=poisoned_history(n))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        listed = httpx.get(f"{process.url}/api/quarantines").json()["items"]
        if any(q["agent_id"] == agent for q in listed):
            break
        time.sleep(0.1)
    # The guard decided in the background process; each worker follows the quarantine map. Once 20 requests in a
    # row over fresh connections are refused, both workers refuse (each had a 2^-20 chance of being missed).
    refusals = 0
    while refusals < 20 and time.monotonic() < deadline:
        try:
            ask_once(process, agent, 0, profile)
            refusals = 0
        except openai.PermissionDeniedError as refused:
            assert "quarantined" in refused.message
            refusals += 1
    assert refusals == 20
    assert ask_once(process, new_agent(), 0, profile)  # another agent on the same profile is not quarantined


def test_the_background_killed_under_load_is_started_again_and_nothing_is_lost_or_doubled(serve):
    process = serve()
    agent = new_agent()
    (background,) = process.children("warden.background")
    total = 200
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(ask_once, process, agent, n) for n in range(total)]
        while sum(f.done() for f in futures) < total // 3:
            time.sleep(0.01)
        os.kill(background, signal.SIGKILL)
        ids = [f.result() for f in futures]  # every request was answered, background or not
    assert len(set(ids)) == total
    items = wait_stored(process, agent, total, timeout=120)
    assert sorted(i["interaction_id"] for i in items) == sorted(ids)
    (again,) = process.children("warden.background")
    assert again != background


def test_a_frozen_background_does_not_hold_up_any_answer_and_catches_up_when_it_resumes(serve):
    process = serve()
    agent = new_agent()
    (background,) = process.children("warden.background")
    os.kill(background, signal.SIGSTOP)  # the slowest store there is: one that does nothing at all
    try:
        ids = [ask_once(process, agent, n) for n in range(40)]
        sdk = fresh_client(process, agent)
        streamed = sdk.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "stream"}], stream=True
        )
        assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    finally:
        os.kill(background, signal.SIGCONT)
    items = wait_stored(process, agent, len(ids) + 1)
    assert len(items) == len(ids) + 1 and set(ids) <= {i["interaction_id"] for i in items}


def metric(process: ServeProcess, name: str) -> float:
    """A metric's value in ``/metrics`` (every process added up)."""
    text = httpx.get(f"{process.url}/metrics", timeout=30).text
    (value,) = [float(line.split()[1]) for line in text.splitlines() if line.startswith(f"{name} ")]
    return value


def test_large_events_piled_up_in_the_hand_off_reach_a_small_bus_in_rounds_and_none_is_lost(serve):
    """A bus bounded far below what piled up while the background was frozen: the background reads the hand-off logs
    no faster than its bus has room (the rest waits on disk), and every interaction is stored, nothing dropped."""
    bound = 256 * 1024
    process = serve(WARDEN_BUS_MEMORY_MAX_BYTES=str(bound))
    agent = new_agent()
    prompt = "lorem ipsum " * 10_000  # 120 KB asked, 120 KB echoed: each interaction weighs about the bound
    (background,) = process.children("warden.background")
    os.kill(background, signal.SIGSTOP)
    try:
        ids = []
        for _ in range(30):
            raw = fresh_client(process, agent).chat.completions.with_raw_response.create(
                model="gpt-4o", messages=[{"role": "user", "content": prompt}]
            )
            ids.append(raw.headers["x-warden-interaction-id"])
    finally:
        os.kill(background, signal.SIGCONT)
    items = wait_stored(process, agent, len(ids), timeout=120)
    assert sorted(i["interaction_id"] for i in items) == sorted(ids)
    assert metric(process, "warden_bus_dropped_events_total") == 0
    assert metric(process, "warden_handoff_dropped_events_total") == 0
    assert metric(process, "warden_bus_memory_bytes") <= bound


def test_ctrl_c_stops_every_process_and_a_restart_finds_every_event(serve):
    process = serve()
    agent = new_agent()
    ids = [ask_once(process, agent, n) for n in range(30)]
    children = process.children("warden.proxy_worker") + process.children("warden.background")
    output = process.interrupt()
    assert "Warden stopped" in output
    assert all(not os.path.exists(f"/proc/{pid}") or _zombie(pid) for pid in children)
    restarted = serve()
    assert sorted(i["interaction_id"] for i in stored(restarted, agent)) == sorted(ids)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1].startswith("Z")
    except FileNotFoundError:
        return True


def _nice_of_every_thread(pid: int) -> set[int]:
    """The niceness of each thread of a process (Linux keeps one per thread: field 19 of its stat line). chDB's
    memory sampler raises its own priority where it may (it sleeps between samples): left out."""
    values = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        if (task / "comm").read_text().strip() == "MemoryWorker":
            continue
        stat = (task / "stat").read_text()
        values.add(int(stat[stat.rindex(")") + 2 :].split()[16]))
    return values


def test_the_background_runs_below_the_proxy_workers_in_every_thread(serve):
    """On shared cores the proxies answer first: the guard, the logger, chDB and the console yield to them."""
    process = serve()
    agent = new_agent()
    ask_once(process, agent, 0)
    wait_stored(process, agent, 1)  # the store and the logger have started their threads
    workers = {nice for pid in process.children("warden.proxy_worker") for nice in _nice_of_every_thread(pid)}
    (background,) = process.children("warden.background")
    assert len(workers) == 1
    assert _nice_of_every_thread(background) == {min(workers.pop() + 10, 19)}


def _requests_counted(process: ServeProcess, agent: str) -> tuple[float, str]:
    """This agent's requests in ``/metrics``, and the line saying how many workers did not answer. A connection the
    kernel gives a frozen worker is never answered: another one is tried."""
    for _ in range(20):
        try:
            metrics = httpx.get(f"{process.url}/metrics", timeout=5).text.splitlines()
            break
        except httpx.TimeoutException:
            continue
    else:
        raise AssertionError("no worker answered /metrics")
    counted = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics
        if line.startswith("llm_requests_total{") and f'agent_id="{agent}"' in line
    )
    return counted, next(line for line in metrics if line.startswith("warden_serve_workers_unscraped "))


def test_the_summed_counters_never_go_down_when_a_worker_is_killed_or_frozen(serve):
    """Prometheus reads a counter that goes down as a reset and counts the whole sum again: a worker started again
    after a crash, or one too busy to answer a scrape, must not take what it had counted out of the sums."""
    process = serve()
    agent = new_agent()
    for n in range(20):
        ask_once(process, agent, n)
    assert _requests_counted(process, agent) == (20, "warden_serve_workers_unscraped 0.0")

    victim, other = process.children("warden.proxy_worker")
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while True:  # the supervisor starts a new worker in its place, which answers the scrapes again
        counted, unscraped = _requests_counted(process, agent)
        assert counted == 20, "a killed worker's requests left the sum"
        workers = process.children("warden.proxy_worker")
        if victim not in workers and len(workers) == WORKERS and unscraped.endswith(" 0.0"):
            break
        assert time.monotonic() < deadline, "the killed worker was not started again"
        time.sleep(0.2)
    for n in range(10):
        ask_once(process, agent, 100 + n)
    assert _requests_counted(process, agent) == (30, "warden_serve_workers_unscraped 0.0")

    os.kill(other, signal.SIGSTOP)
    try:
        assert _requests_counted(process, agent) == (30, "warden_serve_workers_unscraped 1.0")
    finally:
        os.kill(other, signal.SIGCONT)
    assert _requests_counted(process, agent) == (30, "warden_serve_workers_unscraped 0.0")
