"""The trust of provider-held histories: remembered for every response the ingress relays, shared by every ingress.

A request that names its history (``previous_response_id``, ``conversation``) is judged with what was remembered of
that history: its trust, and the names of the calls it made (their results come in this request). A reference no
ingress remembers (never relayed under guardrails, expired, or forgotten to stay within the byte limit) is untrusted.

The hot path only reads and writes memory. Records reach the other instances through a replicated map, written off the
request path by a background task at most once per ``flush_interval_s``: one bucket per instance and minute (a new
part once a bucket reaches ``_BUCKET_MAX_BYTES``), so a write carries every record made since the last one. Memory
and the replicated buckets are each bounded by ``max_bytes`` and by age (``ttl_s``); the oldest go first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Iterable, Mapping

from plumbing.config.base import ReplicatedMap
from schemas.provider_history import HistoryBucket, HistoryRecord
from services.ingress.policy import Inherited, UntrustedSource

log = logging.getLogger(__name__)

_BUCKET_MAX_BYTES = 256 * 1024
"""A bucket is one message on the replicated map: well under Kafka's message limit."""
_MAX_CALLS_PER_RECORD = 256
"""A long conversation keeps the names of its latest calls only (older calls have long been answered)."""
_RECORD_OVERHEAD = 96


def _size(key: str, record: HistoryRecord) -> int:
    calls = sum(len(call_id) + len(name) for call_id, name in record.calls.items())
    return _RECORD_OVERHEAD + len(key) + calls + len(record.untrusted_call or "") + len(record.untrusted_tool or "")


def unknown(ref: str) -> UntrustedSource:
    return UntrustedSource(
        ref, None, why=f"the history {ref} is held by the provider and Warden has no record of what it contains"
    )


