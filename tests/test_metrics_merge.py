"""Several proxy processes' metrics answered as one: amounts add up, a breaker's state reads the worst any shows."""

from warden.worker_control import merge

_WORKER_A = """# HELP llm_requests_total Requests
# TYPE llm_requests_total counter
llm_requests_total{provider="openai"} 3.0
# HELP llm_upstream_breaker_state Breaker
# TYPE llm_upstream_breaker_state gauge
llm_upstream_breaker_state{deployment="east"} 2.0
llm_upstream_breaker_state{deployment="west"} 0.0
"""
_WORKER_B = """# HELP llm_requests_total Requests
# TYPE llm_requests_total counter
llm_requests_total{provider="openai"} 4.0
# HELP llm_upstream_breaker_state Breaker
# TYPE llm_upstream_breaker_state gauge
llm_upstream_breaker_state{deployment="east"} 0.0
llm_upstream_breaker_state{deployment="west"} 1.0
"""


def _values(name: str) -> dict[tuple[str, ...], float]:
    family = next(f for f in merge([_WORKER_A, _WORKER_B]) if f.name == name)
    return {tuple(s.labels.values()): s.value for s in family.samples}


def test_counters_of_every_process_add_up() -> None:
    assert _values("llm_requests") == {("openai",): 7.0}


def test_a_breaker_open_in_one_process_reads_open_not_a_sum_of_states() -> None:
    assert _values("llm_upstream_breaker_state") == {("east",): 2.0, ("west",): 1.0}
