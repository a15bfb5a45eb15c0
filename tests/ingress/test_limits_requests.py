"""What one request may cost Warden before it is forwarded: header size and count, the time to send headers and body,
and the memory a body takes. Every refused attempt is answered in the provider's shape and recorded.

The attacks are written on raw sockets (no client library would send them). Warden runs as its own process with the
default header limits and one-second timeouts, so the slow attacks end quickly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import tracemalloc
from collections.abc import Iterator

import anthropic
import httpx
import openai
import pytest

from services.ingress.asgi import read_body
from tests.conftest import API_KEY
from tests.support.agents import new_agent
from tests.support.limits import LimitedWarden, limited_warden

PATHS = {
    "openai": "/v1/openai/chat/completions",
    "anthropic": "/v1/anthropic/v1/messages",
    "gemini": "/v1/gemini/v1beta/models/gemini-2.5-flash:generateContent",
}
PATIENCE_S = 60
"""How long a test waits for Warden's answer before failing (a bound for a hang, not a measured time)."""


@pytest.fixture(scope="module")
def served(tmp_path_factory, fake_openai, fake_anthropic, fake_gemini) -> Iterator[LimitedWarden]:
    process = limited_warden(
        tmp_path_factory.mktemp("limits-requests"),
        (fake_openai, fake_anthropic, fake_gemini),
        WARDEN_HEADER_TIMEOUT_S="1",
        WARDEN_BODY_TIMEOUT_S="1",
    )
    yield process
    process.kill()


def connect(served: LimitedWarden) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", served.port), timeout=PATIENCE_S)
    return sock


def send_all(sock: socket.socket, data: bytes) -> None:
    """Send, as an attacker would, ignoring that Warden may have stopped reading and closed."""
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(data)


def read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Everything Warden sends until it closes the connection: status, headers, body."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return status, {k.lower(): v for k, v in headers.items()}, body


def request_head(provider: str, agent: str, extra: str = "", length: int | None = None) -> bytes:
    lines = [
        f"POST {PATHS[provider]} HTTP/1.1",
        "Host: 127.0.0.1",
        f"X-Archestra-Agent-Id: {agent}",
        f"Authorization: Bearer {API_KEY}",
        "Content-Type: application/json",
    ]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n" + extra).encode()


def assert_provider_error(provider: str, status: int, body: bytes, words: str) -> None:
    """``body`` is ``provider``'s own error envelope, saying ``words``."""
    payload = json.loads(body)
    if provider == "anthropic":
        assert payload["type"] == "error" and words in payload["error"]["message"]
    elif provider == "gemini":
        assert payload["error"]["code"] == status and words in payload["error"]["message"]
    else:
        assert words in payload["error"]["message"]


def recorded(served: LimitedWarden, agent: str, status: int) -> dict:
    (item,) = served.wait_for(lambda i: i["status"] == status, timeout=30, agent_id=agent)
    return served.detail(item["interaction_id"])


@pytest.mark.parametrize("provider", PATHS)
def test_a_16_mb_header_is_refused_with_431_and_recorded(served, fake_openai, fake_anthropic, fake_gemini, provider):
    agent = new_agent()
    sock = connect(served)
    send_all(sock, request_head(provider, agent, "X-Padding: "))
    for _ in range(256):  # 16 MiB, a piece at a time
        send_all(sock, b"a" * 65536)
    status, headers, body = read_answer(sock)
    assert status == 431
    assert headers["connection"] == "close"
    assert_provider_error(provider, 431, body, "exceed 65536 bytes")
    detail = recorded(served, agent, 431)
    assert "headers exceed" in detail["error"]
    assert detail["agent_id"] == agent  # the complete headers before the oversized one are kept
    forwarded = [r for fake in (fake_openai, fake_anthropic, fake_gemini) for r in fake.received]
    assert not any("x-padding" in r.headers for r in forwarded)  # nothing of it went upstream


