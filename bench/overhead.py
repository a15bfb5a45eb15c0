"""What Warden's proxy adds: the same load straight to a canned upstream and through one Warden process.

The upstream is nginx answering with canned OpenAI bytes (so it is never the bottleneck); Warden runs embedded
(ingress, logger with chDB, guard, console) pinned to one core, the load generator (wrk) and nginx on the other. Each
scenario runs at each concurrency, direct then through Warden, after a warm-up; afterwards the read API is asked
whether Warden stored every interaction it proxied.

    .venv/bin/python bench/overhead.py                       # full run, about 3 minutes
    .venv/bin/python bench/overhead.py --duration 3 --warmup 1 --concurrency 1,16
    .venv/bin/python bench/overhead.py --nice -10 --py-spy      # on a busy machine, with a profile at c=64
    .venv/bin/python bench/overhead.py --scenarios chat,chat-key --concurrency 1,16   # with and without a Warden key
    .venv/bin/python bench/overhead.py --variant chat:scenario=chat --variant keys:scenario=chat-key --rounds 5 \
        --warden-cpus 0 --background-cpus 1 --client-cpus 1                   # the same, A/B interleaved

See bench/README.md.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

# bench/ is not a package: its scripts run as files and import their neighbour `common`.
from common import (
    CANNED_STREAM,
    CANNED_WHOLE,
    REPLY_HEADER,
    REPO_DIR,
    RESULTS_DIR,
    ROLES,
    BenchError,
    Canned,
    LoadResult,
    NginxUpstream,
    WardenServer,
    count_interactions,
    cpu_busy_seconds,
    cpu_list,
    git_commit,
    has_interactions,
    http_request,
    machine_info,
    py_spy_record,
    render_table,
    require_tools,
    restore_nice,
    set_nice,
    summarise_collapsed,
    timestamp,
    usable_cpus,
    write_results,
)
from common import run_wrk as wrk
from policy_profile import POLICY_PROFILE_ID, history
from policy_profile import seed as seed_policy_profile

TARGET_ADDED_P50_MS = 0.5
TARGET_ADDED_P90_MS = 0.5
TARGET_ADDED_P99_C1_MS = 2.0
TARGET_P99_OVER_P50_C64 = 3.0
TARGET_RPS = 2200.0
_MESSAGES = [
    {"role": "system", "content": "You are a concise assistant. Answer in one or two sentences."},
    {"role": "user", "content": "What is the capital of France, and why has it been important historically?"},
]


@dataclass(frozen=True)
class Scenario:
    """One kind of request: its body, the canned answer nginx gives it, and the route it takes through Warden.
    Add entries to SCENARIOS for new kinds (tool calls, bigger prompts, another provider...)."""

    name: str
    body: dict[str, Any]
    canned: Canned
    upstream_path: str = "/chat/completions"
    """Path under the upstream base URL (nginx serves /v1/chat/completions)."""
    warden_path: str = "/v1/openai/chat/completions"
    """Path on Warden; ``{profile}`` is replaced by ``/<profile id>`` when --profile-id is given, else removed."""
    headers: dict[str, str] = field(default_factory=dict)
    throughput_target: bool = False
    """Whether the issue's req/s target applies to this scenario."""
    warden_key: bool = False
    """Authenticate with a Warden key (one per agent id, on a managed profile holding the upstream credential)
    instead of passing the provider key through: what checking keys and injecting credentials cost."""

    def body_bytes(self) -> bytes:
        return json.dumps(self.body, separators=(",", ":")).encode()


_HISTORY_BODY = {
    "model": "gpt-4o-mini",
    "messages": history(40),
    "tools": [
        {"type": "function", "function": {"name": f"tool_{n}", "parameters": {"type": "object"}}} for n in range(25)
    ],
}

