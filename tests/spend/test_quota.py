"""The pure parts of admission: calendar windows in UTC, the output each wire format asks for, worst cases that never
price below what a request may cost, and the counter table's all-or-none reserve with its settle and release."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from plumbing.counters.base import Charge, CountersUnavailable, Refusal, Reservation
from plumbing.counters.table import CounterTable
from schemas.view import Usage
from services.ingress import quota
from services.pricing.catalogue import ModelPrices, configured_rates
from services.pricing.cost import priced


def test_windows_are_calendar_windows_in_utc():
    # 23:30 on a Sunday in New York is Monday 04:30 UTC: the UTC day, ISO week and month.
    at = datetime(2026, 11, 29, 23, 30, tzinfo=timezone(timedelta(hours=-5)))
    day = quota.budget_window("day", at)
    assert day.label == "2026-11-30" and day.start == datetime(2026, 11, 30, tzinfo=UTC)
    assert day.end == datetime(2026, 12, 1, tzinfo=UTC).timestamp()
    week = quota.budget_window("week", at)
    assert week.label == "2026-W49" and week.start == datetime(2026, 11, 30, tzinfo=UTC)
    month = quota.budget_window("month", at)
    assert month.label == "2026-11" and month.end == datetime(2026, 12, 1, tzinfo=UTC).timestamp()
    december = quota.budget_window("month", datetime(2026, 12, 31, 23, 59, tzinfo=UTC))
    assert december.end == datetime(2027, 1, 1, tzinfo=UTC).timestamp()
    assert quota.budget_window("total", at).end == 0


@pytest.mark.parametrize(
    ("body", "route", "expected"),
    [
        ({"max_completion_tokens": 7, "max_tokens": 9}, "chat/completions", 7),
        ({"max_tokens": 9}, "v1/messages", 9),
        ({"max_output_tokens": 11}, "responses", 11),
        ({"generationConfig": {"maxOutputTokens": 13}}, "v1beta/models/gemini-2.5-flash:generateContent", 13),
        ({"max_tokens": True}, "chat/completions", 100),
        ({"max_tokens": -1}, "chat/completions", 100),
        ({}, "chat/completions", 100),
        ({"input": "x"}, "embeddings", 0),
    ],
)
def test_the_output_a_request_may_produce(body, route, expected):
    assert quota.max_output_tokens(body, route, 100) == expected


def test_a_worst_case_never_prices_below_the_exact_cost():
    rates = configured_rates(ModelPrices(input_mtok=2.5, output_mtok=10))
    for tokens in (1, 7, 333, 123_457):
        exact = Decimal(str(priced(rates, Usage(input_tokens=tokens, output_tokens=tokens)).usd))
        assert Decimal(str(quota.worst_cost(rates, tokens, tokens))) >= exact
        assert quota.micro_usd(quota.worst_cost(rates, tokens, tokens)) >= exact * 1_000_000


@pytest.fixture(params=["memory", "file"])
def table(request, tmp_path: Path) -> CounterTable:
    return CounterTable(tmp_path / "counters.bin" if request.param == "file" else None, 64 * 1024)


def test_the_table_reserves_all_or_none(table: CounterTable):
    later = time.time() + 60
    first = [Charge("a", 6, 10, later), Charge("b", 1, 1, 0)]
    assert isinstance(asyncio.run(table.reserve(first)), Reservation)
    refused = asyncio.run(table.reserve([Charge("a", 1, 10, later), Charge("b", 1, 1, 0)]))
    assert refused == Refusal(Charge("b", 1, 1, 0), 1)
    assert asyncio.run(table.used("a")) == 6  # the charge that fitted was not taken either


def test_settling_replaces_the_reservation_and_releasing_gives_it_back(table: CounterTable):
    reservation = asyncio.run(table.reserve([Charge("spend", 500, 1000, 0), Charge("calls", 1, 5, 0)]))
    assert isinstance(reservation, Reservation)
    asyncio.run(table.settle(reservation, {"spend": 120}))
    assert asyncio.run(table.used("spend")) == 120 and asyncio.run(table.used("calls")) == 1
    other = asyncio.run(table.reserve([Charge("spend", 300, 1000, 0)]))
    assert isinstance(other, Reservation)
    asyncio.run(table.release(other))
    assert asyncio.run(table.used("spend")) == 120


def test_an_ended_window_counts_from_zero_and_its_slot_is_taken_again(table: CounterTable):
    now = time.time()
    assert isinstance(table.reserve_now([Charge("minute", 5, 5, now + 1)], now), Reservation)
    assert isinstance(table.reserve_now([Charge("minute", 5, 5, now + 61)], now + 2), Reservation)


def test_a_full_table_is_unavailable_never_larger(table: CounterTable):
    taken = 0
    for i in range(50 * table.slots):
        try:
            table.reserve_now([Charge(f"c{i}", 1, 1, 0)], time.time())
            taken += 1
        except CountersUnavailable:
            if taken == table.slots:
                break
    assert taken == table.slots
    with pytest.raises(CountersUnavailable):
        table.reserve_now([Charge("one more", 1, 1, 0)], time.time())


def test_processes_mapping_one_file_share_its_counters(tmp_path: Path):
    one, two = CounterTable(tmp_path / "c.bin", 64 * 1024), CounterTable(tmp_path / "c.bin", 64 * 1024)
    assert isinstance(one.reserve_now([Charge("shared", 3, 4, 0)], time.time()), Reservation)
    assert isinstance(two.reserve_now([Charge("shared", 2, 4, 0)], time.time()), Refusal)
    assert asyncio.run(two.used("shared")) == 3
