"""The real Kafka broker the suite runs for itself: produce/consume as Warden does, large records, restarts, crashes."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.codec import has_lz4, has_zstd
from aiokafka.structs import TopicPartition

from tests.support.kafka_broker import MAX_MESSAGE_BYTES, NODE_ID, KafkaBroker, probe_broker_ids

# Safety bound so a broken broker fails the test instead of hanging it; never reached when things work.
_WAIT_S = 90


def _topic() -> str:
    return f"test-kafka-{uuid.uuid4().hex[:10]}"


@asynccontextmanager
async def _producer(bootstrap: str, compression: str = "gzip") -> AsyncIterator[AIOKafkaProducer]:
    # The settings Warden's producer uses: idempotent, acks from all in-sync replicas, compressed, large records.
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=True,
        acks="all",
        compression_type=compression,
        max_request_size=MAX_MESSAGE_BYTES,
        linger_ms=5,
    )
    await producer.start()
    try:
        yield producer
    finally:
        # stop() flushes pending records; bounded so a dead broker fails the test instead of hanging the session.
        async with asyncio.timeout(_WAIT_S):
            await producer.stop()


async def _create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()


async def _consume(bootstrap: str, topic: str, group: str, count: int) -> list[ConsumerRecord]:
    """Read `count` records as group `group` (from its committed offsets, else the beginning) and commit them."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=MAX_MESSAGE_BYTES,
        fetch_max_bytes=MAX_MESSAGE_BYTES,
    )
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        async with asyncio.timeout(_WAIT_S):
            while len(records) < count:
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    records.extend(batch)
        await consumer.commit()
    finally:
        await consumer.stop()
    return records


def _codecs() -> list[object]:
    # gzip is built in; zstd and lz4 need `cramjam` (aiokafka[zstd,lz4]).
    reason = "needs cramjam (pip install 'aiokafka[zstd,lz4]')"
    return [
        "gzip",
        pytest.param("zstd", marks=pytest.mark.skipif(not has_zstd(), reason=reason)),
        pytest.param("lz4", marks=pytest.mark.skipif(not has_lz4(), reason=reason)),
    ]


@pytest.mark.parametrize("compression", _codecs())
async def test_keyed_records_round_trip_through_a_consumer_group(kafka_bootstrap: str, compression: str) -> None:
    topic, group = _topic(), f"group-{uuid.uuid4().hex[:8]}"
    await _create_topic(kafka_bootstrap, topic, partitions=3)
    sent: dict[bytes, list[bytes]] = defaultdict(list)
    partition_of: dict[bytes, set[int]] = defaultdict(set)

    async with _producer(kafka_bootstrap, compression) as producer:
        for i in range(30):
            key, value = f"interaction-{i % 5}".encode(), f"event {i}".encode()
            meta = await producer.send_and_wait(topic, value, key=key)
            sent[key].append(value)
            partition_of[key].add(meta.partition)

    records = await _consume(kafka_bootstrap, topic, group, count=30)

    received: dict[bytes, list[bytes]] = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        assert record.key is not None and record.value is not None
        received[record.key].append(record.value)
        assert record.partition in partition_of[record.key]
    # Every key stays on one partition, so each interaction's events arrive in the order they were produced.
    assert all(len(parts) == 1 for parts in partition_of.values())
    assert dict(received) == dict(sent)

    # The group's progress is stored by the broker: all 30 records committed across the partitions.
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        committed = [await consumer.committed(TopicPartition(topic, p)) or 0 for p in range(3)]
    finally:
        await consumer.stop()
    assert sum(committed) == 30


async def test_a_5_mib_record_goes_through(kafka_bootstrap: str) -> None:
    topic = _topic()
    # Random bytes do not compress, so the record really is ~5 MiB on the wire (over Kafka's 1 MiB default).
    payload = os.urandom(5 * 1024 * 1024)
    async with _producer(kafka_bootstrap) as producer:
        await producer.send_and_wait(topic, payload, key=b"big")

    [record] = await _consume(kafka_bootstrap, topic, f"group-{uuid.uuid4().hex[:8]}", count=1)
    assert record.key == b"big"
    assert record.value is not None and len(record.value) == len(payload)
    assert hashlib.sha256(record.value).digest() == hashlib.sha256(payload).digest()


async def test_records_sent_while_the_broker_restarts_are_delivered(kafka_broker: KafkaBroker) -> None:
    bootstrap, topic, group = kafka_broker.bootstrap_servers, _topic(), f"group-{uuid.uuid4().hex[:8]}"
    async with _producer(bootstrap) as producer:
        before = [f"before {i}".encode() for i in range(10)]
        for value in before:
            await producer.send_and_wait(topic, value, key=b"k")
        assert [r.value for r in await _consume(bootstrap, topic, group, count=10)] == before

        await kafka_broker.astop()
        # Sent while the broker is down: the producer buffers and retries them until it is back.
        during = [f"during {i}".encode() for i in range(10)]
        pending = [await producer.send(topic, value, key=b"k") for value in during]
        await kafka_broker.astart()
        assert kafka_broker.bootstrap_servers == bootstrap
        async with asyncio.timeout(_WAIT_S):
            await asyncio.gather(*pending)

        after = [f"after {i}".encode() for i in range(10)]
        for value in after:
            await producer.send_and_wait(topic, value, key=b"k")

    # The group resumes from the offsets it committed before the restart: exactly the new records, in order.
    assert [r.value for r in await _consume(bootstrap, topic, group, count=20)] == during + after
    # And nothing was lost: a new group sees everything from the start.
    everything = await _consume(bootstrap, topic, f"group-{uuid.uuid4().hex[:8]}", count=30)
    assert [r.value for r in everything] == before + during + after


async def test_acknowledged_records_survive_a_broker_crash(kafka_broker: KafkaBroker) -> None:
    bootstrap, topic = kafka_broker.bootstrap_servers, _topic()
    acked = [f"acked {i}".encode() for i in range(20)]
    async with _producer(bootstrap) as producer:
        for value in acked:
            await producer.send_and_wait(topic, value, key=b"k")

    await kafka_broker.akill()
    assert not kafka_broker.is_running
    await kafka_broker.astart()

    # After the crash the broker recovers its log; a fresh producer appends after the recovered records.
    async with _producer(bootstrap) as producer:
        await producer.send_and_wait(topic, b"after crash", key=b"k")
    records = await _consume(bootstrap, topic, f"group-{uuid.uuid4().hex[:8]}", count=21)
    assert [r.value for r in records] == [*acked, b"after crash"]


def test_a_first_start_moves_to_other_ports_when_another_process_took_the_one_picked(tmp_path) -> None:
    broker = KafkaBroker(workdir=tmp_path / "broker")
    taken = broker.port
    with socket.socket() as squatter:  # another process binds the port between the pick and the broker's start
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", taken))
        squatter.listen()
        try:
            broker.start()
            assert broker.port != taken
            assert NODE_ID in probe_broker_ids("127.0.0.1", broker.port)
        finally:
            broker.close()
