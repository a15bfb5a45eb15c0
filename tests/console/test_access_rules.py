"""The access rules as functions: Host names, client addresses behind proxies, origins, body types, sessions and the
failed-login throttle (the HTTP tests in ``test_access_attacks`` perform the attacks against a running Warden)."""

from __future__ import annotations

import asyncio
import ipaddress
from pathlib import Path

import pytest
from pydantic import SecretStr
from starlette.datastructures import Headers

from plumbing.config.file_map import FileMap
from plumbing.settings import LOOPBACK_HOSTS
from schemas.sessions import RevokedSession
from services.console.access import client_address, host_allowed, is_loopback, json_body_problem, origin_problem
from services.console.sessions import Sessions
from services.console.throttle import MAX_LOCKOUT_S, LoginThrottle

PROXIES = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("127.0.0.1/32"))


def test_only_loopback_peers_are_on_this_machine():
    assert all(map(is_loopback, ["127.0.0.1", "127.8.9.10", "::1", "localhost"]))
    assert not any(map(is_loopback, [None, "", "192.0.2.2", "10.0.0.1", "::ffff:8.8.8.8", "fd00::2", "unknown"]))


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.1:9000", "localhost:1", "LOCALHOST", "[::1]", "[::1]:9000"])
def test_loopback_names_are_allowed_on_any_port(host):
    assert host_allowed(host, LOOPBACK_HOSTS)


@pytest.mark.parametrize(
    "host",
    [
        None,
        "",
        "rebind.attacker.example",
        "rebind.attacker.example:9000",
        "127.0.0.1.attacker.example",
        "localhost.attacker.example",
        "127.0.0.2",  # loopback, but a name an operator did not list
        "localhost:abc",
        "::1",  # not a Host value without brackets
        "[::1",
        "localhost:9000@attacker.example",
    ],
)
def test_other_names_are_refused(host):
    assert not host_allowed(host, LOOPBACK_HOSTS)


def test_a_listed_port_must_match():
    assert host_allowed("warden.internal:8443", ["warden.internal:8443"])
    assert not host_allowed("warden.internal:9000", ["warden.internal:8443"])


def test_forwarded_for_is_believed_only_from_trusted_proxies():
    # An untrusted peer cannot claim another address.
    assert client_address("203.0.113.7", "127.0.0.1", PROXIES) == "203.0.113.7"
    # A trusted proxy's word is taken: the nearest untrusted hop is the client, whatever was written before it.
    assert client_address("127.0.0.1", "203.0.113.7", PROXIES) == "203.0.113.7"
    assert client_address("127.0.0.1", "127.0.0.1, 203.0.113.7, 10.1.2.3", PROXIES) == "203.0.113.7"
    # Without a header the proxy itself is the client.
    assert client_address("127.0.0.1", None, PROXIES) == "127.0.0.1"
    assert client_address("127.0.0.1", "203.0.113.7", ()) == "127.0.0.1"


@pytest.mark.parametrize(
    ("origin", "fetch_site", "host", "by_cookie", "refused"),
    [
        ("http://127.0.0.1:9000", None, "127.0.0.1:9000", True, False),
        ("https://warden.example", "same-origin", "warden.example", True, False),
        (None, None, "127.0.0.1:9000", False, False),  # a script: curl, the CLI
        ("https://evil.example", None, "127.0.0.1:9000", False, True),
        ("http://127.0.0.1:8000", None, "127.0.0.1:9000", True, True),  # another port is another origin
        ("null", None, "127.0.0.1:9000", False, True),
        ("http://127.0.0.1:9000", "cross-site", "127.0.0.1:9000", False, True),
        (None, "same-site", "127.0.0.1:9000", False, True),
        (None, None, "127.0.0.1:9000", True, True),  # a browser's cookie, and no word of where from
    ],
)
def test_state_changing_requests_must_come_from_the_console_itself(origin, fetch_site, host, by_cookie, refused):
    assert (origin_problem(origin, fetch_site, host, by_cookie) is not None) is refused


