"""``warden serve``'s background process: the store (chDB), the logger, the guard and the console's answers.

It reads every proxy process's hand-off log (``plumbing/bus/handoff.py``) into its own bus, where the logger and the
guard are subscribed as in the one-process composition, and answers the console's paths (read API, admin API, logs
viewer, ``/metrics`` of every process) on a unix socket the proxy processes forward them to. Whatever it does, and
however slowly, happens outside the proxies' interpreters.

Started by ``warden serve`` (``warden/serve.py``), never by hand: ``python -m warden.background``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry

from plumbing.bounded import BUDGET
from plumbing.bus.base import Bus, Delivery, topic_model
from plumbing.bus.factory import make_bus
from plumbing.bus.handoff import HandoffReader
from plumbing.bus.inprocess import InProcessBus
from plumbing.store.factory import make_store
from services.ingress.profiles import ProfileSnapshot
from warden import composition, serve_child
from warden.composition import Lifecycle
from warden.config_maps import ConfigMaps
from warden.embedded import ServeSettings
from warden.forward import PeerFromHeader
from warden.serving import Server, run, uvicorn_config
from warden.worker_control import RefreshAfterWrites, WorkerMetrics, unix_listener


def model_publisher(bus: Bus) -> Callable[[str, str, bytes], None]:
    """A hand-off record as its topic's model: a broker-backed bus publishes models (in-process, each subscription
    decodes the JSON bytes itself, as from Kafka)."""

    def publish(topic: str, key: str, payload: bytes) -> None:
        bus.publish(topic, key, topic_model(Delivery(topic=topic, key=key, event=None, raw=payload)))

    return publish


def handoff_reader(root: Path, bus: Bus) -> HandoffReader:
    """In-process: read the logs no faster than the bus has room, and acknowledge by the bus's marks. A
    broker-backed bus has settled a round once its publisher took every event (it logs what the broker has not
    acknowledged yet)."""
    if isinstance(bus, InProcessBus):
        return HandoffReader(root, bus.publish_raw, bus.mark, bus.room, bus.press)
    return HandoffReader(root, model_publisher(bus), lambda: lambda: bus.pending() == 0)


@dataclass
class Background:
    lifecycle: Lifecycle
    reader: HandoffReader

    async def start(self) -> None:
        await self.lifecycle.start()
        await self.reader.start()

    async def stop(self) -> None:
        """The proxies have stopped (``warden serve`` stops them first): read their logs to the end, then the bus
        drains into the store and the store closes."""
        await self.reader.stop()
        await self.lifecycle.stop()
        await self.reader.finish()


async def run_background(settings: ServeSettings) -> None:
    BUDGET.resize(settings.cache_max_bytes)
    paths = serve_child.paths(settings)
    listener = unix_listener(paths.background_socket)
    registry = CollectorRegistry()
    bus = make_bus(settings, "warden-serve", registry)
    store = make_store(settings)
    config = ConfigMaps.build(settings, sessions=True, keys=True)
    profiles = ProfileSnapshot(config.profiles)
    composition.logger(settings, bus, store, registry)
    guard = composition.guard(settings, bus, config, registry, profiles)
    tracing = composition.tracing(bus, registry)  # the spans are built from the events the workers hand over
    registry.register(WorkerMetrics(paths.run_dir))
    console = PeerFromHeader(
        RefreshAfterWrites(composition.console(settings, settings, store, config, registry), paths.run_dir)
    )
    # The proxy workers' shared counters, filled from the store before any of them starts (once per run); none to
    # fill when they are in Redis.
    counters = composition.counters(settings, shared=True)
    generation = serve_child.generation(paths.run_dir)
    reader = handoff_reader(paths.handoff, bus)
    server = Server(uvicorn_config(console, "127.0.0.1", 0, settings))
    await run(
        Background(
            Lifecycle(
                bus=bus,
                store=store,
                config=config,
                guard=guard,
                tracing=tracing,
                counters=lambda: composition.refill_counters(counters, store, config, generation),
            ),
            reader,
        ),
        lambda: server.serve(sockets=[listener]),
        started=lambda: None,
        stopped="Warden background process stopped",
    )


def lower_priority(by: int) -> None:
    """Every thread of this process ``by`` lower in priority (more nice). Linux keeps a priority per thread, and
    libraries may have started native threads at import already."""
    if by <= 0:
        return
    tasks = Path("/proc/self/task")
    if not tasks.is_dir():  # not Linux: the process's priority is all there is
        os.nice(by)
        return
    for task in tasks.iterdir():
        with contextlib.suppress(OSError, ValueError):  # a thread that ended meanwhile
            tid = int(task.name)
            os.setpriority(os.PRIO_PROCESS, tid, min(os.getpriority(os.PRIO_PROCESS, tid) + by, 19))


def main() -> int:
    serve_child.prepare()
    settings = serve_child.settings()
    # The guard, the logger, chDB and the console all run below the proxy processes, which answer first on shared
    # cores. Before the store and the servers start their threads: new threads inherit their creator's priority.
    lower_priority(settings.background_nice)
    return serve_child.run_service(run_background(settings))


if __name__ == "__main__":
    sys.exit(main())
