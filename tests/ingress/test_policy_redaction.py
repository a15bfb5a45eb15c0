"""Secret redaction: every kind is masked, look-alikes are left alone.

Secrets are assembled at run time from harmless pieces, so the source holds nothing a secret scanner would flag.
"""

from __future__ import annotations

import base64
import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.detection.secrets import find_secrets
from services.ingress.policy.redaction import exact, redact_json, redact_secrets, serialise
from tests.support.json_tree import shape, strings

ALNUM = "a1B2c3D4e5F6g7H8i9J0"

SECRETS: dict[str, str] = {
    "openai_api_key": "sk-proj-" + ALNUM * 4 + "_-xy",
    "openai_api_key (legacy)": "sk-" + ALNUM * 2 + "T3BlbkFJ" + ALNUM,
    "anthropic_api_key": "sk-ant-api03-" + ALNUM * 4 + "-_AA",
    "google_api_key": "AIza" + "Sy" + ALNUM[:20] + "-_abcdefghijk"[:13],
    "aws_access_key_id": "AKIA" + "Q7WZR2XK5M9TPL3D",
    "github_token": "ghp_" + ALNUM + "0123456789abcdef",
    "github_fine_grained_token": "github_pat_" + "11ABCDEFG0" + "_" + ALNUM * 3,
    "slack_token": "xoxb-" + "417366284015-2298157703964-" + "Qm7TzR2pLx9KwN4vBd8HsJ3c",
    "stripe_live_key": "sk_" + "live_" + "4eC39HqLyjWDarjtT1zdp7dc",
    "stripe_test_key (restricted)": "rk_" + "test_" + "4eC39HqLyjWDarjtT1zdp7dc",
    "jwt": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    + "."
    + "eyJzdWIiOiIxMjM0NTY3ODkwIn0"
    + "."
    + "dozjgNryP4J3jVmNHl0w5N",
    "private_key": "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\nabc+/=\n-----END RSA PRIVATE KEY-----",
}


@pytest.mark.parametrize("label", list(SECRETS))
def test_each_kind_is_masked_where_it_appears(label: str) -> None:
    kind = label.split(" ")[0]
    secret = SECRETS[label]
    text = f"here it is: {secret} -- keep it safe"
    redacted, found = redact_secrets(text)
    assert redacted == f"here it is: [REDACTED:{kind}] -- keep it safe"
    assert found == [(kind, 1)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "aws_secret_access_key = Zq3vR8tLm2Xk9Wd/Hp4Nc7Yb1Jf6Gs0Ta5Ue8Qo2",
            "aws_secret_access_key = [REDACTED:aws_secret_access_key]",
        ),
        (
            '{"SecretAccessKey": "Zq3vR8tLm2Xk9Wd/Hp4Nc7Yb1Jf6Gs0Ta5Ue8Qo2"}',
            '{"SecretAccessKey": "[REDACTED:aws_secret_access_key]"}',
        ),
        (
            "export AWS_SECRET_ACCESS_KEY='Zq3vR8tLm2Xk9Wd/Hp4Nc7Yb1Jf6Gs0Ta5Ue8Qo2'",
            "export AWS_SECRET_ACCESS_KEY='[REDACTED:aws_secret_access_key]'",
        ),
        ("Authorization: Bearer abcDEF1234567890xyzXYZ", "Authorization: Bearer [REDACTED:bearer_token]"),
        ("authorization: bearer abc.DEF-1234_567890~xyz", "authorization: bearer [REDACTED:bearer_token]"),
    ],
)
def test_labelled_secrets_keep_their_label(text: str, expected: str) -> None:
    assert redact_secrets(text)[0] == expected


def test_counts_per_kind_and_several_occurrences() -> None:
    key = SECRETS["openai_api_key"]
    text = f"{key} and {key} and {SECRETS['aws_access_key_id']}"
    redacted, found = redact_secrets(text)
    assert redacted == "[REDACTED:openai_api_key] and [REDACTED:openai_api_key] and [REDACTED:aws_access_key_id]"
    assert sorted(found) == [("aws_access_key_id", 1), ("openai_api_key", 2)]


def test_a_secret_inside_json_text_and_url_query() -> None:
    text = '{"api_key": "' + SECRETS["google_api_key"] + '"} https://x.com/?key=' + SECRETS["google_api_key"]
    redacted, found = redact_secrets(text)
    assert SECRETS["google_api_key"] not in redacted and found == [("google_api_key", 2)]


def test_a_truncated_private_key_is_masked_to_the_end() -> None:
    redacted, found = redact_secrets("key:\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA")
    assert redacted == "key:\n[REDACTED:private_key]" and found == [("private_key", 1)]


def test_a_jwt_as_bearer_token_is_masked_once() -> None:
    redacted, found = redact_secrets("Authorization: Bearer " + SECRETS["jwt"])
    assert redacted == "Authorization: Bearer [REDACTED:jwt]" and found == [("jwt", 1)]


def test_redaction_is_idempotent() -> None:
    text = " ".join(SECRETS.values()) + " Bearer abcDEF1234567890xyzXYZ"
    once, found = redact_secrets(text)
    assert found and redact_secrets(once) == (once, [])


def test_a_clean_text_is_returned_as_is_and_again_from_memory() -> None:
    text = "nothing to see here, just a long enough sentence about the weather in Lisbon " * 3
    first = redact_secrets(text)
    assert first[0] is text and first[1] == []
    assert redact_secrets(text)[0] is text


