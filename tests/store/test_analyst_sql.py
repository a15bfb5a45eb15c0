"""The analysts' path: the read-only ClickHouse user runs the README's SQL over HTTP against a real server, filtering
`warden.interactions` by agent and by user, newest first; and cannot write, change its settings or read elsewhere."""

from __future__ import annotations

import json
import re
import urllib.error
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from plumbing.store.migrations import migrate
from plumbing.store.server_store import ServerStore
from services.logger.rows import interaction_rows
from tests.distributed.events import interaction
from tests.support.containers import docker_available

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_sql(title: str) -> str:
    """The SQL block that follows the README line ``-- <title>`` in the analysts' section."""
    match = re.search(rf"^-- {re.escape(title)}\n(.*?)^```", README.read_text(), re.M | re.S)
    assert match, f"README has no SQL block titled '-- {title}'"
    return match.group(1).strip()


SQL_USERS = docker_available()
"""Whether the suite's server can keep users made with SQL: the official image (a Docker engine here) can; the
chDB-served server cannot (``test_the_servers_that_can_keep_sql_users_are_the_ones_the_recipe_runs_on``)."""


@pytest.fixture(params=["configured", *(["created"] if SQL_USERS else [])])
def analyst(request, clickhouse_server) -> tuple[str, str]:
    """A read-only user: the test server's configured one, or one made by the README's CREATE USER recipe (on the
    servers that can keep it)."""
    if request.param == "configured":
        return clickhouse_server.analyst_user, clickhouse_server.analyst_password
    name, password = f"analyst_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    recipe = readme_block("CREATE USER analyst").replace("analyst", name).replace("<password>", password)
    for statement in filter(None, (part.strip() for part in recipe.split(";"))):
        clickhouse_server.query(statement)
    return name, password


def readme_block(start: str, language: str = "sql") -> str:
    match = re.search(rf"^```{language}\n({re.escape(start)}.*?)^```", README.read_text(), re.M | re.S)
    assert match, f"README has no SQL block starting with {start!r}"
    return match.group(1)


def as_analyst(server, analyst: tuple[str, str], sql: str, **params: str) -> httpx.Response:
    """What the README's curl line sends: the SQL as the body, each {name:Type} as a param_<name> query parameter."""
    return httpx.post(
        f"http://{server.host}:{server.http_port}/",
        params={"default_format": "JSONEachRow", **{f"param_{k}": v for k, v in params.items()}},
        content=sql,
        auth=analyst,
        timeout=30,
    )


def rows(response: httpx.Response) -> list[dict]:
    assert response.status_code == 200, response.text
    return [json.loads(line) for line in response.text.splitlines() if line]


