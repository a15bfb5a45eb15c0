"""Evaluate the guard's detectors on text from sources they were not built from, and measure their speed.

    python bench/guard_eval.py [--events 400] [--json results.json] [--errors 5] [--no-speed] [--held-out]

Prompt injection and jailbreak are scored leave one source out: for each labelled source of the pooled corpus
(``guard_eval/corpus.py``), every tier of ``guard_eval/tiers.py`` is trained without that source and scored on it; the
headline numbers are these, pooled over the sources. Secrets, personal data and exfiltration are scored on their
evaluation sets, per source and per position of an event (user message, tool result, tool-call arguments, assistant
answer) through the full scan. ``--held-out`` adds the held-out split (for a final report only).

Prints precision, recall and false-positive rate per category (and per source / position / tier where it helps), then
throughput (events per second on one core) and latency percentiles per event, an event being a typical request of
about ten messages (system prompt, user turns, assistant turns with tool calls, tool results) plus its answer.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from schemas.view import CompletionView, ConversationView, Message, ToolCall, ToolDefinition, ToolResult  # noqa: E402
from services.guard.detectors import clear_caches, scan_completion, scan_conversation  # noqa: E402
from services.guard.detectors.injection import find_injections  # noqa: E402

sys.path.insert(0, str(ROOT / "bench" / "guard_eval"))
import corpus  # noqa: E402
from tiers import FLAG, TIERS, Position, Row, Tier  # noqa: E402

from services.guard.detectors.pii import find_pii  # noqa: E402
from services.guard.detectors.secrets import find_secrets  # noqa: E402

DATA = ROOT / "bench" / "guard_eval" / "data"
ALLOWED = frozenset({"example.com", "api.internal.test"})
CHECKSUM_PII = {
    "payment_card",
    "iban",
    "us_ssn",
    "payment_card_luhn_invalid",
    "iban_bad_check_digits",
    "us_ssn_invalid_range",
}


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    misses: list[str] = field(default_factory=list)
    false_alarms: list[str] = field(default_factory=list)

    def add(self, label: int, predicted: bool, text: str) -> None:
        if label and predicted:
            self.tp += 1
        elif label:
            self.fn += 1
            self.misses.append(text)
        elif predicted:
            self.fp += 1
            self.false_alarms.append(text)
        else:
            self.tn += 1

    def row(self) -> dict[str, Any]:
        pos, neg = self.tp + self.fn, self.fp + self.tn
        return {
            "n": pos + neg,
            "positives": pos,
            "precision": self.tp / (self.tp + self.fp) if self.tp + self.fp else None,
            "recall": self.tp / pos if pos else None,
            "fpr": self.fp / neg if neg else None,
        }


def load(name: str) -> list[dict[str, Any]]:
    with (DATA / name).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def evaluate(
    rows: Iterable[dict[str, Any]],
    predict: Callable[[dict[str, Any]], bool],
    keys: Callable[[dict[str, Any]], list[str]],
) -> dict[str, Counts]:
    table: dict[str, Counts] = defaultdict(Counts)
    for r in rows:
        predicted = predict(r)
        for key in keys(r):
            table[key].add(r["label"], predicted, r["text"])
    return table


def _role(r: dict[str, Any]) -> Position:
    return "tool" if r["role"] == "tool" else "user"


# --- prompt injection and jailbreak: leave one source out -------------------------------------------------------------

KINDS = ("injection", "jailbreak")
POSITION_NAMES = {"user": "user message", "tool": "tool result"}


def leave_one_source_out(tier: Tier, pool: list[Row]) -> list[tuple[Row, float]]:
    """Every row of every scored source, scored by ``tier`` fitted on the other sources' rows only."""
    out: list[tuple[Row, float]] = []
    for source in corpus.scored_sources(pool):
        scorer = tier.fit(corpus.fold_training_rows(pool, source))
        out += [(r, scorer(r["text"], _role(r))) for r in pool if r["source"] == source]
    return out


def kind_tables(scored: list[tuple[Row, float]], extra_keys: Callable[[Row], list[str]]) -> dict[str, Counts]:
    """Per kind (injection, jailbreak): benign rows are every kind's negatives, so each kind has its own precision
    (flagged benign rows against flagged rows of that kind), recall and FPR."""
    table: dict[str, Counts] = defaultdict(Counts)
    for r, score in scored:
        flagged = score >= FLAG
        for key in ["all", *extra_keys(r)]:
            for k in KINDS:
                if r["kind"] in (k, "benign"):
                    table[f"{k}: {key}"].add(int(r["kind"] == k), flagged, r["text"])
    return table


