"""The read API over rows the way the logger leaves them before any merge: an interaction's request and response in
separate rows (and parts), some rows written twice. Background merges are stopped while a test reads, so every
answer has to come from folding the halves at read time."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.events import RequestEvent, ResponseEvent
from schemas.view import Usage
from services.logger.rows import request_row, response_row
from tests.support.agents import new_agent

TABLES = (
    "interactions",
    "interactions_by_agent",
    "interactions_by_user",
    "interactions_by_time",
    "interactions_by_id",
)


def halves(
    agent: str,
    user: str,
    started_at: datetime,
    status: int | None,
    *,
    error: str | None = None,
    blocked_request: bool = False,
    blocked_response: bool = False,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The logger's request row and response row of one interaction (no response row while it is in flight)."""
    common = dict(
        interaction_id=str(uuid.uuid4()),
        started_at=started_at,
        profile_id="default",
        agent_id=agent,
        user_id=user,
        session_id=f"session-of-{agent}",
        provider="openai",
        model="gpt-4o",
    )
    request = request_row(
        RequestEvent(**common, route="/chat/completions", request_received='{"messages":[{"role":"user"}]}')
    )
    request["blocked"] = int(blocked_request)
    if status is None:
        return request, None
    response = response_row(
        ResponseEvent(
            **common,
            status=status,
            response_body='{"choices":[]}',
            finished_at=started_at + timedelta(milliseconds=40),
            latency_ms=40.0,
            usage=Usage(input_tokens=12, output_tokens=34),
            error=error,
        )
    )
    response["blocked"] = int(blocked_response)
    return request, response


@contextlib.contextmanager
def merges_stopped(warden) -> Iterator[None]:
    async def run(embedded, verb: str) -> None:
        for table in TABLES:
            await embedded.store.execute(f"SYSTEM {verb} MERGES warden.{table}")

    warden.call(lambda embedded: run(embedded, "STOP"))
    try:
        yield
    finally:
        warden.call(lambda embedded: run(embedded, "START"))


def insert(warden, *batches: list[dict[str, Any]]) -> None:
    """Each batch is one insert, so one part per table: rows of different batches stay apart until merged."""

    async def run(embedded) -> None:
        for rows in batches:
            await embedded.store.insert("warden.interactions", rows)

    warden.call(run)


def physical_rows(warden, table: str, column: str, value: str) -> int:
    async def run(embedded) -> int:
        sql = f"SELECT count() AS n FROM warden.{table} WHERE {column} = {{v:String}}"
        (row,) = await embedded.store.select(sql, {"v": value})
        return row["n"]

    return warden.call(run)


