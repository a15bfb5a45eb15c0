"""Inline-guardrail decisions as findings, so blocks and redactions reach the security team like any detection.

A decision that only allowed something (``tool_call_allowed``) is not a violation and yields nothing. The action is
what the proxy did: ``blocked`` or ``redacted`` when the decision was enforced, ``logged`` in permissive mode.
"""

from __future__ import annotations

from functools import lru_cache

from schemas.events import PolicyDecision
from services.guard.detectors.secrets import find_secrets
from services.guard.findings import Action, Finding, Severity

_KINDS: dict[str, tuple[Severity, float, Action]] = {
    "tool_call_blocked": ("high", 1.0, "blocked"),
    "tool_result_blocked": ("high", 1.0, "blocked"),
    "tool_result_untrusted": ("medium", 0.8, "logged"),
    "redaction": ("medium", 1.0, "redacted"),
    "answer_unjudged": ("medium", 1.0, "blocked"),
}


_CACHED_TEXT_MAX = 1024
"""Longer texts are masked without the cache: a reason can quote a tool name of any length from a request."""


def _excerpt(decision: PolicyDecision) -> str:
    text = (
        decision.kind
        + (f" {decision.tool}" if decision.tool else "")
        + (f": {decision.reason}" if decision.reason else "")
    )
    return _masked(text) if len(text) <= _CACHED_TEXT_MAX else _mask(text)


def _mask(text: str) -> str:
    """Reasons are written by policies, but one quoting a matched credential must not carry it further."""
    for hit in sorted(find_secrets(text), key=lambda h: h.start, reverse=True):
        text = text[: hit.start] + (hit.mask or "") + text[hit.end :]
    return text[:200]


_masked = lru_cache(maxsize=4096)(_mask)
"""The same few reasons recur on every turn of a conversation, hence the cache."""


def findings_from_decisions(decisions: list[PolicyDecision], *, column: str = "request_decisions") -> list[Finding]:
    """One ``policy`` finding per blocking or redacting decision, and one for the point where the context became
    untrusted (the first untrusted result: later ones change nothing, and every turn re-sends them), in order.
    ``column``: where the interaction record keeps these decisions (``request_decisions`` or
    ``response_decisions``), so a finding's location points at the decision in the record."""
    findings: list[Finding] = []
    untrusted_seen = False
    for i, decision in enumerate(decisions):
        kind = _KINDS.get(decision.kind)
        if kind is None:
            continue
        if decision.kind == "tool_result_untrusted":
            if untrusted_seen:
                continue
            untrusted_seen = True
        severity, score, action = kind
        location = f"{column}[{i}]"
        if decision.tool_call_id:
            location += f".tool_call_id={decision.tool_call_id}"
        findings.append(
            Finding(
                detector=f"policy.{decision.kind}",
                category="policy",
                severity=severity,
                score=score,
                location=location,
                excerpt=_excerpt(decision),
                action=action if decision.enforced else "logged",
            )
        )
    return findings
