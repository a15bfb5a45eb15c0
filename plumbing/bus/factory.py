"""Chooses the bus from the settings: Kafka when brokers are configured, else the in-process bus."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from plumbing.bus.base import Bus
from plumbing.bus.inprocess import InProcessBus
from plumbing.settings import CommonSettings


def make_bus(settings: CommonSettings, client_id: str, registry: CollectorRegistry, worker: int | None = None) -> Bus:
    """``worker``: this process is worker ``worker`` of several of the same service, with an event log of its own."""
    if settings.kafka_bootstrap_servers:
        from plumbing.bus.kafka import KafkaBus
        from plumbing.bus.spool import worker_directory

        spool_dir = settings.data_dir / "spool" / client_id.split("-")[1]
        if worker is not None:
            spool_dir = worker_directory(spool_dir, worker)

        return KafkaBus(
            settings.kafka_bootstrap_servers,
            client_id=client_id,
            spool_dir=spool_dir,
            registry=registry,
            buffer_max_bytes=settings.bus_buffer_max_bytes,
            unlogged_max_bytes=settings.bus_unlogged_max_bytes,
            spool_max_bytes=settings.bus_spool_max_bytes,
            spool_flush_ms=settings.bus_spool_flush_ms,
        )
    return InProcessBus(settings.bus_memory_max_bytes, registry)