def walk(warden, **params: Any) -> list[dict[str, Any]]:
    """Every item of a list, following the cursor page by page; fails on a repeated item."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = warden.interactions(**params, **({"cursor": cursor} if cursor else {}))
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert len(page["items"]) == int(params.get("limit", 50))
    ids = [i["interaction_id"] for i in items]
    assert len(ids) == len(set(ids)), "an interaction came twice"
    return items


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [i["interaction_id"] for i in items]


def test_pages_of_unfolded_rows_walk_every_interaction_once_newest_first(warden):
    agent, user = new_agent(), new_agent("user")
    now = datetime.now(UTC)
    made = [halves(agent, user, now - timedelta(seconds=n), 200) for n in range(9)]
    requests = [request for request, _ in made]
    responses = [response for _, response in made if response is not None]
    expected = [row["interaction_id"] for row in requests]  # made newest first
    with merges_stopped(warden):
        # Every interaction is three rows: its request, its response, and its response again in another batch (a
        # redelivery). A round then finds fewer interactions than rows, so pages take several rounds.
        insert(warden, requests, responses, responses[:5], responses[5:])
        assert physical_rows(warden, "interactions_by_agent", "agent_id", agent) == 27
        assert physical_rows(warden, "interactions_by_user", "user_id", user) == 27
        assert physical_rows(warden, "interactions_by_time", "agent_id", agent) == 27
        # By agent, by user, by session (no agent or user: the table sorted by time), rows read in order; and with a
        # folded condition (keys first, folded by the query).
        scopes = ({"agent_id": agent}, {"user_id": user}, {"session_id": f"session-of-{agent}"})
        for params in (
            *scopes,
            {"agent_id": agent, "status": "200"},
            {"session_id": f"session-of-{agent}", "blocked": "false"},
        ):
            for limit in (1, 2, 4, 9, 50):
                items = walk(warden, **params, limit=limit)
                assert ids(items) == expected, (params, limit)
                assert all(i["status"] == 200 and not i["in_flight"] for i in items)
                assert all("request_received" not in i for i in items)  # bodies are for the detail
        # A page starting in the middle, from a cursor, goes on with the next older one.
        first = warden.interactions(agent_id=agent, limit=4)
        rest = warden.interactions(agent_id=agent, limit=50, cursor=first["next_cursor"])
        assert ids(first["items"]) + ids(rest["items"]) == expected and rest["next_cursor"] is None


def test_status_and_blocked_filters_decide_on_the_folded_interaction(warden):
    agent, user = new_agent(), new_agent("user")
    now = datetime.now(UTC)
    # Newest first. Many completed interactions newer than the one in flight: their request rows look in flight on
    # their own, so the in-flight filter has to fold them away round after round before it reaches the real one.
    newer = [halves(agent, user, now - timedelta(seconds=n), 200) for n in range(12)]
    ok = halves(agent, user, now - timedelta(seconds=20), 200)
    blocked_late = halves(agent, user, now - timedelta(seconds=21), 200, blocked_response=True)
    flying = halves(agent, user, now - timedelta(seconds=22), None)
    failed = halves(agent, user, now - timedelta(seconds=23), 502, error="upstream closed the connection")
    blocked_early = halves(agent, user, now - timedelta(seconds=24), 200, blocked_request=True)
    limited = halves(agent, user, now - timedelta(seconds=25), 429)
    made = [*newer, ok, blocked_late, flying, failed, blocked_early, limited]
    with merges_stopped(warden):
        insert(
            warden,
            [request for request, _ in made],
            [response for _, response in made if response is not None],
        )
        assert physical_rows(warden, "interactions_by_agent", "agent_id", agent) == 2 * len(made) - 1

        def named(*interactions: tuple[dict, dict | None]) -> list[str]:
            return [request["interaction_id"] for request, _ in interactions]

        everything = named(*made)
        cases = [
            ({"status": "in_flight"}, named(flying)),
            ({"status": "200"}, named(*newer, ok, blocked_late, blocked_early)),
            ({"status": "2xx"}, named(*newer, ok, blocked_late, blocked_early)),
            ({"status": "error"}, named(failed, limited)),
            ({"status": "4xx"}, named(limited)),
            ({"status": "5xx"}, named(failed)),
            ({"status": "502"}, named(failed)),
            ({"blocked": "true"}, named(blocked_late, blocked_early)),
            ({"blocked": "false"}, [i for i in everything if i not in named(blocked_late, blocked_early)]),
            ({"blocked": "false", "status": "in_flight"}, named(flying)),
            ({"blocked": "true", "status": "2xx"}, named(blocked_late, blocked_early)),
            ({"blocked": "false", "status": "error"}, named(failed, limited)),
        ]
        for filters, expected in cases:
            for scope in (
                {"agent_id": agent},
                {"user_id": user},
                {"agent_id": agent, "user_id": user},
                {"session_id": f"session-of-{agent}"},  # neither fixed: the table sorted by time
            ):
                for limit in (1, 3, 50):
                    got = walk(warden, **scope, **filters, limit=limit)
                    assert ids(got) == expected, (filters, scope, limit)
        by_id = {i["interaction_id"]: i for i in walk(warden, agent_id=agent)}
        assert ids(by_id.values()) == everything
        assert by_id[named(flying)[0]]["in_flight"] and by_id[named(flying)[0]]["status"] is None
        late = by_id[named(blocked_late)[0]]
        assert late["blocked"] is True and late["status"] == 200 and late["route"] == "/chat/completions"
        assert late["latency_ms"] == 40.0 and not late["in_flight"]
        assert by_id[named(blocked_early)[0]]["blocked"] is True
        assert by_id[named(failed)[0]]["error"] == "upstream closed the connection"


def test_detail_of_an_interaction_in_flight_and_after_its_response(warden):
    agent = new_agent()
    request, response = halves(agent, new_agent("user"), datetime.now(UTC), 200)
    assert response is not None
    interaction_id = request["interaction_id"]
    with merges_stopped(warden):
        insert(warden, [request])
        detail = warden.detail(interaction_id)
        assert detail["in_flight"] is True and detail["status"] is None
        assert detail["request_received"] == request["request_received"] and detail["response_body"] is None
        assert detail["violations"] == [] and detail["tool_calls"] == []
        (listed,) = warden.interactions(agent_id=agent)["items"]
        assert listed["in_flight"] is True

        insert(warden, [response])
        assert physical_rows(warden, "interactions_by_id", "agent_id", agent) == 2
        detail = warden.detail(interaction_id)
        assert detail["in_flight"] is False and detail["status"] == 200
        assert detail["request_received"] == request["request_received"]
        assert detail["response_body"] == '{"choices":[]}' and detail["route"] == "/chat/completions"
        assert detail["usage"] == {
            "input_tokens": 12,
            "output_tokens": 34,
            "cached_tokens": None,
            "cache_write_tokens": None,
            "reasoning_tokens": None,
        }


def test_interactions_started_at_the_same_instant_are_paged_by_the_whole_key(warden):
    """Many interactions with one ``started_at``: every page size gives each exactly once, in the order of the full
    sort key (``started_at`` then ``interaction_id``, both newest first), as ClickHouse itself orders them."""
    agent, user = new_agent(), new_agent("user")
    instant = datetime.now(UTC).replace(microsecond=123456)
    made = [halves(agent, user, instant, 200) for _ in range(12)]
    # One older and one newer interaction around the tie: the cursor must cross into and out of it.
    made += [
        halves(agent, user, instant - timedelta(seconds=1), 200),
        halves(agent, user, instant + timedelta(seconds=1), 200),
    ]
    insert(warden, [request for request, _ in made], [response for _, response in made if response is not None])

    async def ordered(embedded) -> list[str]:
        sql = (
            "SELECT DISTINCT toString(interaction_id) AS id, started_at FROM warden.interactions "
            "WHERE agent_id = {a:String} ORDER BY started_at DESC, interaction_id DESC"
        )
        return [row["id"] for row in await embedded.store.select(sql, {"a": agent})]

    expected = warden.call(ordered)
    assert len(expected) == 14
    # By agent and by user (rows read in order), by session (keys first), with a folded condition.
    walks = [({"agent_id": agent}, limit) for limit in (1, 4, 50)]
    walks += [
        ({"user_id": user}, 3),
        ({"session_id": f"session-of-{agent}"}, 3),
        ({"agent_id": agent, "status": "200"}, 2),
    ]
    for params, limit in walks:
        assert ids(walk(warden, **params, limit=limit)) == expected, (params, limit)