SCENARIOS: list[Scenario] = [
    Scenario(
        name="chat",
        body={"model": "gpt-4o-mini", "messages": _MESSAGES, "temperature": 0.2, "max_tokens": 128},
        canned=CANNED_WHOLE,
        throughput_target=True,
    ),
    Scenario(
        name="chat-stream",
        body={
            "model": "gpt-4o-mini",
            "messages": _MESSAGES,
            "temperature": 0.2,
            "max_tokens": 128,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        canned=CANNED_STREAM,
    ),
    # The chat scenario again, holding a Warden key: compared with "chat" in the same run, what keys cost.
    Scenario(
        name="chat-key",
        body={"model": "gpt-4o-mini", "messages": _MESSAGES, "temperature": 0.2, "max_tokens": 128},
        canned=CANNED_WHOLE,
        warden_key=True,
    ),
    # The same 40-message tool-using history through the default profile and through a restrictive profile with 50
    # policies and secret redaction: the difference is what the inline guardrails cost.
    Scenario(name="history40", body=_HISTORY_BODY, canned=CANNED_WHOLE),
    Scenario(
        name="history40-policies",
        body=_HISTORY_BODY,
        canned=CANNED_WHOLE,
        warden_path=f"/v1/openai/{POLICY_PROFILE_ID}/chat/completions",
    ),
]


@dataclass
class Cell:
    """One scenario at one concurrency: the direct and the Warden run, and the agent id of the Warden run."""

    scenario: Scenario
    concurrency: int
    agent_id: str
    direct: LoadResult | None = None
    warden: LoadResult | None = None
    stored: int | None = None
    outcomes: dict[str, int] = field(default_factory=dict)
    profile: str | None = None

    @property
    def ratio(self) -> float | None:
        if self.direct is None or self.warden is None or not self.direct.rps:
            return None
        return self.warden.rps / self.direct.rps

    def added_ms(self, percentile: str) -> float | None:
        """Warden's latency at ``percentile`` (p50, p90, p99) less the direct run's."""
        if self.direct is None or self.warden is None:
            return None
        return self.warden.latency_ms[percentile] - self.direct.latency_ms[percentile]

    @property
    def added_p50_ms(self) -> float | None:
        return self.added_ms("p50")

    def as_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario.name,
            "concurrency": self.concurrency,
            "agent_id": self.agent_id,
            "direct": self.direct.as_dict() if self.direct else None,
            "warden": self.warden.as_dict() if self.warden else None,
            "throughput_ratio": _round(self.ratio, 3),
            "added_p50_ms": _round(self.added_ms("p50"), 3),
            "added_p90_ms": _round(self.added_ms("p90"), 3),
            "added_p99_ms": _round(self.added_ms("p99"), 3),
            "stored": self.stored,
            "stored_outcomes": self.outcomes,
            "profile": self.profile,
        }


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _parse_ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def _parse_env(pairs: Sequence[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise argparse.ArgumentTypeError(f"--profile-env takes NAME=VALUE, not {pair!r}")
        env[name] = value
    return env


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    names = [s.name for s in SCENARIOS]
    p = argparse.ArgumentParser(description="Measure what Warden's proxy adds over a direct call (see bench/README.md)")
    p.add_argument("--scenarios", default=",".join(names), help=f"comma-separated, from {names} (default: all)")
    p.add_argument("--concurrency", default="1,16,64", help="comma-separated connection counts (default: 1,16,64)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds measured per run (default: 10)")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up before each run (default: 2)")
    p.add_argument("--warden-cpus", default="0", help="taskset CPU list for Warden (default: 0; '' = unpinned)")
    p.add_argument("--client-cpus", default="1", help="taskset CPU list for wrk and nginx (default: 1; '' = unpinned)")
    p.add_argument(
        "--background-cpus",
        default="",
        metavar="LIST",
        help="CPU list for `warden serve`'s background process (guard, logger, chDB, console: every thread of it and "
        "whatever it starts), apart from the proxy workers' --warden-cpus (default: '' = with them)",
    )
    p.add_argument(
        "--variant",
        dest="variants",
        action="append",
        default=[],
        metavar="NAME[:SETTING,...]",
        help="A/B mode, repeatable: compare variants of Warden run interleaved --rounds times, each with a fresh "
        "Warden and its own direct baseline. SETTING is scenario=NAME (the variant's one scenario, instead of "
        "--scenarios), source=DIR (like --warden-source), routed=1 (like --routed) or ENV=VALUE (Warden's "
        "environment, over --profile-env); "
        "e.g. --variant chat --variant keys:scenario=chat-key",
    )
    p.add_argument("--rounds", type=int, default=5, help="A/B mode: rounds of every variant (default: 5)")
    p.add_argument(
        "--profile-env",
        "--profile-args",
        dest="profile_env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for Warden, repeatable (e.g. a policy profile's settings)",
    )
    p.add_argument(
        "--nice",
        type=int,
        default=0,
        help="niceness for Warden, nginx and wrk (e.g. -10 as root, on a machine busy with other work)",
    )
    p.add_argument("--profile-id", help="profile id to put in Warden's path (/v1/openai/<id>/...)")
    p.add_argument("--label", default="", help="free text stored in the JSON result (e.g. 'restrictive profile')")
    p.add_argument(
        "--verify",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="page through the read API to count what Warden stored per run (default: on; --no-verify only "
        "checks that each run has at least one stored interaction)",
    )
    p.add_argument(
        "--wait-stored",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="with --no-verify, wait until each run has at least one stored interaction (default: on). "
        "--no-wait-stored stops Warden right after its runs: in A/B rounds the background, saturated during the "
        "runs, would otherwise be waited out every round (minutes), which limits how many rounds fit",
    )
    p.add_argument("--drain-timeout", type=float, default=120.0, help="seconds to wait for the logger to catch up")
    p.add_argument(
        "--py-spy",
        nargs="?",
        const="64",
        default=None,
        metavar="CONCURRENCY",
        help="profile Warden with py-spy during its measured runs at this concurrency (default when given: 64)",
    )
    p.add_argument(
        "--py-spy-args",
        default="",
        metavar="ARGS",
        help="extra py-spy record arguments, e.g. --py-spy-args='--native' or --py-spy-args='--gil'",
    )
    p.add_argument(
        "--uvloop",
        action="store_true",
        help="run Warden's CLI with uvloop's event loop policy installed (to measure what that would change)",
    )
    p.add_argument(
        "--warden-source",
        type=Path,
        help="run Warden from this source tree instead of the installed one (e.g. a `git archive` export)",
    )
    p.add_argument(
        "--slow-guard-ms",
        type=float,
        default=0.0,
        help="make every batch the guard scores this much slower, computing in Python (WARDEN_TEST_SLOW_GUARD_MS): "
        "what a slow guard does to the proxy's tail",
    )
    p.add_argument(
        "--slow-store-ms",
        type=float,
        default=0.0,
        help="make every chDB insert wait this much longer (WARDEN_TEST_SLOW_STORE_MS): what a slow store does",
    )
    p.add_argument(
        "--workers",
        type=int,
        help="run `warden serve --workers N` (proxy processes on one port); give --warden-cpus enough cores for them "
        "and keep --client-cpus apart",
    )
    p.add_argument(
        "--ingress",
        action="store_true",
        help="measure the distributed proxy alone (`warden ingress`, events to Kafka; no guard, logger or store in "
        "it): starts a broker from tests/support unless --kafka is given; nothing is stored, so nothing is verified",
    )
    p.add_argument(
        "--routed",
        action="store_true",
        help="route the scenarios' model over one deployment (a model alias) at the same upstream: what routing adds",
    )
    p.add_argument("--kafka", metavar="BOOTSTRAP", help="with --ingress: an existing broker instead of starting one")
    p.add_argument("--data-dir", type=Path, help="Warden's data directory (default: a fresh temporary one)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, chDB data, profiles)")
    args = p.parse_args(argv)
    args.concurrency = _parse_ints(args.concurrency)
    wanted = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [w for w in wanted if w not in names]
    if unknown:
        p.error(f"unknown scenario(s) {unknown}; known: {names}")
    args.scenario_list = [s for s in SCENARIOS if s.name in wanted]
    try:
        args.extra_env = _parse_env(args.profile_env)
    except argparse.ArgumentTypeError as exc:
        p.error(str(exc))
    if args.slow_guard_ms:
        args.extra_env["WARDEN_TEST_SLOW_GUARD_MS"] = f"{args.slow_guard_ms:g}"
    if args.slow_store_ms:
        args.extra_env["WARDEN_TEST_SLOW_STORE_MS"] = f"{args.slow_store_ms:g}"
    try:
        args.variant_list = [parse_variant(spec, names) for spec in args.variants]
    except argparse.ArgumentTypeError as exc:
        p.error(str(exc))
    if args.variant_list and (args.ingress or args.py_spy or args.data_dir):
        p.error("--variant does not combine with --ingress, --py-spy or --data-dir")
    if len({v.name for v in args.variant_list}) != len(args.variant_list):
        p.error("--variant names must differ")
    if args.background_cpus and args.ingress:
        p.error("--background-cpus is for `warden serve` (its background process); --ingress has none")
    return args


@dataclass(frozen=True)
class Variant:
    """One side of an A/B comparison: a scenario, a source tree and an environment for Warden."""

    name: str
    scenario: str | None = None
    source: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    routed: bool = False

    def describe(self) -> str:
        parts = [f"scenario={self.scenario}"] if self.scenario else []
        parts += [f"source={self.source}"] if self.source else []
        parts += ["routed"] if self.routed else []
        parts += [f"{k}={v}" for k, v in self.env.items()]
        return f"{self.name}" + (f" ({', '.join(parts)})" if parts else "")


def parse_variant(spec: str, scenarios: Sequence[str]) -> Variant:
    """``NAME[:scenario=S,source=DIR,routed=1,ENV=VALUE,...]``."""
    name, _, rest = spec.partition(":")
    if not name:
        raise argparse.ArgumentTypeError(f"--variant needs a name: {spec!r}")
    scenario, source, env, routed = None, None, {}, False
    for setting in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, value = setting.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"--variant {name}: {setting!r} is not NAME=VALUE")
        if key == "scenario":
            if value not in scenarios:
                raise argparse.ArgumentTypeError(f"--variant {name}: unknown scenario {value!r}; known: {scenarios}")
            scenario = value
        elif key == "source":
            source = Path(value)
        elif key == "routed":
            routed = value not in ("", "0", "false")
        else:
            env[key] = value
    return Variant(name, scenario, source, env, routed)


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.stamp = timestamp()
        self.nginx = NginxUpstream(work, args.client_cpus or None)
        self.warden: WardenServer | None = None
        self.kafka: Any = None
        self.cells: list[Cell] = []
        self.verification: dict[str, Any] = {}
        self.keyed_profile: str | None = None
        self.keys: dict[str, str] = {}
        """Agent id -> the secret of its Warden key (key scenarios)."""

    # -- helpers

    def key_for(self, agent_id: str) -> str:
        """A Warden key bound to ``agent_id`` (made through the admin API on first use)."""
        if agent_id not in self.keys:
            assert self.warden is not None and self.keyed_profile is not None
            body = json.dumps({"profile_id": self.keyed_profile, "agent_id": agent_id}).encode()
            reply = http_request("POST", self.warden.url + "/api/keys", body, {"Content-Type": "application/json"})
            if reply.status != 201:
                raise BenchError(f"could not make a Warden key: {reply.status} {reply.body[:300]!r}")
            self.keys[agent_id] = json.loads(reply.body)["secret"]
        return self.keys[agent_id]

    def seed_keyed_profile(self) -> None:
        """A managed profile holding the bench's provider key, for the key scenarios."""
        assert self.warden is not None
        spec = {"name": "bench-keys", "auth": "managed", "credentials": {"openai": "sk-bench-not-a-real-key"}}
        reply = http_request(
            "POST", self.warden.url + "/api/profiles", json.dumps(spec).encode(), {"Content-Type": "application/json"}
        )
        if reply.status != 201:
            raise BenchError(f"could not make the keyed profile: {reply.status} {reply.body[:300]!r}")
        self.keyed_profile = json.loads(reply.body)["id"]

    def headers(self, scenario: Scenario, agent_id: str) -> dict[str, str]:
        credential = self.key_for(agent_id) if scenario.warden_key else "sk-bench-not-a-real-key"
        return {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {credential}",
            "X-Archestra-Agent-Id": agent_id,
            "X-Archestra-User-Id": "bench-user",
            REPLY_HEADER: scenario.canned.reply,
            **scenario.headers,
        }

    def warden_url(self, scenario: Scenario) -> str:
        assert self.warden is not None
        profile = f"/{self.args.profile_id}" if self.args.profile_id and not scenario.warden_key else ""
        path = scenario.warden_path.replace("/openai/", f"/openai{profile}/", 1) if profile else scenario.warden_path
        return self.warden.url + path

    def direct_url(self, scenario: Scenario) -> str:
        return self.nginx.base_url + scenario.upstream_path

    def load(self, url: str, scenario: Scenario, agent_id: str, concurrency: int, seconds: float) -> LoadResult:
        return wrk(
            url,
            scenario.body_bytes(),
            self.headers(scenario, agent_id),
            concurrency,
            seconds,
            self.args.client_cpus or None,
            self.work,
        )

    # -- phases

    def start(self) -> None:
        self.start_nginx()
        self.start_warden()

    def start_nginx(self) -> None:
        set_nice(self.args.nice)
        require_tools(["nginx", "wrk"] + (["py-spy"] if self.args.py_spy else []))
        if usable_cpus() < 2 and (self.args.warden_cpus or self.args.client_cpus or self.args.background_cpus):
            print("note: fewer than 2 usable CPUs; CPU pinning is ignored", file=sys.stderr)
            self.args.warden_cpus = self.args.client_cpus = self.args.background_cpus = ""
        self.nginx.start()
        for scenario in {s.canned: s for s in SCENARIOS}.values():
            self.nginx.check(scenario.canned)

    def start_warden(self) -> None:
        if any(s.name.endswith("-policies") for s in self.args.scenario_list) and not self.args.ingress:
            seed_policy_profile(self.args.data_dir or self.work / "warden-data")
        if self.args.routed:
            # One deployment at the same upstream and an alias for the scenarios' model: the routed path's cost.
            deployment = {"provider": "openai", "base_url": self.nginx.base_url}
            alias = {"targets": [{"deployment": "bench"}]}
            self.args.extra_env["WARDEN_DEPLOYMENTS"] = json.dumps({"bench": deployment})
            self.args.extra_env["WARDEN_MODEL_ALIASES"] = json.dumps({"openai/gpt-4o-mini": alias})
        if self.args.ingress:
            self.args.extra_env["WARDEN_KAFKA_BOOTSTRAP_SERVERS"] = self.args.kafka or self.start_kafka()
        keyed = any(s.warden_key for s in self.args.scenario_list)
        if keyed and "WARDEN_MASTER_KEY" not in self.args.extra_env:
            from cryptography.fernet import Fernet

            self.args.extra_env["WARDEN_MASTER_KEY"] = Fernet.generate_key().decode()
        self.warden = WardenServer(
            self.work,
            self.nginx.base_url,
            self.args.warden_cpus or None,
            extra_env=self.args.extra_env,
            data_dir=self.args.data_dir,
            uvloop=self.args.uvloop,
            source=self.args.warden_source,
            workers=self.args.workers,
            command="ingress" if self.args.ingress else "serve",
        )
        self.warden.start()
        self.pin_background()
        if keyed:
            self.seed_keyed_profile()
        for scenario in self.args.scenario_list:
            self.check_through_warden(scenario)

    def pin_background(self) -> None:
        """--background-cpus: the background process apart from the proxy (again before each run: new threads)."""
        cpus = cpu_list(self.args.background_cpus)
        if cpus and self.warden is not None and not self.warden.pin_background(cpus):
            raise BenchError("--background-cpus: no background process found under Warden (is it `warden serve`?)")

    def start_kafka(self) -> str:
        """A broker for --ingress, the one the tests use (tests/support/kafka_broker.py), pinned with the client."""
        sys.path.insert(0, str(REPO_DIR))
        from tests.support.kafka_broker import KafkaBroker

        print("starting a Kafka broker for the ingress ...", flush=True)
        self.kafka = KafkaBroker()
        self.kafka.start()
        return str(self.kafka.bootstrap_servers)

    def check_through_warden(self, scenario: Scenario) -> None:
        """One request through Warden before the load: it must come back byte for byte as the upstream sent it."""
        reply = http_request(
            "POST",
            self.warden_url(scenario),
            scenario.body_bytes(),
            self.headers(scenario, f"bench-{self.stamp}-check"),
        )
        if reply.status != 200 or reply.body != scenario.canned.body:
            raise BenchError(
                f"{scenario.name}: Warden answered {reply.status} with {len(reply.body)} bytes instead of "
                f"{scenario.canned.file}: {reply.body[:300]!r}"
            )

    def run(self) -> None:
        assert self.warden is not None
        for scenario in self.args.scenario_list:
            for concurrency in self.args.concurrency:
                cell = Cell(scenario, concurrency, f"bench-{self.stamp}-{scenario.name}-c{concurrency}")
                self.cells.append(cell)
                label = f"{scenario.name} c={concurrency}"
                print(f"[{label}] direct ...", end="", flush=True)
                self.load(self.direct_url(scenario), scenario, "bench-warmup", concurrency, self.args.warmup)
                cell.direct = self.load(
                    self.direct_url(scenario), scenario, cell.agent_id, concurrency, self.args.duration
                )
                print(f" {cell.direct.rps:,.0f} req/s; warden ...", end="", flush=True)
                self.load(
                    self.warden_url(scenario), scenario, f"bench-{self.stamp}-warmup", concurrency, self.args.warmup
                )
                cell.warden = self.measure_warden(cell)
                print(
                    f" {cell.warden.rps:,.0f} req/s, {cell.warden.cpu_s or 0:.1f} CPU-s"
                    + (f", {cell.warden.error_count} errors" if cell.warden.error_count else ""),
                    flush=True,
                )

    def measure_warden(self, cell: Cell) -> LoadResult:
        assert self.warden is not None
        profiling = self.args.py_spy is not None and str(cell.concurrency) == self.args.py_spy
        cores = cpu_list(self.args.warden_cpus)
        self.pin_background()
        roles_before, busy_before = self.warden.role_cpu(), cpu_busy_seconds(cores)
        clock = time.monotonic()
        if profiling:
            out = self.work / f"py-spy-{cell.scenario.name}-c{cell.concurrency}.txt"
            with py_spy_record(
                self.warden.pid,
                out,
                self.args.duration,
                self.args.client_cpus or None,
                extra=self.args.py_spy_args.split(),
            ):
                result = self.load(
                    self.warden_url(cell.scenario), cell.scenario, cell.agent_id, cell.concurrency, self.args.duration
                )
            cell.profile = summarise_collapsed(out).render()
            # The collapsed stacks are kept beside the JSON result (flamegraph.pl or speedscope read them).
            kept = RESULTS_DIR / f"overhead-{self.stamp}-py-spy-{cell.scenario.name}-c{cell.concurrency}.txt"
            RESULTS_DIR.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(out, kept)
            result.extra["profile_collapsed_stacks"] = str(kept)
        else:
            result = self.load(
                self.warden_url(cell.scenario), cell.scenario, cell.agent_id, cell.concurrency, self.args.duration
            )
        roles = self.warden.role_cpu()
        rss, peak = self.warden.proxy_rss()
        result.extra["proxy_rss_mb"], result.extra["proxy_rss_peak_mb"] = round(rss / 2**20, 1), round(peak / 2**20, 1)
        # Every process and thread Warden runs, by role: the proxy's share is what the request path costs; the
        # guard's and the logger's (with chDB) is the background work, wherever it runs.
        result.extra["cpu_s_by_role"] = {role: round(roles[role] - roles_before.get(role, 0.0), 3) for role in roles}
        result.cpu_s = sum(roles.values()) - sum(roles_before.values())
        if cores:
            # Other processes on Warden's core make its numbers worse than they are: say how much there was. With the
            # background on cores of its own, only the proxy's CPU was spent on Warden's cores.
            on_cores = result.extra["cpu_s_by_role"]["proxy"] if self.args.background_cpus else result.cpu_s
            others = cpu_busy_seconds(cores) - busy_before - on_cores
            result.others_cpu_share = max(0.0, others) / ((time.monotonic() - clock) * len(cores))
        return result

    def verify(self) -> None:
        """Every run must have reached storage. With --verify, wait until each run's stored count reaches what wrk
        saw answered (it may exceed it by the requests still in flight when wrk stopped), and report the counts."""
        assert self.warden is not None
        url = self.warden.url
        started = time.monotonic()
        deadline = started + self.args.drain_timeout
        if not self.args.verify and not self.args.wait_stored:
            self.verification = {"mode": "none"}
            return
        if not self.args.verify:
            pending = list(self.cells)
            while pending and time.monotonic() < deadline:
                pending = [c for c in pending if not has_interactions(url, c.agent_id)]
                if pending:
                    time.sleep(0.5)
            self.verification = {
                "mode": "presence",
                "runs_without_stored_interactions": [c.agent_id for c in pending],
                "seconds_waited": round(time.monotonic() - started, 1),
            }
            return
        for cell in self.cells:
            answered = cell.warden.requests if cell.warden else 0
            while True:
                cell.stored, outcomes = count_interactions(url, cell.agent_id)
                cell.outcomes = dict(outcomes)
                if (cell.stored >= answered and not outcomes.get("in_flight")) or time.monotonic() > deadline:
                    break
                time.sleep(1.0)
        self.verification = {
            "mode": "count",
            "seconds_until_all_stored": round(time.monotonic() - started, 1),
            "complete": all(c.stored is not None and c.warden and c.stored >= c.warden.requests for c in self.cells),
        }

    # -- report

    def table(self) -> str:
        headers = [
            "scenario",
            "conc",
            "direct req/s",
            "direct p50",
            "warden req/s",
            "warden p50",
            "warden p90",
            "warden p99",
            "added p50",
            "added p90",
            "added p99",
            "CPU/req",
            "proxy",
            "guard",
            "logger",
            "backgr",
            "others",
            "proxy RSS",
            "answered",
            "stored",
        ]
        rows = []
        for c in self.cells:
            d, w = c.direct, c.warden
            assert d is not None and w is not None
            cpu = w.as_dict().get("cpu_us_per_request")
            by_role = w.extra.get("cpu_s_by_role", {})
            share = {role: f"{100 * by_role.get(role, 0.0) / w.duration_s:.0f}%" for role in ROLES}
            rows.append(
                [
                    c.scenario.name,
                    str(c.concurrency),
                    f"{d.rps:,.0f}",
                    f"{d.latency_ms['p50']:.2f}ms",
                    f"{w.rps:,.0f}",
                    f"{w.latency_ms['p50']:.2f}ms",
                    f"{w.latency_ms['p90']:.2f}ms",
                    f"{w.latency_ms['p99']:.2f}ms",
                    *(f"{added:+.2f}ms" for added in (c.added_ms(p) or 0.0 for p in ("p50", "p90", "p99"))),
                    f"{cpu:.0f}us" if cpu is not None else "-",
                    share["proxy"],
                    share["guard"],
                    share["logger"],
                    share["background"],
                    "-" if w.others_cpu_share is None else f"{100 * w.others_cpu_share:.0f}%",
                    f"{w.extra.get('proxy_rss_peak_mb', 0):.0f}MB",
                    f"{w.requests:,}" + (f" ({w.error_count} err)" if w.error_count else ""),
                    "-" if c.stored is None else f"{c.stored:,}",
                ]
            )
        return render_table(headers, rows)

    def targets(self) -> list[dict[str, Any]]:
        checks = []
        for c in self.cells:
            if c.concurrency == 1 and c.direct is not None and c.warden is not None:
                for percentile, limit in (
                    ("p50", TARGET_ADDED_P50_MS),
                    ("p90", TARGET_ADDED_P90_MS),
                    ("p99", TARGET_ADDED_P99_C1_MS),
                ):
                    added = c.added_ms(percentile) or 0.0
                    checks.append(
                        {
                            "target": f"{c.scenario.name} c=1: added {percentile} < {limit:g} ms",
                            "measured": f"{added:.3f} ms",
                            "met": added < limit,
                        }
                    )
            if c.concurrency == 64 and c.warden is not None:
                p50, p99 = c.warden.latency_ms["p50"], c.warden.latency_ms["p99"]
                checks.append(
                    {
                        "target": f"{c.scenario.name} c=64: p99 < {TARGET_P99_OVER_P50_C64:g} x p50",
                        "measured": f"{p99:.2f} ms = {p99 / p50 if p50 else 0:.1f} x {p50:.2f} ms",
                        "met": p99 < TARGET_P99_OVER_P50_C64 * p50,
                    }
                )
            if c.scenario.throughput_target and c.concurrency in (16, 64) and c.warden is not None:
                checks.append(
                    {
                        "target": f"{c.scenario.name} c={c.concurrency}: >= {TARGET_RPS:,.0f} req/s through Warden",
                        "measured": f"{c.warden.rps:,.0f} req/s",
                        "met": c.warden.rps >= TARGET_RPS,
                    }
                )
        return checks

    def report(self) -> Path:
        print()
        print(self.table())
        print()
        print("latency columns are wrk's percentiles; added = Warden's percentile less the direct run's;")
        print("CPU/req = CPU time of every Warden process and thread per answered request; proxy/guard/logger = each")
        print("role's CPU over the run, in % of one core (logger includes chDB's threads; backgr = the event loop of a")
        print("background process running guard, logger and console together, apart from their threads);")
        print("others = share of Warden's core used by other processes during its run (noise: keep it near 0%);")
        print("proxy RSS = the largest peak resident set among the proxy processes (VmHWM) by the end of the run;")
        print("answered = requests wrk completed through Warden; stored = interactions the read API holds for it")
        print()
        for check in self.targets():
            print(f"  [{'met' if check['met'] else 'MISSED'}] {check['target']}: {check['measured']}")
        if self.verification.get("mode") == "count":
            state = "all stored" if self.verification["complete"] else "NOT all stored"
            print(f"  logger: {state} (checked {self.verification['seconds_until_all_stored']}s after the last run)")
        elif self.verification.get("mode") == "none":
            print("  logger: not checked (--no-wait-stored)")
        elif self.verification:
            missing = self.verification["runs_without_stored_interactions"]
            print(f"  logger: {'runs with nothing stored: ' + ', '.join(missing) if missing else 'every run stored'}")
        for c in self.cells:
            if c.profile:
                print(f"\npy-spy profile of Warden, {c.scenario.name} c={c.concurrency}:\n{c.profile}")
        data = {
            "benchmark": "overhead",
            "timestamp": self.stamp,
            "label": self.args.label,
            "machine": machine_info(),
            "settings": {
                "scenarios": [s.name for s in self.args.scenario_list],
                "concurrency": self.args.concurrency,
                "duration_s": self.args.duration,
                "warmup_s": self.args.warmup,
                "warden_cpus": self.args.warden_cpus,
                "client_cpus": self.args.client_cpus,
                "background_cpus": self.args.background_cpus,
                "layout": layout(self.args),
                "nice": self.args.nice,
                "warden_env": self.args.extra_env,
                "profile_id": self.args.profile_id,
                "warden_uvloop_forced": self.args.uvloop,
                "warden_workers": self.args.workers,
                "slow_guard_ms": self.args.slow_guard_ms,
                "slow_store_ms": self.args.slow_store_ms,
                "warden_source": str(self.args.warden_source or REPO_DIR),
                "warden_source_commit": None if self.args.warden_source else git_commit(REPO_DIR),
                "load_generator": "wrk, 1 thread, closed loop (one request in flight per connection)",
            },
            "results": [c.as_dict() for c in self.cells],
            "targets": self.targets(),
            "verification": self.verification,
        }
        path = write_results("overhead", self.stamp, data)
        print(f"\nresults written to {path}")
        return path

    def stop_warden(self) -> None:
        if self.warden is not None:
            code = self.warden.stop()
            if code not in (0, None):
                print(f"warning: warden exited with code {code}; log: {self.warden.log_path}", file=sys.stderr)
            self.warden = None

    def stop(self) -> None:
        self.stop_warden()
        self.nginx.stop()
        if self.kafka is not None:
            self.kafka.stop()


def layout(args: argparse.Namespace) -> str:
    """Which cores run what, for the output's header and the JSON."""
    proxy = "warden ingress" if args.ingress else "proxy workers" if not args.background_cpus else "proxy worker(s)"
    parts = [f"{proxy} on CPU {args.warden_cpus or 'any'}"]
    if args.background_cpus:
        parts.append(f"background (guard, logger, chDB, console) on CPU {args.background_cpus}")
    elif not args.ingress:
        parts.append("background with the proxy")
    parts.append(f"wrk + nginx on CPU {args.client_cpus or 'any'}")
    return "; ".join(parts)


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _spread(values: Sequence[float], fmt: str) -> str:
    """``median (min..max)``."""
    if not values:
        return "-"
    return f"{format(_median(values), fmt)} ({format(min(values), fmt)}..{format(max(values), fmt)})"


class Comparison:
    """A/B mode: every variant ``--rounds`` times, interleaved (A B A B …), each run with a fresh Warden and a direct
    baseline of its own, so a drift of the machine lands on every variant alike; then medians and ranges per variant
    and each variant's throughput over the first's, round by round."""

    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.stamp = timestamp()
        self.variants: list[Variant] = args.variant_list
        self.nginx_bench = Bench(args, work)
        self.runs: dict[str, list[list[Cell]]] = {v.name: [] for v in self.variants}
        """Variant name -> one list of cells per round."""
        self.load: list[list[float]] = []

    def variant_args(self, variant: Variant) -> argparse.Namespace:
        vargs = copy.copy(self.args)
        vargs.scenario_list = (
            [s for s in SCENARIOS if s.name == variant.scenario] if variant.scenario else self.args.scenario_list
        )
        if len(vargs.scenario_list) != 1:
            raise BenchError(f"variant {variant.name}: give it one scenario (scenario=NAME, or one in --scenarios)")
        vargs.extra_env = {**self.args.extra_env, **variant.env}
        vargs.warden_source = variant.source or self.args.warden_source
        vargs.routed = variant.routed or self.args.routed
        vargs.verify = False
        return vargs

    def run(self) -> None:
        self.nginx_bench.start_nginx()
        for number in range(1, self.args.rounds + 1):
            self.load.append([round(x, 2) for x in os.getloadavg()])
            for variant in self.variants:
                print(f"-- round {number}/{self.args.rounds}, {variant.describe()}", flush=True)
                work = self.work / f"round{number}-{variant.name}"
                work.mkdir()
                bench = Bench(self.variant_args(variant), work)
                bench.nginx = self.nginx_bench.nginx
                bench.stamp = f"{self.stamp}-r{number}-{variant.name}"
                try:
                    bench.start_warden()
                    bench.run()
                    bench.verify()
                finally:
                    bench.stop_warden()
                missing = bench.verification.get("runs_without_stored_interactions")
                if missing:
                    print(f"   warning: nothing stored for {', '.join(missing)}", file=sys.stderr)
                self.runs[variant.name].append(bench.cells)
                if not self.args.keep:
                    shutil.rmtree(work, ignore_errors=True)

    def stop(self) -> None:
        self.nginx_bench.stop()

    @staticmethod
    def _measures(cell: Cell) -> dict[str, float]:
        w = cell.warden
        assert w is not None
        by_role = w.extra.get("cpu_s_by_role", {})
        return {
            "rps": w.rps,
            "added_p50_ms": cell.added_ms("p50") or 0.0,
            "added_p90_ms": cell.added_ms("p90") or 0.0,
            "added_p99_ms": cell.added_ms("p99") or 0.0,
            "cpu_us_per_request": (w.cpu_s or 0.0) / w.requests * 1e6 if w.requests else float("nan"),
            "proxy_cpu_us_per_request": by_role.get("proxy", 0.0) / w.requests * 1e6 if w.requests else float("nan"),
            "others": 100 * (w.others_cpu_share or 0.0),
            "direct_rps": cell.direct.rps if cell.direct else float("nan"),
        }

    def summary(self) -> list[dict[str, Any]]:
        first = self.variants[0].name
        out = []
        for concurrency in self.args.concurrency:
            for variant in self.variants:
                rounds = [
                    self._measures(next(c for c in cells if c.concurrency == concurrency))
                    for cells in self.runs[variant.name]
                ]
                firsts = [
                    self._measures(next(c for c in cells if c.concurrency == concurrency)) for cells in self.runs[first]
                ]
                ratios = [r["rps"] / f["rps"] for r, f in zip(rounds, firsts, strict=False) if f["rps"]]
                cpu_ratios = [
                    r["proxy_cpu_us_per_request"] / f["proxy_cpu_us_per_request"]
                    for r, f in zip(rounds, firsts, strict=False)
                    if f["proxy_cpu_us_per_request"]
                ]
                out.append(
                    {
                        "variant": variant.name,
                        "described": variant.describe(),
                        "concurrency": concurrency,
                        "rounds": rounds,
                        "median": {key: _median([r[key] for r in rounds]) for key in rounds[0]} if rounds else {},
                        "throughput_ratio_to_first": ratios,
                        "throughput_ratio_median": _median(ratios),
                        "proxy_cpu_ratio_to_first": cpu_ratios,
                        "proxy_cpu_ratio_median": _median(cpu_ratios),
                    }
                )
        return out

    def report(self) -> Path:
        summary = self.summary()
        first = self.variants[0].name
        headers = [
            "conc",
            "variant",
            "req/s",
            "added p50 ms",
            "added p90 ms",
            "added p99 ms",
            "CPU/req us",
            "proxy CPU/req us",
            "others %",
            f"req/s / {first}",
            f"proxy CPU / {first}",
        ]
        rows = []
        for entry in summary:
            rounds = entry["rounds"]

            def col(key: str, fmt: str, rounds: list[dict[str, float]] = rounds) -> str:
                return _spread([r[key] for r in rounds], fmt)

            rows.append(
                [
                    str(entry["concurrency"]),
                    entry["variant"],
                    col("rps", ",.0f"),
                    col("added_p50_ms", ".2f"),
                    col("added_p90_ms", ".2f"),
                    col("added_p99_ms", ".1f"),
                    col("cpu_us_per_request", ".0f"),
                    col("proxy_cpu_us_per_request", ".0f"),
                    col("others", ".0f"),
                    _spread(entry["throughput_ratio_to_first"], ".3f"),
                    _spread(entry["proxy_cpu_ratio_to_first"], ".3f"),
                ]
            )
        print()
        print(f"A/B: {self.args.rounds} rounds, interleaved; median (min..max) over the rounds")
        print(f"layout: {layout(self.args)}")
        print(render_table(headers, rows))
        print()
        for entry in summary:
            if entry["variant"] != first:
                ratios = ", ".join(f"{r:.3f}" for r in entry["throughput_ratio_to_first"])
                print(f"  c={entry['concurrency']} {entry['variant']}/{first} req/s by round: {ratios}")
        print(f"  load average at the start of each round: {self.load}")
        data = {
            "benchmark": "overhead-ab",
            "timestamp": self.stamp,
            "label": self.args.label,
            "machine": machine_info(),
            "settings": {
                "variants": [v.describe() for v in self.variants],
                "rounds": self.args.rounds,
                "concurrency": self.args.concurrency,
                "duration_s": self.args.duration,
                "warmup_s": self.args.warmup,
                "warden_cpus": self.args.warden_cpus,
                "background_cpus": self.args.background_cpus,
                "client_cpus": self.args.client_cpus,
                "layout": layout(self.args),
                "nice": self.args.nice,
                "warden_env": self.args.extra_env,
                "load_average_by_round": self.load,
            },
            "summary": summary,
            "runs": {name: [[c.as_dict() for c in cells] for cells in rounds] for name, rounds in self.runs.items()},
        }
        path = write_results("overhead-ab", self.stamp, data)
        print(f"\nresults written to {path}")
        return path


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="warden-bench-"))
    print(f"layout: {layout(args)}", flush=True)
    if args.variant_list:
        comparison = Comparison(args, work)
        return _running(args, work, [comparison.run, comparison.report], comparison.stop)
    bench = Bench(args, work)
    steps = [bench.start, bench.run, *([] if args.ingress else [bench.verify]), bench.report]
    return _running(args, work, steps, bench.stop)


def _running(args: argparse.Namespace, work: Path, steps: Sequence[Any], stop: Any) -> int:
    """Run ``steps`` in order; whatever happens, ``stop``, restore the niceness and clean up the work directory."""
    try:
        for step in steps:
            step()
    except BenchError as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        stop()
        restore_nice()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
