"""Shared pieces of the benchmarks: a canned nginx upstream, Warden as a subprocess, wrk as the load generator,
CPU pinning, the read API's interaction count, py-spy summaries and the result table.

Everything runs on loopback. The load generator is wrk (C): a Python client would saturate its core long before
Warden does on a 2-core machine.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
NGINX_DIR = BENCH_DIR / "nginx"
RESULTS_DIR = BENCH_DIR / "results"

INSTALL_HINT = {
    "nginx": "apt-get update && apt-get install -y nginx",
    "wrk": "apt-get update && apt-get install -y wrk",
    "py-spy": f"{sys.executable} -m pip install py-spy",
}


class BenchError(RuntimeError):
    """A benchmark cannot run or produced an unusable result; the message says what to do."""


# --- tools and CPUs -------------------------------------------------------------------------------------------------


def require_tools(names: Sequence[str]) -> dict[str, str]:
    """Absolute paths of the named executables, or a BenchError telling how to install the missing ones."""
    # Tools pip-installed into the running venv (py-spy) are found even when the venv is not on PATH.
    search = os.pathsep.join([os.environ.get("PATH", ""), str(Path(sys.executable).parent)])
    found = {name: shutil.which(name, path=search) for name in names}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        hints = "\n".join(f"  {name}: {INSTALL_HINT.get(name, '(install it)')}" for name in missing)
        raise BenchError(f"missing tool(s): {', '.join(missing)}. Install with:\n{hints}")
    return {name: path for name, path in found.items() if path is not None}


_nice = 0
_AUTOGROUP = Path("/proc/self/autogroup")
_autogroup_before: list[int] = []


def set_nice(value: int) -> None:
    """Niceness for every process the benchmark starts (negative, as root: fewer interruptions from other work).

    With the kernel's autogroup scheduling, nice only ranks processes within one session's group; groups share a
    CPU equally. So the niceness is also given to this session's group (/proc/self/autogroup), which the children
    inherit; this affects the other processes of the session that started the benchmark too."""
    global _nice
    _nice = value
    if value:
        with contextlib.suppress(OSError, ValueError):
            _autogroup_before.append(int(_AUTOGROUP.read_text().split()[-1]))
            _AUTOGROUP.write_text(str(value))


def restore_nice() -> None:
    """Gives the session's group back the niceness it had before set_nice()."""
    while _autogroup_before:
        with contextlib.suppress(OSError):
            _AUTOGROUP.write_text(str(_autogroup_before.pop()))


def pinned(cpus: str | None) -> list[str]:
    """A `taskset -c CPUS` prefix (nothing when no CPU list was given or taskset is missing), after a `nice -n N`
    prefix when a niceness was set."""
    prefix = ["nice", "-n", str(_nice)] if _nice else []
    if not cpus or shutil.which("taskset") is None:
        return prefix
    return [*prefix, "taskset", "-c", cpus]


def usable_cpus() -> int:
    return len(os.sched_getaffinity(0))


