"""A real Redis server for the tests: Debian's ``redis-server`` on a free loopback port, with a password and no
persistence (``--save ''``, no append-only file), its working directory a temp dir deleted on close.

Library use::

    with RedisServer() as server:           # start() on enter, close() on exit
        server.url                          # "redis://:<password>@127.0.0.1:<port>/0"
        server.kill(); server.start()       # SIGKILL, then a fresh (empty) server on the same port
        server.restart()                    # graceful stop + start

Command line (from the repository root)::

    python -m tests.support.redis_server --run   # foreground server for development; prints its URL

``scripts/test-prerequisites`` installs the package when it is missing (``apt-get install redis-server``).
Environment: WARDEN_REDIS_SERVER (the binary; default ``redis-server`` on PATH).
"""

from __future__ import annotations

import argparse
import atexit
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import weakref
from collections.abc import Sequence
from pathlib import Path

from tests.support.kafka_broker import _die_with_parent, free_port
from tests.support.lifecycle import ProcessService, run_in_foreground

HOST = "127.0.0.1"


class RedisServerError(RuntimeError):
    """The server could not start; the message carries its log tail."""


def find_redis_server() -> str:
    binary = os.environ.get("WARDEN_REDIS_SERVER") or shutil.which("redis-server")
    if not binary:
        raise RedisServerError(
            "no `redis-server` on PATH (apt-get install -y redis-server, or run scripts/test-prerequisites)"
        )
    return binary


_live: weakref.WeakSet[RedisServer] = weakref.WeakSet()


@atexit.register
def _kill_leftovers() -> None:
    for server in list(_live):
        server.kill()
        if server._owns_workdir:
            shutil.rmtree(server.workdir, ignore_errors=True)


class RedisServer(ProcessService):
    error = RedisServerError
    start_timeout = 30.0
    poll_interval = 0.05

    def __init__(self, *, port: int | None = None, workdir: str | os.PathLike[str] | None = None) -> None:
        self.port = port or free_port()
        self.password = secrets.token_urlsafe(18)
        self._owns_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="warden-redis-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / "redis.log"
        self._proc = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@{HOST}:{self.port}/0"

    def __repr__(self) -> str:
        return f"RedisServer({HOST}:{self.port}, {'running' if self.is_running else 'stopped'}, {self.workdir})"

    def _spawn(self) -> None:
        # The password goes in on stdin as a config file ("-"), so it is not on the process list.
        config = "\n".join(
            [
                f"bind {HOST}",
                f"port {self.port}",
                "protected-mode yes",
                f"requirepass {self.password}",
                "save ''",
                "appendonly no",
                f"dir {self.workdir}",
                "daemonize no",
                "loglevel notice",
                "",
            ]
        )
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [find_redis_server(), "-"],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,
                # Gone with the test process even when it is killed outright (PDEATHSIG follows the forking thread).
                preexec_fn=_die_with_parent if threading.current_thread() is threading.main_thread() else None,
            )
        assert self._proc.stdin is not None
        self._proc.stdin.write(config.encode())
        self._proc.stdin.close()
        _live.add(self)

    def _probe(self) -> str | None:
        # AUTH then PING over a plain socket: "+PONG" only from a server that took the password.
        try:
            with socket.create_connection((HOST, self.port), timeout=1.0) as sock:
                sock.sendall(f"AUTH {self.password}\r\nPING\r\n".encode())
                answer = b""
                while b"PONG" not in answer and len(answer) < 1024:
                    chunk = sock.recv(1024)
                    if not chunk:
                        break
                    answer += chunk
        except OSError as exc:
            return f"{type(exc).__name__}: {exc}"
        return None if b"+OK\r\n+PONG" in answer else f"answered {answer[:80]!r}"

    def _ended(self, proc: subprocess.Popen[bytes], graceful: bool) -> None:
        _live.discard(self)


def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.redis_server", description=__doc__.split("\n")[0])
    parser.add_argument("--run", action="store_true", required=True, help="run a server in the foreground")
    parser.add_argument("--port", type=int, default=None, help="port (default: a free one)")
    args = parser.parse_args(argv)
    server = RedisServer(port=args.port)
    return run_in_foreground(server, lambda: f"Redis ready: {server.url}", keep_data=False)


if __name__ == "__main__":
    sys.exit(_main())
