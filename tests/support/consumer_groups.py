"""Whether a consumer group has committed everything on its topics: what a test waits for before it counts."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient


async def _lag(bootstrap: str, group: str, topics: tuple[str, ...]) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(list(topics))
        partitions = [TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]]
        committed = await admin.list_consumer_group_offsets(group, partitions=partitions)
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    return sum(ends[tp] - (committed[tp].offset if tp in committed and committed[tp].offset >= 0 else 0) for tp in ends)


def lag(bootstrap: str, group: str, topics: tuple[str, ...]) -> int:
    """Messages on ``topics`` that ``group`` has not committed yet (every partition counted, read or not)."""
    return asyncio.run(_lag(bootstrap, group, topics))
