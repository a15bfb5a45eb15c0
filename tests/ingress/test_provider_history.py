"""What the ingress remembers of provider-held histories: bounded in bytes and age, replicated in batched writes."""

from __future__ import annotations

import asyncio
from pathlib import Path

from plumbing.config.file_map import FileMap
from schemas.provider_history import HistoryBucket
from services.ingress.history import ProviderHistory
from services.ingress.policy import UntrustedSource


def test_an_unknown_reference_is_untrusted_and_says_why() -> None:
    inherited = ProviderHistory().lookup(["response:resp_never_seen"])
    assert inherited is not None and inherited.untrusted_since is not None
    assert "no record" in (inherited.untrusted_since.why or "")
    assert ProviderHistory().lookup([]) is None


def test_a_remembered_response_gives_its_trust_and_its_calls() -> None:
    history = ProviderHistory()
    history.remember(["response:resp_1"], None, {"call_1": "lookup"})
    history.remember(["response:resp_2"], UntrustedSource("call_9", "fetch_url"), {"call_2": "send_email"})
    trusted = history.lookup(["response:resp_1"])
    assert trusted.untrusted_since is None and trusted.calls == {"call_1": "lookup"}
    untrusted = history.lookup(["response:resp_2"])
    assert untrusted.untrusted_since == UntrustedSource("call_9", "fetch_url")


def test_a_conversation_stays_untrusted_once_it_was() -> None:
    history = ProviderHistory()
    history.remember(["conversation:c"], UntrustedSource("call_1", "fetch_url"), {"call_1": "fetch_url"})
    history.remember(["conversation:c"], None, {"call_2": "lookup"})
    inherited = history.lookup(["conversation:c"])
    assert inherited.untrusted_since is not None and inherited.untrusted_since.tool == "fetch_url"
    assert inherited.calls == {"call_1": "fetch_url", "call_2": "lookup"}


def test_memory_is_bounded_in_bytes_oldest_first() -> None:
    history = ProviderHistory(max_bytes=20_000)
    for n in range(2_000):
        history.remember([f"response:resp_{n:06d}"], None, {f"call_{n}": "lookup"})
    assert history.bytes <= 20_000
    assert history.lookup(["response:resp_001999"]).untrusted_since is None
    assert history.lookup(["response:resp_000000"]).untrusted_since is not None  # forgotten: unknown again


def test_records_expire() -> None:
    history = ProviderHistory(ttl_s=60)
    history.remember(["response:r"], None, {}, now=1_000.0)
    assert history.lookup(["response:r"], now=1_030.0).untrusted_since is None
    assert history.lookup(["response:r"], now=1_100.0).untrusted_since is not None


class CountingMap(FileMap[HistoryBucket]):
    def __init__(self, path: Path) -> None:
        super().__init__(path, HistoryBucket)
        self.writes = 0

    def apply(self, key, value) -> None:
        self.writes += 1
        super().apply(key, value)


def test_records_reach_every_instance_in_one_write_per_flush_and_survive_a_restart(tmp_path: Path) -> None:
    async def scenario() -> None:
        shared = CountingMap(tmp_path / "provider-history.json")
        first = ProviderHistory(shared, instance="a", flush_interval_s=3600)
        second = ProviderHistory(shared, instance="b", flush_interval_s=3600)
        await first.start()
        await second.start()
        for n in range(100):
            first.remember([f"response:resp_{n}"], None, {f"call_{n}": "lookup"})
        assert shared.writes == 0  # the request path wrote nothing
        await first.flush()
        assert shared.writes == 1
        assert second.lookup(["response:resp_42"]).calls == {"call_42": "lookup"}
        await first.stop()
        await second.stop()
        restarted = ProviderHistory(FileMap(tmp_path / "provider-history.json", HistoryBucket), instance="c")
        await restarted.start()
        assert restarted.lookup(["response:resp_7"]).untrusted_since is None
        await restarted.stop()

    asyncio.run(scenario())


def test_replicated_buckets_are_pruned_by_age_and_bytes(tmp_path: Path) -> None:
    async def scenario() -> None:
        shared = FileMap(tmp_path / "h.json", HistoryBucket)
        history = ProviderHistory(shared, instance="a", ttl_s=120, max_bytes=1_000_000, flush_interval_s=3600)
        await history.start()
        history.remember(["response:old"], None, {}, now=0.0)
        await history.flush(now=0.0)
        history.remember(["response:new"], None, {}, now=600.0)
        await history.flush(now=600.0)  # a new minute: buckets past the age limit go
        assert [bucket.minute for bucket in shared.values()] == [10]
        await history.stop()

    asyncio.run(scenario())
