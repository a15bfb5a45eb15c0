"""Shared pieces of the policy-rewrite tests: real streams from the fake upstreams, random chunk splits, a held stream
run over them, and a local server that hands chosen bytes to an official SDK so its own parser judges them."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from providers.held_stream import HeldStream

SEEDS = range(6)
SEND_EMAIL = '[[tool:send_email {"to": "a@b.c"}]]'
REFUSAL = "Blocked by policy: send_email is not allowed here."


def fetch(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> tuple[bytes, str]:
    """The raw body and content type of one answer of a fake upstream."""
    response = httpx.post(url, json=body, headers=headers or {}, timeout=30)
    assert response.status_code == 200, response.text
    return response.content, response.headers.get("content-type", "")


def random_splits(data: bytes, seed: int, largest: int = 23) -> list[bytes]:
    """``data`` cut at random places into pieces of 1 to ``largest`` bytes."""
    generator = random.Random(seed)
    pieces, position = [], 0
    while position < len(data):
        size = generator.randint(1, largest)
        pieces.append(data[position : position + size])
        position += size
    return pieces


@dataclass
class Held:
    """A held stream after the whole upstream answer was fed to it: what reached the client on the way."""

    stream: HeldStream
    passed: bytes


def run(stream: HeldStream, data: bytes, seed: int) -> Held:
    passed = b"".join(stream.feed(piece) for piece in random_splits(data, seed))
    return Held(stream, passed)


class Replay:
    """A server on 127.0.0.1 that answers every request with the body and content type last given to ``answer``."""

    def __init__(self) -> None:
        self.body = b""
        self.content_type = "application/json"
        self.paths: list[str] = []
        replay = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                self.rfile.read(length)
                replay.paths.append(self.path)
                self.send_response(200)
                self.send_header("content-type", replay.content_type)
                self.send_header("content-length", str(len(replay.body)))
                self.send_header("connection", "close")
                self.end_headers()
                self.wfile.write(replay.body)

            do_GET = do_POST = _answer

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="replay", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def answer(self, body: bytes, content_type: str) -> None:
        self.body, self.content_type = body, content_type

    def __enter__(self) -> Replay:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