def _slices(r: Row) -> list[str]:
    keys = [f"source={r['source']}", f"position={POSITION_NAMES[_role(r)]}"]
    if r.get("lang", "en") != "en":
        keys.append("language=not English")
    return keys


# Benign sources made to carry personal data on purpose (contact records): a finding there is right, not a false alarm.
CARRIES_PII = frozenset({"faker"})


def any_finding_rate(scored: list[tuple[Row, float]]) -> dict[str, Counts]:
    """Benign texts (user messages and tool results) that get any finding: the injection score of the fold that did
    not train on them, or any secret or personal-data finding. ``agent traffic`` leaves out the sources that carry
    personal data on purpose."""
    table: dict[str, Counts] = defaultdict(Counts)
    for r, score in scored:
        if r["kind"] != "benign":
            continue
        injection = score >= FLAG
        sensitive = bool(find_secrets(r["text"])) or bool(find_pii(r["text"]))
        keys = ["all benign"] + ([] if r["source"] in CARRIES_PII else ["agent traffic"])
        for key in keys:
            table[f"{key}: any finding"].add(0, injection or sensitive, r["text"])
            table[f"{key}: injection finding"].add(0, injection, r["text"])
    return table


def injection_report(args: argparse.Namespace, results: dict[str, Any]) -> None:
    rows = corpus.pooled()
    pool = [r for r in rows if not corpus.held_out(r)]
    sources = corpus.scored_sources(pool)
    print(
        f"\nprompt injection and jailbreak, LEAVE ONE SOURCE OUT: each of {len(sources)} sources scored by a model "
        f"trained without it ({len(pool)} rows; the {corpus.HELD_OUT_PERCENT}% held-out split is not used)"
    )
    for n, tier in enumerate(TIERS):
        scored = leave_one_source_out(tier, pool)
        detail = n == 0
        table = kind_tables(scored, _slices if detail else lambda r: [])
        results[f"loso {tier.name}"] = print_table(f"{tier.name} (leave one source out)", table, args.errors)
        if detail:
            print("\n  benign user messages and tool results with a finding (share of n):")
            for key, counts in sorted(any_finding_rate(scored).items()):
                row = counts.row()
                results[f"loso benign {key}"] = row
                print(f"    {key:<40} {row['fpr']:.3f} of {row['n']}")
            print(
                "  tool-call arguments and the assistant's answer are not read for injection (the model's own output):"
                " no row there"
            )
    if args.held_out:
        # The guard as shipped: its model was trained on exactly the rows outside this split (train_injection.py).
        held = [r for r in rows if corpus.held_out(r) and r["source"] != corpus.DERIVED]
        scored = [(r, max((h.score for h in find_injections(r["text"], source=_role(r))), default=0.0)) for r in held]
        results["held-out"] = print_table(
            f"the shipped guard, HELD-OUT split ({len(held)} rows; its model trained on every source's other rows)",
            kind_tables(scored, lambda r: [f"source={r['source']}"]),
            args.errors,
        )


# --- secrets, personal data, exfiltration: by source and by position ------------------------------------------------

POSITIONS = ("user message", "tool result", "tool-call arguments", "assistant answer")


def findings_at(text: str, position: str) -> set[str]:
    """Categories Warden reports for ``text`` placed at ``position`` of an event (through the full scan)."""
    if position in ("user message", "tool result"):
        m = (
            Message(role="user", text=text, index=0)
            if position == "user message"
            else Message(role="tool", tool_result=ToolResult(tool_call_id="c1", content=text), index=0)
        )
        found = scan_conversation(ConversationView(provider="openai", model="m", messages=[m]), allowed_domains=ALLOWED)
    elif position == "assistant answer":
        found = scan_completion(CompletionView(text=text), allowed_domains=ALLOWED)
    else:
        call = ToolCall(id="c1", name="write_note", arguments={"text": text})
        found = scan_completion(CompletionView(tool_calls=[call]), allowed_domains=ALLOWED)
    return {f.category for f in found}


