"""Every counter store keeps the same contract (plumbing/counters/base.py): the same tests run against each.

The Redis store runs against a real ``redis-server`` (tests/support/redis_fixture.py), and where a test needs two
processes it uses two clients, as two ingress processes would. The counter table (``plumbing/counters/table.py``:
one process's memory, or a file every process maps) joins in wherever it exists. A new store is one entry in
``STORES``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from plumbing.counters.base import Charge, Counters, Refusal, Reservation
from plumbing.counters.redis import RedisCounters

# A generous timeout where the test is about the contract, not about a slow store: a busy 2-core machine can take
# longer than the 50 ms default to open a connection.
TIMEOUT_S = 5.0

Factory = Callable[[], Counters]


def _redis(request: pytest.FixtureRequest) -> Factory:
    server = request.getfixturevalue("redis_server")
    return lambda: RedisCounters(server.url, timeout_s=TIMEOUT_S)


# Every store the contract is tested on: name → how to make clients that share one set of counters (each client one
# "process").
STORES: dict[str, Callable[[pytest.FixtureRequest], Factory]] = {"redis": _redis}

try:
    from plumbing.counters.table import CounterTable
except ImportError:  # the table is not part of this tree (yet)
    pass
else:

    def _table(_request: pytest.FixtureRequest) -> Factory:
        shared = CounterTable()  # one process's memory: every "client" is the same object
        return lambda: shared

    def _table_file(request: pytest.FixtureRequest) -> Factory:
        path = request.getfixturevalue("tmp_path") / "counters.bin"
        return lambda: CounterTable(path)  # each client maps the file, as each process does

    STORES |= {"table": _table, "table-file": _table_file}


@pytest.fixture(params=list(STORES))
async def clients(request: pytest.FixtureRequest) -> AsyncIterator[Factory]:
    """Makes clients of one store; each Redis client is its own connection pool (another process)."""
    make = STORES[request.param](request)
    opened: list[Counters] = []

    def client() -> Counters:
        store = make()
        opened.append(store)
        return store

    yield client
    for store in {id(s): s for s in opened}.values():
        await store.close()


@pytest.fixture
def name() -> Callable[[str], str]:
    """Counter names of this test alone: the Redis server is shared by the session."""
    run = uuid.uuid4().hex[:12]
    return lambda label: f"budget:test:{run}:{label}"


async def wait_until(check: Callable[[], Awaitable[bool]], bound_s: float = 30.0) -> None:
    deadline = time.monotonic() + bound_s
    while not await check():
        assert time.monotonic() < deadline, f"not true within {bound_s} s"
        await asyncio.sleep(0.1)


async def test_a_reservation_is_all_or_none(clients: Factory, name: Callable[[str], str]) -> None:
    store = clients()
    fits, full = Charge(name("fits"), 5, 100, 0), Charge(name("full"), 5, 4, 0)
    refused = await store.reserve([fits, full])
    assert refused == Refusal(full, 0)
    assert await store.used(fits.counter) == 0, "the charge that fitted was not taken either"
    admitted = await store.reserve([fits, Charge(name("full"), 4, 4, 0)])
    assert isinstance(admitted, Reservation) and len(admitted.charges) == 2
    assert (await store.used(fits.counter), await store.used(name("full"))) == (5, 4)


async def test_the_refusal_names_the_first_charge_that_does_not_fit_and_its_counter(
    clients: Factory, name: Callable[[str], str]
) -> None:
    store = clients()
    assert isinstance(await store.reserve([Charge(name("a"), 7, 10, 0), Charge(name("b"), 3, 10, 0)]), Reservation)
    ok, first, second = Charge(name("ok"), 1, 10, 0), Charge(name("a"), 4, 10, 0), Charge(name("b"), 8, 10, 0)
    assert await store.reserve([ok, first, second]) == Refusal(first, 7)
    assert await store.reserve([ok, second, first]) == Refusal(second, 3)
    # A check without a charge (amount 0) passes at the limit and refuses only beyond it.
    assert isinstance(await store.reserve([Charge(name("a"), 0, 7, 0)]), Reservation)
    assert await store.reserve([Charge(name("a"), 0, 6, 0)]) == Refusal(Charge(name("a"), 0, 6, 0), 7)
    assert await store.used(name("a")) == 7


async def test_a_counter_charged_twice_in_one_reservation_is_checked_with_both(
    clients: Factory, name: Callable[[str], str]
) -> None:
    store = clients()
    twice = [Charge(name("c"), 6, 10, 0), Charge(name("c"), 6, 10, 0)]
    assert await store.reserve(twice) == Refusal(twice[1], 6)
    assert await store.used(name("c")) == 0
    reservation = await store.reserve([Charge(name("c"), 4, 10, 0), Charge(name("c"), 5, 10, 0)])
    assert isinstance(reservation, Reservation)
    await store.settle(reservation, {name("c"): 2})  # settled against the sum, 9
    assert await store.used(name("c")) == 2


async def test_settle_replaces_the_reservation_with_what_was_spent_up_or_down(
    clients: Factory, name: Callable[[str], str]
) -> None:
    store = clients()
    spent, kept = name("spent"), name("kept")
    reservation = await store.reserve([Charge(spent, 10, 20, 0), Charge(kept, 3, 20, 0)])
    assert isinstance(reservation, Reservation)
    await store.settle(reservation, {spent: 4})  # ``kept`` is left out: it keeps its reservation
    assert (await store.used(spent), await store.used(kept)) == (4, 3)

    second = await store.reserve([Charge(spent, 16, 20, 0)])
    assert isinstance(second, Reservation)
    await store.settle(second, {spent: 30})  # more than reserved, beyond the limit: spent is spent
    assert await store.used(spent) == 34
    assert await store.reserve([Charge(spent, 0, 20, 0)]) == Refusal(Charge(spent, 0, 20, 0), 34)


async def test_release_gives_back_only_what_that_reservation_took(clients: Factory, name: Callable[[str], str]) -> None:
    store = clients()
    counter = name("r")
    first = await store.reserve([Charge(counter, 6, 10, 0)])
    second = await store.reserve([Charge(counter, 4, 10, 0)])
    assert isinstance(first, Reservation) and isinstance(second, Reservation)
    assert isinstance(await store.reserve([Charge(counter, 1, 10, 0)]), Refusal)
    await store.release(first)
    assert await store.used(counter) == 4
    assert isinstance(await store.reserve([Charge(counter, 6, 10, 0)]), Reservation)
    assert await store.used(counter) == 10


async def test_a_release_never_makes_a_counter_negative(clients: Factory, name: Callable[[str], str]) -> None:
    # A counter the store lost (a Redis restarted without persistence) must not turn a release into credit.
    store = clients()
    counter = name("lost")
    await store.release(Reservation((Charge(counter, 5, 10, 0),)))
    assert await store.used(counter) == 0
    assert await store.reserve([Charge(counter, 11, 10, 0)]) == Refusal(Charge(counter, 11, 10, 0), 0)


async def test_raise_to_brings_counters_up_to_what_was_spent_and_never_down(
    clients: Factory, name: Callable[[str], str]
) -> None:
    store, other = clients(), clients()
    fresh, ahead, new = name("fresh"), name("ahead"), name("new")
    reservation = await store.reserve([Charge(fresh, 2, 100, 0), Charge(ahead, 50, 100, 0)])
    assert isinstance(reservation, Reservation)
    # What the record says was spent: above one counter, below the other, and a counter nobody charged yet.
    assert await other.raise_to({fresh: (30, 0), ahead: (20, 0), new: (7, 0)}) == 3
    assert (await store.used(fresh), await store.used(ahead), await store.used(new)) == (30, 50, 7)
    # The limit now counts what was spent before: 30 + 71 > 100.
    assert await store.reserve([Charge(fresh, 71, 100, 0)]) == Refusal(Charge(fresh, 71, 100, 0), 30)
    assert await other.raise_to({}) == 0


async def test_a_raised_counter_still_resets_when_its_window_ends(clients: Factory, name: Callable[[str], str]) -> None:
    store = clients()
    counter = name("raised-minute")
    window_end = time.time() + 1.5
    await store.raise_to({counter: (9, window_end)})
    assert await store.used(counter) == 9

    async def reset() -> bool:
        return await store.used(counter) == 0

    await wait_until(reset)
    assert time.time() >= window_end - 0.01


async def test_a_counter_resets_when_its_window_ends(clients: Factory, name: Callable[[str], str]) -> None:
    store = clients()
    windowed, total = name("minute"), name("total")
    window_end = time.time() + 1.5
    reservation = await store.reserve([Charge(windowed, 5, 5, window_end), Charge(total, 5, 100, 0)])
    assert isinstance(reservation, Reservation)
    assert await store.used(windowed) == 5
    assert isinstance(await store.reserve([Charge(windowed, 1, 5, window_end)]), Refusal)

    async def reset() -> bool:
        return await store.used(windowed) == 0

    await wait_until(reset)
    assert time.time() >= window_end - 0.01, "it was not reset before its window ended"
    assert await store.used(total) == 5, "a counter without a window does not expire"
    # A settle arriving after the window ended does not bring the counter back.
    await store.settle(reservation, {windowed: 9})
    assert await store.used(windowed) == 0


async def test_concurrent_reservations_from_two_clients_never_pass_the_limit(
    clients: Factory, name: Callable[[str], str]
) -> None:
    shared, limit = name("shared"), 10
    ingresses = [clients(), clients()]  # two processes sharing one store

    async def one(i: int) -> Reservation | Refusal:
        store = ingresses[i % 2]
        # Each request also charges a counter of its own, so reservations overlap on one counter only.
        return await store.reserve([Charge(name(f"agent-{i}"), 1, 1, 0), Charge(shared, 1, limit, 0)])

    results = await asyncio.gather(*(one(i) for i in range(64)))
    admitted = [r for r in results if isinstance(r, Reservation)]
    refused = [r for r in results if isinstance(r, Refusal)]
    assert len(admitted) == limit and len(refused) == 64 - limit
    assert all(r.charge.counter == shared and r.used == limit for r in refused)
    assert await ingresses[0].used(shared) == limit
    assert sum([await ingresses[1].used(name(f"agent-{i}")) for i in range(64)]) == limit, "refused: none charged"

    # Settled concurrently from both clients, the counter holds exactly the sum of what was spent.
    await asyncio.gather(*(ingresses[i % 2].settle(r, {shared: 0}) for i, r in enumerate(admitted)))
    assert await ingresses[1].used(shared) == 0
