"""Distributed mode: each service in its own process, over Kafka and a ClickHouse server (or chDB)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket

from prometheus_client import CollectorRegistry, start_http_server

from plumbing.bounded import BUDGET
from plumbing.bus.factory import make_bus
from plumbing.http_limits import AnswerRefusals
from plumbing.settings import CommonSettings
from plumbing.store.factory import make_store
from plumbing.store.migrations import migrate_when_reachable
from services.console.access import Access
from services.console.api import InteractionsApi
from services.console.app import console_app
from services.console.profiles_api import ProfilesApi
from services.console.quarantines_api import QuarantinesApi
from services.console.settings import ConsoleSettings
from services.console.viewer import Viewer
from services.guard.service import GuardService
from services.guard.settings import GuardSettings
from services.ingress.access_log import with_access_log
from services.ingress.app import Ingress
from services.ingress.metrics import IngressMetrics
from services.ingress.profiles import ProfileSnapshot
from services.ingress.settings import IngressSettings
from services.ingress.upstreams import configured_upstreams
from services.logger.service import LoggerService
from services.logger.settings import LoggerSettings
from warden.config_maps import ConfigMaps, revoked_sessions
from warden.dispatch import Dispatch
from warden.embedded import Server, provider_history, uvicorn_config
from warden.signals import until_stopped
from warden.startup import bind

log = logging.getLogger("warden")


def instance_id(role: str) -> str:
    return f"warden-{role}-{socket.gethostname()}-{os.getpid()}"


def serve_metrics(settings: CommonSettings, port: int, registry: CollectorRegistry) -> asyncio.Task[None] | None:
    """``/metrics`` of a service with no HTTP server of its own: prometheus_client's own server, or, when the admin
    token must guard it, the console's gate in a server of Warden's (with the same request limits)."""
    if not settings.metrics_require_token:
        start_http_server(port, registry=registry)
        return None
    app = AnswerRefusals(console_app([], registry, Access.from_settings(settings, None), protect_metrics=True))
    server = _SignalFreeServer(uvicorn_config(app, "0.0.0.0", port, settings))
    return asyncio.get_running_loop().create_task(server.serve())


class _SignalFreeServer(Server):
    """Beside the service's own loop, which handles the signals (``until_stopped``)."""

    def capture_signals(self) -> contextlib.AbstractContextManager[None]:  # type: ignore[override]
        return contextlib.nullcontext()


async def run_ingress(settings: IngressSettings) -> None:
    BUDGET.resize(settings.cache_max_bytes)
    listener = bind(settings.host, settings.port)  # before anything starts: a port in use is said at once
    registry = CollectorRegistry()
    bus = make_bus(settings, instance_id("ingress"), registry)
    config = ConfigMaps.build(settings, history=True)
    profiles, quarantines = config.profiles, config.quarantines
    ingress = Ingress(
        settings,
        bus,
        IngressMetrics.from_settings(registry, settings),
        profiles=ProfileSnapshot(profiles),
        quarantines=quarantines.get,
        history=provider_history(settings, config),
    )
    console = console_app([], registry, Access.from_settings(settings, None), settings.metrics_require_token)
    app = Dispatch(with_access_log(ingress, settings.access_log), console)
    await config.start()
    await ingress.history.start()
    await bus.start()
    await ingress.startup()
    print(f"Warden ingress listening on {settings.host}:{settings.port}", flush=True)
    try:
        await Server(uvicorn_config(app, settings.host, settings.port, settings)).serve(sockets=[listener])
    finally:
        await ingress.shutdown()
        await ingress.history.stop()
        await bus.stop()
        await config.stop()
        print("Warden ingress stopped", flush=True)


async def run_logger(settings: LoggerSettings) -> None:
    registry = CollectorRegistry()
    store = make_store(settings)
    await migrate_when_reachable(store)
    bus = make_bus(settings, instance_id("logger"), registry)
    LoggerService(
        bus,
        store,
        registry,
        max_batch=settings.logger_max_batch,
        max_wait_s=settings.logger_max_wait_s,
        group=settings.logger_group,
    ).register()
    metrics = serve_metrics(settings, settings.metrics_port, registry)
    await bus.start()
    print(f"Warden logger consuming; metrics on :{settings.metrics_port}", flush=True)
    try:
        await until_stopped()
    finally:
        if metrics is not None:
            metrics.cancel()
        await bus.stop()
        await store.close()
        print("Warden logger stopped", flush=True)


async def run_guard(settings: GuardSettings) -> None:
    BUDGET.resize(settings.cache_max_bytes)
    registry = CollectorRegistry()
    bus = make_bus(settings, instance_id("guard"), registry)
    config = ConfigMaps.build(settings)
    profiles, quarantines = config.profiles, config.quarantines
    guard = GuardService(bus, ProfileSnapshot(profiles), quarantines, registry, settings.agent_label_cap)
    guard.register()
    metrics = serve_metrics(settings, settings.metrics_port, registry)
    await config.start()
    await bus.start()
    print(f"Warden guard consuming; metrics on :{settings.metrics_port}", flush=True)
    try:
        await until_stopped()
    finally:
        if metrics is not None:
            metrics.cancel()
        await bus.stop()
        guard.close()
        await config.stop()
        print("Warden guard stopped", flush=True)


async def run_console(settings: ConsoleSettings) -> None:
    listener = bind(settings.host, settings.console_port, "console_port")
    registry = CollectorRegistry()
    store = make_store(settings)
    await migrate_when_reachable(store)
    config = ConfigMaps.build(settings)
    profiles, quarantines = config.profiles, config.quarantines
    ingress_settings = IngressSettings()
    public = ingress_settings.public_url or f"http://127.0.0.1:{ingress_settings.port}"
    providers = list(configured_upstreams(ingress_settings))
    api = InteractionsApi(store)
    revoked = revoked_sessions(settings)
    access = Access.from_settings(settings, revoked)
    viewer = Viewer(api, access)
    routes = [
        *api.routes(),
        *ProfilesApi(profiles, lambda: public, lambda: providers).routes(),
        *QuarantinesApi(quarantines).routes(),
        *viewer.routes(),
    ]
    app = AnswerRefusals(viewer.wrap(console_app(routes, registry, access, settings.metrics_require_token)))
    await config.start()
    await revoked.start()
    print(f"Warden console listening on {settings.host}:{settings.console_port}", flush=True)
    try:
        await Server(uvicorn_config(app, settings.host, settings.console_port, settings)).serve(sockets=[listener])
    finally:
        await revoked.stop()
        await config.stop()
        await store.close()