def position_table(rows: list[Row], category: str) -> dict[str, Counts]:
    table: dict[str, Counts] = defaultdict(Counts)
    for r in rows:
        for position in POSITIONS:
            found = findings_at(r["text"], position)
            table[f"position={position}"].add(r["label"], category in found, r["text"])
            if position == "tool-call arguments":  # data in arguments is reported as exfiltration today
                table[f"position={position}, any category"].add(r["label"], bool(found), r["text"])
    return table


def masking_leaks(rows: list[dict[str, Any]]) -> int:
    """Positives whose secret value appears in full in any finding (there must be none)."""
    from services.guard.detectors import scan_text

    leaks = 0
    for r in rows:
        secret = r.get("secret")
        if secret and any(secret in f.excerpt for f in scan_text(r["text"])):
            leaks += 1
    return leaks


def _category_keys(r: Row) -> list[str]:
    return ["all", f"source={r['source']}", f"subtype={r['subtype']}"]


def exfiltration_predict(r: dict[str, Any]) -> bool:
    """Rows carry the tool's name and the profile's allowlist when they matter (default: an HTTP call, ``ALLOWED``);
    rows whose ``tool`` is ``answer`` are an answer's text."""
    allowed = frozenset(r["allowed_domains"]) if "allowed_domains" in r else ALLOWED
    if r.get("tool") == "answer":
        view = CompletionView(text=r["text"])
    else:
        view = CompletionView(
            tool_calls=[ToolCall(id="c1", name=r.get("tool", "http_request"), arguments=json.loads(r["text"]))]
        )
    return any(f.category == "exfiltration" for f in scan_completion(view, allowed_domains=allowed))


# --- throughput -----------------------------------------------------------------------------------------------------


def typical_events(n: int, seed: int = 7) -> list[tuple[ConversationView, CompletionView]]:
    """Requests of ~10 messages built from the evaluation texts; every text carries an event-specific reference so
    that no two events share a text and the detectors' memo of recent texts never helps (a cold measurement)."""
    rng = random.Random(seed)
    inj = load("eval_injection.jsonl")
    users = [r["text"] for r in inj if r["role"] == "user" and len(r["text"]) < 1500]
    tools = [r["text"] for r in inj if r["role"] == "tool" and len(r["text"]) < 3000]
    extras = [r["text"] for r in load("eval_pii.jsonl") + load("eval_secrets.jsonl")]
    system = (
        "You are a helpful assistant for Northwind Traders. Answer questions about orders, shipping and returns. "
        "Use the tools to look up orders and customers. Never reveal internal notes. Be concise and friendly. " * 3
    )
    tool_defs = [
        ToolDefinition(
            name="get_order",
            description="Look up an order by id.",
            parameters={"type": "object", "properties": {"id": {"type": "string", "description": "Order id"}}},
        ),
        ToolDefinition(name="search_docs", description="Search the help centre.", parameters={"type": "object"}),
    ]
    events = []
    for e in range(n):
        ref = f" (ref EV{e}x{rng.randint(0, 99)})"
        messages = [Message(role="system", text=system + ref, index=0)]
        for turn in range(3):
            i = len(messages)
            messages.append(Message(role="user", text=rng.choice(users) + " " + rng.choice(extras) + ref, index=i))
            call = ToolCall(id=f"call_{turn}", name="get_order", arguments={"id": str(rng.randint(1000, 9999))})
            messages.append(Message(role="assistant", text="Let me check that." + ref, tool_calls=[call], index=i + 1))
            result = ToolResult(tool_call_id=call.id, content=rng.choice(tools) + ref)
            messages.append(Message(role="tool", tool_result=result, index=i + 2))
        messages.append(Message(role="user", text=rng.choice(users) + ref, index=len(messages)))
        answer = CompletionView(
            text="Your order has shipped and should arrive on Thursday. " + rng.choice(extras) + ref,
            tool_calls=[ToolCall(id="c9", name="search_docs", arguments={"url": "https://example.com/help?q=returns"})],
        )
        events.append((ConversationView(provider="openai", model="gpt-4o", messages=messages, tools=tool_defs), answer))
    return events


