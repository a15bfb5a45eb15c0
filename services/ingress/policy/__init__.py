"""Warden's inline policies as pure functions: trusted data, tool invocation, secret redaction.

The ingress calls ``evaluate_request`` before forwarding and ``evaluate_completion`` on the model's answer; the other
modules are the parts, usable on their own.
"""

from services.ingress.policy.conditions import condition_holds, resolve
from services.ingress.policy.engine import (
    CompiledProfile,
    CompletionVerdict,
    RequestVerdict,
    answer_untrusted_since,
    compile_profile,
    evaluate_completion,
    evaluate_request,
)
from services.ingress.policy.redaction import (
    Redaction,
    exact,
    redact_json,
    redact_secrets,
    redaction_decisions,
    serialise,
)
from services.ingress.policy.tool_invocation import CallDecision, InvocationVerdict, judge_tool_calls, refusal_text
from services.ingress.policy.trusted_data import (
    Inherited,
    ResultDecision,
    TrustVerdict,
    UntrustedSource,
    blocked_content,
    judge_tool_results,
)

__all__ = [
    "CallDecision",
    "CompiledProfile",
    "CompletionVerdict",
    "Inherited",
    "InvocationVerdict",
    "Redaction",
    "RequestVerdict",
    "ResultDecision",
    "TrustVerdict",
    "UntrustedSource",
    "answer_untrusted_since",
    "blocked_content",
    "compile_profile",
    "condition_holds",
    "evaluate_completion",
    "evaluate_request",
    "exact",
    "judge_tool_calls",
    "judge_tool_results",
    "redact_json",
    "redact_secrets",
    "redaction_decisions",
    "refusal_text",
    "resolve",
    "serialise",
]