@pytest.mark.parametrize("provider", PATHS)
def test_too_many_headers_are_refused_with_431_and_recorded(served, provider):
    agent = new_agent()
    sock = connect(served)
    many = "".join(f"X-Filler-{n}: {n}\r\n" for n in range(150))
    send_all(sock, request_head(provider, agent, many + "Content-Length: 2\r\n\r\n{}"))
    status, _, body = read_answer(sock)
    assert status == 431
    assert_provider_error(provider, 431, body, "more than 100 request headers")
    assert "more than 100 request headers" in recorded(served, agent, 431)["error"]


def test_half_sent_requests_are_answered_408_and_recorded_and_idle_connections_closed(served):
    agent = new_agent()
    half_sent = [connect(served) for _ in range(40)]
    for sock in half_sent:
        send_all(sock, request_head("anthropic", agent))  # the headers never end
    idle = connect(served)  # sends nothing at all
    for sock in half_sent:
        status, _, body = read_answer(sock)
        assert status == 408
        assert_provider_error("anthropic", 408, body, "headers did not arrive")
    assert idle.recv(1) == b""  # closed by Warden, without an answer: there was no request
    idle.close()

    def refused() -> list[dict]:
        return [i for i in served.interactions(agent_id=agent, limit=100)["items"] if i["status"] == 408]

    served.wait_for(lambda _: len(refused()) == 40, timeout=30, agent_id=agent)
    assert all("headers did not arrive within 1 s" in item["error"] for item in refused())


@pytest.mark.parametrize("provider", PATHS)
def test_a_body_that_stalls_is_answered_408_and_recorded(served, provider):
    agent = new_agent()
    sock = connect(served)
    send_all(sock, request_head(provider, agent, "\r\n", length=1000) + b'{"model": "m", ')
    status, _, body = read_answer(sock)
    assert status == 408
    assert_provider_error(provider, 408, body, "request body did not arrive")
    assert "request body did not arrive within 1 s" in recorded(served, agent, 408)["error"]


@pytest.mark.parametrize("provider", PATHS)
def test_a_client_that_drops_mid_upload_is_recorded(served, provider):
    agent = new_agent()
    sock = connect(served)
    send_all(sock, request_head(provider, agent, "\r\n", length=100_000) + b'{"model": "m", "messages": [')
    sock.close()
    detail = recorded(served, agent, 499)
    assert detail["aborted"] is True
    assert "closed the connection before its request body was complete" in detail["error"]


def test_requests_within_the_limits_pass_on_one_kept_alive_connection(served):
    """Large headers under the limit, a large body sent in one write, and two requests on one connection."""
    agent = new_agent()
    padding = {f"x-pad-{n}": "p" * 900 for n in range(60)}  # ~55 KiB of headers (the SDKs add ~20 more)
    with httpx.Client(timeout=PATIENCE_S) as http:
        sdk = openai.OpenAI(
            base_url=f"{served.url}/v1/openai",
            api_key=API_KEY,
            default_headers={"X-Archestra-Agent-Id": agent, **padding},
            http_client=http,
            max_retries=0,
        )
        big = "word " * 100_000  # 500 KB body
        first = sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": big}])
        second = sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "again"}])
    assert first.choices[0].message.content.startswith("echo: word")
    assert second.choices[0].message.content == "echo: again"
    claude = anthropic.Anthropic(base_url=f"{served.url}/v1/anthropic", api_key=API_KEY, max_retries=0)
    answer = claude.messages.create(
        model="claude-sonnet-4-5", max_tokens=32, messages=[{"role": "user", "content": "hi"}], extra_headers=padding
    )
    assert answer.content[0].text == "echo: hi"


def test_a_body_in_pieces_is_held_once():
    """A body that arrives in pieces (the server's reads) is assembled in one buffer: memory holds it once, not its
    pieces and their join."""
    piece, count = 1024 * 1024, 16
    scope = {"headers": [(b"content-length", str(piece * count).encode())]}

    async def read() -> int:
        sent = 0

        async def receive() -> dict:
            nonlocal sent
            sent += 1
            return {"type": "http.request", "body": bytes([sent]) * piece, "more_body": sent < count}

        tracemalloc.start()
        try:
            body = await read_body(scope, receive, 32 * 1024 * 1024)
            assert len(body) == piece * count and body[-1] == count
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    peak = asyncio.run(read())
    assert peak < piece * count * 1.25, f"reading a {piece * count}-byte body peaked at {peak} bytes"
