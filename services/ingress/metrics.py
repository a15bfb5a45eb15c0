"""The ingress's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from plumbing.metrics import LABEL_MAX_CHARS, LabelCap
from services.ingress.settings import IngressSettings

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class IngressMetrics:
    def __init__(
        self,
        registry: CollectorRegistry,
        agent_label_cap: int,
        label_cap: int = 200,
        label_max_chars: int = LABEL_MAX_CHARS,
    ) -> None:
        labels = ("provider", "model", "profile_id", "agent_id")
        # Every label a client can influence is bounded the same way (length, then distinct values).
        self.agent_label = LabelCap(agent_label_cap, label_max_chars)
        self.model_label = LabelCap(label_cap, label_max_chars)
        self.profile_label = LabelCap(label_cap, label_max_chars)
        self.provider_label = LabelCap(label_cap, label_max_chars)
        self._children: dict[tuple[str, str, str, str, int], tuple] = {}
        self.requests = Counter(
            "llm_requests_total", "LLM requests through the ingress", (*labels, "status"), registry=registry
        )
        self.duration = Histogram(
            "llm_request_duration_seconds",
            "Time from request to the end of the response",
            (*labels, "status"),
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.ttft = Histogram(
            "llm_time_to_first_token_seconds",
            "Time from request to the first response byte sent to the client",
            labels,
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.tokens = Counter(
            "llm_tokens_total", "Tokens reported by the upstream", (*labels, "type"), registry=registry
        )
        self.cost = Counter(
            "llm_cost_usd",
            "What the answers cost in USD, priced from the upstream's reported tokens",
            labels,
            registry=registry,
        )
        self.unpriced = Counter(
            "llm_unpriced_requests",
            "Answers whose cost is unknown (no price for the model, or no usage reported)",
            labels,
            registry=registry,
        )
        self.blocked_tools = Counter(
            "llm_blocked_tools_total",
            "Tool calls blocked by a tool invocation policy",
            ("provider", "profile_id", "agent_id"),
            registry=registry,
        )
        self.redactions = Counter(
            "llm_redactions_total",
            "Secrets redacted from outgoing requests",
            ("provider", "profile_id", "agent_id", "kind"),
            registry=registry,
        )

        self.auth_failures = Counter(
            "warden_auth_failures_total",
            "Requests refused for their credential: a bad Warden key (malformed, unknown, revoked, expired, rotated), "
            "a provider key on a managed profile, or a request beyond what its key allows",
            ("reason",),
            registry=registry,
        )
        # Deployment names come from the configuration, never from requests: no cap needed.
        self.upstream_attempts = Counter(
            "llm_upstream_attempts_total",
            "Requests sent to upstream deployments of model aliases, by outcome (success, or what went wrong)",
            ("deployment", "outcome"),
            registry=registry,
        )
        self.breaker_state = Gauge(
            "llm_upstream_breaker_state",
            "Each deployment's circuit breaker in this process: 0 closed, 1 half-open, 2 open",
            ("deployment",),
            registry=registry,
        )

        self.limit_refusals = Counter(
            "warden_limit_refusals_total",
            "Requests refused by a budget (402) or a rate limit (429), by the limit's scope",
            ("kind", "scope"),
            registry=registry,
        )
        self.counter_store_unavailable = Counter(
            "warden_counter_store_unavailable_total",
            "Requests the budget or rate-limit counters could not be reached for, by what the profile did "
            "(open: admitted uncounted, closed: refused)",
            ("kind", "mode"),
            registry=registry,
        )
        self.counter_settlements_dropped = Counter(
            "warden_counter_settlements_dropped_total",
            "Settlements or releases of a reservation that did not reach the counter store (full: more were waiting "
            "than WARDEN_COUNTERS_PENDING_MAX_BYTES; failed: the store did not answer); the reservation stands until "
            "its window ends",
            ("reason",),
            registry=registry,
        )

    def count_auth_failure(self, reason: str) -> None:
        self.auth_failures.labels(reason).inc()  # reasons are Warden's own words, a handful of values

    @classmethod
    def from_settings(cls, registry: CollectorRegistry, settings: IngressSettings) -> IngressMetrics:
        return cls(registry, settings.agent_label_cap, settings.metrics_label_cap, settings.metrics_label_max_chars)

    def observe(
        self,
        *,
        provider: str,
        model: str,
        profile_id: str,
        agent_id: str,
        status: int,
        duration_s: float,
        ttft_s: float | None,
        input_tokens: int | None,
        output_tokens: int | None,
        cost_usd: float | None = None,
    ) -> None:
        # Keyed by the bounded values: the raw ones (a megabyte-long model name) would make the keys unbounded.
        key = (
            self.provider_label(provider),
            self.model_label(model),
            self.profile_label(profile_id),
            self.agent_label(agent_id),
            status,
        )
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = self._children_for(*key)
        requests, duration, ttft, input_counter, output_counter, cost, unpriced = children
        requests.inc()
        duration.observe(duration_s)
        if ttft_s is not None:
            ttft.observe(ttft_s)
        if input_tokens:
            input_counter.inc(input_tokens)
        if output_tokens:
            output_counter.inc(output_tokens)
        if cost_usd is not None:
            cost.inc(cost_usd)
        elif status < 400:
            unpriced.inc()

    def _children_for(self, provider: str, model: str, profile_id: str, agent_id: str, status: int) -> tuple:
        """The labelled series of one combination, looked up once: ``labels()`` costs more than the increment."""
        agent = agent_id
        code = str(status)
        if len(self._children) > 50_000:  # the label caps bound the series; this bounds the product of them
            self._children.clear()
        return (
            self.requests.labels(provider, model, profile_id, agent, code),
            self.duration.labels(provider, model, profile_id, agent, code),
            self.ttft.labels(provider, model, profile_id, agent),
            self.tokens.labels(provider, model, profile_id, agent, "input"),
            self.tokens.labels(provider, model, profile_id, agent, "output"),
            self.cost.labels(provider, model, profile_id, agent),
            self.unpriced.labels(provider, model, profile_id, agent),
        )
