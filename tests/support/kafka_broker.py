"""A real single-node Apache Kafka broker (KRaft, combined broker+controller) run with plain `java`, no Docker.

The jars come from Maven Central through `deploy/kafka/pom.xml` and are cached in
`$WARDEN_KAFKA_CACHE/kafka-<version>/libs` (default `~/.cache/warden/kafka-<version>/libs`); Maven runs only when
that cache is missing, so later runs need no network.

Library use::

    with KafkaBroker() as broker:          # start() on enter, close() on exit
        broker.bootstrap_servers           # "127.0.0.1:<port>"
        broker.restart()                   # graceful stop + start, same port, same data
        broker.kill(); broker.start()      # SIGKILL, then recover the same data

From async code use `await broker.astart()` / `astop()` / `akill()` / `arestart()`: they keep the event loop (and
any producers on it) running while the broker goes down and comes back.

Command line (run from the repository root)::

    python -m tests.support.kafka_broker --fetch   # warm the cache (jars + class archive), e.g. in CI before pytest
    python -m tests.support.kafka_broker --run     # foreground broker for development; prints its address

Start-up speed: the first broker that stops gracefully leaves an AppCDS class archive (`broker-cds-*.jsa`) next to the
jars; later JVMs map it and reach "ready" with about half the work (measured: 2.5 s of CPU instead of 4.3 s; ~1.7 s
instead of ~3.7 s wall on a quiet 2-core machine). `--fetch` builds it too. A stale or foreign archive is ignored by
the JVM (it only logs a warning), so it never breaks a start.

Environment: WARDEN_KAFKA_VERSION (default DEFAULT_KAFKA_VERSION), WARDEN_KAFKA_CACHE (cache root),
WARDEN_KAFKA_JVM_OPTS (extra JVM flags, appended last so they win), WARDEN_KAFKA_CDS=0 (no class archive),
JAVA_HOME (which java to use).
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import base64
import contextlib
import hashlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Sequence
from pathlib import Path

from tests.support.lifecycle import ProcessService, run_in_foreground, tail

# Keep in step with <kafka.version> in deploy/kafka/pom.xml.
DEFAULT_KAFKA_VERSION = "4.3.1"
REPO_ROOT = Path(__file__).resolve().parents[2]
POM_PATH = REPO_ROOT / "deploy" / "kafka" / "pom.xml"
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
NODE_ID = 1
_HOST = "127.0.0.1"

# Fast start on a small machine: SerialGC has the least start-up work, C1-only JIT compiles sooner (the broker is
# IO-bound in tests), and a fixed small heap keeps the footprint predictable.
DEFAULT_JVM_OPTS: tuple[str, ...] = (
    "-Xms256m",
    "-Xmx512m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:-UsePerfData",
    "-Djava.awt.headless=true",
)

_LOG4J2_PROPERTIES = """\
# Broker log4j2 config: everything to stdout, which the launcher redirects to broker.log.
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
"""


class KafkaBrokerError(RuntimeError):
    """The broker (or fetching its jars) failed; the message carries the relevant log tail."""


def kafka_version() -> str:
    return os.environ.get("WARDEN_KAFKA_VERSION") or DEFAULT_KAFKA_VERSION


def cache_root() -> Path:
    configured = os.environ.get("WARDEN_KAFKA_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "warden"


def libs_dir(version: str | None = None) -> Path:
    return cache_root() / f"kafka-{version or kafka_version()}" / "libs"


def ensure_jars(version: str | None = None) -> Path:
    """Return the directory holding the broker's jars, running Maven only when the cache is missing."""
    version = version or kafka_version()
    target = libs_dir(version)
    if (target / f"kafka_2.13-{version}.jar").is_file():
        return target
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaBrokerError(f"Kafka jars are not cached in {target} and `mvn` is not on PATH to fetch them")
    target.parent.mkdir(parents=True, exist_ok=True)
    # Fetch into a private directory and rename it into place, so a concurrent or interrupted fetch never leaves a
    # half-filled cache that a later run would trust.
    staging = Path(tempfile.mkdtemp(prefix="libs.fetch-", dir=target.parent))
    cmd = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(POM_PATH),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={staging}",
        "-DincludeScope=runtime",
        f"-Dkafka.version={version}",
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, check=False)
        if proc.returncode != 0 or not (staging / f"kafka_2.13-{version}.jar").is_file():
            output = tail(proc.stdout + proc.stderr, 40)
            raise KafkaBrokerError(f"fetching Kafka {version} with Maven failed (exit {proc.returncode}):\n{output}")
        # A class archive records the jars' timestamps; one built against an earlier copy would only be ignored.
        for stale in target.parent.glob("broker-cds-*.jsa"):
            stale.unlink(missing_ok=True)
        staging.chmod(0o755)  # mkdtemp makes it private; the cache may be shared (e.g. CI warms it as another user)
        try:
            staging.rename(target)
        except OSError:
            if not (target / f"kafka_2.13-{version}.jar").is_file():
                raise
            # Another process filled the cache first; its copy is as good as ours.
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def class_archive_path(java: str, version: str | None = None) -> Path:
    """Where the broker's AppCDS archive lives; keyed by the JVM build so another Java never picks up a stale one."""
    real = Path(java).resolve()
    stat = real.stat()
    key = hashlib.sha1(f"{real}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    return cache_root() / f"kafka-{version or kafka_version()}" / f"broker-cds-{key}.jsa"


def find_java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise KafkaBrokerError("no `java` found (set JAVA_HOME or put Java 17+ on PATH)")
    return java


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_HOST, 0))
        return int(sock.getsockname()[1])


