from __future__ import annotations

import base64
import hashlib
import json
import uuid

import pytest

from services.guard.detectors import scan_text
from services.guard.detectors.secrets import find_secrets


def detectors(text: str) -> list[str]:
    return [h.detector for h in find_secrets(text)]


@pytest.mark.parametrize(
    ("kind", "template", "detector"),
    [
        ("openai", "export OPENAI_API_KEY={k}", "secrets.openai_api_key"),
        ("anthropic", 'client = Anthropic(api_key="{k}")', "secrets.anthropic_api_key"),
        ("google", "GOOGLE_API_KEY: {k}", "secrets.google_api_key"),
        ("aws", "aws_access_key_id = {k}", "secrets.aws_access_key_id"),
        ("github", "git clone https://x:{k}@github.com/o/r", "secrets.github_token"),
        ("stripe", "stripe.api_key = '{k}'", "secrets.stripe_live_key"),
        ("slack", "token={k}", "secrets.slack_token"),
    ],
)
def test_provider_keys_are_found_with_their_provider(fake_keys, kind, template, detector):
    key = fake_keys[kind]
    hits = find_secrets(template.format(k=key))
    assert detector in [h.detector for h in hits]
    hit = next(h for h in hits if h.detector == detector)
    text = template.format(k=key)
    assert key.startswith(text[hit.start : hit.end]) or text[hit.start : hit.end] == key


def test_private_key_block_and_jwt():
    body = base64.b64encode(bytes(range(120))).decode()
    pem = f"-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----"
    assert detectors(f"key:\n{pem}\n") == ["secrets.private_key"]
    header = base64.urlsafe_b64encode(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()).rstrip(b"=").decode()
    payload = base64.urlsafe_b64encode(json.dumps({"sub": "42", "name": "x" * 12}).encode()).rstrip(b"=").decode()
    jwt = f"{header}.{payload}.{'s1G' * 12}"
    assert detectors(f"Authorization: Bearer {jwt}") == ["secrets.jwt"]


@pytest.mark.parametrize(
    "text",
    [
        'DB_PASSWORD="Harbor2291!x"',
        "SMTP_PASS=Quartz6333&TC",
        "db.connect(host='db1', user='app', password='Falcon77#q')",
        "postgres://app:Velvet7646*NfXI@db.internal:5432/orders",
        'aws_secret_access_key = "' + "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "0123456789" + '"',
    ],
)
def test_credentials_in_assignments_and_urls(text):
    assert find_secrets(text), text


@pytest.mark.parametrize(
    "text",
    [
        f"sha256: {hashlib.sha256(b'x').hexdigest()}",
        f"commit {hashlib.sha1(b'y').hexdigest()}",
        f'{{"request_id": "{uuid.UUID(int=12345678901234567890)}"}}',
        "data:image/png;base64," + base64.b64encode(bytes(range(64))).decode(),
        'password = os.environ["DB_PASSWORD"]',
        "password: ${DB_PASSWORD}",
        'api_key="YOUR_API_KEY_HERE"',
        "The password must be at least 12 characters long.",
        '{"next_page_token": "CiAKGjBpNDd2Nmp2Zml2cXRwYjBpOXA", "max_tokens": 1024}',
        "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----",
        "postgres://user:password@localhost/db",
        "Click on this link to reset your password: https://www.facebook.com/reset-password",
        "body: To reset your password: www.account-help.example/reset now",
        "pip install scikit-learn; the bypass = True flag",
    ],
)
def test_look_alikes_are_not_secrets(text):
    assert find_secrets(text) == []


def test_excerpt_masks_the_secret_and_keeps_its_kind(fake_keys):
    key = fake_keys["openai"]
    findings = scan_text(f"my key is {key} thanks")
    assert [f.detector for f in findings] == ["secrets.openai_api_key"]
    finding = findings[0]
    assert key not in finding.model_dump_json()
    assert "sk-p…[REDACTED]" in finding.excerpt
    assert finding.category == "secret" and finding.location == "text"


def test_no_excerpt_reveals_a_neighbouring_secret(fake_keys):
    text = f"{fake_keys['aws']} {fake_keys['github']} {fake_keys['stripe']}"
    dumped = json.dumps([f.model_dump() for f in scan_text(text)])
    for key in ("aws", "github", "stripe"):
        assert fake_keys[key] not in dumped
    assert len(scan_text(text)) == 3
