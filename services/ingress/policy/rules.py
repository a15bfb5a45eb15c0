"""Policies grouped by tool and compiled once per profile snapshot, and the rule that picks the one that applies.

For a tool, a policy with conditions is *specific* and a policy without is the tool's *default*. A specific policy
whose conditions all hold wins over the default; when several specific policies hold (or a tool has several
defaults), the most restrictive one wins, and among equally restrictive ones the first declared. No applicable policy
means the caller's own default rule.

When a condition finds several values (a list, a ``[*]`` step) and only some of them pass, the policy applies if it
is at least as restrictive as what would apply without it (the tool's default, else the caller's default rule), and
does not if it is more lenient: adding a harmless element to a list never escapes a block, and one matching element
never earns an exemption for the others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, TypeVar

from schemas.profiles import ToolInvocationPolicy, TrustedDataPolicy
from services.ingress.policy.conditions import NONE, SOME, CompiledCondition, compile_condition

P = TypeVar("P", ToolInvocationPolicy, TrustedDataPolicy)


@dataclass(frozen=True, slots=True)
class Rule(Generic[P]):
    policy: P
    conditions: tuple[CompiledCondition, ...]
    partial_applies: bool = False
    """Conditions that hold for only some of the values they found still make this policy apply (it is at least as
    restrictive as the fallback)."""

    def matches(self, data: Any, whole: str | None) -> bool:
        # A plain loop rather than all(<generator>): this is on the hot path.
        for condition in self.conditions:
            outcome = condition.evaluate(data, whole)
            if outcome == NONE or (outcome == SOME and not self.partial_applies):
                return False
        return True


class Selection(NamedTuple, Generic[P]):
    policy: P | None
    specific: bool
    """True when a policy with conditions was chosen over the tool's default."""


@dataclass(frozen=True, slots=True)
class ToolRules(Generic[P]):
    default: P | None
    specific: tuple[Rule[P], ...]
    """Most restrictive first, then in declaration order, so the first that matches is the one that applies."""
    needs_data: bool
    """Some condition has a non-empty key, so the subject must be parsed."""

    def select(self, subject: Any, parse: Callable[[Any], Any] | None, whole: str | None) -> Selection[P]:
        if self.specific:
            data = parse(subject) if parse is not None and self.needs_data else subject
            for rule in self.specific:
                if rule.matches(data, whole):
                    return Selection(rule.policy, True)
        return Selection(self.default, False)


_NOTHING: Selection[Any] = Selection(None, False)


@dataclass(frozen=True, slots=True)
class RuleBook(Generic[P]):
    by_tool: Mapping[str, ToolRules[P]]

    @classmethod
    def build(cls, policies: Iterable[P], rank: Mapping[str, int], fallback_rank: int) -> RuleBook[P]:
        """Group ``policies`` by tool; ``rank`` orders actions from least (0) to most restrictive, ``fallback_rank``
        is the rank of the caller's own rule when no policy applies."""
        grouped: dict[str, list[tuple[int, P]]] = {}
        for position, policy in enumerate(policies):
            grouped.setdefault(policy.tool, []).append((position, policy))
        by_tool: dict[str, ToolRules[P]] = {}
        for tool, entries in grouped.items():
            ordered = sorted(entries, key=lambda entry: (-rank[entry[1].action], entry[0]))
            defaults = [policy for _, policy in ordered if not policy.conditions]
            fallback = rank[defaults[0].action] if defaults else fallback_rank
            specific = tuple(
                Rule(policy, tuple(compile_condition(c) for c in policy.conditions), rank[policy.action] >= fallback)
                for _, policy in ordered
                if policy.conditions
            )
            needs_data = any(condition.steps for rule in specific for condition in rule.conditions)
            by_tool[tool] = ToolRules(defaults[0] if defaults else None, specific, needs_data)
        return cls(by_tool)

    def select(
        self, tool: str | None, subject: Any, parse: Callable[[Any], Any] | None = None, whole: str | None = None
    ) -> Selection[P]:
        """The policy that applies to ``tool`` for ``subject`` (its arguments or content). ``parse`` turns the subject
        into the data keys address, and runs only when a condition needs it; ``whole`` is what the empty key tests
        (default: the data itself)."""
        rules = self.by_tool.get(tool) if tool is not None else None
        if rules is None:
            return _NOTHING
        return rules.select(subject, parse, whole)

    def governs(self, tool: str | None) -> bool:
        """Some policy names ``tool``."""
        return tool is not None and tool in self.by_tool
