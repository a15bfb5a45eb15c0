"""The guard's detection layer: pure functions from the common view (or raw text) to findings.

What is scanned where:

- every message text and tool result: secrets and personal data;
- user messages, tool results and tool descriptions: prompt injection (tool results and descriptions are indirect
  channels and score higher); system prompts are the application's own words and are not scanned for injection;
- the answer: secrets, personal data, and images or links whose URL carries data out;
- a body no provider view reads (``scan_body``): every string value, as text of unknown origin;
- the tool calls the model makes: exfiltration, judged by destination and action (``exfiltration``: sinks, git
  remotes, destinations outside ``allowed_domains``, data-carrying URLs, secrets and personal data handed to a call
  that sends them out); secrets and personal data in a local action are reported under their own category. Tool
  calls already in a request's history were scored when the model made them.

An empty ``allowed_domains`` means no allowlist is configured: destinations are then judged by what they are (a
request collector, a file drop, a raw public IP, encoded DNS labels) and by what they carry, not by host.
"""

from __future__ import annotations

import base64
import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

import orjson

from schemas.view import CompletionView, ConversationView
from services.detection.normalise import Variant, variants
from services.guard.detectors import exfiltration, learned, pii
from services.guard.detectors._hits import REDACTED, Hit, excerpt, to_findings
from services.guard.detectors.injection import _SOURCE_WEIGHT, REPORT_THRESHOLD, Source, _severity, find_injections
from services.guard.detectors.injection_model import load_model
from services.guard.detectors.memo import ByteBoundedLRU, digest
from services.guard.detectors.pii import find_pii
from services.guard.detectors.policy import findings_from_decisions
from services.guard.detectors.secrets import find_secrets
from services.guard.findings import Finding

__all__ = [
    "Finding",
    "clear_caches",
    "findings_from_decisions",
    "scan_body",
    "scan_completion",
    "scan_conversation",
    "scan_strings",
    "scan_text",
    "stream_strings",
]


# Which message texts are read for injection, and as what (system prompts and the assistant's own words are not).
_INJECTION_SOURCE: dict[str, Source] = {"user": "user", "tool": "tool"}


Detected = tuple[tuple[Hit, ...], tuple[Hit, ...]]
_TUPLE_BYTES = 56
_HIT_BYTES = 96 + 24 + 2 * 32 + 8
"""A hit, its score and offsets, and its slot in a tuple."""
_STR_BYTES = 80
"""A string's header, at most; each character takes at most 4 bytes more."""


def weigh(found: Detected) -> int:
    """An upper bound of the bytes a result holds (measuring each object costs more than detecting a short text)."""
    total = 3 * _TUPLE_BYTES
    for h in (*found[0], *found[1]):
        total += _HIT_BYTES + 3 * _STR_BYTES + 4 * (len(h.detector) + len(h.note) + len(h.mask or ""))
    return total


MEMO: ByteBoundedLRU[Detected] = ByteBoundedLRU(weigh=weigh)
"""Every request re-sends the conversation so far: the same texts come back turn after turn (see :mod:`memo`)."""


def _memo_key(text: str, injection_source: Source | None) -> bytes:
    """What a text's result depends on: the text, the source it is read as and the learned tier's mode."""
    return digest(text, str(injection_source), learned.mode() if injection_source is not None else "off")


_HIDDEN_CARRIERS = (
    "html_comment",
    "markdown_comment",
    "hidden_element",
    "attribute",
    "data_attribute",
    "alt_text",
    "link_title",
    "base64",
    "hex",
    "url_encoding",
    "rot13",
    "unicode_escapes",
    "split_strings",
)
"""Carriers a human reader does not see as text: an instruction found in one is hidden on purpose, and the learned tier
reads it whatever the fast tiers think of it."""
_HIDDEN_BONUS = 0.05


