"""The Kafka bus's producing side holds events not yet in its write-ahead log as objects: what it holds of them is
bounded in bytes (a log stalled on a slow disk while large bodies keep coming must not grow memory without end), and
every event it took is in the log when it stops, the ones it refused counted."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from plumbing.bus.publisher import KafkaPublisher
from plumbing.bus.spool import Spool
from schemas import topics
from tests.distributed.events import interaction

BODY_BYTES = 100_000
CAP = 1024**2


async def test_events_waiting_for_the_log_are_bounded_in_bytes_and_every_one_taken_is_logged(tmp_path):
    registry = CollectorRegistry()
    publisher = KafkaPublisher(
        "127.0.0.1:1",  # no broker: nothing leaves memory but through the log
        client_id="bounded",
        spool_dir=tmp_path / "spool",
        registry=registry,
        unlogged_max_bytes=CAP,
        flush_ms=600_000,  # the log task does not run during the burst: as if the disk had stalled
    )
    await publisher.start()
    keys = [f"interaction-{n}" for n in range(30)]
    for n, key in enumerate(keys):  # no await between them: the burst arrives before the log task can look
        request, _ = interaction("agent-bounded", n, body_bytes=BODY_BYTES)
        publisher.publish(topics.REQUESTS, key, request)
    dropped = registry.get_sample_value("warden_bus_dropped_events_total")
    taken = len(keys) - int(dropped)
    assert 0 < taken < len(keys)
    assert taken * BODY_BYTES <= CAP  # what is held of the bodies alone stays within the bound

    await publisher.stop(grace_s=0.2)
    spool = Spool(tmp_path / "spool", 2**30)
    first, last = spool.open()
    logged = spool.read(first, last, 1000, 2**30)
    spool.close()
    assert [key for _, _, key, _ in logged] == keys[:taken]  # the oldest kept, each once; the newest refused
    assert all(len(payload) > BODY_BYTES for *_, payload in logged)
