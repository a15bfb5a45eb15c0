"""Distributed mode: each service in its own process, over Kafka and a ClickHouse server (or chDB)."""

from __future__ import annotations

import logging
import os
import socket

from prometheus_client import CollectorRegistry, start_http_server

from plumbing.bus.factory import make_bus
from plumbing.store.factory import make_store
from plumbing.store.migrations import migrate_when_reachable
from services.console.api import InteractionsApi
from services.console.app import console_app
from services.console.profiles_api import ProfilesApi
from services.console.quarantines_api import QuarantinesApi
from services.console.settings import ConsoleSettings
from services.console.viewer import Viewer
from services.guard.service import GuardService
from services.guard.settings import GuardSettings
from services.ingress.app import Ingress
from services.ingress.metrics import IngressMetrics
from services.ingress.profiles import ProfileSnapshot
from services.ingress.settings import IngressSettings
from services.ingress.upstreams import configured_upstreams
from services.logger.service import LoggerService
from services.logger.settings import LoggerSettings
from warden.config_maps import ConfigMaps
from warden.dispatch import Dispatch
from warden.embedded import Server, provider_history, uvicorn_config
from warden.signals import until_stopped

log = logging.getLogger("warden")


def instance_id(role: str) -> str:
    return f"warden-{role}-{socket.gethostname()}-{os.getpid()}"


async def run_ingress(settings: IngressSettings) -> None:
    registry = CollectorRegistry()
    bus = make_bus(settings, instance_id("ingress"), registry)
    config = ConfigMaps.build(settings, history=True)
    profiles, quarantines = config.profiles, config.quarantines
    ingress = Ingress(
        settings,
        bus,
        IngressMetrics(registry, settings.agent_label_cap),
        profiles=ProfileSnapshot(profiles),
        quarantines=quarantines.get,
        history=provider_history(settings, config),
    )
    app = Dispatch(ingress, console_app([], registry, settings.admin_token))
    await config.start()
    await ingress.history.start()
    await bus.start()
    await ingress.startup()
    print(f"Warden ingress listening on {settings.host}:{settings.port}", flush=True)
    try:
        await Server(uvicorn_config(app, settings.host, settings.port)).serve()
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
    start_http_server(settings.metrics_port, registry=registry)
    await bus.start()
    print(f"Warden logger consuming; metrics on :{settings.metrics_port}", flush=True)
    try:
        await until_stopped()
    finally:
        await bus.stop()
        await store.close()
        print("Warden logger stopped", flush=True)


async def run_guard(settings: GuardSettings) -> None:
    registry = CollectorRegistry()
    bus = make_bus(settings, instance_id("guard"), registry)
    config = ConfigMaps.build(settings)
    profiles, quarantines = config.profiles, config.quarantines
    guard = GuardService(bus, ProfileSnapshot(profiles), quarantines, registry, settings.agent_label_cap)
    guard.register()
    start_http_server(settings.metrics_port, registry=registry)
    await config.start()
    await bus.start()
    print(f"Warden guard consuming; metrics on :{settings.metrics_port}", flush=True)
    try:
        await until_stopped()
    finally:
        await bus.stop()
        guard.close()
        await config.stop()
        print("Warden guard stopped", flush=True)


async def run_console(settings: ConsoleSettings) -> None:
    registry = CollectorRegistry()
    store = make_store(settings)
    await migrate_when_reachable(store)
    config = ConfigMaps.build(settings)
    profiles, quarantines = config.profiles, config.quarantines
    ingress_settings = IngressSettings()
    public = ingress_settings.public_url or f"http://127.0.0.1:{ingress_settings.port}"
    providers = list(configured_upstreams(ingress_settings))
    api = InteractionsApi(store)
    viewer = Viewer(api, settings.admin_token)
    routes = [
        *api.routes(),
        *ProfilesApi(profiles, lambda: public, lambda: providers).routes(),
        *QuarantinesApi(quarantines).routes(),
        *viewer.routes(),
    ]
    app = viewer.wrap(console_app(routes, registry, settings.admin_token))
    await config.start()
    print(f"Warden console listening on {settings.host}:{settings.console_port}", flush=True)
    try:
        await Server(uvicorn_config(app, settings.host, settings.console_port)).serve()
    finally:
        await config.stop()
        await store.close()
