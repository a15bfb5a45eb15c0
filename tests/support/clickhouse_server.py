"""A real ClickHouse server for the tests, served by the `chdb` wheel: no Docker, no ClickHouse package.

The `chdb-core` wheel is ClickHouse's `clickhouse-local`. Its module-level entry point
`chdb._chdb.query(sql, format, path=DATA_DIR)` runs `LocalServer::main`, which can open ClickHouse's own HTTP and
native TCP listeners (`chdb.connect()` cannot: it never installs the start-servers callback). That entry point takes no
port arguments; clickhouse-local reads `./config.xml` from its working directory. So the launcher (this module run with
`--serve DIR`, one process per server) writes nothing itself: `ClickHouseServer` puts `config.xml` (listen host, ports,
`users_config`) and `users.xml` into DIR; the launcher chdirs there and runs, in one call,
`SYSTEM START LISTEN HTTP; SYSTEM START LISTEN TCP;` and a query that never ends (one row a second from
`system.numbers`), which keeps the listeners open. It stops with `KILL QUERY` for that query, sent over HTTP.

Users (users.xml):
- ``warden``: the admin the tests and Warden use, with a random password per server;
- ``analyst``: read-only (``readonly = 1``), only the ``warden`` database, random password;
- ``default``: no password, loopback only, and granted nothing but ``SYSTEM LISTEN`` and reading ``system.numbers``.
  clickhouse-local runs the launcher's own query as ``default`` with an empty password (it has no option for another
  user), so this user has to exist; anyone on the loopback could at most stop the listeners.

This is an undocumented use of chDB, so the launcher refuses any `chdb-core` other than the one it was written for
(``SUPPORTED_CHDB_CORE``). Known limits: no `system.query_log`; one server per data directory (a second one on the same
directory is refused by ClickHouse's lock).

Library use::

    with ClickHouseServer() as server:      # start() on enter, close() on exit
        server.url                          # "http://warden:<password>@127.0.0.1:<http port>"
        server.analyst_url                  # the read-only user
        server.kill(); server.start()       # SIGKILL, then the same directory on the same ports
        server.restart()                    # graceful stop + start

Command line (from the repository root)::

    python -m tests.support.clickhouse_server --run   # foreground server for development; prints its URLs
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from xml.sax.saxutils import escape

from tests.support.kafka_broker import free_port
from tests.support.lifecycle import ProcessService, run_in_foreground

# The chdb-core release whose clickhouse-local this launcher was written against (major.minor of ClickHouse).
SUPPORTED_CHDB_CORE = "26.9."
REPO_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
ADMIN_USER = "warden"
ANALYST_USER = "analyst"
DATABASE = "warden"
# The never-ending query that keeps the listeners alive; `KILL QUERY` finds it by this prefix (the KILL statement's
# own text starts with KILL, so it never matches itself).
KEEPALIVE = "SELECT count() FROM system.numbers WHERE NOT ignore(sleepEachRow(1)) SETTINGS max_block_size = 1"
_SPEC_FILE = "launcher.json"


class ClickHouseServerError(RuntimeError):
    """The server could not start or stop; the message carries the launcher's log tail."""


def users_xml(admin_password: str, analyst_password: str, *, launcher_user: bool = True) -> str:
    """The users every test server has: the admin, the read-only analyst and (chDB-served only) the launcher's own."""
    launcher = (
        "<default><password></password><networks><ip>::1</ip><ip>127.0.0.1</ip></networks>"
        "<profile>default</profile><quota>default</quota>"
        "<grants><query>GRANT SYSTEM LISTEN ON *.*</query><query>GRANT SELECT ON system.numbers</query></grants>"
        "</default>"
        if launcher_user
        else ""
    )
    return f"""<clickhouse>
  <profiles>
    <default/>
    <analyst><readonly>1</readonly></analyst>
  </profiles>
  <quotas><default/></quotas>
  <users>
    {launcher}
    <{ADMIN_USER}>
      <password>{escape(admin_password)}</password>
      <networks><ip>::/0</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
      <access_management>1</access_management>
    </{ADMIN_USER}>
    <{ANALYST_USER}>
      <password>{escape(analyst_password)}</password>
      <networks><ip>::/0</ip></networks>
      <profile>analyst</profile>
      <quota>default</quota>
      <allow_databases><database>{DATABASE}</database></allow_databases>
    </{ANALYST_USER}>
  </users>
</clickhouse>
"""