def _relocated(hit: Hit, variant: Variant, masks: list[Hit], bonus: float = 0.0) -> Hit:
    """A hit found in a reading of the text, placed on the carrier's span in the original (its offsets inside decoded
    or folded text are not offsets into what the bytes show), with an excerpt that names the carrier."""
    return Hit(
        f"{hit.detector}.{variant.carrier.replace('/', '.')}",
        hit.category,
        hit.severity,
        min(1.0, hit.score + bonus),
        variant.start,
        variant.end,
        mask=REDACTED if hit.mask is not None else None,
        note=f"in {variant.describe()}: {excerpt(variant.text, hit, masks)}",
    )


def _fast(text: str, injection_source: Source | None) -> tuple[list[Hit], list[Hit], list[Variant]]:
    """(sensitive spans, injection hits, readings) of one text by the fast tiers, over the text and every other
    reading of it (:mod:`normalise`)."""
    sensitive = [*find_secrets(text), *find_pii(text)]
    injections = find_injections(text, source=injection_source) if injection_source is not None else []
    readings = variants(text)
    found_values = {text[h.start : h.end] for h in sensitive}
    for v in readings:
        inner = sorted((*find_secrets(v.text), *find_pii(v.text)), key=lambda h: h.start)
        masks = [h for h in inner if h.mask is not None]
        # A value the original bytes show as they are was reported there already.
        sensitive += [_relocated(h, v, masks) for h in inner if v.text[h.start : h.end] not in found_values]
        if injection_source is not None:
            bonus = _HIDDEN_BONUS if v.carrier.split("/")[-1] in _HIDDEN_CARRIERS else 0.0
            injections += [_relocated(h, v, masks, bonus) for h in find_injections(v.text, source=injection_source)]
    return sensitive, injections, readings


def _result(sensitive: list[Hit], injections: list[Hit]) -> Detected:
    # One injection finding per text: the strongest reading.
    best = max(injections, key=lambda h: h.score, default=None)
    return tuple(sensitive), (best,) if best is not None else ()


LearnedReadings = list[tuple[learned.Reading, Variant | None]]


_JSON_MAX_CHARS = 256 * 1024
"""Longest text parsed as JSON for the learned tier (it reads at most a few windows of any text anyway)."""


def _json_strings(text: str) -> Variant | None:
    """The string values of a text that is JSON (a Gemini function response, an MCP tool's structured result),
    one per line: the words a model reads in that data, without the syntax around them, which moves a sentence's
    embedding away from the attacks it resembles (an injection the tier flags as plain text it misses as
    ``{"result": "…"}``)."""
    if len(text) > _JSON_MAX_CHARS or not text.lstrip().startswith(("{", "[")):
        return None
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    # The values a body's scan reads (ids, enum values and encoded blobs carry no sentence either).
    strings = [value for _, value in body_strings(data, "")]
    return Variant("\n".join(strings), "json_strings", 0, len(text)) if strings else None


def _learned_readings(text: str, readings: list[Variant]) -> LearnedReadings:
    """What the sentence-embedding tier would read of a text the fast tiers did not flag: its borderline windows
    (and those of its string values when it is JSON), and the hidden or decoded readings of it (chosen right after
    the fast tiers scored them, while the n-gram model still remembers their window scores)."""
    out: LearnedReadings = []
    r = learned.reading(text)
    if r is None:  # the tier is off (or the text too short): nothing to parse for it either
        return out
    out.append((r, None))
    as_json = _json_strings(text)
    if as_json is not None:
        r = learned.reading(as_json.text)
        if r is not None:
            out.append((r, as_json))
    for v in readings[:4]:
        if v.carrier.split("/")[-1] not in _HIDDEN_CARRIERS:
            continue
        r = learned.reading(v.text, borderline=True)
        if r is not None:
            out.append((r, v))
    return out


