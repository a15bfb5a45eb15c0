"""The embedded default in one process: ingress, guard, logger and console over the in-process bus and chDB (or Kafka
and a ClickHouse server when configured), and the settings ``warden serve`` reads.

``warden serve`` itself runs the same services as processes (``warden/serve.py``); this one-process composition is
what tests drive directly."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from pydantic import Field
from starlette.types import ASGIApp

from plumbing.bounded import BUDGET
from plumbing.bus.base import Bus
from plumbing.bus.factory import make_bus
from plumbing.store.base import Store
from plumbing.store.factory import make_store
from services.guard.service import GuardService
from services.guard.settings import DetectorSettings
from services.ingress.access_log import with_access_log
from services.ingress.app import Ingress
from services.ingress.profiles import ProfileSnapshot
from services.ingress.settings import IngressSettings
from services.logger.service import LoggerService
from services.logger.settings import LoggerBatching
from warden import composition
from warden.composition import Lifecycle
from warden.config_maps import ConfigMaps
from warden.dispatch import Dispatch


class ServeSettings(IngressSettings, LoggerBatching, DetectorSettings):
    """What ``warden serve`` reads: the ingress's settings, the logger's batching and the detectors' (the guard's
    other settings and the console's are among the ingress's)."""

    workers: int | None = Field(default=None, ge=1)
    """Proxy processes on the port (``--workers``). Unset: the cores available (CPU affinity) less one for the
    background process, at least one."""
    background_nice: int = Field(default=10, ge=0, le=19)
    """How much lower the background process's CPU priority is than the proxy processes' (niceness added at its
    start): where they share cores the proxies answer first and the background works in the gaps, its lag held on
    disk by the hand-off logs. 0: the same priority."""
    stop_grace_s: float = Field(default=5.0, ge=0)
    """On SIGTERM / Ctrl-C, how long a proxy process lets requests in flight finish before it closes them; then it
    writes what they published to its hand-off log and exits."""


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
        config = ConfigMaps.build(settings, history=True, sessions=True, keys=True)
        profiles = ProfileSnapshot(config.profiles)  # one snapshot for the proxy and the guard
        counters = composition.counters(settings, shared=False)
        ingress = composition.ingress(settings, bus, config, registry, profiles, counters)
        logger = composition.logger(settings, bus, store, registry)
        guard = composition.guard(settings, bus, config, registry, profiles)
        tracing = composition.tracing(bus, registry)
        console = composition.console(settings, settings, store, config, registry)
        app = Dispatch(with_access_log(ingress, settings.access_log), console)
        lifecycle = Lifecycle(
            bus=bus,
            store=store,
            config=config,
            ingress=ingress,
            guard=guard,
            tracing=tracing,
            counters=lambda: composition.refill_counters(counters, store, config, generation=0),
        )
        return cls(settings, registry, bus, store, config, ingress, logger, guard, app, lifecycle)

    async def start(self) -> None:
        await self.lifecycle.start()

    async def stop(self) -> None:
        """Drain: every event already accepted reaches storage before the store closes."""
        await self.lifecycle.stop()
