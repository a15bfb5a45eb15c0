"""The ingress's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from plumbing.metrics import LabelCap

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class IngressMetrics:
    def __init__(self, registry: CollectorRegistry, agent_label_cap: int) -> None:
        labels = ("provider", "model", "profile_id", "agent_id")
        self.agent_label = LabelCap(agent_label_cap)
        self._children: dict[tuple[str, str, str, str, int], tuple] = {}
        self.model_label = LabelCap(agent_label_cap)
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
    ) -> None:
        key = (provider, model, profile_id, agent_id, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = self._children_for(provider, model, profile_id, agent_id, status)
        requests, duration, ttft, input_counter, output_counter = children
        requests.inc()
        duration.observe(duration_s)
        if ttft_s is not None:
            ttft.observe(ttft_s)
        if input_tokens:
            input_counter.inc(input_tokens)
        if output_tokens:
            output_counter.inc(output_tokens)

    def _children_for(self, provider: str, model: str, profile_id: str, agent_id: str, status: int) -> tuple:
        """The labelled series of one combination, looked up once: ``labels()`` costs more than the increment."""
        agent = self.agent_label(agent_id)
        model = self.model_label(model)
        code = str(status)
        if len(self._children) > 50_000:  # bounded: the label caps bound the series, this bounds the keys
            self._children.clear()
        return (
            self.requests.labels(provider, model, profile_id, agent, code),
            self.duration.labels(provider, model, profile_id, agent, code),
            self.ttft.labels(provider, model, profile_id, agent),
            self.tokens.labels(provider, model, profile_id, agent, "input"),
            self.tokens.labels(provider, model, profile_id, agent, "output"),
        )
