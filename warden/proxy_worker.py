"""One of ``warden serve``'s proxy processes: the ingress and nothing else.

It listens on the user's port beside the other workers (``SO_REUSEPORT``), writes the events it publishes to its
hand-off log (``plumbing/bus/handoff.py``), forwards the console's paths to the background process
(``warden/forward.py``) and answers its own metrics on a private unix socket for the background to add up. The
profiles, quarantines and provider history come from the maps every process shares (``SharedFileMap``).

Started by ``warden serve`` (``warden/serve.py``), never by hand: ``python -m warden.proxy_worker <index>``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from plumbing.bounded import BUDGET
from plumbing.bus.handoff import HandoffBus
from services.ingress.access_log import with_access_log
from warden import composition, serve_child
from warden.composition import Lifecycle
from warden.config_maps import ConfigMaps
from warden.dispatch import Dispatch
from warden.forward import Forward
from warden.serving import Server, run, uvicorn_config
from warden.startup import bind
from warden.worker_control import beside, control_app, unix_listener


@dataclass
class Worker:
    lifecycle: Lifecycle
    forward: Forward
    metrics: Server

    async def start(self) -> None:
        await self.lifecycle.start()

    async def stop(self) -> None:
        """Requests in flight have finished (the server stopped first): every event they published is on disk when
        this returns."""
        self.metrics.should_exit = True
        await self.lifecycle.stop()
        await self.forward.aclose()


async def run_worker(index: int) -> None:
    settings = serve_child.settings()
    BUDGET.resize(settings.cache_max_bytes)
    paths = serve_child.paths(settings)
    listener = bind(settings.host, settings.port, shared=True)
    metrics_listener = unix_listener(paths.worker_socket(index))
    registry = CollectorRegistry()
    bus = HandoffBus.from_settings(paths.worker_log(index), registry, settings)
    config = ConfigMaps.build(settings, history=True, keys=True)
    # Redis when WARDEN_REDIS_URL is set; else one table of counters for every worker (the background process filled
    # it at start).
    counters = composition.counters(settings, shared=True)
    ingress = composition.ingress(settings, bus, config, registry, counters=counters)
    forward = Forward(paths.background_socket)
    app = Dispatch(with_access_log(ingress, settings.access_log), forward)
    server_config = uvicorn_config(app, settings.host, settings.port, settings)
    server_config.timeout_graceful_shutdown = settings.stop_grace_s
    server = Server(server_config)
    metrics = Server(uvicorn_config(control_app(registry, config.refresh), "127.0.0.1", 0, settings), signals=False)

    await run(
        Worker(Lifecycle(bus=bus, config=config, ingress=ingress), forward, metrics),
        beside(metrics, metrics_listener, lambda: server.serve(sockets=[listener])),
        started=lambda: None,
        stopped=f"Warden proxy worker {index} stopped",
    )


# The hand-off's writer thread frames events beside the event loop: with Python's default 5 ms switch interval a
# request arriving meanwhile could wait that long for the interpreter; hand it over sooner.
GIL_SWITCH_INTERVAL_S = 0.0005


def main() -> int:
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    serve_child.prepare()
    return serve_child.run_service(run_worker(int(sys.argv[1])))


if __name__ == "__main__":
    sys.exit(main())
