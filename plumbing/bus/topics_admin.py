"""Creates Warden's Kafka topics: one command, idempotent, partitions and retention configurable."""

from __future__ import annotations

import contextlib
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from plumbing.bus.kafka import MAX_MESSAGE_BYTES
from schemas import topics

log = logging.getLogger(__name__)


def topic_specs(partitions: int, replication: int, retention_ms: int) -> list[NewTopic]:
    event_config = {
        "retention.ms": str(retention_ms),
        "max.message.bytes": str(MAX_MESSAGE_BYTES),
        "compression.type": "producer",
    }
    compacted = {"cleanup.policy": "compact", "max.message.bytes": str(MAX_MESSAGE_BYTES)}
    specs = [NewTopic(name, partitions, replication, topic_configs=dict(event_config)) for name in topics.EVENTS]
    specs += [
        NewTopic(name, 1, replication, topic_configs=dict(compacted))
        for name in (topics.PROFILES, topics.QUARANTINES, topics.PROVIDER_HISTORY)
    ]
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