def _learned_hits(text: str, source: Source, pending: LearnedReadings) -> list[Hit]:
    """The tier's finding for a text, from the windows its event's allowance gave each of its readings."""
    score, at, hit_variant = 0.0, 0, None
    for r, v in pending:
        s, offset = learned.score(r)
        if v is None:
            score, at = s, offset
        elif s > score:
            score, at, hit_variant = s, 0, v
    score *= _SOURCE_WEIGHT[source]
    if score < REPORT_THRESHOLD:
        return []
    hit = Hit("injection.learned", "prompt_injection", _severity(score, source), score, at, min(len(text), at + 120))
    if hit_variant is not None:
        return [
            _relocated(
                Hit(hit.detector, hit.category, hit.severity, score, 0, min(len(hit_variant.text), 120)),
                hit_variant,
                [],
            )
        ]
    return [hit]


def _detect(text: str, injection_source: Source | None, allowance: learned.EventAllowance | None = None) -> Detected:
    """(sensitive spans, injection hits) of one text and of every other reading of it, not remembered.
    ``allowance``: the learned tier's windows left to the text's event (None: no cap per event)."""
    sensitive, injections, readings = _fast(text, injection_source)
    if injection_source is not None and not injections:
        pending = _learned_readings(text, readings)
        (allowance or learned.EventAllowance(0)).share_out([r for r, _ in pending])
        injections = _learned_hits(text, injection_source, pending)
    return _result(sensitive, injections)


def _detect_event(texts: list[tuple[str, Source | None]], allowance: learned.EventAllowance) -> list[Detected]:
    """``_detect`` of every text of one event, remembered by ``_memo_key``. In two passes: the fast tiers read every
    text, then the learned tier's allowance is shared out over the windows of all the texts they did not flag, the
    most suspicious first (a text's place in the event does not decide what is read). A result the learned tier
    could not complete (a window left unread for want of CPU budget or of allowance) is not remembered, so that the
    text is read in full when it comes back on the next turn."""
    found: list[Detected] = []
    waiting: list[tuple[int, bytes, list[Hit], LearnedReadings]] = []
    first_of: dict[bytes, int] = {}  # a text the event holds twice (the same tool result in two places) is read once
    repeats: list[tuple[int, int]] = []
    for k, (text, source) in enumerate(texts):
        key = _memo_key(text, source)
        known = MEMO.get(key)
        if known is not None:
            found.append(known)
            continue
        if key in first_of:
            repeats.append((k, first_of[key]))
            found.append(((), ()))  # filled in below
            continue
        first_of[key] = k
        sensitive, injections, readings = _fast(text, source)
        if source is not None and not injections:
            waiting.append((k, key, sensitive, _learned_readings(text, readings)))
            found.append(((), ()))  # filled in below
            continue
        found.append(_result(sensitive, injections))
        MEMO.put(key, found[-1])
    allowance.share_out([r for *_, pending in waiting for r, _ in pending])
    for k, key, sensitive, pending in waiting:
        text, source = texts[k]
        assert source is not None
        found[k] = _result(sensitive, _learned_hits(text, source, pending))
        if all(r.complete for r, _ in pending):
            MEMO.put(key, found[k])
    for k, first in repeats:
        found[k] = found[first]
    return found


def _scan(
    text: str,
    location: str,
    injection_source: Source | None,
    extra: Iterable[Hit] = (),
    allowance: learned.EventAllowance | None = None,
) -> list[Finding]:
    if not text:
        return []
    [(sensitive, injections)] = _detect_event([(text, injection_source)], allowance or learned.EventAllowance())
    return _findings(text, location, sensitive, injections, extra)


def _findings(
    text: str, location: str, sensitive: tuple[Hit, ...], injections: tuple[Hit, ...], extra: Iterable[Hit] = ()
) -> list[Finding]:
    hits = [*sensitive, *injections, *extra]
    return to_findings(text, hits, location, list(sensitive)) if hits else []


