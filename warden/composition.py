"""Builds each of Warden's services from settings, a bus and the replicated configuration maps, and knows the order
they start and stop in: the one place that wires them, for ``warden serve`` (every service in one process) and for
each distributed role (one service a process). A setting means the same in both."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from starlette.types import ASGIApp

from plumbing.bus.base import Bus
from plumbing.counters.base import Counters
from plumbing.counters.redis import RedisCounters
from plumbing.counters.table import CounterTable
from plumbing.http_limits import AnswerRefusals
from plumbing.keyring import Keyring
from plumbing.settings import CommonSettings
from plumbing.store.base import Store
from plumbing.store.migrations import migrate
from plumbing.tracing import Sampling, SpanExport, tracing_enabled
from schemas.profiles import Profile
from services.console.access import Access
from services.console.api import InteractionsApi
from services.console.app import console_app
from services.console.keys_api import KeysApi
from services.console.profiles_api import ProfilesApi
from services.console.quarantines_api import QuarantinesApi
from services.console.upstreams_api import UpstreamsApi
from services.console.usage import UsageApi
from services.console.viewer import Viewer
from services.guard.service import GuardService
from services.guard.settings import GuardSettings
from services.ingress.app import Ingress
from services.ingress.failover.routing import UpstreamRouting
from services.ingress.history import ProviderHistory
from services.ingress.keys import KeyIndex
from services.ingress.metrics import IngressMetrics
from services.ingress.profiles import ProfileSnapshot
from services.ingress.settings import IngressSettings
from services.ingress.spent import spent
from services.ingress.tracecontext import TraceStarter
from services.ingress.upstreams import configured_upstreams
from services.logger.service import LoggerService
from services.logger.settings import LoggerBatching
from services.tracing.service import TracingService
from services.tracing.settings import TracingSettings
from warden.config_maps import ConfigMaps
from warden.serving import Server, uvicorn_config

log = logging.getLogger("warden")

ALL_ADDRESSES = ("0.0.0.0", "::", "")


def public_url(settings: IngressSettings) -> str:
    """Where clients reach the ingress (the profiles' connect URLs, the start-up lines): ``WARDEN_PUBLIC_URL``, else
    ``http://<host>:<port>``, with this machine's loopback for a host that means every address."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    host = "127.0.0.1" if settings.host in ALL_ADDRESSES else settings.host
    if ":" in host and not host.startswith("["):  # an IPv6 address goes in brackets in a URL
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


def keyring(settings: CommonSettings) -> Keyring | None:
    """The master key's keyring (``WARDEN_MASTER_KEY``); None when it is not set."""
    return Keyring.from_setting(settings.master_key.get_secret_value() if settings.master_key else None)


COUNTERS_FILE = "counters.bin"


def counter_table(settings: IngressSettings, shared: bool) -> CounterTable:
    """Where budgets and rate limits are counted without a shared server: ``shared``, a table every process over
    the data directory maps (``<data_dir>/counters.bin``); else this process's own."""
    path = settings.data_dir / COUNTERS_FILE if shared else None
    return CounterTable(path, settings.counters_max_bytes)


def counters(settings: IngressSettings, shared: bool) -> Counters:
    """Where budgets and rate limits are counted: Redis when ``WARDEN_REDIS_URL`` is set (every ingress process, on
    every host, counts together), else the table (``shared``: see :func:`counter_table`)."""
    if settings.redis_url is not None:
        return RedisCounters.from_settings(settings)
    return counter_table(settings, shared)


RAISE_RETRY_FIRST_S = 0.5
RAISE_RETRY_MAX_S = 30.0
"""A raise of budget counters that failed (store or Redis unreachable) is tried again after these waits, doubling:
a budget whose counters never learnt the record would let its window's earlier spend be spent again."""


async def refill_counters(counters: Counters, store: Store, config: ConfigMaps, generation: int) -> None:
    """Budget counters that count what the record says was spent: filled from the store at start, then brought up to
    it whenever a profile is created or changed (:func:`follow_budgets`).

    The table is emptied and filled, unless it was filled for this ``generation`` already (a process of the same run
    started again: its counts, reservations included, stand). Redis keeps its counts itself (its own persistence,
    AOF) across Warden's restarts: its counters are only raised to the record, never lowered, so a budget Redis
    never counted, or counts it lost, start from what was spent. A raise that fails is tried again in the background
    until it succeeds (:data:`RAISE_RETRY_MAX_S`); the start does not wait for it."""
    retries: set[asyncio.Task[None]] = set()
    if isinstance(counters, CounterTable):
        if not generation or counters.generation != generation:
            counts = await _spent_now(store, config, config.profiles.values())
            written = counters.refill(counts, generation)
            fields = {"counters": written, "of": len(counts)}
            log.info("budget counters filled from the store", extra={"fields": fields})
    elif not await _raise_budgets(counters, store, config, None):
        _keep(retries, _raise_until_done(counters, store, config, None))
    follow_budgets(counters, store, config, retries)


def _keep(tasks: set[asyncio.Task[None]], work: Coroutine[Any, Any, None]) -> None:
    task = asyncio.get_running_loop().create_task(work)
    tasks.add(task)
    task.add_done_callback(tasks.discard)


async def _spent_now(store: Store, config: ConfigMaps, profiles: Iterable[Profile]) -> dict[str, tuple[int, float]]:
    keys = config.keys.values() if config.keys is not None else []
    return await spent(store, profiles, keys, datetime.now(UTC))


async def _raise_budgets(counters: Counters, store: Store, config: ConfigMaps, profile_id: str | None) -> bool:
    """The counters of the budgets of profile ``profile_id`` (None: of every profile), as the profiles are now, raised
    to what the store says they spent in their current windows; whether that was done."""
    if profile_id is None:
        profiles = config.profiles.values()
    else:
        profile = config.profiles.get(profile_id)
        profiles = [profile] if profile is not None and profile.budgets else []
    try:
        counts = await _spent_now(store, config, profiles)
        raised = await counters.raise_to(counts)
    except Exception as exc:
        fields = {"profile_id": profile_id or "*", "error": type(exc).__name__}
        log.warning("budget counters could not be brought up to the store", extra={"fields": fields})
        return False
    if raised < len(counts):
        log.warning("budget counters out of room", extra={"fields": {"counters": raised, "of": len(counts)}})
    return True


async def _raise_until_done(counters: Counters, store: Store, config: ConfigMaps, profile_id: str | None) -> None:
    wait = RAISE_RETRY_FIRST_S
    while True:
        await asyncio.sleep(wait)
        if await _raise_budgets(counters, store, config, profile_id):
            log.info("budget counters brought up to the store", extra={"fields": {"profile_id": profile_id or "*"}})
            return
        wait = min(2 * wait, RAISE_RETRY_MAX_S)


def follow_budgets(
    counters: Counters, store: Store, config: ConfigMaps, tasks: set[asyncio.Task[None]] | None = None
) -> None:
    """On every profile created or changed with budgets, its counters are raised to what the store says was spent in
    each budget's window: a budget added on the 20th of the month counts the month's spend, not zero from the moment
    it was added. Raised, never lowered: reservations made since stand. What was answered but is not in the store
    yet (the logger's batch delay, seconds) is not counted. A raise that fails is tried again until it succeeds."""
    pending: set[asyncio.Task[None]] = tasks if tasks is not None else set()

    async def raise_budgets(profile_id: str) -> None:
        if not await _raise_budgets(counters, store, config, profile_id):
            await _raise_until_done(counters, store, config, profile_id)

    def changed(key: str, profile: Profile | None) -> None:
        if profile is None or not profile.budgets:
            return
        _keep(pending, raise_budgets(key))

    config.profiles.listen(changed)


def ingress(
    settings: IngressSettings,
    bus: Bus,
    config: ConfigMaps,
    registry: CollectorRegistry,
    profiles: ProfileSnapshot | None = None,
    counters: Counters | None = None,
) -> Ingress:
    """The proxy; ``config`` must hold the provider-history map and the keys (``ConfigMaps.build(…, history=True,
    keys=True)``). ``profiles``: a snapshot shared with a guard in the same process (else one of its own);
    ``counters``: where budgets and rate limits are counted (else the process's own table)."""
    history = ProviderHistory(config.history, max_bytes=settings.history_max_bytes, ttl_s=settings.history_ttl_s)
    ring = keyring(settings)
    metrics = IngressMetrics.from_settings(registry, settings)
    routing = UpstreamRouting(
        settings,
        configured_upstreams(settings),
        ring,
        attempts_counter=metrics.upstream_attempts,
        breaker_gauge=metrics.breaker_state,
        deployments=config.deployments,
        aliases=config.aliases,
    )
    return Ingress(
        settings,
        bus,
        metrics,
        profiles=profiles or ProfileSnapshot(config.profiles),
        quarantines=config.quarantines.get,
        history=history,
        keys=KeyIndex(config.keys, ring),
        keyring=ring,
        traces=TraceStarter(Sampling.from_env() if tracing_enabled() else None),
        counters=counters if counters is not None else counter_table(settings, shared=False),
        routing=routing,
    )


def logger(settings: LoggerBatching, bus: Bus, store: Store, registry: CollectorRegistry) -> LoggerService:
    """The logger, subscribed: batches as ``WARDEN_LOGGER_MAX_BATCH`` / ``WARDEN_LOGGER_MAX_WAIT_S`` say."""
    service = LoggerService(
        bus,
        store,
        registry,
        max_batch=settings.logger_max_batch,
        max_wait_s=settings.logger_max_wait_s,
        group=settings.logger_group,
    )
    service.register()
    return service


def guard(
    settings: IngressSettings | GuardSettings,
    bus: Bus,
    config: ConfigMaps,
    registry: CollectorRegistry,
    profiles: ProfileSnapshot | None = None,
) -> GuardService:
    """The guard, subscribed. ``profiles``: a snapshot shared with an ingress in the same process (else one of its
    own)."""
    snapshot = profiles or ProfileSnapshot(config.profiles)
    service = GuardService(bus, snapshot, config.quarantines, registry, settings.agent_label_cap)
    service.register()
    return service


def tracing(bus: Bus, registry: CollectorRegistry) -> TracingService | None:
    """The spans of each interaction, subscribed, when the ``OTEL_*`` variables name a collector (else None)."""
    if not tracing_enabled():
        return None
    service = TracingService(bus, SpanExport(registry), TracingSettings())
    service.register()
    return service


def console(
    settings: CommonSettings,
    ingress_settings: IngressSettings,
    store: Store,
    config: ConfigMaps,
    registry: CollectorRegistry,
) -> ASGIApp:
    """The read API, admin API and logs viewer. ``config`` must hold the logged-out sessions and the keys
    (``ConfigMaps.build(…, sessions=True, keys=True)``). ``ingress_settings``: the ingress's, for the connect URLs
    (its public URL and its providers)."""
    url = public_url(ingress_settings)
    providers = list(configured_upstreams(ingress_settings))
    api = InteractionsApi(store)
    access = Access.from_settings(settings, config.revoked_sessions)
    viewer = Viewer(api, access)
    ring = keyring(settings)
    assert config.keys is not None, "the console issues Warden keys: build its maps with keys=True"
    routes = [
        *api.routes(),
        *ProfilesApi(config.profiles, lambda: url, lambda: providers, ring).routes(),
        *KeysApi(config.keys, config.profiles, ring).routes(),
        *QuarantinesApi(config.quarantines).routes(),
        *UpstreamsApi(
            config.deployments,
            config.aliases,
            ring,
            lambda: providers,
            ingress_settings.deployments,
            ingress_settings.model_aliases,
        ).routes(),
        *UsageApi(store).routes(),
        *viewer.routes(),
    ]
    return AnswerRefusals(viewer.wrap(console_app(routes, registry, access, settings.metrics_require_token)))


def metrics_app(settings: CommonSettings, registry: CollectorRegistry) -> ASGIApp:
    """``/metrics`` and ``/healthz`` alone (behind the admin token when ``WARDEN_METRICS_REQUIRE_TOKEN`` says so),
    for a service with no console of its own."""
    access = Access.from_settings(settings, None)
    return AnswerRefusals(console_app([], registry, access, settings.metrics_require_token))


@dataclass
class MetricsServer:
    """``/metrics`` of a service with no HTTP server of its own: prometheus_client's own server, or, when the admin
    token must guard it, the console's gate in a server of Warden's (with the same request limits)."""

    settings: CommonSettings
    port: int
    registry: CollectorRegistry
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if not self.settings.metrics_require_token:
            start_http_server(self.port, registry=self.registry)
            return
        config = uvicorn_config(metrics_app(self.settings, self.registry), "0.0.0.0", self.port, self.settings)
        # Beside the service's own wait, which handles the signals.
        self._task = asyncio.get_running_loop().create_task(Server(config, signals=False).serve())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()


@dataclass
class Lifecycle:
    """The services one process runs, started so that each finds running what it needs, and stopped in the reverse
    order: the ingress stops taking requests, the bus drains every accepted event into the guard and the logger, the
    guard's detectors finish, the maps save, the store closes last. A stop undoes only what started, every step even
    when one before it failed; a start that fails undoes what it had started."""

    bus: Bus | None = None
    store: Store | None = None
    migrate: Callable[[Store], Awaitable[list[str]]] = migrate
    config: ConfigMaps | None = None
    ingress: Ingress | None = None
    guard: GuardService | None = None
    tracing: TracingService | None = None
    metrics: MetricsServer | None = None
    counters: Callable[[], Awaitable[None]] | None = None
    """Fills the budget counters from the store once the store and the profiles are there, and keeps raising them to
    it on every profile change (``refill_counters``)."""
    _started: contextlib.AsyncExitStack | None = field(default=None, repr=False)

    async def start(self) -> None:
        stack = contextlib.AsyncExitStack()
        try:
            await self._start(stack)
        except BaseException:
            await stack.aclose()
            raise
        self._started = stack

    async def _start(self, stack: contextlib.AsyncExitStack) -> None:
        if self.store is not None:
            stack.push_async_callback(self.store.close)
            applied = await self.migrate(self.store)
            if applied:
                log.info("schema migrated", extra={"fields": {"applied": applied}})
        if self.config is not None:
            await self.config.start()
            stack.push_async_callback(self.config.stop)
        if self.counters is not None:
            await self.counters()
        if self.guard is not None:
            stack.callback(self.guard.close)  # after the bus drained the events it is still scoring
        if self.tracing is not None:
            stack.callback(self.tracing.close)  # likewise: then what is queued goes to the collector
        if self.bus is not None:
            await self.bus.start()
            stack.push_async_callback(self.bus.stop)
        if self.ingress is not None:
            await self.ingress.history.start()
            stack.push_async_callback(self.ingress.history.stop)
            await self.ingress.startup()
            stack.push_async_callback(self.ingress.shutdown)
        if self.metrics is not None:
            await self.metrics.start()
            stack.push_async_callback(self.metrics.stop)

    async def stop(self) -> None:
        stack, self._started = self._started, None
        if stack is not None:
            await stack.aclose()
