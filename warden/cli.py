"""The ``warden`` command."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib.metadata
import sys
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

from plumbing import logs
from plumbing.settings import CommonSettings
from services.detection.credentials import scrub_credentials
from services.ingress.settings import IngressSettings
from warden import keys_cli, profiles_cli
from warden.startup import StartupError, claim_data_dir, load_settings

S = TypeVar("S", bound=CommonSettings)


def tune_gc() -> None:
    """A proxy allocates many short-lived objects per request and few cycles. The default thresholds run a young
    collection every 700 allocations and full ones that walk every long-lived object (modules, compiled profiles,
    caches); freezing what the imports built and collecting less often leaves the collector a small share of the
    CPU. A service may freeze again once it has started (the embedded default does)."""
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)


def run_service(main: Coroutine[Any, Any, None]) -> None:
    """Long-running services run on uvloop (uvicorn's own loop choice only applies when it owns the loop)."""
    tune_gc()
    try:
        import uvloop
    except ImportError:  # not available on every platform
        asyncio.run(main)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)


def _overrides(args: argparse.Namespace, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


def _settings(cls: type[S], args: argparse.Namespace, flags: tuple[str, ...]) -> S:
    """A command's settings (its flags over the environment), with the logs configured by them."""
    settings = load_settings(cls, **_overrides(args, flags))
    logs.configure(settings.log_level, scrub_credentials)
    return settings


@contextlib.contextmanager
def _data_dir(settings: CommonSettings, *, always: bool = False) -> Iterator[IO[str] | None]:
    """Hold the data directory while the command runs: chDB allows one process per directory (``always``: the
    command keeps more than chDB there). Yields the lock's file (None when not held)."""
    lock = claim_data_dir(settings.data_dir) if always or not settings.clickhouse_url else None
    try:
        yield lock
    finally:
        if lock is not None:
            lock.close()


def _serve(args: argparse.Namespace) -> int:
    from warden.embedded import ServeSettings
    from warden.serve import serve

    settings = _settings(ServeSettings, args, ("host", "port", "data_dir", "workers"))
    with _data_dir(settings, always=True) as lock:
        assert lock is not None  # always=True
        return serve(settings, lock.fileno())


def _migrate(args: argparse.Namespace) -> int:
    from plumbing.store.factory import make_store
    from plumbing.store.migrations import migrate

    settings = _settings(IngressSettings, args, ("data_dir",))  # as ``warden serve`` reads them (WARDEN_CONFIG too)

    async def run() -> list[str]:
        store = make_store(settings)
        try:
            return await migrate(store)
        finally:
            await store.close()

    with _data_dir(settings):
        applied = asyncio.run(run())
    print("applied: " + (", ".join(applied) if applied else "nothing, the schema is up to date"))
    return 0


def _ingress(args: argparse.Namespace) -> int:
    from warden.distributed import run_ingress

    settings = _settings(IngressSettings, args, ("host", "port", "data_dir"))
    if args.workers is None or args.worker_index is not None:
        run_dir = Path(args.run_dir) if args.run_dir else None
        run_service(run_ingress(settings, args.worker_index, run_dir))
        return 0
    return _ingress_workers(args, settings)


def _ingress_workers(args: argparse.Namespace, settings: IngressSettings) -> int:
    """``--workers N``: N ingress processes on one port, each this command again with ``--worker-index``."""
    import shutil
    import subprocess
    import tempfile

    from warden.startup import bind
    from warden.workers import Supervisor, default_count

    count = args.workers or default_count()
    bind(settings.host, settings.port, shared=True).close()  # a port another program holds is said once, here
    given = _overrides(args, ("host", "port", "data_dir"))
    flags = [f"--{name.replace('_', '-')}={value}" for name, value in given.items()]
    # 0700: only this user reaches the sockets where the workers answer each other's metrics requests.
    run_dir = tempfile.mkdtemp(prefix="warden-ingress-")
    command = [sys.executable, "-m", "warden.cli", "ingress", *flags, f"--run-dir={run_dir}"]

    def start(index: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen([*command, f"--worker-index={index}"])

    try:
        return Supervisor(count, start).run()
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def _logger(args: argparse.Namespace) -> int:
    from services.logger.settings import LoggerSettings
    from warden.distributed import run_logger

    settings = _settings(LoggerSettings, args, ("data_dir", "metrics_port"))
    with _data_dir(settings):
        run_service(run_logger(settings))
    return 0


def _guard(args: argparse.Namespace) -> int:
    from services.guard.settings import GuardSettings
    from warden.distributed import run_guard

    settings = _settings(GuardSettings, args, ("data_dir", "metrics_port"))
    run_service(run_guard(settings))
    return 0


def _console(args: argparse.Namespace) -> int:
    from services.console.settings import ConsoleSettings
    from warden.distributed import run_console

    settings = _settings(ConsoleSettings, args, ("host", "console_port", "data_dir"))
    ingress_settings = load_settings(IngressSettings)  # from the environment: the ingresses', not this console's flags
    with _data_dir(settings):
        run_service(run_console(settings, ingress_settings))
    return 0


def _topics(args: argparse.Namespace) -> int:
    from plumbing.bus.topics_admin import create_topics

    settings = load_settings(CommonSettings)
    if not settings.kafka_bootstrap_servers:
        print("WARDEN_KAFKA_BOOTSTRAP_SERVERS is not set", file=sys.stderr)
        return 2
    created = asyncio.run(
        create_topics(
            settings.kafka_bootstrap_servers,
            partitions=args.partitions,
            replication=args.replication,
            retention_ms=int(args.retention_hours * 3600e3),
        )
    )
    print("created: " + (", ".join(created) if created else "nothing, every topic exists"))
    return 0


def _asyncapi(args: argparse.Namespace) -> int:
    from warden.asyncapi import render

    print(render(args.format))
    return 0


def _scan(args: argparse.Namespace) -> int:
    import orjson

    from services.guard.scan import ProfileError, scan_lines

    try:
        profile = _scan_profile(args.profile) if args.profile else None
    except ProfileError as exc:
        print(f"warden scan: {exc}", file=sys.stderr)
        return 2
    source = open(args.input, encoding="utf-8") if args.input != "-" else sys.stdin  # noqa: SIM115
    try:
        for finding in scan_lines(source, profile):
            sys.stdout.write(orjson.dumps(finding).decode() + "\n")
    finally:
        if source is not sys.stdin:
            source.close()
    return 0


def _scan_profile(reference: str) -> Any:
    """``--profile``: a JSON file, else an id (or unique name) in the configured profile store. An unknown one is an
    error, never the default profile: a scan against the wrong thresholds would report the wrong findings."""
    from pathlib import Path

    from services.guard.scan import ProfileError, profile_from_file

    path = Path(reference)
    if path.is_file():
        return profile_from_file(path)
    from plumbing.settings import CommonSettings
    from schemas import topics
    from schemas.profiles import DEFAULT_PROFILE_ID, Profile, default_profile

    settings = load_settings(CommonSettings)

    async def lookup() -> Profile | None:
        from plumbing.config.factory import make_map

        profiles = make_map(settings, topics.PROFILES, Profile, "profiles")
        await profiles.start()
        try:
            caught_up = getattr(profiles, "caught_up", None)
            if caught_up is not None:  # a replicated topic: read it to its end first
                await asyncio.wait_for(caught_up.wait(), 30)
            found = profiles.get(reference.lower()) or profiles.get(reference)
            if found is None:
                named = [p for p in profiles.values() if p.name == reference]
                found = named[0] if len(named) == 1 else None
            return found
        finally:
            await profiles.stop()

    profile = asyncio.run(lookup())
    if profile is None and reference == DEFAULT_PROFILE_ID:
        return default_profile()
    if profile is None:
        raise ProfileError(f"{reference!r} is neither a profile file nor a profile in the store ({settings.data_dir})")
    return profile


def _version() -> str:
    try:
        return importlib.metadata.version("warden")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="warden", description="Warden, a secure LLM proxy.")
    root.add_argument("--version", action="version", version=f"warden {_version()}")
    commands = root.add_subparsers(dest="command", required=True)

    serve = commands.add_parser(
        "serve",
        help="run the whole of Warden with one command: proxy, guard, logger, API and logs viewer",
        description=(
            "Run Warden with one command and one data directory (the embedded default): proxy processes (the ingress "
            "with its inline guardrails) on one port, and a background process with the guard that scores every "
            "interaction, the logger that records them in chDB under the data directory, the read and admin API and "
            "the logs viewer, all reached on that port (or over Kafka and a ClickHouse server when "
            "WARDEN_KAFKA_BOOTSTRAP_SERVERS / WARDEN_CLICKHOUSE_URL are set)."
        ),
    )
    serve.add_argument("--host", help="address to listen on (WARDEN_HOST, default 0.0.0.0)")
    serve.add_argument("--port", type=int, help="port to listen on (WARDEN_PORT, default 9000)")
    serve.add_argument("--data-dir", dest="data_dir", help="where chDB keeps its data (WARDEN_DATA_DIR)")
    serve.add_argument(
        "--workers",
        type=int,
        help="proxy processes on the port (WARDEN_WORKERS; default: the cores available less one, at least one)",
    )
    serve.set_defaults(run=_serve)

    ingress = commands.add_parser("ingress", help="run the ingress alone (distributed mode, needs Kafka)")
    ingress.add_argument("--host", help="address to listen on (WARDEN_HOST)")
    ingress.add_argument("--port", type=int, help="port to listen on (WARDEN_PORT, default 9000)")
    ingress.add_argument("--data-dir", dest="data_dir", help="where the event spool lives (WARDEN_DATA_DIR)")
    ingress.add_argument(
        "--workers",
        type=int,
        help="run this many ingress processes on the port (SO_REUSEPORT), each with an event log of its own under "
        "<data-dir>/spool/ingress/worker-<i>; 0: one per available core (default: one process, no supervisor)",
    )
    ingress.add_argument("--worker-index", dest="worker_index", type=int, help=argparse.SUPPRESS)
    ingress.add_argument("--run-dir", dest="run_dir", help=argparse.SUPPRESS)
    ingress.set_defaults(run=_ingress)

    logger = commands.add_parser("logger", help="run the logger alone: Kafka → ClickHouse")
    logger.add_argument("--data-dir", dest="data_dir", help="chDB data directory (WARDEN_DATA_DIR)")
    logger.add_argument("--metrics-port", dest="metrics_port", type=int, help="WARDEN_METRICS_PORT, default 9101")
    logger.set_defaults(run=_logger)

    guard = commands.add_parser("guard", help="run the guard alone: scores events, publishes violations")
    guard.add_argument("--data-dir", dest="data_dir", help="local state directory (WARDEN_DATA_DIR)")
    guard.add_argument("--metrics-port", dest="metrics_port", type=int, help="WARDEN_METRICS_PORT, default 9102")
    guard.set_defaults(run=_guard)

    console = commands.add_parser("console", help="run the read API and logs viewer alone")
    console.add_argument("--host", help="address to listen on (WARDEN_HOST)")
    console.add_argument("--port", dest="console_port", type=int, help="WARDEN_CONSOLE_PORT, default 9001")
    console.add_argument("--data-dir", dest="data_dir", help="chDB data directory (WARDEN_DATA_DIR)")
    console.set_defaults(run=_console)

    topics = commands.add_parser("topics", help="manage Kafka topics")
    topic_commands = topics.add_subparsers(dest="topics_command", required=True)
    create = topic_commands.add_parser("create", help="create every topic Warden uses (idempotent)")
    create.add_argument("--partitions", type=int, default=6)
    create.add_argument("--replication", type=int, default=1)
    create.add_argument("--retention-hours", dest="retention_hours", type=float, default=168.0)
    create.set_defaults(run=_topics)

    asyncapi = commands.add_parser("asyncapi", help="print the AsyncAPI document of Warden's topics")
    asyncapi.add_argument("--format", choices=("json", "yaml"), default="json")
    asyncapi.set_defaults(run=_asyncapi)

    scan = commands.add_parser(
        "scan",
        help="run the guard's detectors over JSON lines (texts, interactions or bus events)",
        description=(
            'Read JSON lines ({"text": …}, interactions as the API returns them, or llm.requests / llm.responses '
            "events) and print one JSON line per finding: finding, category, severity, score, position, location and "
            "a masked excerpt. Thresholds and allowed domains come from --profile (default: the default profile)."
        ),
    )
    scan.add_argument("input", nargs="?", default="-", help="JSON-lines file (default: standard input)")
    scan.add_argument(
        "--profile",
        help="a profile JSON file (as the API returns or takes it), or the id or name of a profile in the configured "
        "store (WARDEN_DATA_DIR, or the Kafka topic when WARDEN_KAFKA_BOOTSTRAP_SERVERS is set)",
    )
    scan.set_defaults(run=_scan)

    profiles_cli.add_parser(commands)
    keys_cli.add_parser(commands)

    migrate = commands.add_parser("migrate", help="apply the ClickHouse schema migrations")
    migrate.add_argument("--data-dir", dest="data_dir", help="chDB data directory (WARDEN_DATA_DIR)")
    migrate.set_defaults(run=_migrate)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except StartupError as exc:
        print(f"warden: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