LOOK_ALIKES = [
    "123e4567-e89b-12d3-a456-426614174000",  # UUID
    "commit 3f786850e387550fdab836ed7d6dc881de23001b",  # git SHA-1
    "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    base64.b64encode(b"Hello world, this is an ordinary sentence encoded in base64.").decode(),
    base64.urlsafe_b64encode(b"just some bytes of configuration data for tests").decode(),
    "a task-1234567890abcdefghijklmnopqrstuvwxyz and a desk-lamp",  # "sk-" inside a word
    "risk-assessment-for-the-2024-quarterly-report-summary",
    "the bearer of this letter is authorized to collect the parcel",
    "Bearer authentication is described in RFC 6750",
    "sk-learn and sk-ant are not keys",
    "AKIA is a prefix; AKIAIOSFODNN7EXAMPLEEXTRA is too long to be a key id",
    "my AWS secret is safe; aws_secret_access_key = <set me>",
    "ghp_short and xoxb-notatoken and sk_live_short",
    "mydisk_live_4eC39HqLyjWDarjtT1zdp7dc",
    "eyJ alone, and eyJhbGciOiJIUzI1NiJ9 with no payload",
    "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
    "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 user@host",
]


@pytest.mark.parametrize("text", LOOK_ALIKES)
def test_look_alikes_are_left_alone(text: str) -> None:
    assert redact_secrets(text) == (text, [])


def test_a_provider_key_sent_as_bearer_token_is_reported_as_its_kind() -> None:
    redacted, found = redact_secrets("Authorization: Bearer " + SECRETS["openai_api_key"])
    assert redacted == "Authorization: Bearer [REDACTED:openai_api_key]" and found == [("openai_api_key", 1)]


# --- the request body: masked as decoded JSON, serialised again -----------------------------------------------------

KEY = SECRETS["openai_api_key"]


def test_a_clean_body_is_returned_as_is() -> None:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "nothing secret in this sentence at all"}]}
    assert redact_json(body) == (body, ())
    assert redact_json(body)[0] is body


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        ('"my key ' + KEY.replace("-", "\\u002d") + '"', "openai_api_key"),
        ('"aws_secret_access_key = \\"Zq3vR8tLm2Xk9Wd\\/Hp4Nc7Yb1Jf6Gs0Ta5Ue8Qo2\\""', "aws_secret_access_key"),
        ('"Authorization: Bearer\\nabcDEF1234567890xyzXYZ"', "bearer_token"),
    ],
)
def test_escapes_in_the_raw_json_hide_nothing(raw: str, kind: str) -> None:
    body = orjson.loads('{"messages": [{"role": "user", "content": ' + raw + "}]}")
    masked, found = redact_json(body)
    assert [(r.location, r.kind, r.count) for r in found] == [("request.messages[0].content", kind, 1)]
    assert f"[REDACTED:{kind}]" in masked["messages"][0]["content"]
    assert body["messages"][0]["content"] not in orjson.dumps(masked).decode()  # the input is not mutated


def test_a_value_is_judged_with_its_key_as_label() -> None:
    body = {"functionResponse": {"response": {"password": "hunter2-Very$ecret", "note": "hunter2-Very$ecret"}}}
    masked, found = redact_json(body)
    assert masked["functionResponse"]["response"]["password"] == "[REDACTED:password_assignment]"
    assert masked["functionResponse"]["response"]["note"] == "hunter2-Very$ecret"  # no label, no secret
    assert [r.location for r in found] == ["request.functionResponse.response.password"]


def test_json_inside_a_string_is_masked_one_level_down() -> None:
    arguments = '{"token_for": "deploy", "value": "' + KEY.replace("-", "\\u002d") + '"}'
    body = {"tool_calls": [{"function": {"name": "deploy", "arguments": arguments}}]}
    masked, found = redact_json(body)
    inner = orjson.loads(masked["tool_calls"][0]["function"]["arguments"])
    assert inner == {"token_for": "deploy", "value": "[REDACTED:openai_api_key]"}
    assert [(r.location, r.kind) for r in found] == [("request.tool_calls[0].function.arguments", "openai_api_key")]


def test_a_private_key_armour_line_alone_masks_only_itself() -> None:
    body = {"messages": [{"content": "what is -----BEGIN RSA PRIVATE KEY----- for?"}, {"content": "next"}]}
    masked, _ = redact_json(body)
    assert masked == {"messages": [{"content": "what is [REDACTED:private_key] for?"}, {"content": "next"}]}


_PIECES = [
    KEY,
    SECRETS["jwt"],
    SECRETS["google_api_key"],
    "aws_secret_access_key = 'Zq3vR8tLm2Xk9Wd/Hp4Nc7Yb1Jf6Gs0Ta5Ue8Qo2'",
    "Bearer\nabcDEF1234567890xyzXYZ",
    "-----BEGIN RSA PRIVATE KEY-----",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7abcdefghijklmn",
    "-----END RSA PRIVATE KEY-----",
    'a "quoted" word, a \\ backslash, a / slash, é and 🔑',
]
_texts = st.lists(st.one_of(st.sampled_from(_PIECES), st.text(max_size=12)), max_size=5).map(" ".join)
_bodies = st.recursive(
    st.one_of(_texts, st.integers(), st.booleans(), st.none()),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(["a", "key", "x"]), inner)),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(_bodies, st.booleans())
def test_the_forwarded_body_is_valid_json_of_the_same_shape_with_nothing_left_to_find(body, escape_all) -> None:
    raw = json.dumps(body, ensure_ascii=escape_all)  # \\uXXXX escapes for every non-ASCII character, or none
    masked, found = redact_json(exact(raw))
    again = json.loads(serialise(masked))

    assert shape(again) == shape(body)
    assert all(not find_secrets(text) for text in strings(again))
    assert bool(found) == (again != body)
    assert redact_json(again) == (again, ())  # idempotent
