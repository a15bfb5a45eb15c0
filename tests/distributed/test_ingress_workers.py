"""``warden ingress --workers 2`` on a real broker: two processes answer on one port, each with an event log of its own,
and a worker killed while the broker hangs loses nothing it answered: its restart replays its log."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import signal
import time
import uuid
from pathlib import Path

import httpx
import openai

from plumbing.bus.spool import _frames, worker_directory
from plumbing.bus.topics_admin import create_topics
from tests.conftest import API_KEY
from tests.distributed.test_nothing_lost import logger, stored, wait_until_logged
from tests.support.processes import WardenProcess
from tests.support.warden_server import free_port

TOTAL = 200


def children(pid: int) -> dict[int, int]:
    """The worker index → pid of a supervisor's running children (from their command lines)."""
    found = {}
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        try:
            args = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except FileNotFoundError:
            continue
        for arg in args:
            if arg.startswith(b"--worker-index="):
                found[int(arg.split(b"=")[1])] = int(child)
    return found


def listeners(port: int) -> int:
    """How many sockets listen on ``port`` (each worker has its own)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            count += int(local.split(":")[1], 16) == port and state == "0A"
    return count


def logged(directory: Path) -> int:
    """Events in a worker's event log (read from the files: the worker holds the directory)."""
    return sum(1 for path in directory.glob("wal-*.log") for _ in _frames(path))


def wait(predicate, what: str, process: WardenProcess, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what}: {process.output()}"
        time.sleep(0.05)


def start_workers(tmp_path, bootstrap: str, upstream: str, port: int) -> WardenProcess:
    ingress = WardenProcess(
        ["ingress", "--workers", "2", "--port", str(port), "--data-dir", str(tmp_path / "ingress")],
        {"WARDEN_KAFKA_BOOTSTRAP_SERVERS": bootstrap, "WARDEN_OPENAI_BASE_URL": upstream, "WARDEN_HOST": "127.0.0.1"},
        ready_url=f"http://127.0.0.1:{port}/healthz",
    ).start()
    wait(lambda: listeners(port) == 2, "both workers listening", ingress)
    return ingress


def answer_on_fresh_connections(port: int, agent: str, count: int) -> list[str]:
    """Each request on a new connection, so the kernel spreads them over the workers."""
    sdk = openai.OpenAI(
        base_url=f"http://127.0.0.1:{port}/v1/openai",
        api_key=API_KEY,
        max_retries=0,
        default_headers={"X-Archestra-Agent-Id": agent},
        timeout=30,
        http_client=httpx.Client(limits=httpx.Limits(max_keepalive_connections=0)),
    )

    def call(n: int) -> str:
        return sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": f"n{n}"}]).id

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        return list(pool.map(call, range(count)))


def run_through_two_workers(kafka_broker, bootstrap: str, fake_openai, tmp_path, *, kill_worker: bool) -> None:
    asyncio.run(create_topics(bootstrap, partitions=3))
    agent = f"workers-{uuid.uuid4().hex[:8]}"
    port = free_port()
    ingress = start_workers(tmp_path, bootstrap, fake_openai.url + "/v1", port)
    logs = [worker_directory(tmp_path / "ingress" / "spool" / "ingress", index) for index in (0, 1)]
    sink = None
    try:
        assert ingress.proc is not None
        os.kill(kafka_broker.pid, signal.SIGSTOP)  # the broker hangs: every answered event waits in a worker's log
        try:
            assert len(set(answer_on_fresh_connections(port, agent, TOTAL))) == TOTAL
            wait(lambda: sum(logged(d) for d in logs) == 2 * TOTAL, "every answered event logged", ingress)
            assert all(logged(d) > 0 for d in logs), "one worker answered everything"
            if kill_worker:
                killed = children(ingress.proc.pid)[0]
                os.kill(killed, signal.SIGKILL)
                wait(lambda: children(ingress.proc.pid).get(0, killed) != killed, "worker 0 restarted", ingress)
                assert logged(logs[0]) > 0  # what it answered is on disk, for its successor to replay
        finally:
            os.kill(kafka_broker.pid, signal.SIGCONT)
        wait(lambda: sum(logged(d) for d in logs) == 0, "every event delivered", ingress)
        sink = logger(tmp_path, bootstrap).start()
        wait_until_logged(bootstrap, sink)
        sink.interrupt()
        ingress.interrupt()
        assert ingress.proc.returncode == 0, ingress.output()
    finally:
        ingress.stop()
        if sink is not None:
            sink.stop()
    logical, done, physical = stored(tmp_path, agent)
    assert (logical, done) == (TOTAL, TOTAL)  # every interaction, each once
    assert physical >= TOTAL


def test_two_workers_on_one_port_store_every_interaction_once(kafka_broker, kafka_bootstrap, fake_openai, tmp_path):
    run_through_two_workers(kafka_broker, kafka_bootstrap, fake_openai, tmp_path, kill_worker=False)


def test_a_worker_killed_during_a_broker_pause_is_restarted_and_replays_what_it_answered(
    kafka_broker, kafka_bootstrap, fake_openai, tmp_path
):
    run_through_two_workers(kafka_broker, kafka_bootstrap, fake_openai, tmp_path, kill_worker=True)


def run_dir(pid: int) -> Path:
    """The supervisor's private directory, where its workers answer each other's metrics requests."""
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        for arg in Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0"):
            if arg.startswith(b"--run-dir="):
                return Path(arg.split(b"=", 1)[1].decode())
    raise AssertionError("no worker was given a run directory")


def requests_of(metrics: str, agent: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("llm_requests_total{") and f'agent_id="{agent}"' in line
    )


def test_metrics_on_the_shared_port_add_up_every_worker_whichever_answers(kafka_bootstrap, fake_openai, tmp_path):
    asyncio.run(create_topics(kafka_bootstrap, partitions=3))
    agent = f"metrics-{uuid.uuid4().hex[:8]}"
    port = free_port()
    ingress = start_workers(tmp_path, kafka_bootstrap, fake_openai.url + "/v1", port)
    try:
        assert ingress.proc is not None
        count = 40
        assert len(set(answer_on_fresh_connections(port, agent, count))) == count
        # Each worker's own figures, asked on its private socket: both carried traffic, so one worker's figures
        # alone would fall short of the total.
        directory = run_dir(ingress.proc.pid)
        sockets = sorted(directory.glob("worker-*.sock"))
        own = []
        for path in sockets:
            with httpx.Client(transport=httpx.HTTPTransport(uds=str(path)), timeout=10) as client:
                own.append(requests_of(client.get("http://worker/metrics").text, agent))
        assert len(own) == 2 and all(n > 0 for n in own) and sum(own) == count, own
        # Scrapes on fresh connections reach either worker; each one counts every request once.
        for _ in range(12):
            with httpx.Client(limits=httpx.Limits(max_keepalive_connections=0), timeout=30) as client:
                metrics = client.get(f"http://127.0.0.1:{port}/metrics").text
            assert requests_of(metrics, agent) == count
            assert "warden_ingress_workers_unscraped 0.0" in metrics.splitlines()
            families = [line.split()[2] for line in metrics.splitlines() if line.startswith("# TYPE ")]
            assert len(families) == len(set(families))
        ingress.interrupt()
        assert ingress.proc.returncode == 0, ingress.output()
        assert not directory.exists()  # the sockets go with the supervisor
    finally:
        ingress.stop()
