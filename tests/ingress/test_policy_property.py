"""Property: a tool call that matches a block policy never reaches the client, however its arguments are spelled
(path tricks, Unicode forms, JSON escapes, lists, non-strict JSON), however the answer is encoded (escaped keys) and
however it is framed (whole with a length, chunked at random sizes, an event stream cut at random byte boundaries).

The policy is the suite's ``read_file`` block on paths under ``/etc/`` (case folded); the fake upstream serves exact
bytes; the official SDK reads the answer as any client would. Deterministic: hypothesis derandomized, bounded
examples, no deadline.
"""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import canned
from tests.support.agents import new_agent
from tests.support.canned import Call
from tests.support.formats import ask
from tests.support.guardrails import make_profile

PROPERTY = settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
TRICKS = ("upper", "double_slash", "dot", "dotdot", "file_url", "fullwidth", "zero_width", "file_url_escape")


def spell_path(name: str, tricks: list[str], rng: random.Random) -> str:
    """``/etc/<name>`` spelled with ``tricks``: path-level ones first, then (at most one) URL form around it."""
    path = f"/etc/{name}"
    for trick in tricks:
        if trick == "upper":
            path = "".join(c.upper() if rng.random() < 0.5 else c for c in path)
        elif trick == "double_slash":
            path = path.replace("/", "//", 1)
        elif trick == "dot":
            path = "/." + path
        elif trick == "dotdot":
            path = "/tmp/x/../.." + path
        elif trick == "fullwidth":
            path = path.replace("/", "\uff0f")
        elif trick == "zero_width":
            cut = rng.randrange(1, len(path))
            path = path[:cut] + "\u200b" + path[cut:]
    if "file_url_escape" in tricks:
        return "file://" + path.replace("e", "%65", 1)
    if "file_url" in tricks:
        return "file://" + path
    return path


def encode(value: object, rng: random.Random) -> str:
    """JSON text for ``value`` with characters escaped (``\\uXXXX``) at random, and random spacing."""
    space = " " if rng.random() < 0.5 else ""
    if isinstance(value, dict):
        items = [f"{encode(key, rng)}:{space}{encode(item, rng)}" for key, item in value.items()]
        return "{" + f",{space}".join(items) + "}"
    if isinstance(value, list):
        return "[" + f",{space}".join(encode(item, rng) for item in value) + "]"
    if isinstance(value, str):
        out = []
        for char in value:
            if rng.random() < 0.3 or char in '"\\' or ord(char) < 0x20:
                out.append(f"\\u{ord(char):04x}" if ord(char) <= 0xFFFF else json.dumps(char)[1:-1])
            else:
                out.append(char)
        return '"' + "".join(out) + '"'
    return json.dumps(value)


@st.composite
def blocked_arguments(draw) -> str:
    """Arguments of a ``read_file`` call every client would read as a path under /etc/ (or that no strict parser
    reads at all)."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    name = draw(st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8))
    tricks = draw(st.lists(st.sampled_from(TRICKS), max_size=4))
    path: object = spell_path(name, tricks, rng)
    if draw(st.booleans()):
        path = [f"/tmp/{name}", path] if draw(st.booleans()) else [path]
    text = encode({"path": path}, rng)
    damage = draw(st.sampled_from(["", "", "", "nan", "trailing"]))
    if damage == "nan":
        text = text[:-1] + ', "size": NaN}'
    elif damage == "trailing":
        text += ' {"path": "/tmp/x"}'
    return text


def pieces(body: bytes, rng: random.Random) -> tuple[bytes, ...]:
    """``body`` cut at random byte boundaries (mid-event, mid-UTF-8 sequence, mid-escape)."""
    cuts = sorted(rng.sample(range(1, len(body)), min(len(body) - 1, rng.randint(1, 12))))
    return tuple(body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True))


@pytest.fixture(scope="module")
def restrictive(warden) -> str:
    return make_profile(warden, "restrictive", name="property")


@pytest.fixture
def fakes(fake_openai, fake_anthropic, fake_gemini):
    by_format = {"chat": fake_openai, "responses": fake_openai, "anthropic": fake_anthropic, "gemini": fake_gemini}
    yield by_format
    for fake in by_format.values():
        fake._state.canned.clear()


def answer_bytes(fmt: str, arguments: str, stream: bool, escaped_keys: bool) -> bytes:
    spell = canned.escaped if escaped_keys else canned.plain
    call = Call("read_file", arguments)
    if fmt == "chat":
        return (canned.chat_stream if stream else canned.chat_whole)([[call]], spell)
    if fmt == "responses":
        return (canned.responses_stream if stream else canned.responses_whole)([call], spell)
    if fmt == "anthropic":
        return (canned.anthropic_stream if stream else canned.anthropic_whole)([call], spell)
    return (canned.gemini_stream if stream else canned.gemini_whole)([[call]], spell)


def _verbatim_ok(fmt: str, arguments: str) -> bool:
    """Anthropic and Gemini carry arguments as a JSON value inside the answer: trailing text there would make the
    whole answer unreadable to every client (a case of its own, tested elsewhere)."""
    return fmt in ("chat", "responses") or not arguments.endswith('"/tmp/x"}')


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("fmt", ["chat", "responses", "anthropic", "gemini"])
@PROPERTY
@given(arguments=blocked_arguments(), escaped_keys=st.booleans(), chunked=st.booleans(), seed=st.integers(0, 2**32))
def test_a_blocked_call_never_reaches_the_client(
    warden, restrictive, fakes, fmt, stream, arguments, escaped_keys, chunked, seed
):
    if not _verbatim_ok(fmt, arguments) and not stream:
        arguments = arguments.removesuffix(' {"path": "/tmp/x"}')
    if fmt == "gemini" and stream and not _verbatim_ok(fmt, arguments):
        arguments = arguments.removesuffix(' {"path": "/tmp/x"}')
    body = answer_bytes(fmt, arguments, stream, escaped_keys)
    rng = random.Random(seed)
    content_type = "text/event-stream" if stream else "application/json"
    if stream or chunked:
        fakes[fmt].answer_next(pieces(body, rng), content_type=content_type, chunked=True)
    else:
        fakes[fmt].answer_next(body, content_type=content_type)
    answer = ask(warden, fmt, restrictive, new_agent(), "read it", stream=stream)
    assert [name for name, _ in answer.calls] == []