@pytest.mark.parametrize(
    ("method", "headers", "refused"),
    [
        ("POST", {"content-type": "application/json", "content-length": "2"}, False),
        ("PUT", {"content-type": "Application/JSON; charset=utf-8", "content-length": "2"}, False),
        ("POST", {"content-type": "text/plain", "content-length": "2"}, True),
        ("POST", {"content-type": "application/x-www-form-urlencoded", "content-length": "2"}, True),
        ("POST", {"content-type": "multipart/form-data; boundary=x", "content-length": "2"}, True),
        ("PATCH", {"content-length": "2"}, True),
        ("POST", {"transfer-encoding": "chunked"}, True),
        ("POST", {}, False),  # no body at all
        ("DELETE", {"content-type": "text/plain"}, False),
    ],
)
def test_the_admin_api_takes_json_bodies_only(method, headers, refused):
    assert (json_body_problem(method, Headers(headers)) is not None) is refused


def sessions(path: Path, token: str = "the-admin-token-0123") -> Sessions:
    return Sessions(SecretStr(token), 3600, FileMap(path, RevokedSession))


def test_a_session_is_signed_expires_and_says_nothing_of_the_token(tmp_path):
    own = sessions(tmp_path / "a.json")
    value = own.issue(now=1000.0)
    assert "the-admin-token" not in value
    assert own.verify(value, now=1000.0 + 3599) is not None
    assert own.verify(value, now=1000.0 + 3600) is None
    session_id, expires, signature = value.split(".")
    assert own.verify(f"{session_id}.{int(expires) + 3600}.{signature}", now=1000.0) is None
    assert own.verify(f"{session_id}x.{expires}.{signature}", now=1000.0) is None
    assert own.verify("the-admin-token-0123", now=1000.0) is None
    # Another process with the same admin token accepts it; one with another token does not.
    assert sessions(tmp_path / "b.json").verify(value, now=1000.0) is not None
    assert sessions(tmp_path / "c.json", token="another-token-456789").verify(value, now=1000.0) is None


def test_a_revoked_session_is_refused_and_old_revocations_are_dropped(tmp_path):
    path = tmp_path / "revoked.json"
    own = sessions(path)
    old, current = own.issue(now=0.0), own.issue(now=3000.0)
    assert asyncio.run(own.revoke(old, now=10.0))
    assert own.verify(old, now=20.0) is None
    # Another process reading the same replicated list refuses it too.
    assert sessions(path).verify(old, now=20.0) is None
    assert not asyncio.run(own.revoke("junk", now=20.0))
    # Once the old session has expired anyway, the next logout drops its entry.
    assert asyncio.run(own.revoke(current, now=4000.0))
    assert [entry.session_id for entry in own.revoked.values()] == [current.split(".")[0]]


def test_failed_logins_lock_an_address_out_for_longer_each_time():
    throttle = LoginThrottle(max_failures=3, lockout_s=60)
    assert throttle.failed("203.0.113.7", now=0) == 0
    assert throttle.failed("203.0.113.7", now=1) == 0
    assert throttle.wait_s("203.0.113.7", now=2) == 0
    assert throttle.failed("203.0.113.7", now=2) == 60
    assert throttle.wait_s("203.0.113.7", now=32) == 30
    assert throttle.wait_s("198.51.100.1", now=32) == 0  # per address
    assert throttle.failed("203.0.113.7", now=62) == 120
    assert throttle.failed("203.0.113.7", now=183) == 240
    for n in range(40):
        wait = throttle.failed("203.0.113.7", now=10_000 + n * MAX_LOCKOUT_S)
    assert wait == MAX_LOCKOUT_S
    throttle.succeeded("203.0.113.7")
    assert throttle.wait_s("203.0.113.7", now=10**6) == 0
    # A long quiet spell forgets earlier failures.
    assert throttle.failed("198.51.100.1", now=0) == 0
    assert throttle.failed("198.51.100.1", now=1) == 0
    assert throttle.failed("198.51.100.1", now=2 + MAX_LOCKOUT_S) == 0
