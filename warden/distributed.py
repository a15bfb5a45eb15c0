"""Distributed mode: each service in its own process, over Kafka and a ClickHouse server (or chDB)."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path

from prometheus_client import CollectorRegistry

from plumbing.bounded import BUDGET
from plumbing.bus.factory import make_bus
from plumbing.store.factory import make_store
from plumbing.store.migrations import migrate_when_reachable
from services.console.settings import ConsoleSettings
from services.guard.settings import GuardSettings
from services.ingress.access_log import with_access_log
from services.ingress.settings import IngressSettings
from services.logger.settings import LoggerSettings
from warden import composition
from warden.composition import Lifecycle, MetricsServer
from warden.config_maps import ConfigMaps
from warden.dispatch import Dispatch
from warden.serving import Server, http_server, run, until_stopped, uvicorn_config
from warden.startup import bind
from warden.worker_control import WorkerMetrics, beside, control_app, unix_listener, worker_socket


def instance_id(role: str) -> str:
    return f"warden-{role}-{socket.gethostname()}-{os.getpid()}"


def _said(line: str) -> Callable[[], None]:
    """A ``started`` callback for ``run``."""
    return lambda: print(line, flush=True)


def _worker_name(worker: int | None) -> str:
    return "" if worker is None else f" worker {worker}"


async def run_ingress(settings: IngressSettings, worker: int | None = None, run_dir: Path | None = None) -> None:
    """``worker``: this process is worker ``worker`` of ``warden ingress --workers N``: it shares the port with the
    others (SO_REUSEPORT) and keeps an event log of its own. ``run_dir``: the supervisor's private directory where the
    workers answer each other's metrics requests: ``/metrics``, whichever worker takes the scrape, adds them all up."""
    BUDGET.resize(settings.cache_max_bytes)
    # Before anything starts: a port in use is said at once.
    listener = bind(settings.host, settings.port, shared=worker is not None)
    registry = CollectorRegistry()
    bus = make_bus(settings, instance_id("ingress"), registry, worker)
    config = ConfigMaps.build(settings, history=True, keys=True)
    # Redis when WARDEN_REDIS_URL is set (every ingress counts together); else a table the workers on this host share,
    # kept in the data directory across restarts (no store to fill it from here).
    counters = composition.counters(settings, shared=True)
    ingress = composition.ingress(settings, bus, config, registry, counters=counters)
    exposed, control = registry, None
    if worker is not None and run_dir is not None:
        own_socket = worker_socket(run_dir, worker)
        exposed = CollectorRegistry(auto_describe=False)
        exposed.register(
            WorkerMetrics(run_dir, own=registry, own_socket=own_socket, unscraped="warden_ingress_workers_unscraped")
        )
        siblings_app = control_app(registry, config.refresh)  # what the siblings ask of this worker
        server = Server(uvicorn_config(siblings_app, "127.0.0.1", 0, settings), signals=False)
        control = server, unix_listener(own_socket)
    app = Dispatch(with_access_log(ingress, settings.access_log), composition.metrics_app(settings, exposed))
    wait = http_server(app, listener, settings.host, settings.port, settings)
    if control is not None:
        wait = beside(*control, wait)
    await run(
        Lifecycle(bus=bus, config=config, ingress=ingress),
        wait,
        started=_said(f"Warden ingress{_worker_name(worker)} listening on {settings.host}:{settings.port}"),
        stopped="Warden ingress stopped",
    )


async def run_logger(settings: LoggerSettings) -> None:
    registry = CollectorRegistry()
    store = make_store(settings)
    bus = make_bus(settings, instance_id("logger"), registry)
    composition.logger(settings, bus, store, registry)
    await run(
        Lifecycle(
            bus=bus,
            store=store,
            migrate=migrate_when_reachable,
            metrics=MetricsServer(settings, settings.metrics_port, registry),
        ),
        until_stopped,
        started=_said(f"Warden logger consuming; metrics on :{settings.metrics_port}"),
        stopped="Warden logger stopped",
    )


async def run_guard(settings: GuardSettings) -> None:
    BUDGET.resize(settings.cache_max_bytes)
    registry = CollectorRegistry()
    bus = make_bus(settings, instance_id("guard"), registry)
    config = ConfigMaps.build(settings)
    guard = composition.guard(settings, bus, config, registry)
    tracing = composition.tracing(bus, registry)  # the guard's process exports the spans too
    metrics = MetricsServer(settings, settings.metrics_port, registry)
    await run(
        Lifecycle(bus=bus, config=config, guard=guard, tracing=tracing, metrics=metrics),
        until_stopped,
        started=_said(f"Warden guard consuming; metrics on :{settings.metrics_port}"),
        stopped="Warden guard stopped",
    )


async def run_console(settings: ConsoleSettings, ingress_settings: IngressSettings) -> None:
    """``ingress_settings``: where the ingresses are, for the profiles' connect URLs."""
    listener = bind(settings.host, settings.console_port, "console_port")
    registry = CollectorRegistry()
    store = make_store(settings)
    config = ConfigMaps.build(settings, sessions=True, keys=True)
    app = composition.console(settings, ingress_settings, store, config, registry)
    await run(
        Lifecycle(store=store, migrate=migrate_when_reachable, config=config),
        http_server(app, listener, settings.host, settings.console_port, settings),
        started=_said(f"Warden console listening on {settings.host}:{settings.console_port}"),
        stopped="Warden console stopped",
    )
