"""``warden serve``: ingress, logger and console in one process.

The embedded default runs them over the in-process bus and chDB; with Kafka or a ClickHouse server configured, the
same process uses those instead."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import sys
from collections.abc import Generator
from dataclasses import dataclass

import uvicorn
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp

from plumbing.bounded import BUDGET
from plumbing.bus.base import Bus
from plumbing.bus.factory import make_bus
from plumbing.config.base import ReplicatedMap
from plumbing.http_limits import HttpLimits, protocol_class
from plumbing.settings import CommonSettings
from plumbing.store.base import Store
from plumbing.store.factory import make_store
from plumbing.store.migrations import migrate
from schemas.profiles import Profile
from schemas.quarantine import Quarantine
from schemas.sessions import RevokedSession
from services.console.access import Access
from services.console.api import InteractionsApi
from services.console.app import console_app
from services.console.profiles_api import ProfilesApi
from services.console.quarantines_api import QuarantinesApi
from services.console.viewer import Viewer
from services.guard.service import GuardService
from services.ingress.access_log import with_access_log
from services.ingress.app import Ingress
from services.ingress.history import ProviderHistory
from services.ingress.metrics import IngressMetrics
from services.ingress.profiles import ProfileSnapshot
from services.ingress.settings import IngressSettings
from services.logger.service import LoggerService
from warden.config_maps import ConfigMaps, revoked_sessions
from warden.dispatch import Dispatch
from warden.startup import bind

log = logging.getLogger("warden")


@dataclass
class Embedded:
    """Everything ``warden serve`` runs, built but not started (tests drive it directly)."""

    settings: IngressSettings
    registry: CollectorRegistry
    bus: Bus
    store: Store
    ingress: Ingress
    logger: LoggerService
    profiles: ReplicatedMap[Profile]
    quarantines: ReplicatedMap[Quarantine]
    guard: GuardService
    app: Dispatch
    revoked_sessions: ReplicatedMap[RevokedSession]
    config: ConfigMaps

    @classmethod
    def build(cls, settings: IngressSettings) -> Embedded:
        BUDGET.resize(settings.cache_max_bytes)
        registry = CollectorRegistry()
        bus = make_bus(settings, "warden-serve", registry)
        store = make_store(settings)
        metrics = IngressMetrics.from_settings(registry, settings)
        config = ConfigMaps.build(settings, history=True)
        profiles, quarantines = config.profiles, config.quarantines
        snapshot = ProfileSnapshot(profiles)
        ingress = Ingress(
            settings,
            bus,
            metrics,
            profiles=snapshot,
            quarantines=quarantines.get,
            history=provider_history(settings, config),
        )
        logger = LoggerService(bus, store, registry)
        logger.register()
        guard = GuardService(bus, snapshot, quarantines, registry, settings.agent_label_cap)
        guard.register()
        api = InteractionsApi(store)
        profiles_api = ProfilesApi(profiles, lambda: public_url(settings), lambda: list(ingress.upstreams))
        revoked = revoked_sessions(settings)
        access = Access.from_settings(settings, revoked)
        viewer = Viewer(api, access)
        routes = [*api.routes(), *profiles_api.routes(), *QuarantinesApi(quarantines).routes(), *viewer.routes()]
        console = console_app(routes, registry, access, settings.metrics_require_token)
        app = Dispatch(with_access_log(ingress, settings.access_log), viewer.wrap(console))
        return cls(settings, registry, bus, store, ingress, logger, profiles, quarantines, guard, app, revoked, config)

    async def start(self) -> None:
        applied = await migrate(self.store)
        if applied:
            log.info("schema migrated", extra={"fields": {"applied": applied}})
        await self.config.start()
        await self.revoked_sessions.start()
        await self.ingress.history.start()
        await self.bus.start()
        await self.ingress.startup()

    async def stop(self) -> None:
        """Drain: every event already accepted reaches storage before the store closes."""
        await self.ingress.shutdown()
        await self.ingress.history.stop()
        await self.bus.stop()
        self.guard.close()
        await self.revoked_sessions.stop()
        await self.config.stop()
        await self.store.close()


def provider_history(settings: IngressSettings, config: ConfigMaps) -> ProviderHistory:
    """What this ingress remembers of provider-held histories, shared through the replicated map."""
    return ProviderHistory(config.history, max_bytes=settings.history_max_bytes, ttl_s=settings.history_ttl_s)


def public_url(settings: IngressSettings) -> str:
    """Where clients reach this Warden: WARDEN_PUBLIC_URL, else this machine's loopback when bound to all."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    return f"http://{host}:{settings.port}"


class Server(uvicorn.Server):
    """uvicorn's server, with SIGINT/SIGTERM handled here: they stop the server, then Warden drains its events
    (uvicorn's own handling re-raises the signal, which would end the process before the drain)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.handle_exit, sig, None)
        try:
            yield
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)


def uvicorn_config(app: ASGIApp, host: str, port: int, settings: CommonSettings) -> uvicorn.Config:
    limits = HttpLimits(settings.max_header_bytes, settings.max_header_count, settings.header_timeout_s)
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http=protocol_class(limits),  # httptools, with bounded headers and header time
        lifespan="off",
        access_log=False,
        log_config=None,
        server_header=False,
        proxy_headers=False,
        date_header=False,
        timeout_graceful_shutdown=30,
    )


# The guard's detectors and the logger's inserts run in threads beside the proxy's event loop. With Python's default
# 5 ms switch interval, a request arriving while one of them holds the GIL could wait that long: hand it over sooner.
GIL_SWITCH_INTERVAL_S = 0.0005


async def serve(settings: IngressSettings) -> None:
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    listener = bind(settings.host, settings.port)  # before anything slow: a port in use is said at once
    warden = Embedded.build(settings)
    await warden.start()
    gc.freeze()  # what start-up built lives as long as the process: keep it out of every collection
    server = Server(uvicorn_config(warden.app, settings.host, settings.port, settings))
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
    try:
        await server.serve(sockets=[listener])
    finally:
        pending = warden.bus.pending()
        print(f"Warden stopping: draining {pending} event(s) to storage", flush=True)
        await asyncio.shield(warden.stop())
        print("Warden stopped", flush=True)
