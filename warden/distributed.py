"""Distributed mode: each service in its own process, over Kafka and a ClickHouse server (or chDB)."""

from __future__ import annotations

import logging
import os
import socket

from prometheus_client import CollectorRegistry, start_http_server

from plumbing.bus.factory import make_bus
from plumbing.store.factory import make_store
from plumbing.store.migrations import migrate
from services.console.api import InteractionsApi
from services.console.app import console_app
from services.console.settings import ConsoleSettings
from services.ingress.app import Ingress
from services.ingress.metrics import IngressMetrics
from services.ingress.settings import IngressSettings
from services.logger.service import LoggerService
from services.logger.settings import LoggerSettings
from warden.dispatch import Dispatch
from warden.embedded import Server, uvicorn_config
from warden.signals import until_stopped

log = logging.getLogger("warden")


def instance_id(role: str) -> str:
    return f"warden-{role}-{socket.gethostname()}-{os.getpid()}"


async def run_ingress(settings: IngressSettings) -> None:
    registry = CollectorRegistry()
    bus = make_bus(settings, instance_id("ingress"), registry)
    ingress = Ingress(settings, bus, IngressMetrics(registry, settings.agent_label_cap), profiles={"default": True}.get)
    app = Dispatch(ingress, console_app([], registry, settings.admin_token))
    await bus.start()
    await ingress.startup()
    print(f"Warden ingress listening on {settings.host}:{settings.port}", flush=True)
    try:
        await Server(uvicorn_config(app, settings.host, settings.port)).serve()
    finally:
        await ingress.shutdown()
        await bus.stop()
        print("Warden ingress stopped", flush=True)


async def run_logger(settings: LoggerSettings) -> None:
    registry = CollectorRegistry()
    store = make_store(settings)
    await migrate(store)
    bus = make_bus(settings, instance_id("logger"), registry)
    LoggerService(
        bus, store, registry, max_batch=settings.logger_max_batch, max_wait_s=settings.logger_max_wait_s
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


async def run_console(settings: ConsoleSettings) -> None:
    registry = CollectorRegistry()
    store = make_store(settings)
    await migrate(store)
    app = console_app(InteractionsApi(store).routes(), registry, settings.admin_token)
    print(f"Warden console listening on {settings.host}:{settings.console_port}", flush=True)
    try:
        await Server(uvicorn_config(app, settings.host, settings.console_port)).serve()
    finally:
        await store.close()
