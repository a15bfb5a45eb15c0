"""Chooses how configuration is replicated: local files that every process of ``warden serve`` follows (embedded)
or a compacted Kafka topic (distributed)."""

from __future__ import annotations

from plumbing.config.base import M, ReplicatedMap
from plumbing.config.shared_file_map import SharedFileMap
from plumbing.settings import CommonSettings


def make_map(settings: CommonSettings, topic: str, model: type[M], name: str) -> ReplicatedMap[M]:
    if settings.kafka_bootstrap_servers:
        from plumbing.config.kafka_map import KafkaMap

        return KafkaMap(settings.kafka_bootstrap_servers, topic, model, settings.data_dir / f"{name}.cache.json")
    return SharedFileMap(settings.data_dir / f"{name}.json", model)