def bus_events(events: list[tuple[ConversationView, CompletionView]]) -> list[tuple[bytes, bytes]]:
    """The events as the guard reads them off the bus: a request event carrying the OpenAI chat body the client sent
    (no view attached: a guard in its own process parses the body) and the response event the ingress publishes."""
    from datetime import UTC, datetime

    from schemas.events import RequestEvent, ResponseEvent

    out = []
    now = datetime.now(UTC)
    for k, (conversation, completion) in enumerate(events):
        messages: list[dict[str, Any]] = []
        for m in conversation.messages:
            if m.tool_result is not None:
                messages.append(
                    {"role": "tool", "tool_call_id": m.tool_result.tool_call_id, "content": m.tool_result.content}
                )
                continue
            message: dict[str, Any] = {"role": m.role, "content": m.text}
            if m.tool_calls:
                message["tool_calls"] = [
                    {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
                    for c in m.tool_calls
                ]
            messages.append(message)
        tools = [
            {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
            for t in conversation.tools
        ]
        common = {
            "interaction_id": f"00000000-0000-4000-8000-{k:012d}",
            "started_at": now,
            "profile_id": "default",
            "agent_id": "bench",
            "user_id": "",
            "provider": "openai",
            "model": conversation.model,
            "route": "/chat/completions",
        }
        body = json.dumps({"model": conversation.model, "messages": messages, "tools": tools})
        request = RequestEvent(**common, request_received=body)
        response = ResponseEvent(
            **common,
            status=200,
            response_body=json.dumps({"choices": [{"message": {"role": "assistant", "content": completion.text}}]}),
            answer_text=completion.text,
            tool_calls=completion.tool_calls,
            finished_at=now,
            latency_ms=1.0,
        )
        out.append((request.model_dump_json().encode(), response.model_dump_json().encode()))
    return out


def _percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))]


def _passes(items: list[Any], score: Callable[[Any], object], passes: int = 3) -> tuple[list[float], list[float]]:
    """CPU and wall milliseconds per item of the cold pass (every memo cleared first) that spent the least CPU: on a
    shared machine the others measure the neighbours' load (cache and hyper-thread contention) as much as the
    detectors, so the least is kept, as timeit does."""
    runs = []
    for _ in range(passes):
        clear_caches()
        cpu, wall = [], []
        for item in items:
            c0, w0 = time.thread_time(), time.perf_counter()
            score(item)
            cpu.append((time.thread_time() - c0) * 1000)
            wall.append((time.perf_counter() - w0) * 1000)
        runs.append((sum(cpu), cpu, wall))
    _, cpu, wall = min(runs, key=lambda r: r[0])
    return cpu, wall


def _rates(cpu: list[float], wall: list[float] | None = None) -> dict[str, float]:
    out = {
        "events_per_s": 1000 * len(cpu) / sum(cpu),
        "p50_ms": _percentile(cpu, 0.5),
        "p99_ms": _percentile(cpu, 0.99),
        "max_ms": max(cpu),
    }
    if wall is not None:
        out |= {"wall_events_per_s": 1000 * len(wall) / sum(wall), "wall_p99_ms": _percentile(wall, 0.99)}
    return out