def _new_cluster_id() -> str:
    # Kafka's Uuid.randomUuid().toString(): 16 random bytes, URL-safe base64 without padding, drawn again while it
    # starts with "-" (1 time in 64), which the storage tool's command line would take for an option.
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks: list[bytes] = []
    while size:
        chunk = sock.recv(size)
        if not chunk:
            raise ConnectionError("broker closed the connection")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def probe_broker_ids(host: str, port: int, timeout: float = 2.0) -> list[int]:
    """Send one Metadata (v4) request and return the node ids of the brokers the cluster reports as available.

    A plain socket rather than a Kafka client so the check works from any thread without an event loop, and so a
    broker that accepts TCP but has not yet registered itself (fenced) does not count as ready.
    """
    client_id = b"warden-probe"
    body = struct.pack(">hhih", 3, 4, 1, len(client_id)) + client_id + struct.pack(">ib", 0, 0)
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(struct.pack(">i", len(body)) + body)
        (size,) = struct.unpack(">i", _recv_exact(sock, 4))
        payload = _recv_exact(sock, size)
    # correlation_id, throttle_time_ms, brokers[]: node_id, host, port, rack (nullable)
    offset = 8
    (count,) = struct.unpack_from(">i", payload, offset)
    offset += 4
    ids: list[int] = []
    for _ in range(max(count, 0)):
        (node_id, host_len) = struct.unpack_from(">ih", payload, offset)
        offset += 6 + host_len + 4
        (rack_len,) = struct.unpack_from(">h", payload, offset)
        offset += 2 + max(rack_len, 0)
        ids.append(node_id)
    return ids


_live_brokers: weakref.WeakSet[KafkaBroker] = weakref.WeakSet()


@atexit.register
def _kill_leftovers() -> None:
    # A broker outliving the interpreter would hold its ports and temp dir forever.
    for broker in list(_live_brokers):
        broker.kill()
        if broker._owns_workdir:
            shutil.rmtree(broker.workdir, ignore_errors=True)


def _die_with_parent() -> None:
    # Linux PR_SET_PDEATHSIG: the JVM gets SIGKILL if the Python process dies without running atexit (e.g. SIGKILL).
    import ctypes

    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)


