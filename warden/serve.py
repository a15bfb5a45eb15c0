"""``warden serve``: the embedded default as processes, one command and one data directory.

- The background process (``warden/background.py``) owns the store (chDB), the logger, the guard and the console's
  answers.
- ``workers`` proxy processes (``warden/proxy_worker.py``) share the port (``SO_REUSEPORT``); each hands its events
  to the background through a log on disk, so nothing the background does (a slow store, the guard's detectors)
  takes a proxy's interpreter from its requests.
- This process only supervises (``warden/workers.py``): it checks the port, starts the background process and the
  workers, starts again one that ends, and on Ctrl-C / SIGTERM stops the workers first (they finish their requests
  for up to ``stop_grace_s`` and write what they published to disk), then the background (it stores everything the
  workers handed off, for up to ``BACKGROUND_STOP_S``; what it has not stored by then is read again at the next
  start).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from warden.composition import public_url
from warden.embedded import ServeSettings
from warden.serve_child import PARENT_ENV, RUN_DIR_ENV, paths
from warden.startup import StartupError, bind
from warden.workers import Supervisor, default_count

BACKGROUND_STOP_S = 5.0
"""How long the background process gets to store what the stopped workers handed off before it is killed (nothing is
lost then: the hand-off logs are read again at the next start)."""
WORKER_STOP_MARGIN_S = 2.0
"""Beyond ``stop_grace_s``, what a stopping worker gets to write its last events to disk before it is killed."""
READY_NOTE_S = 30.0
"""While the background process or a worker has not answered yet, how often ``warden serve`` says it is still
waiting. There is no deadline: a child that fails at its start ends, and the supervisor gives up after
``max_quick_exits``; one that is only slow (chDB opening the store on a loaded machine takes minutes) is waited for,
not stopped with everything else."""


def worker_count(settings: ServeSettings) -> int:
    return settings.workers or default_count(reserve=1)


def child_environment(settings: ServeSettings, run_dir: Path) -> dict[str, str]:
    """The settings as this process resolved them (flags included), for children that read the environment."""
    return {
        **os.environ,
        "WARDEN_HOST": settings.host,
        "WARDEN_PORT": str(settings.port),
        "WARDEN_DATA_DIR": str(settings.data_dir.resolve()),
        RUN_DIR_ENV: str(run_dir),
        PARENT_ENV: str(os.getpid()),
    }


def _child(module: str, env: dict[str, str], lock_fd: int, *args: str) -> subprocess.Popen[bytes]:
    # A process group of its own: Ctrl-C in a terminal reaches this process only, which stops the children in order.
    # The data directory's lock goes with every child (an inherited descriptor shares the ``flock``): a child that
    # outlives this process (killed outright, its children drain after the death signal) still holds the directory,
    # so another ``warden serve`` is refused with the reason instead of starting beside a store and logs in use.
    return subprocess.Popen([sys.executable, "-m", module, *args], env=env, process_group=0, pass_fds=(lock_fd,))


def _answers(name: str, socket_path: Path, going: Callable[[], bool]) -> bool:
    """Whether the process behind ``socket_path`` answers ``/healthz`` (False once ``going`` turns false)."""
    transport = httpx.HTTPTransport(uds=str(socket_path))
    started = time.monotonic()
    note = started + READY_NOTE_S
    with httpx.Client(transport=transport, timeout=2) as client:
        while going():
            try:
                if client.get("http://process/healthz").status_code == 200:
                    return True
            except httpx.TransportError:
                pass
            if time.monotonic() >= note:
                note += READY_NOTE_S
                waited = time.monotonic() - started
                print(f"Warden starting: still waiting for the {name} ({waited:.0f} s)", flush=True)
            time.sleep(0.1)
    return False


def reserve_port(host: str, port: int) -> socket.socket:
    """Hold ``host:port`` for the proxy workers from now until ``warden serve`` ends: a port in use is said before
    anything starts, and no other program can take it while the background process starts (a minute on a loaded
    machine) or while a worker is started again. The socket stays bound without listening, so every connection goes
    to a worker; it has ``SO_REUSEPORT`` so the workers (same user, same option) may bind beside it, and only they."""
    sock = bind(host, port)  # listening once, without SO_REUSEPORT: fails if anything else holds the port
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.shutdown(socket.SHUT_RDWR)  # on Linux a listening socket stops listening and keeps its address
    # Without SO_REUSEADDR: a bound socket that is not listening would otherwise let any program that sets it (most
    # servers do) bind and listen on the port.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 0)
    return sock


def serve(settings: ServeSettings, lock_fd: int) -> int:
    """Run ``warden serve``; ``lock_fd``: the data directory's lock (``startup.claim_data_dir``), held by the
    caller."""
    with reserve_port(settings.host, settings.port):
        return _serve(settings, lock_fd)


def _serve(settings: ServeSettings, lock_fd: int) -> int:
    run_dir = Path(tempfile.mkdtemp(prefix="warden-"))  # 0700: only this user reaches the sockets
    where = paths(settings, run_dir)
    env = child_environment(settings, run_dir)
    count = worker_count(settings)
    background = Supervisor(
        1,
        lambda _: _child("warden.background", env, lock_fd),
        stop_timeout=BACKGROUND_STOP_S,
        name="background process",
    )
    workers = Supervisor(
        count,
        lambda i: _child("warden.proxy_worker", env, lock_fd, str(i)),
        stop_timeout=settings.stop_grace_s + WORKER_STOP_MARGIN_S,
        name="proxy worker",
    )
    status: list[int] = []

    def run_background() -> None:
        status.append(background.run())
        workers.stop()  # a background that keeps failing at start stops the whole

    thread = threading.Thread(target=run_background, name="background-supervisor")
    thread.start()
    try:
        if not _answers("background process (store, logger, guard)", where.background_socket, thread.is_alive):
            raise StartupError("the background process (store, logger, guard) did not start; see the lines above")

        def say_when_listening() -> None:
            if all(_answers(f"proxy worker {i}", where.worker_socket(i), thread.is_alive) for i in range(count)):
                _say_started(settings, count, background.pids)

        threading.Thread(target=say_when_listening, name="workers-ready", daemon=True).start()
        status.append(workers.run())
    finally:
        why = workers.gave_up or background.gave_up
        if why is not None:
            print(f"Warden stopping because the {why}", file=sys.stderr, flush=True)
        print("Warden stopping: the proxies finish their requests, then draining their events to storage", flush=True)
        workers.stop()
        background.stop()
        thread.join()
        shutil.rmtree(run_dir, ignore_errors=True)
        print("Warden stopped", flush=True)
    return max(status, default=0)


def _say_started(settings: ServeSettings, count: int, background_pids: list[int]) -> None:
    base = public_url(settings)
    print(f"Warden (embedded) listening on {settings.host}:{settings.port}", flush=True)
    print(f"  OpenAI base URL:  {base}/v1/openai", flush=True)
    print(f"  interactions API: {base}/api/interactions    metrics: {base}/metrics", flush=True)
    print(f"  data directory:   {settings.data_dir.resolve()}", flush=True)
    print(f"  processes:        {count} proxy worker(s), background pid {background_pids[0]}", flush=True)
    if settings.admin_token is None:
        print(
            "  WARDEN_ADMIN_TOKEN is not set: /api and /logs answer only clients on this machine, "
            f"under a loopback name ({', '.join(settings.allowed_hosts)})",
            flush=True,
        )
