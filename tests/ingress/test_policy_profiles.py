"""Profile validation: what the admin API accepts, and errors that name the offending field."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from schemas.profiles import (
    DEFAULT_PROFILE_ID,
    Condition,
    Profile,
    ProfileSpec,
    default_profile,
    new_profile,
)


def _error_locations(payload: dict[str, Any]) -> list[tuple[Any, ...]]:
    with pytest.raises(ValidationError) as caught:
        ProfileSpec.model_validate(payload)
    return [error["loc"] for error in caught.value.errors()]


def _with_condition(condition: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "p",
        "tool_invocation_policies": [{"tool": "send_email", "action": "block_always", "conditions": [condition]}],
    }


def test_a_full_spec_round_trips() -> None:
    payload = {
        "name": "  Support bot  ",
        "mode": "restrictive",
        "redact_secrets": True,
        "tool_invocation_policies": [
            {
                "tool": "send_email",
                "action": "block_when_context_is_untrusted",
                "reason": "no mail after reading the web",
                "conditions": [{"key": "recipients[*].email", "operator": "endsWith", "value": "@corp.com"}],
            }
        ],
        "trusted_data_policies": [{"tool": "read_file", "action": "mark_as_trusted"}],
        "allowed_domains": ["Corp.COM", "*.corp.com."],
        "guard": {
            "thresholds": {"pii": 0.8},
            "quarantine": {"max_violations": 5, "min_severity": "critical", "window_seconds": 60},
        },
    }
    spec = ProfileSpec.model_validate(payload)
    assert spec.name == "Support bot"
    assert spec.allowed_domains == ["corp.com", "*.corp.com"]
    assert spec.guard.thresholds == {
        "prompt_injection": 0.5,
        "secret": 0.5,
        "pii": 0.8,
        "exfiltration": 0.5,
        "policy": 0.5,
    }
    assert spec.guard.quarantine is not None and spec.guard.quarantine.duration_seconds == 3600
    assert ProfileSpec.model_validate_json(spec.model_dump_json()) == spec


def test_unknown_action_names_the_field() -> None:
    payload = {"name": "p", "trusted_data_policies": [{"tool": "t", "action": "trust_me"}]}
    assert _error_locations(payload) == [("trusted_data_policies", 0, "action")]


def test_a_tool_invocation_action_is_not_a_trusted_data_action() -> None:
    payload = {"name": "p", "tool_invocation_policies": [{"tool": "t", "action": "mark_as_trusted"}]}
    assert _error_locations(payload) == [("tool_invocation_policies", 0, "action")]


def test_unknown_operator_names_the_field() -> None:
    payload = _with_condition({"key": "to", "operator": "like", "value": "x"})
    assert _error_locations(payload) == [("tool_invocation_policies", 0, "conditions", 0, "operator")]


def test_a_regex_that_does_not_compile_names_the_value() -> None:
    payload = _with_condition({"key": "to", "operator": "regex", "value": "(unclosed"})
    with pytest.raises(ValidationError) as caught:
        ProfileSpec.model_validate(payload)
    (error,) = caught.value.errors()
    assert error["loc"] == ("tool_invocation_policies", 0, "conditions", 0, "value")
    assert "invalid regular expression" in error["msg"]


def test_the_same_text_is_fine_for_a_non_regex_operator() -> None:
    condition = Condition.model_validate({"key": "to", "operator": "contains", "value": "(unclosed"})
    assert condition.value == "(unclosed"


@pytest.mark.parametrize("key", ["a..b", ".a", "a.", "a[0]", "a[*", "a[*]b", "a b", "a.[*]", "[*]a"])
def test_malformed_keys_are_refused(key: str) -> None:
    payload = _with_condition({"key": key, "operator": "equal", "value": "x"})
    assert _error_locations(payload) == [("tool_invocation_policies", 0, "conditions", 0, "key")]


@pytest.mark.parametrize(
    "key", ["", "path", "headers.host", "recipients[*].email", "[*].url", "matrix[*][*]", "items.0.id", "x-forwarded"]
)
def test_well_formed_keys_are_accepted(key: str) -> None:
    assert Condition(key=key, operator="equal", value="x").key == key


@pytest.mark.parametrize(
    ("payload", "location"),
    [
        ({"name": "p", "colour": "red"}, ("colour",)),
        ({"name": "p", "guard": {"thresholds": {}, "extra": 1}}, ("guard", "extra")),
        ({"name": "p", "trusted_data_policies": [{"tool": "t", "action": "block_always", "why": "x"}]},
         ("trusted_data_policies", 0, "why")),
        (_with_condition({"key": "a", "operator": "equal", "value": "x", "negate": True}),
         ("tool_invocation_policies", 0, "conditions", 0, "negate")),
        ({"name": "p", "guard": {"quarantine": {"max_violations": 2, "forever": True}}},
         ("guard", "quarantine", "forever")),
    ],
)  # fmt: skip
def test_unknown_keys_are_refused_by_path(payload: dict[str, Any], location: tuple[Any, ...]) -> None:
    with pytest.raises(ValidationError) as caught:
        ProfileSpec.model_validate(payload)
    (error,) = caught.value.errors()
    assert error["loc"] == location
    assert error["type"] == "extra_forbidden"


@pytest.mark.parametrize(
    ("payload", "location"),
    [
        ({"name": ""}, ("name",)),
        ({"name": "   "}, ("name",)),
        ({"name": "x" * 101}, ("name",)),
        ({"name": "p", "mode": "strict"}, ("mode",)),
        ({"name": "p", "guard": {"thresholds": {"pii": 1.5}}}, ("guard", "thresholds", "pii")),
        ({"name": "p", "guard": {"thresholds": {"spam": 0.4}}}, ("guard", "thresholds", "spam", "[key]")),
        ({"name": "p", "guard": {"quarantine": {"max_violations": 0}}}, ("guard", "quarantine", "max_violations")),
        ({"name": "p", "guard": {"quarantine": {"min_severity": "dire"}}}, ("guard", "quarantine", "min_severity")),
        ({"name": "p", "allowed_domains": ["ok.com", "https://evil.com/x"]}, ("allowed_domains", 1)),
        ({"name": "p", "tool_invocation_policies": [{"tool": " ", "action": "block_always"}]},
         ("tool_invocation_policies", 0, "tool")),
    ],
)  # fmt: skip
def test_invalid_values_name_the_field(payload: dict[str, Any], location: tuple[Any, ...]) -> None:
    assert location in _error_locations(payload)


def test_a_name_of_exactly_100_characters_is_accepted() -> None:
    assert len(ProfileSpec(name="x" * 100).name) == 100


def test_default_profile_is_permissive_with_no_policies() -> None:
    profile = default_profile()
    assert profile.id == DEFAULT_PROFILE_ID
    assert profile.mode == "permissive"
    assert not profile.redact_secrets
    assert profile.tool_invocation_policies == [] and profile.trusted_data_policies == []


def test_new_profile_gets_a_uuid_and_with_spec_keeps_identity() -> None:
    created = datetime(2024, 5, 1, tzinfo=UTC)
    profile = new_profile(ProfileSpec(name="a"), now=created)
    assert len(profile.id) == 36 and profile.created_at == profile.updated_at == created
    updated = profile.with_spec(ProfileSpec(name="b", mode="restrictive"), now=datetime(2024, 6, 1, tzinfo=UTC))
    assert (updated.id, updated.created_at, updated.name, updated.mode) == (profile.id, created, "b", "restrictive")
    assert updated.updated_at > updated.created_at
    assert updated.spec() == ProfileSpec(name="b", mode="restrictive")


def test_profile_ids_are_uuids_or_default_and_naive_times_are_utc() -> None:
    base = {"name": "p", "created_at": "2024-05-01T10:00:00", "updated_at": "2024-05-01T10:00:00"}
    upper = Profile.model_validate({**base, "id": "9F1C2B3A-0000-4000-8000-000000000001"})
    assert upper.id == "9f1c2b3a-0000-4000-8000-000000000001"
    assert upper.created_at.tzinfo is UTC
    with pytest.raises(ValidationError) as caught:
        Profile.model_validate({**base, "id": "not-a-uuid"})
    assert caught.value.errors()[0]["loc"] == ("id",)