class ProviderHistory:
    def __init__(
        self,
        replicated: ReplicatedMap[HistoryBucket] | None = None,
        *,
        max_bytes: int = 16 * 1024 * 1024,
        ttl_s: float = 7 * 24 * 3600,
        flush_interval_s: float = 1.0,
        instance: str | None = None,
    ) -> None:
        self._replicated = replicated
        self.max_bytes = max_bytes
        self.ttl_s = ttl_s
        self.flush_interval_s = flush_interval_s
        self.instance = instance or uuid.uuid4().hex[:12]
        self._records: dict[str, HistoryRecord] = {}  # oldest first
        self._sizes: dict[str, int] = {}
        self._bytes = 0
        self._pending: dict[str, HistoryRecord] = {}
        self._bucket: HistoryBucket | None = None
        self._bucket_bytes = 0
        self._flusher: asyncio.Task[None] | None = None

    # -- the hot path: memory only ------------------------------------------------------------------------------------

    def lookup(self, refs: Iterable[str], now: float | None = None) -> Inherited | None:
        """What is known of the histories ``refs`` name; None when the request names none."""
        refs = list(refs)
        if not refs:
            return None
        now = time.time() if now is None else now
        untrusted: UntrustedSource | None = None
        calls: dict[str, str] = {}
        for ref in refs:
            record = self._records.get(ref)
            if record is None or now - record.at > self.ttl_s:
                untrusted = untrusted or unknown(ref)
                continue
            calls.update(record.calls)
            if record.untrusted and untrusted is None:
                untrusted = UntrustedSource(record.untrusted_call or ref, record.untrusted_tool)
        return Inherited(untrusted, calls)

    def remember(
        self,
        refs: Iterable[str],
        untrusted: UntrustedSource | None,
        calls: Mapping[str, str],
        now: float | None = None,
    ) -> None:
        """Record the state a relayed response left its histories in. A conversation stays untrusted once it was."""
        now = time.time() if now is None else now
        for ref in refs:
            previous = self._records.get(ref) if ref.startswith("conversation:") else None
            merged_calls = {**previous.calls, **calls} if previous is not None else dict(calls)
            if len(merged_calls) > _MAX_CALLS_PER_RECORD:
                merged_calls = dict(list(merged_calls.items())[-_MAX_CALLS_PER_RECORD:])
            if previous is not None and previous.untrusted:
                source = (previous.untrusted_call, previous.untrusted_tool)
            else:
                source = (untrusted.tool_call_id, untrusted.tool) if untrusted is not None else (None, None)
            record = HistoryRecord(
                untrusted_call=source[0],
                untrusted_tool=source[1],
                untrusted=(previous is not None and previous.untrusted) or untrusted is not None,
                calls=merged_calls,
                at=now,
            )
            self._keep(ref, record)
            if self._replicated is not None:
                self._pending[ref] = record

    def _keep(self, ref: str, record: HistoryRecord) -> None:
        if ref in self._records:
            del self._records[ref]  # re-inserted at the end: the newest
            self._bytes -= self._sizes.pop(ref)
        size = _size(ref, record)
        self._records[ref] = record
        self._sizes[ref] = size
        self._bytes += size
        while self._bytes > self.max_bytes and self._records:
            oldest = next(iter(self._records))
            del self._records[oldest]
            self._bytes -= self._sizes.pop(oldest)

    @property
    def bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._records)

    # -- replication, off the request path ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self._replicated is None:
            return
        self._replicated.listen(self._on_change)
        now = time.time()
        for bucket in sorted(self._replicated.values(), key=lambda b: (b.minute, b.part)):
            self._absorb(bucket, now)
        self._flusher = asyncio.get_running_loop().create_task(self._flush_forever())

    async def stop(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        await self.flush()

    def _on_change(self, key: str, value: object) -> None:
        if isinstance(value, HistoryBucket) and value.instance != self.instance:
            self._absorb(value, time.time())

    def _absorb(self, bucket: HistoryBucket, now: float) -> None:
        for ref, record in bucket.records.items():
            known = self._records.get(ref)
            if now - record.at > self.ttl_s or (known is not None and known.at > record.at):
                continue
            if known is not None and known.untrusted and not record.untrusted:
                continue  # untrusted is sticky, whichever instance saw it first
            self._keep(ref, record)

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval_s)
            try:
                await self.flush()
            except Exception:  # the next round retries; the records are still in memory here
                log.exception("provider history could not be replicated")

    async def flush(self, now: float | None = None) -> None:
        """Write the records made since the last flush (one bucket write), and drop expired or excess buckets."""
        if self._replicated is None or not self._pending:
            return
        now = time.time() if now is None else now
        pending, self._pending = self._pending, {}
        minute = int(now // 60)
        bucket = self._bucket
        rolled = bucket is None or bucket.minute != minute
        if rolled:
            bucket, self._bucket_bytes = HistoryBucket(instance=self.instance, minute=minute), 0
        elif self._bucket_bytes >= _BUCKET_MAX_BYTES:
            bucket, self._bucket_bytes = HistoryBucket(instance=self.instance, minute=minute, part=bucket.part + 1), 0
        assert bucket is not None
        records = {**bucket.records, **pending}
        self._bucket_bytes += sum(_size(ref, record) for ref, record in pending.items())
        self._bucket = bucket = bucket.model_copy(update={"records": records})
        await self._replicated.put(bucket.key, bucket)
        if rolled:
            await self._prune(now)

    async def _prune(self, now: float) -> None:
        """Once a minute: buckets past the age limit go, and the oldest ones beyond the byte limit."""
        assert self._replicated is not None
        buckets = sorted(self._replicated.values(), key=lambda b: (b.minute, b.part), reverse=True)
        kept = 0
        for bucket in buckets:
            kept += sum(_size(ref, record) for ref, record in bucket.records.items())
            if now - bucket.minute * 60 > self.ttl_s + 60 or kept > self.max_bytes:
                await self._replicated.delete(bucket.key)
