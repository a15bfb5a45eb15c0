"""What a consumer group has committed against what its topics hold: what a test waits for before it counts."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient


async def end_offsets(bootstrap: str, topics: tuple[str, ...]) -> dict[TopicPartition, int]:
    """The end of every partition of ``topics`` (partitions from the cluster's metadata, read or not)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(list(topics))
    finally:
        await admin.close()
    partitions = [TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        return await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()


async def committed(bootstrap: str, group: str, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
    """The group's committed offset per partition (0 where it has committed nothing)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group, partitions=partitions)
    finally:
        await admin.close()
    return {tp: max(offsets[tp].offset, 0) if tp in offsets else 0 for tp in partitions}


async def behind(bootstrap: str, group: str, ends: dict[TopicPartition, int]) -> int:
    """Messages before ``ends`` that ``group`` has not committed yet."""
    done = await committed(bootstrap, group, list(ends))
    return sum(max(end - done[tp], 0) for tp, end in ends.items())


async def _lag(bootstrap: str, group: str, topics: tuple[str, ...]) -> int:
    return await behind(bootstrap, group, await end_offsets(bootstrap, topics))


def lag(bootstrap: str, group: str, topics: tuple[str, ...]) -> int:
    """Messages on ``topics`` that ``group`` has not committed yet (every partition counted, read or not)."""
    return asyncio.run(_lag(bootstrap, group, topics))
