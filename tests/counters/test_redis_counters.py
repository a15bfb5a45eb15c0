"""What the Redis store adds to the contract: keys, expiry, scripts, and a Redis that is away, slow or refuses."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from redis.asyncio import Redis

from plumbing.counters.base import Charge, CountersUnavailable, Refusal, Reservation
from plumbing.counters.redis import RedisCounters, redacted
from plumbing.counters.settings import CounterSettings
from tests.support.redis_server import RedisServer

# A hang must fail the test, not stall it: far above any timeout configured here.
HANG_BOUND_S = 30.0


@pytest.fixture
async def raw(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


@contextlib.asynccontextmanager
async def own_server(**options: Any) -> AsyncIterator[tuple[RedisServer, RedisCounters]]:
    """A server of the test's own (it is killed or stopped) and a client of it."""
    with RedisServer() as server:
        store = RedisCounters(server.url, **options)
        try:
            yield server, store
        finally:
            await store.close()


@pytest.fixture
def counter() -> str:
    return f"rate:test:{uuid.uuid4().hex[:12]}"


async def test_keys_carry_the_namespace_and_prefix_and_expire_when_the_window_ends(
    redis_server: RedisServer, raw: Redis, counter: str
) -> None:
    plain = RedisCounters(redis_server.url, timeout_s=5)
    staging = RedisCounters(redis_server.url, timeout_s=5, key_prefix="staging")
    try:
        window_end = time.time() + 3600.25
        assert isinstance(await plain.reserve([Charge(counter, 3, 10, window_end)]), Reservation)
        assert isinstance(await staging.reserve([Charge(counter, 9, 10, 0)]), Reservation)
        assert await raw.get(f"warden:{counter}") == b"3"
        assert await raw.get(f"warden:staging:{counter}") == b"9"
        # Each deployment sees its own counter only.
        assert await staging.reserve([Charge(counter, 2, 10, 0)]) == Refusal(Charge(counter, 2, 10, 0), 9)
        assert await raw.pexpiretime(f"warden:{counter}") == int(window_end * 1000)
        assert await raw.pttl(f"warden:staging:{counter}") == -1, "a window end of 0 never expires"
    finally:
        await plain.close()
        await staging.close()


async def test_scripts_are_loaded_again_after_the_server_forgot_them(
    redis_server: RedisServer, raw: Redis, counter: str
) -> None:
    store = RedisCounters(redis_server.url, timeout_s=5)
    try:
        first = await store.reserve([Charge(counter, 1, 10, 0)])
        assert isinstance(first, Reservation)
        await raw.script_flush()  # what a restarted Redis looks like to a client that loaded them before
        assert isinstance(await store.reserve([Charge(counter, 1, 10, 0)]), Reservation)
        await raw.script_flush()
        await store.settle(first, {counter: 5})
        assert await store.used(counter) == 6
    finally:
        await store.close()


async def test_a_killed_redis_is_unavailable_at_once_and_back_when_it_returns(counter: str) -> None:
    async with own_server(timeout_s=0.5, pause_s=0) as (server, store):
        assert isinstance(await store.reserve([Charge(counter, 1, 10, 0)]), Reservation)
        server.kill()
        for operation in (
            store.reserve([Charge(counter, 1, 10, 0)]),
            store.settle(Reservation((Charge(counter, 1, 10, 0),)), {counter: 0}),
            store.release(Reservation((Charge(counter, 1, 10, 0),))),
            store.used(counter),
        ):
            with pytest.raises(CountersUnavailable) as caught:
                await asyncio.wait_for(operation, HANG_BOUND_S)
            assert server.password not in str(caught.value)
        server.start()  # empty: the test server keeps nothing
        assert isinstance(await store.reserve([Charge(counter, 1, 10, 0)]), Reservation)
        assert await store.used(counter) == 1