def http_query(port: int, user: str, password: str, sql: str, timeout: float = 5.0) -> str:
    """One statement over ClickHouse's HTTP interface; raises urllib's errors (HTTPError carries the server's text)."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    request = urllib.request.Request(
        f"http://{HOST}:{port}/", data=sql.encode(), headers={"Authorization": f"Basic {token}"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read().decode()


# ---- the launcher process (`--serve DIR`) --------------------------------------------------------------------------


def _check_chdb_version() -> str:
    version = metadata.version("chdb-core")
    if not version.startswith(SUPPORTED_CHDB_CORE):
        raise SystemExit(
            f"chdb-core {version} is installed; this launcher drives clickhouse-local's server mode as found in "
            f"chdb-core {SUPPORTED_CHDB_CORE}x and must be checked against another release before use"
        )
    return version


def _die_with_parent() -> None:
    # Linux PR_SET_PDEATHSIG: SIGTERM when the spawning thread's process dies; the launcher turns it into a clean stop.
    import ctypes

    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


def serve(workdir: Path) -> int:
    """Run the server described by ``workdir`` in this process until SIGINT/SIGTERM or the parent's death."""
    # Before chDB is loaded: its engine installs signal handlers of its own, and the threads it starts inherit this
    # mask, so SIGINT/SIGTERM reach only the waiter below and become an orderly KILL QUERY.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    spec = json.loads((workdir / _SPEC_FILE).read_text())
    parent = int(spec["parent_pid"])
    tmp = workdir / "tmp"
    tmp.mkdir(exist_ok=True)
    os.environ["TMPDIR"] = str(tmp)
    version = _check_chdb_version()
    # chdb opens an in-memory session when imported, authenticating as `default` after reading ./config.xml if there
    # is one, so import it from a directory without one.
    os.chdir(tmp)
    import chdb._chdb as engine

    os.chdir(workdir)
    stopping = threading.Event()

    def stop_keepalive(reason: str) -> None:
        if stopping.is_set():
            return
        stopping.set()
        print(f"stopping ({reason})", flush=True)
        sql = f"KILL QUERY WHERE query LIKE '{KEEPALIVE[:40]}%'"
        for _ in range(50):
            try:
                http_query(spec["http_port"], spec["admin_user"], spec["admin_password"], sql)
                return
            except (OSError, urllib.error.URLError):
                time.sleep(0.1)
        os._exit(1)  # the listeners never answered: nothing left to stop cleanly

    def wait_for_signal() -> None:
        sig = signal.sigwait({signal.SIGINT, signal.SIGTERM})
        stop_keepalive(signal.Signals(sig).name)

    def watch_parent() -> None:
        while not stopping.wait(0.5):
            if os.getppid() != parent:
                stop_keepalive("parent exited")

    threading.Thread(target=wait_for_signal, daemon=True, name="signals").start()
    threading.Thread(target=watch_parent, daemon=True, name="parent").start()
    print(f"chdb-core {version}: serving {workdir / 'data'} on http {spec['http_port']}, tcp {spec['tcp_port']}")
    sys.stdout.flush()
    try:
        # The format given here becomes the session default that HTTP clients inherit: TabSeparated, as a real
        # server's (clickhouse-connect reads its start-up queries' answers as such).
        engine.query(
            f"SYSTEM START LISTEN HTTP; SYSTEM START LISTEN TCP; {KEEPALIVE}",
            "TabSeparated",
            path=str(workdir / "data"),
        )
    except Exception as exc:
        if not stopping.is_set():
            print(f"server failed: {exc}", file=sys.stderr, flush=True)
            return 1
    if not stopping.is_set():
        print("the keep-alive query ended on its own", file=sys.stderr, flush=True)
        return 1
    print("stopped", flush=True)
    return 0


# ---- the handle the tests hold ---------------------------------------------------------------------------------------

_live_servers: weakref.WeakSet[ClickHouseServer] = weakref.WeakSet()


@atexit.register
def _kill_leftovers() -> None:
    # A server outliving the interpreter would hold its ports and directory.
    for server in list(_live_servers):
        server.kill()
        if server._owns_workdir:
            shutil.rmtree(server.workdir, ignore_errors=True)