def cpu_times(pid: int) -> tuple[float, float]:
    """User and system CPU time of a process and all its threads so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # after the ")" closing the command name: state is field 3, utime field 14, stime field 15 (1-based)
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def cpu_seconds(pid: int) -> float:
    return sum(cpu_times(pid))


ROLES = ("proxy", "guard", "logger", "background")
"""What a Warden process or thread works for. ``logger`` includes the store (chDB's own threads): its inserts are the
logger's work, and the console's reads, small during a benchmark, land there too. ``background``: the event loop of
a process that runs the guard, the logger and the console together (``warden serve``'s background process), apart
from its guard and store threads."""


def process_tree(pid: int) -> list[int]:
    """``pid`` and every process below it (children first found through /proc/<pid>/task/*/children)."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            with contextlib.suppress(OSError):
                todo.extend(int(child) for child in (task / "children").read_text().split())
    return out


def process_role(cmdline: Sequence[str]) -> str:
    """The role of a process of Warden's tree, from its command line: one started for the guard or the logger names
    it; one named ``background`` (or started by multiprocessing) is ``background``, its threads refined by
    ``thread_role``; the rest (``serve``, ``ingress``, a proxy worker) serve requests."""
    for role in ("guard", "logger"):
        if role in cmdline:  # the subcommand (``warden guard``), not a path that happens to contain the word
            return role
    if any("multiprocessing" in arg or "background" in arg for arg in cmdline):
        return "background"
    return "proxy"


def thread_role(comm: str, process: str) -> str:
    """A thread's role from its name: Warden names its guard and store threads (``guard_0``, ``chdb_0``); chDB's own
    native threads carry their ClickHouse names; unnamed Python threads (``python…``, ``asyncio_…``) and uvloop's
    work for their process's role."""
    if comm.startswith("guard"):
        return "guard"
    if comm.startswith(("python", "asyncio", "uvloop", "warden")):
        return process
    return "logger"  # chdb_0 and chDB's own threads (QueryPipelineEx, BgSchPool, MergeTreeBackg…)


def role_cpu_seconds(root: int) -> dict[str, float]:
    """CPU seconds so far of Warden's process tree, summed by role (``ROLES``) over every process and thread. Works
    for one process with threads and for a proxy with helper processes alike. Threads that ended are counted in their
    process's totals, so what a process used beyond its live threads goes to the process's role."""
    tick = os.sysconf("SC_CLK_TCK")
    totals = dict.fromkeys(ROLES, 0.0)
    for pid in process_tree(root):
        try:
            cmdline = _cmdline(pid)
            process_total = sum(cpu_times(pid))
        except OSError:
            continue
        role = process_role(cmdline)
        counted = 0.0
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                comm = (task / "comm").read_text().strip()
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            seconds = (int(fields[11]) + int(fields[12])) / tick
            totals[thread_role(comm, role)] += seconds
            counted += seconds
        totals[role] += max(0.0, process_total - counted)
    return totals


def _cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")


def rss_bytes(pid: int) -> tuple[int, int]:
    """(resident set now, its peak) of one process, in bytes."""
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(status["VmRSS"].split()[0]) * 1024, int(status["VmHWM"].split()[0]) * 1024


def pin_threads(pid: int, cpus: Sequence[int]) -> int:
    """Set the CPU affinity of every thread of ``pid`` (``taskset -a -p``); returns how many were set."""
    moved = 0
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError, ValueError):  # a thread that ended meanwhile
            os.sched_setaffinity(int(task.name), cpus)
            moved += 1
    return moved


def cpu_list(spec: str | None) -> list[int]:
    """`0`, `0,2` or `0-1` → CPU numbers; empty for no pinning."""
    out: list[int] = []
    for part in (spec or "").split(","):
        low, _, high = part.strip().partition("-")
        if low:
            out.extend(range(int(low), int(high or low) + 1))
    return out


def cpu_busy_seconds(cpus: Sequence[int]) -> float:
    """Non-idle time so far of the given CPUs, from /proc/stat (all processes together)."""
    busy = 0
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
            ticks = [int(v) for v in values]
            busy += sum(ticks[:8]) - ticks[3] - ticks[4]  # user..steal, less idle and iowait
    return busy / os.sysconf("SC_CLK_TCK")


def git_commit(path: Path) -> str | None:
    """The commit checked out at path (read-only), or None outside a git work tree."""
    try:
        done = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False
        )
    except OSError:
        return None
    return done.stdout.strip() or None


def tool_version(cmd: Sequence[str]) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "unknown"
    text = (done.stdout + done.stderr).strip().splitlines()
    return text[0] if text else "unknown"


# --- ports and HTTP --------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


def http_request(
    method: str, url: str, body: bytes | None = None, headers: Mapping[str, str] | None = None, timeout: float = 30.0
) -> Reply:
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request(method, path, body=body, headers=dict(headers or {}))
        response = conn.getresponse()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        conn.close()


def wait_for_http(url: str, timeout_s: float, what: str, alive: Process | None = None) -> None:
    """Poll until the URL answers any HTTP status (the server is up), or fail with the process's log tail."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if alive is not None and alive.poll() is not None:
            raise BenchError(f"{what} exited with code {alive.poll()} while starting:\n{alive.log_tail()}")
        try:
            http_request("GET", url, timeout=2.0)
            return
        except OSError:
            time.sleep(0.1)
    tail = alive.log_tail() if alive is not None else ""
    raise BenchError(f"{what} did not answer at {url} within {timeout_s:.0f}s\n{tail}")


# --- processes -------------------------------------------------------------------------------------------------------


class Process:
    """A child process with its output in a log file, stopped (and waited for) on exit."""

    def __init__(
        self,
        name: str,
        cmd: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.cmd = list(cmd)
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.popen = subprocess.Popen(
            self.cmd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env or os.environ),
            cwd=cwd,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def poll(self) -> int | None:
        return self.popen.poll()

    def log_tail(self, lines: int = 30) -> str:
        self._log.flush()
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(f"  | {line}" for line in text[-lines:])

    def stop(self, grace_s: float = 60.0) -> int | None:
        """SIGTERM, then SIGKILL after the grace period (Warden drains its events to storage on SIGTERM)."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(grace_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        self._log.close()
        return self.popen.returncode


# --- the canned upstream (nginx) -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Canned:
    """One canned upstream answer: the value of the X-Bench-Reply header that selects it, and its file."""

    reply: str
    file: str
    content_type: str

    @property
    def body(self) -> bytes:
        return (NGINX_DIR / self.file).read_bytes()


CANNED_WHOLE = Canned("whole", "chat-completion.json", "application/json")
CANNED_STREAM = Canned("stream", "chat-completion.sse", "text/event-stream")
REPLY_HEADER = "X-Bench-Reply"


class NginxUpstream:
    """nginx in the foreground (not a daemon), one worker, on a free loopback port, answering
    POST <base>/chat/completions with a canned OpenAI chat completion or event stream."""

    def __init__(self, work_dir: Path, cpus: str | None, port: int | None = None) -> None:
        self.work_dir = work_dir / "nginx"
        self.port = port or free_port()
        self.cpus = cpus
        self.process: Process | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> None:
        nginx = require_tools(["nginx"])["nginx"]
        self.work_dir.mkdir(parents=True, exist_ok=True)
        # nginx's worker may run as an unprivileged user (when started as root): it must be able to read the bodies.
        self.work_dir.chmod(0o755)
        template = (NGINX_DIR / "nginx.conf.template").read_text()
        conf = (
            template.replace("@TMP@", str(self.work_dir))
            .replace("@PORT@", str(self.port))
            .replace("@BODIES@", str(NGINX_DIR))
        )
        conf_path = self.work_dir / "nginx.conf"
        conf_path.write_text(conf)
        cmd = [
            *pinned(self.cpus),
            nginx,
            "-p",
            str(self.work_dir),
            "-e",
            str(self.work_dir / "error.log"),
            "-c",
            str(conf_path),
        ]
        self.process = Process("nginx", cmd, self.work_dir / "stdout.log")
        wait_for_http(f"http://127.0.0.1:{self.port}/", 10, "nginx", self.process)

    def check(self, canned: Canned) -> None:
        """The upstream answers a POST with exactly the canned bytes and type (so the comparison is fair)."""
        reply = http_request(
            "POST",
            f"{self.base_url}/chat/completions",
            b'{"model":"gpt-4o-mini","messages":[]}',
            {"Content-Type": "application/json", REPLY_HEADER: canned.reply},
        )
        if reply.status != 200 or reply.body != canned.body:
            raise BenchError(f"nginx answered {reply.status} with {len(reply.body)} bytes, not {canned.file}")
        if not reply.headers.get("content-type", "").startswith(canned.content_type):
            raise BenchError(f"nginx served {canned.file} as {reply.headers.get('content-type')}")

    def stop(self) -> None:
        if self.process is not None:
            # SIGTERM is nginx's "fast shutdown"; its worker follows its master.
            self.process.stop(grace_s=10)


# --- Warden ----------------------------------------------------------------------------------------------------------


_UVLOOP_LAUNCHER = "import sys, uvloop; uvloop.install(); from warden.cli import main; sys.exit(main(sys.argv[1:]))"


class WardenServer:
    """`warden serve` (embedded: ingress + logger + console) as a child process on a free loopback port."""

    def __init__(
        self,
        work_dir: Path,
        openai_base_url: str,
        cpus: str | None,
        extra_env: Mapping[str, str] | None = None,
        data_dir: Path | None = None,
        port: int | None = None,
        uvloop: bool = False,
        source: Path | None = None,
        workers: int | None = None,
        command: str = "serve",
    ) -> None:
        self.port = port or free_port()
        self.workers = workers
        self.command = command
        """``serve`` (the embedded default) or ``ingress`` (the distributed proxy alone; needs
        WARDEN_KAFKA_BOOTSTRAP_SERVERS in ``extra_env``)."""
        self.uvloop = uvloop
        self.work_dir = work_dir
        self.data_dir = data_dir or work_dir / "warden-data"
        self.log_path = work_dir / "warden.log"
        self.cpus = cpus
        self.env = {**os.environ, "WARDEN_OPENAI_BASE_URL": openai_base_url, **dict(extra_env or {})}
        if source is not None:
            # Another source tree (e.g. `git archive <commit> | tar -x -C DIR`) ahead of the installed one: an
            # editable install's finder comes after sys.path, and the cwd (sys.path[0]) is the work directory.
            self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(source), os.environ.get("PYTHONPATH")]))
        self.process: Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None, "start() first"
        return self.process.pid

    def start(self, timeout_s: float = 120.0) -> None:
        # --uvloop: the same CLI with uvloop's policy installed first, so asyncio.run() gets a uvloop loop.
        launcher = ["-c", _UVLOOP_LAUNCHER] if self.uvloop else ["-m", "warden.cli"]
        cmd = [
            *pinned(self.cpus),
            sys.executable,
            *launcher,
            self.command,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            *(["--workers", str(self.workers)] if self.workers is not None else []),
        ]
        self.process = Process("warden", cmd, self.log_path, self.env, cwd=self.work_dir)
        # The console answers once the schema is migrated and the ingress is up.
        wait_for_http(f"{self.url}/metrics", timeout_s, "warden", self.process)

    def proxy_rss(self) -> tuple[int, int]:
        """(largest resident set now, largest peak) among Warden's proxy processes, in bytes."""
        sizes = []
        for pid in process_tree(self.pid):
            with contextlib.suppress(OSError, KeyError):  # a process that ended meanwhile
                if process_role(_cmdline(pid)) == "proxy":
                    sizes.append(rss_bytes(pid))
        return max((now for now, _ in sizes), default=0), max((peak for _, peak in sizes), default=0)

    def cpu_times(self) -> tuple[float, float]:
        return cpu_times(self.pid)

    def pin_background(self, cpus: Sequence[int]) -> int:
        """Move ``warden serve``'s background process (and whatever runs below it) to ``cpus``, apart from the proxy
        workers' cores; returns how many threads were moved. Every thread is moved: a thread's affinity is its own,
        and threads and processes started later inherit it from the one that starts them. Called again before each
        measured run, so anything started since is moved too."""
        moved = 0
        for pid in process_tree(self.pid):
            with contextlib.suppress(OSError):
                if process_role(_cmdline(pid)) != "background":
                    continue
                for below in process_tree(pid):
                    moved += pin_threads(below, cpus)
        return moved

    def role_cpu(self) -> dict[str, float]:
        """CPU seconds so far of every process Warden started, by role (``ROLES``)."""
        return role_cpu_seconds(self.pid)

    def stop(self) -> int | None:
        return self.process.stop(grace_s=120) if self.process is not None else None


# --- the read API ----------------------------------------------------------------------------------------------------


def api_page(base_url: str, params: Mapping[str, str]) -> dict[str, Any]:
    reply = http_request("GET", f"{base_url}/api/interactions?{urllib.parse.urlencode(params)}", timeout=120)
    if reply.status != 200:
        raise BenchError(f"GET /api/interactions answered {reply.status}: {reply.body[:300]!r}")
    return json.loads(reply.body)


def has_interactions(base_url: str, agent_id: str) -> bool:
    return bool(api_page(base_url, {"agent_id": agent_id, "limit": "1"})["items"])


def count_interactions(base_url: str, agent_id: str, page_size: int = 500) -> tuple[int, Counter[str]]:
    """Pages through every stored interaction of one agent with the API's cursor: the count, and a tally of
    their outcome (status code, or ``in_flight`` / ``aborted``)."""
    total = 0
    outcomes: Counter[str] = Counter()
    params = {"agent_id": agent_id, "limit": str(page_size)}
    while True:
        page = api_page(base_url, params)
        for item in page["items"]:
            total += 1
            if item.get("in_flight"):
                outcomes["in_flight"] += 1
            elif item.get("aborted"):
                outcomes["aborted"] += 1
            else:
                outcomes[str(item.get("status"))] += 1
        if not page.get("next_cursor"):
            return total, outcomes
        params["cursor"] = page["next_cursor"]


# --- wrk -------------------------------------------------------------------------------------------------------------

# wrk's done() hook prints one JSON line; percentiles come from wrk's own latency histogram (microseconds).
_WRK_REPORT = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"min":%d,"mean":%.1f,"stdev":%.1f,"max":%d,"p50":%d,"p75":%d,"p90":%d,"p99":%d,"p999":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(75), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9)))
end
"""


def _lua_string(text: str) -> str:
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    return f"[{'=' * level}[{text}]{'=' * level}]"


def wrk_script(body: bytes, headers: Mapping[str, str]) -> str:
    lines = ['wrk.method = "POST"', f"wrk.body = {_lua_string(body.decode())}"]
    lines += [f"wrk.headers[ {_lua_string(k)} ] = {_lua_string(v)}" for k, v in headers.items()]
    return "\n".join(lines) + "\n" + _WRK_REPORT


@dataclass
class LoadResult:
    requests: int
    duration_s: float
    errors: dict[str, int]
    latency_ms: dict[str, float]
    cpu_s: float | None = None
    """CPU time the measured server (Warden) used during the run, when measured."""
    others_cpu_share: float | None = None
    """Share of the measured server's CPUs used by other processes during the run (noise from outside)."""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["rps"] = round(self.rps, 1)
        if self.cpu_s is not None:
            out["cpu_s"] = round(self.cpu_s, 3)
        if self.others_cpu_share is not None:
            out["others_cpu_share"] = round(self.others_cpu_share, 3)
        if self.cpu_s is not None and self.requests:
            out["cpu_us_per_request"] = round(self.cpu_s / self.requests * 1e6, 1)
        return out


def run_wrk(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    connections: int,
    duration_s: float,
    cpus: str | None,
    script_dir: Path,
    threads: int = 1,
    timeout_s: float = 10.0,
) -> LoadResult:
    """One closed-loop wrk run: `connections` clients, each sending the next request when its answer is complete."""
    wrk = require_tools(["wrk"])["wrk"]
    script = script_dir / f"wrk-{os.getpid()}-{time.monotonic_ns()}.lua"
    script.write_text(wrk_script(body, headers))
    cmd = [
        *pinned(cpus),
        wrk,
        f"-t{max(1, min(threads, connections))}",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        f"--timeout={max(1, round(timeout_s))}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 60, check=False)
    finally:
        script.unlink(missing_ok=True)
    report = next((line[len("WRK_JSON ") :] for line in done.stdout.splitlines() if line.startswith("WRK_JSON ")), None)
    if done.returncode != 0 or report is None:
        raise BenchError(f"wrk failed ({done.returncode}): {' '.join(cmd)}\n{done.stdout}\n{done.stderr}")
    data = json.loads(report)
    return LoadResult(
        requests=data["requests"],
        duration_s=data["duration_us"] / 1e6,
        errors=data["errors"],
        latency_ms={k: v / 1000.0 for k, v in data["latency_us"].items()},
    )


# --- py-spy ----------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def py_spy_record(
    pid: int, out: Path, duration_s: float, cpus: str | None, rate: int = 250, extra: Sequence[str] = ()
) -> Iterator[None]:
    """Samples the process with py-spy (collapsed stacks into `out`) while the block runs."""
    py_spy = require_tools(["py-spy"])["py-spy"]
    cmd = [
        *pinned(cpus),
        py_spy,
        "record",
        "--pid",
        str(pid),
        "--rate",
        str(rate),
        "--duration",
        str(max(1, round(duration_s))),
        "--format",
        "raw",
        "--output",
        str(out),
        "--nonblocking",
    ]
    cmd += extra  # e.g. --native (C frames too), --gil (only the thread holding the GIL), --idle
    log = out.with_suffix(".log")
    with log.open("wb") as sink:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT)
        try:
            yield
        finally:
            try:
                proc.wait(duration_s + 30)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGINT)  # py-spy writes what it has on SIGINT
                proc.wait(30)
    if not out.exists():
        raise BenchError(f"py-spy wrote no profile (see {log}; it needs ptrace rights over the process)")


def _frame_name(frame: str) -> str:
    """`func (path/to/file.py:123)` → `func (path/to/file.py)`, with the path shortened to the repo or
    site-packages; py-spy's `thread (1234): name` frames (with --threads) → `thread name`."""
    if frame.startswith("thread (") and "): " in frame:
        return "thread " + frame.split("): ", 1)[1]
    if " (" not in frame:
        return frame
    func, where = frame.split(" (", 1)
    where = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", f"{REPO_DIR}/", "/lib/python3"):
        if marker in where:
            where = where.split(marker, 1)[1]
            break
    return f"{func} ({where})"


_SCAFFOLDING = (
    "<frozen runpy>",
    "<string>)",
    "asyncio/runners.py",
    "BaseEventLoop.run_forever",
    "BaseEventLoop.run_until_complete",
    "BaseEventLoop._run_once",
    "Handle._run",
    "threading.py",
    "warden/cli.py",
    "thread ",
)


@dataclass
class ProfileSummary:
    samples: int
    top_self: list[tuple[str, int]]
    top_total: list[tuple[str, int]]
    by_area: list[tuple[str, int]]

    def render(self, limit: int = 25) -> str:
        def pct(n: int) -> str:
            return f"{100.0 * n / self.samples:5.1f}%" if self.samples else "  n/a"

        out = [f"{self.samples} samples", "", "self time (the function itself):"]
        out += [f"  {pct(n)}  {name}" for name, n in self.top_self[:limit]]
        # The thread, runner and event loop frames are under nearly everything and say nothing about where it goes.
        inner = [(name, n) for name, n in self.top_total if not any(s in name for s in _SCAFFOLDING)]
        out += ["", "total time (the function and what it calls; the event loop's own frames left out):"]
        out += [f"  {pct(n)}  {name}" for name, n in inner[:limit]]
        out += ["", "self time by file:"]
        out += [f"  {pct(n)}  {name}" for name, n in self.by_area]
        return "\n".join(out)


def _area(frame: str) -> str:
    if " (" not in frame:
        return frame
    where = frame.split(" (", 1)[1].rstrip(")")
    if "site-packages/" in where:
        return where.split("site-packages/", 1)[1].split("/", 1)[0]
    if f"{REPO_DIR}/" in where:
        return "warden: " + "/".join(where.split(f"{REPO_DIR}/", 1)[1].split("/")[:2])
    if "/lib/python3" in where:
        return "stdlib: " + where.split("/lib/python3", 1)[1].split("/", 2)[1].split(".py")[0]
    return where.split(":")[0]


def summarise_collapsed(path: Path, top: int = 40) -> ProfileSummary:
    """Self and inclusive sample counts per function from py-spy's collapsed (`--format raw`) output."""
    self_counts: Counter[str] = Counter()
    total_counts: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    samples = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if f]
        if not frames:
            continue
        samples += count
        self_counts[_frame_name(frames[-1])] += count
        areas[_area(frames[-1])] += count
        for name in {_frame_name(f) for f in frames}:
            total_counts[name] += count
    return ProfileSummary(
        samples, self_counts.most_common(top), total_counts.most_common(top + 20), areas.most_common(20)
    )


# --- output ----------------------------------------------------------------------------------------------------------


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(str(h).rjust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def timestamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def write_results(name: str, stamp: str, data: Mapping[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}-{stamp}.json"
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path


def machine_info() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "usable_cpus": usable_cpus(),
        "python": sys.version.split()[0],
        "platform": sys.platform,
        "kernel": os.uname().release,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "nginx": tool_version(["nginx", "-v"]),
        "wrk": tool_version(["wrk", "-v"]),
    }