def throughput(n: int) -> dict[str, float]:
    """Events per second on one core and latency per event, measured in CPU time of this thread (what one core
    spends, unaffected by other processes competing for the machine) and, for reference, in wall-clock time.

    ``events_per_s``: the detectors over the common view of distinct events, every text new (the memo of recent
    texts cannot help). ``bus_events_per_s``: end to end as a guard in its own process scores them, from the
    serialised events on the bus (parsing the events and the request body, building the view, detecting, building the
    violations), also distinct. ``replay_events_per_s``: a conversation as a proxy sees it, every turn re-sending the
    history, where the memo of recent texts serves what earlier turns already scored."""
    from schemas.events import RequestEvent, ResponseEvent
    from schemas.profiles import default_profile
    from services.guard.scoring import findings_for, violations

    events = typical_events(n)
    wire = bus_events(events)
    profile = default_profile()

    def detect(event: tuple[ConversationView, CompletionView]) -> None:
        scan_conversation(event[0], allowed_domains=ALLOWED)
        scan_completion(event[1], allowed_domains=ALLOWED)

    def from_bus(event: tuple[bytes, bytes]) -> None:
        for parsed in (RequestEvent.model_validate_json(event[0]), ResponseEvent.model_validate_json(event[1])):
            violations(parsed, profile, findings_for(parsed, profile))

    # Warm up as a long-running guard would be (model loaded, phone-number metadata of the regions compiled); each
    # measured pass then starts from cleared memos.
    for event in events:
        detect(event)
    chars = [
        sum(len(m.text) + len(m.tool_result.content if m.tool_result else "") for m in c.messages) for c, _ in events
    ]
    cpu, wall = _passes(events, detect)
    bus_cpu, _ = _passes(wire, from_bus)

    # A conversation as a proxy sees it: every turn re-sends the history, so only the newest messages are new.
    clear_caches()
    replay_cpu = []
    for conversation, completion in events[: n // 2]:
        for upto in range(2, len(conversation.messages) + 1, 3):
            turn = conversation.model_copy(update={"messages": conversation.messages[:upto]})
            c0 = time.thread_time()
            scan_conversation(turn, allowed_domains=ALLOWED)
            scan_completion(completion, allowed_domains=ALLOWED)
            replay_cpu.append((time.thread_time() - c0) * 1000)

    bus = _rates(bus_cpu)
    return {
        "events": n,
        "messages_per_event": statistics.mean(len(c.messages) for c, _ in events),
        "chars_per_event": statistics.mean(chars),
        **_rates(cpu, wall),
        "bus_events_per_s": bus["events_per_s"],
        "bus_p50_ms": bus["p50_ms"],
        "bus_p99_ms": bus["p99_ms"],
        "replay_events_per_s": 1000 * len(replay_cpu) / sum(replay_cpu),
        "replay_p99_ms": _percentile(replay_cpu, 0.99),
    }


LEARNED_MODES = (
    ("off", None, None),
    ("gated", None, None),
    ("gated", None, "0"),
    ("gated", "1.0", None),
    ("gated", "1.0", "0"),
    ("wide", None, None),
    ("wide", None, "0"),
)
"""The learned tier's placements compared by ``--learned`` (mode, CPU share, windows per event; None = the default):
off; on the windows the fast tiers find borderline within the default CPU share and the default windows per event;
the same without a cap per event; without a share; without either (every borderline window read); the wider gate,
with and without the cap per event."""


def learned_tradeoff(n: int) -> list[dict[str, Any]]:
    """Throughput of the full scan of ``n`` distinct events with the learned tier placed each way, and how many
    borderline windows it read or left unread for want of budget."""
    import os

    from services.guard.detectors import learned
    from services.guard.detectors.encoder import shared_encoder

    rows = []
    events = typical_events(n)
    # A running guard builds its encoder session once, on the first window it reads (a few seconds): not measured.
    shared_encoder().encode(["warm up the session"])
    saved = {k: os.environ.get(k) for k in (learned.MODE_ENV, learned.SHARE_ENV, learned.EVENT_WINDOWS_ENV)}
    try:
        for mode, share, per_event in LEARNED_MODES:
            os.environ[learned.MODE_ENV] = mode
            for key, value in ((learned.SHARE_ENV, share), (learned.EVENT_WINDOWS_ENV, per_event)):
                os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
            learned.BUDGET = learned.CpuBudget()
            cpu, _ = _passes(
                events,
                lambda e: (
                    scan_conversation(e[0], allowed_domains=ALLOWED),
                    scan_completion(e[1], allowed_domains=ALLOWED),
                ),
                passes=1,
            )
            b = learned.BUDGET
            rows.append(
                {
                    "mode": mode,
                    "share": float(share) if share else learned.DEFAULT_SHARE,
                    "event_windows": learned.event_windows(),
                    **_rates(cpu),
                    "windows_read": b.read_windows,
                    "windows_skipped": b.skipped_windows,
                    "texts_skipped": b.skipped_texts,
                    "windows_over_event": b.over_event_windows,
                }
            )
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
        learned.BUDGET = learned.CpuBudget()
    return rows


# --- output ---------------------------------------------------------------------------------------------------------


def _fmt(v: float | None) -> str:
    return "   -  " if v is None else f"{v:6.3f}"


def print_table(title: str, table: dict[str, Counts], errors: int) -> dict[str, Any]:
    print(f"\n{title}")
    print(f"  {'slice':<44} {'n':>5} {'pos':>5}  {'prec':>6}  {'recall':>6}  {'FPR':>6}")
    out = {}
    for key in sorted(table, key=lambda k: (k != "all", k)):
        r = table[key].row()
        out[key] = r
        print(
            f"  {key:<44} {r['n']:>5} {r['positives']:>5}  "
            f"{_fmt(r['precision'])}  {_fmt(r['recall'])}  {_fmt(r['fpr'])}"
        )
    for key in (k for k in sorted(table) if k == "all" or k.endswith(": all")) if errors else ():
        for label, items in (("missed", table[key].misses), ("false alarm", table[key].false_alarms)):
            for text in items[:errors]:
                print(f"    {key} {label}: {text[:150]!r}")
    return out


def evaluate_all(args: argparse.Namespace, results: dict[str, Any]) -> None:
    """Every detection table: injection and jailbreak leave one source out, then secrets, personal data and
    exfiltration by source and position."""
    injection_report(args, results)

    secrets = load("eval_secrets.jsonl")
    table = evaluate(secrets, lambda r: bool(find_secrets(r["text"])), _category_keys)
    results["secret"] = print_table("secret (synthetic provider formats and look-alikes)", table, args.errors)
    results["secret by position"] = print_table("secret, by position", position_table(secrets, "secret"), 0)

    pii = load("eval_pii.jsonl")
    table = evaluate(
        pii,
        lambda r: bool(find_pii(r["text"])),
        lambda r: _category_keys(r) + (["checksum-validated kinds"] if r["subtype"] in CHECKSUM_PII else []),
    )
    results["pii"] = print_table("pii (synthetic, checksum-valid and -invalid numbers)", table, args.errors)
    results["pii by position"] = print_table("pii, by position", position_table(pii, "pii"), 0)

    exfil = load("eval_exfiltration.jsonl")
    table = evaluate(exfil, exfiltration_predict, _category_keys)
    results["exfiltration"] = print_table(
        f"exfiltration (synthetic tool calls, allowed: {sorted(ALLOWED)})", table, args.errors
    )

    leaks = masking_leaks(secrets + pii)
    print(f"\nfull secret or personal datum found in a finding excerpt: {leaks} (must be 0)")
    results["masking_leaks"] = leaks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=400, help="events for the throughput run")
    parser.add_argument("--errors", type=int, default=0, help="show this many misses and false alarms per table")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--held-out",
        action="store_true",
        help="also score the held-out split (once, for a final report: no tuning decision may follow from it)",
    )
    parser.add_argument("--no-speed", action="store_true", help="skip the throughput run")
    parser.add_argument(
        "--learned", action="store_true", help="also measure throughput with the learned tier placed each way"
    )
    parser.add_argument("--speed-only", action="store_true", help="only the throughput run (no evaluation)")
    args = parser.parse_args()

    results: dict[str, Any] = {}
    if args.speed_only:
        args.no_speed = False
    else:
        evaluate_all(args, results)
    if args.no_speed:
        if args.json:
            args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
        return

    perf = throughput(args.events)
    results["throughput"] = perf
    print(
        f"\nthroughput (one core, CPU time), {perf['events']} distinct events "
        f"({perf['messages_per_event']:.0f} messages, {perf['chars_per_event']:.0f} characters per event on average):"
        f"\n  detectors over the view: {perf['events_per_s']:.0f} events/s; latency per event p50 "
        f"{perf['p50_ms']:.2f} ms, p99 {perf['p99_ms']:.2f} ms, max {perf['max_ms']:.2f} ms"
        f"\n  end to end from the serialised bus events: {perf['bus_events_per_s']:.0f} events/s; p50 "
        f"{perf['bus_p50_ms']:.2f} ms, p99 {perf['bus_p99_ms']:.2f} ms"
        f"\n  wall clock on this machine as loaded now: {perf['wall_events_per_s']:.0f} events/s, "
        f"p99 {perf['wall_p99_ms']:.2f} ms"
        f"\n  conversation replay (each turn re-sends the history; the memo of recent texts helps): "
        f"{perf['replay_events_per_s']:.0f} events/s, p99 {perf['replay_p99_ms']:.2f} ms"
    )
    if args.learned:
        rows = learned_tradeoff(args.events)
        results["learned tier"] = rows
        print("\nthe learned tier, placed each way (detectors over the view, distinct events):")
        print("  (windows per event 0 = no cap; windows left for want of CPU share, or of the event's windows)")
        header = f"{'mode':<8} {'share':>5} {'/event':>6} {'events/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}"
        print(f"  {header}  windows read / left for share (+ texts) / left for event")
        for r in rows:
            figures = f"{r['events_per_s']:>9.0f} {r['p50_ms']:>7.2f} {r['p99_ms']:>7.2f} {r['max_ms']:>7.1f}"
            counts = f"{r['windows_read']} / {r['windows_skipped']} (+{r['texts_skipped']}) / {r['windows_over_event']}"
            print(f"  {r['mode']:<8} {r['share']:>5.2f} {r['event_windows']:>6} {figures}  {counts}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