def scan_text(text: str, location: str = "text", *, allowed_domains: frozenset[str] = frozenset()) -> list[Finding]:
    """Everything the detectors can say about a raw text of unknown origin."""
    return _scan(
        text,
        location,
        "text",
        exfiltration.scan_rendered_text(text, allowed_domains=allowed_domains),
        learned.EventAllowance(),
    )


_BODY_STRING_MIN_CHARS = 8
"""Shorter string values (a model's name, ``"auto"``, ``"json"``) hold nothing the detectors look for."""


_OPAQUE_MIN_CHARS = 1024
_OPAQUE = re.compile(r"(?:data:[\w/.+-]{1,100};base64,)?([A-Za-z0-9+/_-]{1024,}={0,2})")
_SAMPLE_CHARS = 512


def is_opaque(value: str) -> bool:
    """Whether a string is encoded binary: an embedding, an image or audio in base64 (a data URL's too), whose first
    bytes do not decode to text. The detectors look for text; scanning such a blob cost ~3 ms per 8 KB embedding.
    Base64 that decodes to text (an encoded document, a hidden instruction) is not opaque: it is read."""
    if len(value) < _OPAQUE_MIN_CHARS:
        return False
    found = _OPAQUE.fullmatch(value)
    if found is None:
        return False
    sample = found.group(1)[:_SAMPLE_CHARS]
    try:
        decoded = base64.b64decode(sample.replace("-", "+").replace("_", "/"), validate=True)
    except ValueError:
        return False
    # (A sample may end inside a character: undecodable bytes count against it, they do not decide alone.)
    text = decoded.decode(errors="replace")
    printable = sum(ch != "\ufffd" and (ch.isprintable() or ch.isspace()) for ch in text)
    return printable < 0.9 * len(text)


def _string_values(body: Any, path: str) -> list[tuple[str, str]]:
    """(location, value) of every string of a parsed JSON body, in document order. Iterative, so no depth of nesting
    can exhaust the stack."""
    out: list[tuple[str, str]] = []
    todo: list[tuple[str, Any]] = [(path, body)]
    while todo:
        where, value = todo.pop()
        if isinstance(value, str):
            out.append((where, value))
        elif isinstance(value, dict):
            todo.extend((f"{where}.{key}", item) for key, item in reversed(value.items()))
        elif isinstance(value, list):
            todo.extend((f"{where}[{k}]", item) for k, item in reversed(list(enumerate(value))))
    return out


def _worth_reading(value: str) -> bool:
    return len(value) >= _BODY_STRING_MIN_CHARS and not is_opaque(value)


def body_strings(body: Any, path: str) -> list[tuple[str, str]]:
    """(location, text) of every string value of a parsed JSON body of at least ``_BODY_STRING_MIN_CHARS`` that is
    not encoded binary (``is_opaque``), in document order: ``request.body.prompt[0]``."""
    return [(where, value) for where, value in _string_values(body, path) if _worth_reading(value)]


def stream_strings(events: Iterable[Any], path: str) -> list[tuple[str, str]]:
    """The texts of a stream of JSON events whose shape no adapter models (Anthropic's legacy ``/v1/complete``),
    as a client reassembles them: each event's string at a location is the next piece of the text there (a piece
    alone is a few characters, too short to show a key or an address), so the pieces are joined per location. A
    value every event repeats alike (an id, the model's name) is read once."""
    pieces: dict[str, list[str]] = {}
    for event in events:
        for where, value in _string_values(event, path):
            pieces.setdefault(where, []).append(value)
    out: list[tuple[str, str]] = []
    for where, values in pieces.items():
        text = values[0] if values.count(values[0]) == len(values) else "".join(values)
        if _worth_reading(text):
            out.append((where, text))
    return out