class KafkaBroker(ProcessService):
    """One KRaft broker+controller on 127.0.0.1 with its data in a temp dir; restartable on the same port and data."""

    def __init__(
        self,
        *,
        version: str | None = None,
        port: int | None = None,
        controller_port: int | None = None,
        workdir: str | os.PathLike[str] | None = None,
        start_timeout: float = 120.0,
        jvm_opts: Sequence[str] | None = None,
        extra_config: dict[str, str] | None = None,
        class_archive: bool | None = None,
    ) -> None:
        self.version = version or kafka_version()
        self.port = port or free_port()
        self.controller_port = controller_port or free_port()
        while self.controller_port == self.port:
            self.controller_port = free_port()
        self._owns_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="warden-kafka-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.workdir / "data"
        self.config_path = self.workdir / "server.properties"
        self.log_path = self.workdir / "broker.log"
        self.start_timeout = start_timeout
        self.jvm_opts = list(jvm_opts) if jvm_opts is not None else list(DEFAULT_JVM_OPTS)
        self.jvm_opts += os.environ.get("WARDEN_KAFKA_JVM_OPTS", "").split()
        self.extra_config = dict(extra_config or {})
        if class_archive is None:
            class_archive = os.environ.get("WARDEN_KAFKA_CDS", "1") != "0"
        self.class_archive = class_archive
        self._archive_dump: tuple[Path, Path] | None = None  # (being written by the JVM at exit, final place)
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    # ---- public surface ----------------------------------------------------------------------------------------

    @property
    def bootstrap_servers(self) -> str:
        return f"{_HOST}:{self.port}"

    error = KafkaBrokerError

    def _probe(self) -> str | None:
        try:
            return None if NODE_ID in probe_broker_ids(_HOST, self.port) else "broker not registered yet"
        except (OSError, struct.error) as exc:
            return f"{type(exc).__name__}: {exc}"

    # Async variants: the slow parts (fetching jars, formatting, waiting) run in a worker thread so the event loop and
    # its clients keep running; the fork itself stays on the caller's thread (see _spawn about PDEATHSIG).

    async def astart(self) -> None:
        if self.is_running:
            return
        await asyncio.to_thread(self._prepare)
        with self._lock:
            if self.is_running:
                return
            self._spawn()
        await asyncio.to_thread(self.wait_ready)

    def _ended(self, proc: subprocess.Popen[bytes], graceful: bool) -> None:
        _live_brokers.discard(self)
        self._finish_archive_dump(published=graceful)

    def __repr__(self) -> str:
        state = "running" if self.is_running else "stopped"
        return f"KafkaBroker({self.bootstrap_servers}, kafka {self.version}, {state}, {self.workdir})"

    # ---- internals -----------------------------------------------------------------------------------------------

    def _server_properties(self) -> dict[str, str]:
        controller = f"{_HOST}:{self.controller_port}"
        props = {
            "process.roles": "broker,controller",
            "node.id": str(NODE_ID),
            "controller.quorum.bootstrap.servers": controller,
            "listeners": f"PLAINTEXT://{self.bootstrap_servers},CONTROLLER://{controller}",
            "advertised.listeners": f"PLAINTEXT://{self.bootstrap_servers},CONTROLLER://{controller}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            # A single node can only ever hold one replica of anything.
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            # Fewer internal partitions: quicker first consumer-group/transaction use on a 2-core machine.
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.num.partitions": "4",
            "auto.create.topics.enable": "true",
            "num.partitions": "1",
            "group.initial.rebalance.delay.ms": "0",
            # After a SIGKILL the new incarnation can only register once the old one's session expires (default 9 s).
            # Shorter so kill() + start() is quicker, yet long enough that a starved 2-core machine does not fence the
            # broker (at 4 s it was fenced under heavy load), with frequent heartbeats.
            "broker.session.timeout.ms": "6000",
            "broker.heartbeat.interval.ms": "500",
            # Large LLM payloads: allow up to 16 MiB records end to end.
            "message.max.bytes": str(MAX_MESSAGE_BYTES),
            "replica.fetch.max.bytes": str(MAX_MESSAGE_BYTES),
            "socket.request.max.bytes": str(4 * MAX_MESSAGE_BYTES),
            # The log cleaner (for compacted internal topics) zero-fills a 128 MiB dedupe buffer at start-up by default,
            # which costs more than a second on a busy 2-core machine; tests compact very little.
            "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
            "num.network.threads": "2",
            "num.io.threads": "4",
            "num.recovery.threads.per.data.dir": "2",
        }
        props.update(self.extra_config)
        return props

    def _java_cmd(
        self, main_class: str, *args: str, jvm_opts: Sequence[str] | None = None, dump_archive: bool = False
    ) -> list[str]:
        libs = ensure_jars(self.version)
        java = find_java()
        log4j = self.workdir / "log4j2.properties"
        if not log4j.exists():
            log4j.write_text(_LOG4J2_PROPERTIES)
        opts = list(self.jvm_opts if jvm_opts is None else jvm_opts)
        if self.class_archive:
            archive = class_archive_path(java, self.version)
            if archive.is_file():
                opts.append(f"-XX:SharedArchiveFile={archive}")
            elif dump_archive:
                # Written when this JVM exits; published by stop() only after a clean exit, so no half-written archive.
                pending = archive.with_name(f"{archive.name}.{os.getpid()}-{id(self)}.tmp")
                self._archive_dump = (pending, archive)
                opts.append(f"-XX:ArchiveClassesAtExit={pending}")
        return [
            java,
            *opts,
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            f"{libs}/*",
            main_class,
            *args,
        ]

    def _format_storage(self) -> None:
        if (self.data_dir / "meta.properties").is_file():
            return
        # A short-lived tool: C1 and a small heap are plenty.
        opts = ["-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:-UsePerfData"]
        cmd = self._java_cmd(
            "kafka.tools.StorageTool",
            "format",
            "--standalone",
            "--cluster-id",
            _new_cluster_id(),
            "--config",
            str(self.config_path),
            jvm_opts=opts,
        )
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
        if proc.returncode != 0:
            raise KafkaBrokerError(
                f"formatting Kafka storage failed (exit {proc.returncode}):\n{tail(proc.stdout + proc.stderr, 40)}"
            )

    def _finish_archive_dump(self, *, published: bool) -> None:
        if self._archive_dump is None:
            return
        pending, final = self._archive_dump
        self._archive_dump = None
        if published and pending.is_file() and pending.stat().st_size > 0:
            pending.replace(final)
        else:
            pending.unlink(missing_ok=True)

    def _prepare(self) -> None:
        ensure_jars(self.version)
        self.config_path.write_text("".join(f"{k}={v}\n" for k, v in self._server_properties().items()))
        self._format_storage()

    def _spawn(self) -> None:
        self._finish_archive_dump(published=False)  # a JVM that died on its own may have left a partial one
        self._prepare()
        cmd = self._java_cmd("kafka.Kafka", str(self.config_path), dump_archive=True)
        on_main_thread = threading.current_thread() is threading.main_thread()
        with self.log_path.open("ab") as log:
            log.write(f"\n==== starting Kafka {self.version} on {self.bootstrap_servers} ====\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                # Own session: a Ctrl-C meant for pytest reaches the broker only through stop().
                start_new_session=True,
                # PDEATHSIG fires when the *thread* that forked exits, so only tie it to the long-lived main thread.
                preexec_fn=_die_with_parent if on_main_thread else None,
            )
        _live_brokers.add(self)


