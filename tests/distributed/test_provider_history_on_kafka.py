"""Two ingresses over a real Kafka broker: what one remembers of a provider-held history, the other knows."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from plumbing.config.kafka_map import KafkaMap
from schemas import topics
from schemas.provider_history import HistoryBucket
from services.ingress.history import ProviderHistory
from services.ingress.policy import UntrustedSource


def test_a_record_written_by_one_ingress_reaches_another(kafka_bootstrap: str, tmp_path: Path) -> None:
    topic = f"{topics.PROVIDER_HISTORY}.{uuid.uuid4().hex[:8]}"

    async def scenario() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:  # as `warden topics create` makes it
            await admin.create_topics([NewTopic(topic, 1, 1, topic_configs={"cleanup.policy": "compact"})])
        finally:
            await admin.close()
        first_map = KafkaMap(kafka_bootstrap, topic, HistoryBucket, tmp_path / "a.cache.json")
        second_map = KafkaMap(kafka_bootstrap, topic, HistoryBucket, tmp_path / "b.cache.json")
        await first_map.start()
        await second_map.start()
        first = ProviderHistory(first_map, instance="a", flush_interval_s=3600)
        second = ProviderHistory(second_map, instance="b", flush_interval_s=3600)
        await first.start()
        await second.start()
        try:
            assert second.lookup(["response:resp_k"]).untrusted_since is not None  # unknown yet
            first.remember(["response:resp_k"], UntrustedSource("call_f", "fetch_url"), {"call_f": "fetch_url"})
            first.remember(["response:resp_t"], None, {"call_t": "lookup"})
            await first.flush()
            for _ in range(1200):  # up to a minute on a loaded machine
                if len(second) >= 2:
                    break
                await asyncio.sleep(0.05)
            assert second.lookup(["response:resp_k"]).untrusted_since == UntrustedSource("call_f", "fetch_url")
            trusted = second.lookup(["response:resp_t"])
            assert trusted.untrusted_since is None and trusted.calls == {"call_t": "lookup"}
        finally:
            await first.stop()
            await second.stop()
            await first_map.stop()
            await second_map.stop()

    asyncio.run(scenario())