def scan_strings(
    strings: list[tuple[str, str]], *, answer: bool, allowed_domains: frozenset[str] = frozenset()
) -> list[Finding]:
    """Findings in (location, text) pairs no provider view reads, as text of unknown origin: a request's for
    injection too (one learned-tier allowance for them all); an answer's, like any answer, for secrets, personal data
    and data-carrying links."""
    source: Source | None = None if answer else "text"
    detected = _detect_event([(text, source) for _, text in strings], learned.EventAllowance())
    findings: list[Finding] = []
    for (location, text), (sensitive, injections) in zip(strings, detected, strict=True):
        links = exfiltration.scan_rendered_text(text, allowed_domains=allowed_domains) if answer else ()
        findings += _findings(text, location, sensitive, injections, links)
    return findings


def scan_body(body: Any, path: str, *, answer: bool, allowed_domains: frozenset[str] = frozenset()) -> list[Finding]:
    """Findings in a body whose shape the provider adapter does not know (a route Warden forwards without a view of
    it: legacy completions, moderations, image or speech prompts, Gemini's embedContent…): every string value read
    as text of unknown origin (``scan_strings``), so that a secret, personal data or an injection sent that way is
    not missed for want of a view."""
    return scan_strings(body_strings(body, path), answer=answer, allowed_domains=allowed_domains)


def scan_conversation(view: ConversationView, *, allowed_domains: frozenset[str] = frozenset()) -> list[Finding]:
    """Findings for a request: its messages, tool results and tool definitions."""
    texts: list[tuple[str, str, Source | None]] = []
    # Anthropic and Gemini carry several tool results in one message: each is then named by its call's id.
    results_in = Counter(m.index for m in view.messages if m.tool_result is not None)
    for m in view.messages:
        base = f"request.messages[{m.index}]"
        if m.tool_result is not None and m.tool_result.content:
            named = f"[{m.tool_result.tool_call_id}]" if results_in[m.index] > 1 else ""
            texts.append((m.tool_result.content, f"{base}.tool_result{named}", "tool"))
        # Adapters also copy a tool result's content into the text: scan it once, as the tool result.
        if m.text and (m.tool_result is None or m.text != m.tool_result.content):
            texts.append((m.text, f"{base}.text", _INJECTION_SOURCE.get(m.role)))
    for k, tool in enumerate(view.tools):
        text = "\n".join([tool.description or "", *_schema_descriptions(tool.parameters)]).strip()
        if text:
            texts.append((text, f"request.tools[{k}].description", "tool_description"))
    # The learned tier reads at most a few windows per event, whatever the number of texts (its latency bound).
    detected = _detect_event([(text, source) for text, _, source in texts], learned.EventAllowance())
    findings: list[Finding] = []
    for (text, location, _), (sensitive, injections) in zip(texts, detected, strict=True):
        findings += _findings(text, location, sensitive, injections)
    return findings


def scan_completion(view: CompletionView, *, allowed_domains: frozenset[str] = frozenset()) -> list[Finding]:
    """Findings for an answer: its text and the tool calls it asks for."""
    findings = _scan(
        view.text, "response.text", None, exfiltration.scan_rendered_text(view.text, allowed_domains=allowed_domains)
    )
    for j, call in enumerate(view.tool_calls):
        by_path: dict[tuple[str, str], list[Hit]] = {}
        for path, text, hit in exfiltration.scan_call(call.name, call.arguments, allowed_domains=allowed_domains):
            by_path.setdefault((path, text), []).append(hit)
        for (path, text), hits in by_path.items():
            findings += to_findings(text, hits, f"response.tool_calls[{j}].{path}")
    return findings


def clear_caches() -> None:
    """Forget what the detectors memoised, so a benchmark measures cold work."""
    MEMO.clear()
    pii._valid_phone.cache_clear()
    load_model().forget()


def _schema_descriptions(schema: object) -> list[str]:
    """Descriptions nested in a tool's JSON schema: a poisoned parameter description steers the model too."""
    found: list[str] = []
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "description" and isinstance(value, str):
                found.append(value)
            else:
                found += _schema_descriptions(value)
    elif isinstance(schema, list):
        for value in schema:
            found += _schema_descriptions(value)
    return found