@pytest.fixture
async def stored(clickhouse_server):
    """Two agents and three users, each interaction a minute apart, written as Warden's logger writes them."""
    tag = uuid.uuid4().hex[:8]
    agents, users = [f"billing-{tag}", f"support-{tag}"], [f"alice-{tag}", f"bob-{tag}", f"carol-{tag}"]
    base = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)
    events, expected = [], []
    for n in range(12):
        request, response = interaction(agents[n % 2], n)
        when = base + timedelta(minutes=n)
        for event in (request, response):
            event.started_at = when
            event.user_id = users[n % 3]
        events += [request, response]
        expected.append((request.interaction_id, agents[n % 2], users[n % 3], when))
    store = ServerStore(clickhouse_server.url)
    try:
        await migrate(store)
        await store.insert("warden.interactions", interaction_rows(events[: len(events) // 2]))
        # The other halves (request or response) of some, in a later insert, as the logger may write them.
        await store.insert("warden.interactions", interaction_rows(events[len(events) // 2 :]))
    finally:
        await store.close()
    return agents, users, expected


async def test_an_analyst_filters_interactions_by_agent_and_by_user_newest_first(clickhouse_server, analyst, stored):
    agents, users, expected = stored
    newest_first = sorted(expected, key=lambda e: e[3], reverse=True)

    by_agent = rows(as_analyst(clickhouse_server, analyst, readme_sql("by agent, newest first"), agent=agents[0]))
    assert [r["interaction_id"] for r in by_agent] == [e[0] for e in newest_first if e[1] == agents[0]]
    assert all(r["status"] == 200 and r["agent_id"] == agents[0] for r in by_agent)  # both halves folded

    by_user = rows(as_analyst(clickhouse_server, analyst, readme_sql("by user, newest first"), user=users[1]))
    assert [r["interaction_id"] for r in by_user] == [e[0] for e in newest_first if e[2] == users[1]]
    assert {r["agent_id"] for r in by_user} == set(agents)  # a user's interactions across agents

    per_agent = rows(as_analyst(clickhouse_server, analyst, readme_sql("interactions per agent and user")))
    mine = {(r["agent_id"], r["user_id"]): r["interactions"] for r in per_agent if r["agent_id"] in agents}
    assert sum(mine.values()) == len(expected) and all(n == 2 for n in mine.values())


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO warden.interactions (interaction_id, started_at, agent_id) VALUES (generateUUIDv4(), now(), 'x')",
        "ALTER TABLE warden.interactions DELETE WHERE 1",
        "TRUNCATE TABLE warden.interactions",
        "DROP TABLE warden.interactions",
        "CREATE TABLE warden.analyst_scratch (a UInt8) ENGINE = Memory",
        "SET readonly = 0",
        "SELECT 1 SETTINGS readonly = 0",
    ],
)
async def test_the_analyst_user_cannot_write_or_lift_its_read_only_mode(clickhouse_server, analyst, stored, sql):
    before = clickhouse_server.query("SELECT count() FROM warden.interactions")
    refused = as_analyst(clickhouse_server, analyst, sql)
    assert refused.status_code != 200 and "readonly" in refused.text.lower(), refused.text
    assert clickhouse_server.query("SELECT count() FROM warden.interactions") == before
    assert clickhouse_server.query("EXISTS TABLE warden.analyst_scratch").strip() == "0"


async def test_the_analyst_user_reads_only_the_warden_database(clickhouse_server, analyst, stored):
    clickhouse_server.query("CREATE DATABASE IF NOT EXISTS elsewhere")
    clickhouse_server.query("CREATE TABLE IF NOT EXISTS elsewhere.secret (a UInt8) ENGINE = Memory")
    refused = as_analyst(clickhouse_server, analyst, "SELECT * FROM elsewhere.secret")
    assert refused.status_code != 200 and "ACCESS_DENIED" in refused.text, refused.text
    wrong = httpx.post(
        f"http://{clickhouse_server.host}:{clickhouse_server.http_port}/",
        content="SELECT 1",
        auth=(analyst[0], "not-the-password"),
        timeout=30,
    )
    assert wrong.status_code != 200


def test_the_test_servers_analyst_is_the_readme_definition(clickhouse_server):
    """The configured analyst the other tests use is the README's users.d definition, word for word."""
    import xml.etree.ElementTree as ET

    from tests.support.clickhouse_server import users_xml

    def canonical(element: ET.Element) -> str:
        return ET.canonicalize(ET.tostring(element), strip_text=True)

    readme = ET.fromstring(readme_block("<clickhouse>", "xml").replace("PASSWORD", "secret"))
    served = ET.fromstring(users_xml("admin-secret", "secret"))
    for path in ("profiles/analyst", "users/analyst"):
        assert canonical(served.find(path)) == canonical(readme.find(path)), path


def test_the_servers_that_can_keep_sql_users_are_the_ones_the_recipe_runs_on(clickhouse_server):
    """The README's CREATE USER recipe runs (the analyst tests' ``created`` variant) exactly where the server keeps
    users made with SQL. The chDB-served server cannot: clickhouse-local sets up its access control from users.xml
    alone and never reads ``user_directories`` or ``access_control_path`` from config.xml (both tried:
    ``system.user_directories`` still lists users_xml only), and ``SYSTEM RELOAD CONFIG`` is not supported in it.
    A chdb that gains an SQL storage fails this test, and the recipe's variant should then run on it too."""
    name = f"recipe_probe_{uuid.uuid4().hex[:8]}"
    try:
        clickhouse_server.query(f"CREATE USER {name} IDENTIFIED BY '{uuid.uuid4().hex}' SETTINGS readonly = 1")
    except urllib.error.HTTPError as exc:
        refusal = exc.read().decode(errors="replace")
        assert not SQL_USERS, refusal
        assert "ACCESS_STORAGE_FOR_INSERTION_NOT_FOUND" in refusal, refusal
        directories = clickhouse_server.query("SELECT type FROM system.user_directories").split()
        assert directories == ["users_xml"]
    else:
        clickhouse_server.query(f"DROP USER {name}")
        assert SQL_USERS, "this server keeps SQL users: run the README recipe's variant of the analyst tests on it"
