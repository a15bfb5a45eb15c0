"""The worker supervisor: children really share one port, a killed child is started again, a stop reaches them all."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from tests.support.warden_server import free_port
from warden.workers import Supervisor, default_count, reuse_port_socket

# A child: listens on the shared port with SO_REUSEPORT and answers each connection with "<index> <pid>".
CHILD = """
import os, socket, sys
from warden.workers import reuse_port_socket
sock = reuse_port_socket(socket.AF_INET, socket.SOCK_STREAM)
sock.bind(("127.0.0.1", int(sys.argv[1])))
sock.listen(64)
while True:
    conn, _ = sock.accept()
    conn.sendall(f"{sys.argv[2]} {os.getpid()}".encode())
    conn.close()
"""


def ask(port: int) -> tuple[int, int] | None:
    """(index, pid) of the child that answered, or None while none listens."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            answer = conn.recv(100).decode()
    except OSError:
        return None
    if not answer:
        return None
    index, pid = answer.split()
    return int(index), int(pid)


def answers(port: int, until, timeout: float = 60) -> set[tuple[int, int]]:
    """Ask until ``until(seen)`` holds; the test fails if it never does."""
    seen: set[tuple[int, int]] = set()
    deadline = time.monotonic() + timeout
    while not until(seen):
        assert time.monotonic() < deadline, f"only {seen} answered"
        answer = ask(port)
        if answer is not None:
            seen.add(answer)
        else:
            time.sleep(0.05)
    return seen


@pytest.fixture
def supervised() -> Iterator[tuple[Supervisor, int, threading.Thread]]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}

    def start(index: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-c", CHILD, str(port), str(index)], env=env)

    supervisor = Supervisor(2, start, stop_timeout=10, restart_delay=0.1)
    thread = threading.Thread(target=supervisor.run)
    thread.start()
    try:
        yield supervisor, port, thread
    finally:
        supervisor.stop()
        thread.join(30)


def test_two_children_answer_on_one_port(supervised) -> None:
    supervisor, port, _ = supervised
    seen = answers(port, lambda seen: {index for index, _ in seen} == {0, 1})
    assert {pid for _, pid in seen} == set(supervisor.pids)


def test_a_killed_child_is_started_again_on_the_same_port(supervised) -> None:
    supervisor, port, _ = supervised
    answers(port, lambda seen: {index for index, _ in seen} == {0, 1})
    killed = supervisor.pids[0]
    os.kill(killed, signal.SIGKILL)
    seen = answers(port, lambda seen: any(index == 0 and pid != killed for index, pid in seen))
    restarted = next(pid for index, pid in seen if index == 0 and pid != killed)
    assert supervisor.pids[0] == restarted
    assert supervisor.restarts == 1


def test_stop_ends_every_child(supervised) -> None:
    supervisor, port, thread = supervised
    answers(port, lambda seen: {index for index, _ in seen} == {0, 1})
    pids = supervisor.pids
    supervisor.stop()
    thread.join(30)
    assert not thread.is_alive()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # reaped: gone
    assert ask(port) is None


def test_sigterm_to_the_supervisor_stops_the_children() -> None:
    """The supervisor as its own process (signal handlers need the main thread): SIGTERM ends it and its children."""
    port = free_port()
    program = f"""
import subprocess, sys
from warden.workers import Supervisor
child = {CHILD!r}
sys.exit(Supervisor(2, lambda i: subprocess.Popen([sys.executable, "-c", child, "{port}", str(i)])).run())
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    parent = subprocess.Popen([sys.executable, "-c", program], env=env)
    try:
        seen = answers(port, lambda seen: {index for index, _ in seen} == {0, 1})
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(60) == 0
        for _, pid in seen:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
    finally:
        parent.kill()


def test_a_child_that_keeps_failing_at_start_ends_the_supervisor_with_its_status() -> None:
    def start(_index: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-c", "raise SystemExit(2)"])

    supervisor = Supervisor(2, start, restart_delay=0.01, max_quick_exits=3)
    assert supervisor.run() == 2
    assert supervisor.restarts >= 2


def test_default_count_leaves_the_reserve_and_is_at_least_one() -> None:
    cores = len(os.sched_getaffinity(0))
    assert default_count(0) == cores
    assert default_count(cores + 5) == 1
    with pytest.raises(ValueError):
        Supervisor(0, lambda i: subprocess.Popen([sys.executable, "-c", ""]))


def test_a_child_that_keeps_failing_says_which_one_and_how_it_ended(caplog) -> None:
    def start(_index: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"])

    supervisor = Supervisor(1, start, restart_delay=0.01, max_quick_exits=2, name="proxy worker")
    with caplog.at_level("WARNING", logger="warden.workers"):
        assert supervisor.run() == -signal.SIGKILL
    assert supervisor.gave_up is not None and "proxy worker 0 (pid" in supervisor.gave_up
    assert "was killed by SIGKILL" in supervisor.gave_up
    messages = [record.getMessage() for record in caplog.records]
    assert any("proxy worker 0" in m and "starting it again" in m for m in messages), messages
    assert any(m.startswith(supervisor.gave_up) for m in messages), messages


def test_the_reserved_port_refuses_other_programs_and_gives_every_connection_to_the_workers() -> None:
    from warden.serve import reserve_port

    port = free_port()
    with reserve_port("127.0.0.1", port):
        other = socket.socket()
        with pytest.raises(OSError):
            other.bind(("127.0.0.1", port))
        other.close()
        with socket.socket() as other_without_reuse:
            other_without_reuse.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            with pytest.raises(OSError):
                other_without_reuse.bind(("127.0.0.1", port))
                other_without_reuse.listen()
        with pytest.raises(ConnectionRefusedError):  # the reservation itself never accepts a connection
            socket.create_connection(("127.0.0.1", port), timeout=5)
        with reuse_port_socket(socket.AF_INET, socket.SOCK_STREAM) as worker:
            worker.bind(("127.0.0.1", port))
            worker.listen()
            for _ in range(8):
                with socket.create_connection(("127.0.0.1", port), timeout=5):
                    worker.accept()[0].close()
    with socket.socket() as after:  # released when warden serve ends
        after.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the connections above left TIME_WAITs
        after.bind(("127.0.0.1", port))
        after.listen()
