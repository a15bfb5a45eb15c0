"""A configuration mistake stops ``warden serve`` with one line naming the setting and what is wrong with it, and a
non-zero status: no traceback, and no "listening" line for a server that never listened."""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.serve_process import ServeProcess, serve_until_exit
from tests.support.warden_server import free_port
from warden.startup import LOCK_FILE

_PR_SET_CHILD_SUBREAPER = 36


def assert_refused(done: subprocess.CompletedProcess[str], *names: str) -> str:
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout
    assert "listening" not in done.stdout.lower()
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for name in names:
        assert name in lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"WARDEN_CUSTOM_PROVIDERS": '{"vllm": "http://127.0.0.1:8000/v1"'}, ("WARDEN_CUSTOM_PROVIDERS", "JSON")),
        ({"WARDEN_CUSTOM_PROVIDERS": '{"openai": "http://127.0.0.1:8000/v1"}'}, ("WARDEN_CUSTOM_PROVIDERS", "shadow")),
        ({"WARDEN_CUSTOM_PROVIDERS": '{"vllm": "127.0.0.1:8000/v1"}'}, ("WARDEN_CUSTOM_PROVIDERS", "vllm", "http://")),
        ({"WARDEN_OPENAI_BASE_URL": "api.openai.com/v1"}, ("WARDEN_OPENAI_BASE_URL", "http://")),
        ({"WARDEN_PUBLIC_URL": "warden.example.com"}, ("WARDEN_PUBLIC_URL", "http://")),
        ({"WARDEN_MAX_BODY_BYTES": "32MB"}, ("WARDEN_MAX_BODY_BYTES", "integer")),
        ({"WARDEN_LOG_LEVEL": "verbose"}, ("WARDEN_LOG_LEVEL", "verbose")),
    ],
)
def test_a_bad_setting_is_one_line_naming_it(tmp_path, env, names):
    assert_refused(serve_until_exit(tmp_path / "data", free_port(), env), *names)


def test_an_admin_token_is_never_echoed(tmp_path):
    line = assert_refused(serve_until_exit(tmp_path / "data", free_port(), {"WARDEN_ADMIN_TOKEN": "   "}))
    assert "WARDEN_ADMIN_TOKEN" in line


def test_a_data_directory_that_cannot_be_created_is_named(tmp_path):
    occupied = tmp_path / "a-file"
    occupied.write_text("not a directory")
    assert_refused(serve_until_exit(occupied, free_port()), "--data-dir", "WARDEN_DATA_DIR", str(occupied))
    assert_refused(serve_until_exit(occupied / "data", free_port()), "--data-dir", "cannot create")


def test_a_data_directory_in_use_by_another_warden_is_said_so(tmp_path):
    first = ServeProcess(tmp_path / "data").start()
    try:
        done = serve_until_exit(tmp_path / "data", free_port())
        line = assert_refused(done, "--data-dir", "in use by another Warden")
        assert first.proc is not None and f"pid {first.proc.pid}" in line
    finally:
        first.kill()
    # Once the first one is gone the directory is free again.
    again = ServeProcess(tmp_path / "data").start()
    again.kill()


def test_a_port_in_use_is_named_before_anything_starts(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = serve_until_exit(tmp_path / "data", port)
    assert_refused(done, "--port", "WARDEN_PORT", str(port), "already in use")
    assert not (tmp_path / "data" / "clickhouse").exists()  # refused before the store was opened


def warden(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "warden.cli", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_version():
    done = warden("--version")
    assert done.returncode == 0
    assert done.stdout.startswith("warden ") and done.stdout.split()[1][0].isdigit()


def test_serve_help_says_what_it_runs():
    done = warden("serve", "--help")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    for part in ("guard", "logger", "logs viewer", "proxy"):
        assert part in text


def _gone(pid: int) -> bool:
    """Ended: no such process, or a zombie nobody reaped yet (its files, and so its locks, are closed)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def _holds(pid: int, path: Path) -> bool:
    with contextlib.suppress(FileNotFoundError):
        return any(os.readlink(fd) == str(path) for fd in Path(f"/proc/{pid}/fd").iterdir() if fd.is_symlink())
    return False


@contextlib.contextmanager
def _adopting_orphans() -> Iterator[None]:
    """This process adopts the orphans of its descendants (``PR_SET_CHILD_SUBREAPER``): a stopped process whose
    parent died then keeps a parent in this session, and the kernel does not end it with SIGHUP as it does the
    members of an orphaned process group."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    try:
        yield
    finally:
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def test_a_warden_killed_outright_keeps_its_directory_until_its_processes_end_and_a_restart_waits_for_them(tmp_path):
    with _adopting_orphans():
        _killed_outright_then_restarted(tmp_path)


def _killed_outright_then_restarted(tmp_path: Path) -> None:
    lock_path = (tmp_path / "data" / LOCK_FILE).resolve()
    first = ServeProcess(tmp_path / "data").start()
    children = first.children("warden.background") + first.children("warden.proxy_worker")
    assert len(children) >= 2
    for pid in children:  # held mid-stop, as on a loaded machine: they end after the supervisor
        os.kill(pid, signal.SIGSTOP)
    second = ServeProcess(tmp_path / "data")
    starting = threading.Thread(target=second.start)
    try:
        first.kill()
        with lock_path.open("a+") as lock, pytest.raises(BlockingIOError):
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the first Warden's children still hold it
        starting.start()
        while second.proc is None or not _holds(second.proc.pid, lock_path):
            assert second.proc is None or second.proc.poll() is None, second.output()
            time.sleep(0.1)
        # The second one is waiting for the directory: it started nothing beside the first one's store.
        assert second.children("warden.background") == [] and second.proc.poll() is None
    finally:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)  # each gets its death signal's SIGTERM and stores what it holds
    starting.join()
    try:
        assert second.proc is not None and second.proc.poll() is None, second.output()
        assert httpx.get(f"{second.url}/healthz").status_code == 200
        assert all(_gone(pid) for pid in children)  # they had ended before the second one took the directory
    finally:
        second.interrupt()
        for pid in children:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)  # adopted: reaped here


def test_a_worker_that_keeps_failing_at_start_stops_warden_serve_which_says_which_and_how(tmp_path):
    worker_log = tmp_path / "data" / "handoff" / "worker-0"
    worker_log.mkdir(parents=True)
    with (worker_log / "lock").open("ab") as held:  # another process has worker 0's hand-off log
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        done = serve_until_exit(tmp_path / "data", free_port(), {"WARDEN_WORKERS": "1"}, timeout=600)
    assert done.returncode != 0
    assert "listening" not in done.stdout.lower()
    assert f"{worker_log} is used by another process" in done.stderr  # the worker's own error
    stopping = [line for line in done.stderr.splitlines() if line.startswith("Warden stopping because")]
    assert len(stopping) == 1, done.stderr
    assert "proxy worker 0 (pid" in stopping[0] and "exited with status 1" in stopping[0]
    assert "the 5th time in a row" in stopping[0]