class ClickHouseServer(ProcessService):
    """One ClickHouse server (chDB's clickhouse-local in server mode) in its own process, restartable on the same
    directory and ports."""

    flavour = "chdb"

    def __init__(
        self,
        *,
        workdir: str | os.PathLike[str] | None = None,
        http_port: int | None = None,
        tcp_port: int | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        self.http_port = http_port or free_port()
        self.tcp_port = tcp_port or free_port()
        while self.tcp_port == self.http_port:
            self.tcp_port = free_port()
        self._owns_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="warden-clickhouse-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.workdir / "data"
        self.log_path = self.workdir / "server.log"
        self.admin_password = secrets.token_urlsafe(18)
        self.analyst_password = secrets.token_urlsafe(18)
        self.start_timeout = start_timeout
        self.started_in: float | None = None  # seconds from spawn to answering, of the last start
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    host = HOST
    admin_user = ADMIN_USER
    analyst_user = ANALYST_USER

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs (the launcher serves in its own process)."""
        return self._proc.pid if self._proc is not None else None

    @property
    def url(self) -> str:
        """What ``WARDEN_CLICKHOUSE_URL`` takes: the admin user's HTTP URL."""
        return f"http://{self.admin_user}:{self.admin_password}@{self.host}:{self.http_port}"

    @property
    def analyst_url(self) -> str:
        return f"http://{self.analyst_user}:{self.analyst_password}@{self.host}:{self.http_port}"

    def query(self, sql: str, *, analyst: bool = False, timeout: float = 10.0) -> str:
        """One statement over HTTP as the admin (or the analyst); raises HTTPError carrying the server's text."""
        if analyst:
            return http_query(self.http_port, self.analyst_user, self.analyst_password, sql, timeout)
        return http_query(self.http_port, self.admin_user, self.admin_password, sql, timeout)

    error = ClickHouseServerError
    poll_interval = 0.05

    def _probe(self) -> str | None:
        """Ready once ``SELECT version()`` answers over HTTP as the admin."""
        try:
            self.query("SELECT version()", timeout=2.0)
        except urllib.error.HTTPError as exc:
            return f"HTTP {exc.code}: {exc.read().decode(errors='replace')[:300]}"
        except (OSError, urllib.error.URLError) as exc:
            return f"{type(exc).__name__}: {exc}"
        self.started_in = time.monotonic() - self._spawned_at
        return None

    async def astart(self) -> None:
        if self.is_running:
            return
        with self._lock:
            if self.is_running:
                return
            self._spawn()
        await asyncio.to_thread(self.wait_ready)

    def _ended(self, proc: subprocess.Popen[bytes], graceful: bool) -> None:
        _live_servers.discard(self)

    def __repr__(self) -> str:
        state = "running" if self.is_running else "stopped"
        return f"ClickHouseServer({self.host}:{self.http_port}, chdb, {state}, {self.workdir})"

    def _write_config(self) -> None:
        (self.workdir / "users.xml").write_text(users_xml(self.admin_password, self.analyst_password))
        (self.workdir / "config.xml").write_text(
            "<clickhouse>\n"
            f"  <listen_host>{HOST}</listen_host>\n"
            f"  <http_port>{self.http_port}</http_port>\n"
            f"  <tcp_port>{self.tcp_port}</tcp_port>\n"
            f"  <users_config>{escape(str(self.workdir / 'users.xml'))}</users_config>\n"
            "</clickhouse>\n"
        )
        spec = {
            "parent_pid": os.getpid(),
            "http_port": self.http_port,
            "tcp_port": self.tcp_port,
            "admin_user": self.admin_user,
            "admin_password": self.admin_password,
        }
        spec_path = self.workdir / _SPEC_FILE
        spec_path.write_text(json.dumps(spec))
        spec_path.chmod(0o600)

    def _spawn(self) -> None:
        self._write_config()
        path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "PYTHONPATH": path}
        on_main_thread = threading.current_thread() is threading.main_thread()
        with self.log_path.open("ab") as log:
            log.write(f"\n==== starting on {self.host}:{self.http_port} ====\n".encode())
            log.flush()
            self._spawned_at = time.monotonic()
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "tests.support.clickhouse_server", "--serve", str(self.workdir)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO_ROOT,
                env=env,
                # Own session: a Ctrl-C meant for pytest reaches the server only through stop().
                start_new_session=True,
                # PDEATHSIG fires when the *thread* that forked exits, so only tie it to the long-lived main thread;
                # the launcher also watches its parent itself.
                preexec_fn=_die_with_parent if on_main_thread else None,
            )
        _live_servers.add(self)


def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.clickhouse_server", description=__doc__.split("\n")[0]
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--run", action="store_true", help="run a server in the foreground until Ctrl-C")
    mode.add_argument("--serve", metavar="DIR", help="(internal) the launcher process for the server in DIR")
    parser.add_argument("--data-dir", default=None, help="--run: keep data here across runs (default: a temp dir)")
    args = parser.parse_args(argv)
    if args.serve:
        return serve(Path(args.serve).resolve())

    server = ClickHouseServer(workdir=args.data_dir)
    return run_in_foreground(
        server,
        lambda: (
            f"ClickHouse ready in {server.started_in:.2f}s\nadmin:   {server.url}\n"
            f"analyst: {server.analyst_url}\nnative:  {HOST}:{server.tcp_port}"
        ),
        keep_data=bool(args.data_dir),
    )


if __name__ == "__main__":
    sys.exit(_main())
