"""Condition paths and operators."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.profiles import Condition, ConditionOperator
from services.ingress.policy.conditions import as_text, condition_holds, parse_path, resolve

DATA: dict[str, Any] = {
    "path": "/home/me/notes.txt",
    "headers": {"host": "api.corp.com", "x-trace": "abc"},
    "recipients": [{"email": "ann@corp.com"}, {"email": "bob@corp.com"}],
    "matrix": [[1, 2], [3]],
    "flag": True,
    "count": 3,
    "nothing": None,
    "tags": ["a", "b"],
}


@pytest.mark.parametrize(
    ("path", "found"),
    [
        ("path", ["/home/me/notes.txt"]),
        ("headers.host", ["api.corp.com"]),
        ("recipients[*].email", ["ann@corp.com", "bob@corp.com"]),
        ("recipients.1.email", ["bob@corp.com"]),
        ("matrix[*][*]", [1, 2, 3]),
        ("tags", [["a", "b"]]),
        ("missing", []),
        ("headers.missing", []),
        ("path.deeper", []),
        ("recipients.7.email", []),
        ("path[*]", []),
        ("recipients[*].name", []),
        ("nothing", [None]),
    ],
)
def test_resolve(path: str, found: list[Any]) -> None:
    assert resolve(path, DATA) == found


def test_resolve_empty_path_is_the_whole_value_and_a_leading_wildcard_walks_a_top_level_list() -> None:
    assert resolve("", DATA) == [DATA]
    assert resolve("[*].url", [{"url": "a"}, {"other": 1}, {"url": "b"}]) == ["a", "b"]


def test_resolve_on_non_container_data_finds_nothing() -> None:
    assert resolve("a.b", "plain text") == []
    assert resolve("a", None) == []


def test_parse_path_refuses_malformed_paths() -> None:
    assert parse_path("a[*].b") == ("a", None, "b")
    with pytest.raises(ValueError):
        parse_path("a..b")


def _holds(key: str, operator: ConditionOperator, value: str, data: Any = DATA) -> bool:
    return condition_holds(Condition(key=key, operator=operator, value=value), data)


@pytest.mark.parametrize(
    ("operator", "value", "expected"),
    [
        ("equal", "api.corp.com", True),
        ("equal", "API.corp.com", False),
        ("notEqual", "evil.com", True),
        ("notEqual", "api.corp.com", False),
        ("contains", "corp", True),
        ("contains", "evil", False),
        ("notContains", "evil", True),
        ("notContains", "corp", False),
        ("startsWith", "api.", True),
        ("startsWith", "corp", False),
        ("endsWith", ".corp.com", True),
        ("endsWith", ".evil.com", False),
        ("regex", r"^api\.(corp|example)\.com$", True),
        ("regex", r"corp", True),
        ("regex", r"^corp", False),
        ("regex", r"(?i)^API\.", True),
    ],
)
def test_each_operator(operator: ConditionOperator, value: str, expected: bool) -> None:
    assert _holds("headers.host", operator, value) is expected


def test_wildcards_require_every_value_to_match() -> None:
    assert _holds("recipients[*].email", "endsWith", "@corp.com")
    mixed = {"recipients": [{"email": "ann@corp.com"}, {"email": "eve@evil.com"}]}
    assert not _holds("recipients[*].email", "endsWith", "@corp.com", mixed)
    assert not _holds("recipients[*].email", "notContains", "evil", mixed)


@pytest.mark.parametrize(
    "operator", ["equal", "notEqual", "contains", "notContains", "startsWith", "endsWith", "regex"]
)
def test_a_missing_path_never_holds_even_for_negative_operators(operator: ConditionOperator) -> None:
    assert not _holds("missing", operator, "x")
    assert not _holds("recipients[*].missing", operator, "x")
    assert not _holds("recipients[*].email", operator, "x", {"recipients": []})


def test_non_string_values_are_compared_in_their_json_spelling() -> None:
    assert _holds("flag", "equal", "true")
    assert _holds("count", "equal", "3")
    assert _holds("nothing", "equal", "null")
    assert _holds("headers", "contains", '"host":"api.corp.com"')  # an object: its compact JSON
    assert _holds("matrix[*][*]", "regex", r"^\d$")
    assert as_text({"é": 1.5}) == '{"é":1.5}'
    assert as_text(2**70) == str(2**70)


def test_the_empty_key_tests_the_whole_value() -> None:
    assert _holds("", "contains", "plain", "some plain text")
    assert _holds("", "contains", '"host":"api.corp.com"', DATA)
