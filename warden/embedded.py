"""``warden serve``: ingress, guard, logger and console in one process.

The embedded default runs them over the in-process bus and chDB; with Kafka or a ClickHouse server configured, the
same process uses those instead."""

from __future__ import annotations

import gc
import sys
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp

from plumbing.bounded import BUDGET
from plumbing.bus.base import Bus
from plumbing.bus.factory import make_bus
from plumbing.store.base import Store
from plumbing.store.factory import make_store
from services.guard.service import GuardService
from services.ingress.access_log import with_access_log
from services.ingress.app import Ingress
from services.ingress.profiles import ProfileSnapshot
from services.ingress.settings import IngressSettings
from services.logger.service import LoggerService
from services.logger.settings import LoggerBatching
from warden import composition
from warden.composition import Lifecycle, public_url
from warden.config_maps import ConfigMaps
from warden.dispatch import Dispatch
from warden.serving import http_server, run
from warden.startup import bind


class ServeSettings(IngressSettings, LoggerBatching):
    """What ``warden serve`` reads: the ingress's settings and the logger's batching (the guard's and the console's
    are among the ingress's)."""


@dataclass
class Embedded:
    """Everything ``warden serve`` runs, built but not started (tests drive it directly)."""

    settings: ServeSettings
    registry: CollectorRegistry
    bus: Bus
    store: Store
    config: ConfigMaps
    ingress: Ingress
    logger: LoggerService
    guard: GuardService
    app: ASGIApp
    lifecycle: Lifecycle

    @classmethod
    def build(cls, settings: ServeSettings) -> Embedded:
        BUDGET.resize(settings.cache_max_bytes)
        registry = CollectorRegistry()
        bus = make_bus(settings, "warden-serve", registry)
        store = make_store(settings)
        config = ConfigMaps.build(settings, history=True, sessions=True)
        profiles = ProfileSnapshot(config.profiles)  # one snapshot for the proxy and the guard
        ingress = composition.ingress(settings, bus, config, registry, profiles)
        logger = composition.logger(settings, bus, store, registry)
        guard = composition.guard(settings, bus, config, registry, profiles)
        tracing = composition.tracing(bus, registry)
        console = composition.console(settings, settings, store, config, registry)
        app = Dispatch(with_access_log(ingress, settings.access_log), console)
        lifecycle = Lifecycle(bus=bus, store=store, config=config, ingress=ingress, guard=guard, tracing=tracing)
        return cls(settings, registry, bus, store, config, ingress, logger, guard, app, lifecycle)

    async def start(self) -> None:
        await self.lifecycle.start()

    async def stop(self) -> None:
        """Drain: every event already accepted reaches storage before the store closes."""
        await self.lifecycle.stop()


# The guard's detectors and the logger's inserts run in threads beside the proxy's event loop. With Python's default
# 5 ms switch interval, a request arriving while one of them holds the GIL could wait that long: hand it over sooner.
GIL_SWITCH_INTERVAL_S = 0.0005


async def serve(settings: ServeSettings) -> None:
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    listener = bind(settings.host, settings.port)  # before anything slow: a port in use is said at once
    warden = Embedded.build(settings)

    def started() -> None:
        gc.freeze()  # what start-up built lives as long as the process: keep it out of every collection
        base = public_url(settings)
        print(f"Warden (embedded) listening on {settings.host}:{settings.port}", flush=True)
        print(f"  OpenAI base URL:  {base}/v1/openai", flush=True)
        print(f"  interactions API: {base}/api/interactions    metrics: {base}/metrics", flush=True)
        print(f"  data directory:   {settings.data_dir.resolve()}", flush=True)
        if settings.admin_token is None:
            print(
                "  WARDEN_ADMIN_TOKEN is not set: /api and /logs answer only clients on this machine, "
                f"under a loopback name ({', '.join(settings.allowed_hosts)})",
                flush=True,
            )

    def stopping() -> None:
        print(f"Warden stopping: draining {warden.bus.pending()} event(s) to storage", flush=True)

    await run(
        warden.lifecycle,
        http_server(warden.app, listener, settings.host, settings.port, settings),
        started=started,
        stopping=stopping,
        stopped="Warden stopped",
    )
