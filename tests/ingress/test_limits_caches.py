"""The hot path's caches (views of messages seen before, judgements remembered) are bounded in bytes: unique
megabyte-long messages cannot grow Warden for good."""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Iterator

import orjson
import pytest

from plumbing.bounded import BUDGET, BoundedDict, CacheBudget
from providers.registry import builtin_adapters
from schemas.profiles import ProfileSpec, new_profile
from services.ingress.enforcement import Enforcement

MIB = 1024 * 1024
BUDGET_BYTES = 16 * MIB


@pytest.fixture
def small_budget() -> Iterator[None]:
    before = BUDGET.max_bytes
    BUDGET.resize(BUDGET_BYTES)
    yield
    BUDGET.resize(before)


def conversation(n: int) -> bytes:
    """A request whose history holds a unique 1 MB message, a tool call and its result (so every memo is used)."""
    messages = [
        {"role": "user", "content": f"{n} " + "lorem ipsum " * 87_000},
        {
            "role": "assistant",
            "tool_calls": [
                {"id": f"c{n}", "type": "function", "function": {"name": "fetch_url", "arguments": '{"url": "x"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": f"c{n}", "content": f"result {n} " + "dolor " * 1000},
    ]
    return orjson.dumps({"model": "gpt-4o", "messages": messages})


def test_unique_megabyte_messages_leave_the_caches_within_their_byte_budget(small_budget):
    spec = ProfileSpec(
        name="cache-test",
        mode="restrictive",
        redact_secrets=True,
        trusted_data_policies=[{"tool": "fetch_url", "action": "mark_as_untrusted"}],
    )
    profile = new_profile(spec)
    adapter = builtin_adapters()["openai"]

    def one(n: int) -> None:
        body = conversation(n)
        Enforcement(profile, adapter, "/chat/completions").prepare(body, orjson.loads(body))

    one(-1)  # what the first request allocates for good (compiled profile, regexes) is not the caches' growth
    gc.collect()
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        for n in range(60):  # 60 MB of unique messages
            one(n)
            assert BUDGET.used <= BUDGET_BYTES
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - baseline
    finally:
        tracemalloc.stop()
    assert held < BUDGET_BYTES + 4 * MIB, f"the caches hold {held} bytes after 60 unique 1 MB messages"


def test_a_budget_is_shared_and_the_largest_cache_gives_way():
    budget = CacheBudget(1 * MIB)
    small, large = BoundedDict(budget=budget), BoundedDict(budget=budget)
    for n in range(10):
        small.put(n, "s" * 1000)
    for n in range(100):
        large.put(n, "l" * 100_000)
        assert budget.used <= budget.max_bytes
    assert budget.used == small.bytes + large.bytes
    assert len(small) == 10  # the large cache gave way, not the small one
    assert large.get(99) is not None and large.get(0) is None


def test_an_entry_larger_than_an_eighth_of_the_budget_is_not_kept():
    budget = CacheBudget(1 * MIB)
    cache: BoundedDict[str] = BoundedDict(budget=budget)
    value = cache.put("big", "x" * (MIB // 4))
    assert value == "x" * (MIB // 4)
    assert cache.get("big") is None and budget.used == 0


def test_a_cache_that_is_gone_gives_its_bytes_back():
    budget = CacheBudget(1 * MIB)
    cache: BoundedDict[str] = BoundedDict(budget=budget)
    cache.put("k", "v" * 10_000)
    assert budget.used > 10_000
    del cache
    gc.collect()
    assert budget.used == 0