def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.kafka_broker", description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--fetch", action="store_true", help="download the broker jars into the cache and exit")
    mode.add_argument("--run", action="store_true", help="run a broker in the foreground until Ctrl-C")
    parser.add_argument("--version", default=None, help=f"Kafka version (default {kafka_version()})")
    parser.add_argument("--port", type=int, default=None, help="broker port (default: a free one)")
    parser.add_argument("--data-dir", default=None, help="keep data here across runs (default: a temp dir)")
    args = parser.parse_args(argv)

    if args.fetch:
        started = time.monotonic()
        version = args.version or kafka_version()
        path = ensure_jars(version)
        size = sum(p.stat().st_size for p in path.iterdir())
        print(f"Kafka {version} jars: {path} ({size / 2**20:.0f} MiB, {time.monotonic() - started:.1f}s)", flush=True)
        archive = class_archive_path(find_java(), version)
        if not archive.is_file() and os.environ.get("WARDEN_KAFKA_CDS", "1") != "0":
            # One throwaway start/stop leaves the class archive that makes every later broker start faster.
            with KafkaBroker(version=version):
                pass
        if archive.is_file():
            print(f"class archive: {archive} ({archive.stat().st_size / 2**20:.0f} MiB)")
        print(f"ready in {time.monotonic() - started:.1f}s")
        return 0

    broker = KafkaBroker(version=args.version, port=args.port, workdir=args.data_dir)
    return run_in_foreground(
        broker,
        lambda: (
            f"Kafka {broker.version} ready: bootstrap servers {broker.bootstrap_servers}\n"
            f"log: {broker.log_path}  data: {broker.data_dir}"
        ),
        keep_data=bool(args.data_dir),
    )


if __name__ == "__main__":
    sys.exit(_main())
