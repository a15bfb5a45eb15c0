"""Creates Warden's Kafka topics: one command, idempotent, partitions and retention configurable."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from plumbing.bus.kafka import MAX_MESSAGE_BYTES
from schemas import topics

log = logging.getLogger(__name__)


COMPACTED = {"cleanup.policy": "compact", "max.message.bytes": str(MAX_MESSAGE_BYTES)}


def topic_specs(partitions: int, replication: int, retention_ms: int) -> list[NewTopic]:
    event_config = {
        "retention.ms": str(retention_ms),
        "max.message.bytes": str(MAX_MESSAGE_BYTES),
        "compression.type": "producer",
    }
    specs = [NewTopic(name, partitions, replication, topic_configs=dict(event_config)) for name in topics.EVENTS]
    configuration = (
        topics.PROFILES,
        topics.QUARANTINES,
        topics.REVOKED_SESSIONS,
        topics.PROVIDER_HISTORY,
        topics.KEYS,
        topics.DEPLOYMENTS,
        topics.MODEL_ALIASES,
    )
    specs += [NewTopic(name, 1, replication, topic_configs=dict(COMPACTED)) for name in configuration]
    return specs


async def create_topics(
    bootstrap_servers: str, partitions: int = 6, replication: int = 1, retention_ms: int = 7 * 24 * 3600 * 1000
) -> list[str]:
    """Create every topic that does not exist yet; returns the names created now."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="warden-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [spec for spec in topic_specs(partitions, replication, retention_ms) if spec.name not in existing]
        if wanted:
            # Another instance may create them at the same moment: that is fine.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(wanted)
        return [spec.name for spec in wanted]
    finally:
        await admin.close()


async def compacted_topic_partitions(bootstrap_servers: str, topic: str, client_id: str) -> list[int]:
    """The partitions of a configuration topic, creating it compacted (one partition, as many replicas as the
    cluster's default) when it does not exist yet: every reader then knows exactly what to read, also on a fresh
    cluster where ``warden topics create`` has not run."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id=client_id)
    await admin.start()
    try:
        if topic not in set(await admin.list_topics()):
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics([NewTopic(topic, 1, -1, topic_configs=dict(COMPACTED))])
        for _ in range(50):
            (described,) = await admin.describe_topics([topic])
            partitions = sorted(p["partition"] for p in described["partitions"])
            if described["error_code"] == 0 and partitions:
                return partitions
            await asyncio.sleep(0.1)  # just created: the metadata reaches the broker a moment later
        raise RuntimeError(f"topic {topic} has no partitions (error code {described['error_code']})")
    finally:
        await admin.close()
