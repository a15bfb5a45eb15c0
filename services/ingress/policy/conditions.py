"""Conditions: find values at a dotted path in JSON-like data and test them.

A path is ``a.b.c``; a segment ending in ``[*]`` fans out over every element of a list (``recipients[*].email``); a
segment that is a whole number also indexes a list (``items.0``); the empty path is the whole value. A path that
leads nowhere finds nothing, and a condition over nothing does not hold, so a policy never applies to data that lacks
the field it tests.

Values are compared as text: strings as they are, ``true``/``false``/``null`` and numbers in their JSON spelling,
objects as compact JSON. A list found at a key is checked element by element (``["/etc/passwd"]`` is tested as
``/etc/passwd``), like a ``[*]`` step. Both sides are put in canonical form first (``normalisation``: Unicode NFKC,
path-like values resolved); comparisons are case-sensitive unless the condition sets ``ignore_case``.

Over several values a condition holds for ``ALL`` of them, ``SOME`` or ``NONE``; which of those makes a policy apply
is the rule book's decision (a policy may not be escaped by adding a harmless element to a list). This runs on the
hot path, so paths and tests are compiled once and cached.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson

from schemas.profiles import CONDITION_KEY_PATTERN, Condition, ConditionOperator
from services.ingress.policy.normalisation import normalise

EACH = None
"""A path step meaning "every element of the list here"; any other step is a key (or list index) string."""

Path = tuple[str | None, ...]
_STEP = re.compile(r"([^.\[\]\s]*)((?:\[\*\])*)")


@lru_cache(maxsize=4096)
def parse_path(path: str) -> Path:
    """The steps of ``path``; raises ValueError for a malformed path (profiles are validated, so rarely)."""
    if path == "":
        return ()
    if not CONDITION_KEY_PATTERN.fullmatch(path):
        raise ValueError(f"malformed condition key: {path!r}")
    steps: list[str | None] = []
    for segment in path.split("."):
        name, stars = _STEP.fullmatch(segment).groups()  # type: ignore[union-attr]  # guaranteed by the pattern
        if name:
            steps.append(name)
        steps.extend([EACH] * (len(stars) // 3))
    return tuple(steps)


def resolve_steps(steps: Path, data: Any) -> list[Any]:
    found = [data]
    for step in steps:
        following: list[Any] = []
        if step is EACH:
            for value in found:
                if isinstance(value, list):
                    following.extend(value)
        else:
            for value in found:
                if isinstance(value, dict):
                    if step in value:
                        following.append(value[step])
                elif isinstance(value, list) and step.isdecimal() and int(step) < len(value):
                    following.append(value[int(step)])
        if not following:
            return following
        found = following
    return found


def resolve(path: str, data: Any) -> list[Any]:
    """Every value at ``path`` in ``data`` (nothing when the path leads nowhere)."""
    return resolve_steps(parse_path(path), data)


def as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, bool):
        return "null" if value is None else ("true" if value else "false")
    if isinstance(value, int | float):
        return str(value)
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # integers beyond 64 bits, or objects that are not JSON
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


NONE, SOME, ALL = 0, 1, 2
"""How many of the values a condition found pass its test (nothing found counts as ``NONE``)."""


def _flatten(values: list[Any]) -> list[Any]:
    """Lists found at a key stand for their elements (at any depth)."""
    flat: list[Any] = []
    for value in values:
        if isinstance(value, list):
            flat.extend(_flatten(value))
        else:
            flat.append(value)
    return flat


def _test(operator: ConditionOperator, raw_expected: str, ignore_case: bool) -> Callable[[str], bool]:
    """The test on a value's canonical text; the expected value is put in canonical form once, here."""
    if operator == "regex":
        search = re.compile(raw_expected, re.IGNORECASE if ignore_case else 0).search
        return lambda text: search(normalise(text, ignore_case=ignore_case)) is not None
    expected = normalise(raw_expected, ignore_case=ignore_case)
    compare = _compare(operator, expected)
    return lambda text: compare(normalise(text, ignore_case=ignore_case))


def _compare(operator: ConditionOperator, expected: str) -> Callable[[str], bool]:
    match operator:
        case "equal":
            return lambda text: text == expected
        case "notEqual":
            return lambda text: text != expected
        case "contains":
            return lambda text: expected in text
        case "notContains":
            return lambda text: expected not in text
        case "startsWith":
            return lambda text: text.startswith(expected)
        case "endsWith":
            return lambda text: text.endswith(expected)
    raise ValueError(f"unknown operator: {operator!r}")


@dataclass(frozen=True, slots=True)
class CompiledCondition:
    key: str
    steps: Path
    test: Callable[[str], bool]

    def evaluate(self, data: Any, whole: str | None = None) -> int:
        """``ALL`` when every value found passes the test, ``SOME`` when some do, ``NONE`` when none does or nothing
        was found.

        ``whole``, when given, is the text the empty key tests instead of ``data`` (a tool result's raw content).
        """
        if whole is not None and not self.steps:
            return ALL if self.test(whole) else NONE
        found = resolve_steps(self.steps, data)
        if not found:
            return NONE
        if self.steps:
            found = _flatten(found)
            if not found:
                return NONE
        test = self.test
        passed = 0
        for value in found:  # a plain loop: hot path
            if test(as_text(value)):
                passed += 1
        return ALL if passed == len(found) else (SOME if passed else NONE)

    def holds(self, data: Any, whole: str | None = None) -> bool:
        """Every value found passes the test; finding nothing means the condition does not hold."""
        return self.evaluate(data, whole) == ALL


@lru_cache(maxsize=4096)
def _compile(key: str, operator: ConditionOperator, value: str, ignore_case: bool) -> CompiledCondition:
    return CompiledCondition(key=key, steps=parse_path(key), test=_test(operator, value, ignore_case))


def compile_condition(condition: Condition) -> CompiledCondition:
    return _compile(condition.key, condition.operator, condition.value, condition.ignore_case)


def condition_holds(condition: Condition, data: Any) -> bool:
    return compile_condition(condition).holds(data)