async def test_a_redis_that_stops_answering_is_unavailable_after_the_timeout_not_later(counter: str) -> None:
    async with own_server(timeout_s=0.2, pause_s=0) as (server, store):
        assert isinstance(await store.reserve([Charge(counter, 1, 10, 0)]), Reservation)
        assert server.pid is not None
        os.kill(server.pid, signal.SIGSTOP)  # connections stay open; nothing answers
        try:
            with pytest.raises(CountersUnavailable) as caught:
                await asyncio.wait_for(store.reserve([Charge(counter, 1, 10, 0)]), HANG_BOUND_S)
            assert isinstance(caught.value.__cause__, TimeoutError)
            # A new connection (the first was dropped on the timeout) meets the same silence.
            with pytest.raises(CountersUnavailable):
                await asyncio.wait_for(store.used(counter), HANG_BOUND_S)
        finally:
            os.kill(server.pid, signal.SIGCONT)
        # Whether the stopped server ran the reservation it had received is its own business; the client works
        # again, and no answer meant for a command cut off is taken for another's.
        after = await asyncio.wait_for(store.used(counter), HANG_BOUND_S)
        assert after in (1, 2)
        assert isinstance(await store.reserve([Charge(counter, 3, 10, 0)]), Reservation)
        assert await store.used(counter) == after + 3


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_after_a_failure_redis_is_left_alone_for_the_pause_then_asked_again(counter: str) -> None:
    clock = Clock()
    async with own_server(timeout_s=0.5, pause_s=1.0, clock=clock) as (server, store):
        server.kill()
        with pytest.raises(CountersUnavailable) as first:
            await asyncio.wait_for(store.reserve([Charge(counter, 1, 10, 0)]), HANG_BOUND_S)
        assert first.value.__cause__ is not None, "the first failure is Redis's own"
        server.start()
        clock.now += 0.9
        with pytest.raises(CountersUnavailable) as paused:
            await store.reserve([Charge(counter, 1, 10, 0)])
        assert paused.value.__cause__ is None and "reserve failed" in str(paused.value)
        assert server.password not in str(paused.value)
        clock.now += 0.2
        assert isinstance(await store.reserve([Charge(counter, 1, 10, 0)]), Reservation)
        assert await store.used(counter) == 1, "nothing reached Redis during the pause"


async def test_a_wrong_password_is_unavailable_and_never_shown(redis_server: RedisServer, counter: str) -> None:
    wrong = "not-the-password-0123456789"
    url = f"redis://:{wrong}@127.0.0.1:{redis_server.port}/0"
    store = RedisCounters(url, timeout_s=5)
    try:
        with pytest.raises(CountersUnavailable) as caught:
            await store.reserve([Charge(counter, 1, 10, 0)])
        assert wrong not in str(caught.value) and wrong not in repr(store)
        assert f"127.0.0.1:{redis_server.port}" in str(caught.value)
    finally:
        await store.close()


def test_urls_are_shown_without_their_credentials() -> None:
    assert redacted("redis://:s3cret@redis:6379/0") == "redis://***@redis:6379/0"
    assert redacted("rediss://warden:s3cret@[::1]:6380") == "rediss://***@[::1]:6380"
    assert redacted("redis://redis:6379/0") == "redis://redis:6379/0"


def test_settings_take_the_url_as_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WARDEN_REDIS_URL", "redis://:s3cret@redis:6379/0")
    monkeypatch.setenv("WARDEN_REDIS_TIMEOUT_MS", "20")
    monkeypatch.setenv("WARDEN_REDIS_KEY_PREFIX", "prod")
    settings = CounterSettings()
    assert "s3cret" not in repr(settings) and "s3cret" not in str(settings.model_dump())
    store = RedisCounters.from_settings(settings)
    assert store.key("budget:x") == "warden:prod:budget:x"
    assert "s3cret" not in repr(store)
    assert (store._timeout, store._pause) == (0.02, 1.0)
    assert CounterSettings.model_fields["redis_timeout_ms"].default == 50

    monkeypatch.setenv("WARDEN_REDIS_URL", "")  # compose's ${WARDEN_REDIS_URL:-}: no Redis
    assert CounterSettings().redis_url is None

    monkeypatch.setenv("WARDEN_REDIS_URL", "http://:s3cret@redis:6379/0")
    with pytest.raises(ValidationError) as caught:
        CounterSettings()
    assert "WARDEN_REDIS_URL" in str(caught.value) and "s3cret" not in str(caught.value)


def test_every_counter_setting_is_in_the_readme_configuration_table() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for field in CounterSettings.model_fields:
        assert f"| `WARDEN_{field.upper()}`" in readme, field
