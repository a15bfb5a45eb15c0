"""Redaction of the credentials people paste the most carelessly (``curl -u``, a password told in a sentence, webhook
URLs, Vault tokens, keys in a URL's query), in every wire format, streamed and not; and the look-alikes that must
reach the provider untouched (``.env.example`` placeholders, the providers' documentation keys, a secrets baseline).

Values are assembled at run time from harmless pieces, so the source holds nothing a secret scanner would flag.
"""

from __future__ import annotations

import base64
import json

import pytest

from tests.ingress.test_redaction_bytes import FORMATS, _recorded, _send, fakes, redacting  # noqa: F401
from tests.support.json_tree import strings

PASSWORD = "Quartz" + "47" + "#" + "vlm"
PROSE_PASSWORD = "Harbor" + "19" + "!" + "kzq"
DISCORD = "https://discord.com/api/webhooks/" + "1187" + "4420" * 4 + "/" + "Rk2vT9xQ" * 8 + "aZ"
VAULT = "hvs." + "CAESIB7k" + "q2Xv9RmT" * 11
URL_KEY = base64.urlsafe_b64encode(b"k7R2xQ9vL3mT8wZ5nB1cH6jF4gD0sA" + b"Pq").decode().rstrip("=")

ATTACKS = [
    (f"curl -u deploy:{PASSWORD} https://ci.acme-build.io/api/jobs", PASSWORD, "cli_credentials"),
    (f"the staging db password was reset to {PROSE_PASSWORD} this morning", PROSE_PASSWORD, "password_in_text"),
    (f"post the summary to {DISCORD} please", DISCORD, "discord_webhook"),
    (f"export VAULT_TOKEN={VAULT}", VAULT, "vault_token"),
    (f"GET https://api.metrics-vendor.io/v2/export?api_key={URL_KEY}", URL_KEY, "generic_secret_assignment"),
]
LOOK_ALIKES = [
    "OPENAI_API_KEY=sk-proj-" + "x" * 48,
    "aws_access_key_id = AKIA" + "IOSFODNN7" + "EXAMPLE",
    '{"type": "Secret Keyword", "hashed_secret": "' + "513e0a36963ae1e8" + "431c041b744679ee578b7c44" + '"}',
    "docker run -u 1000:1000 app && git push -u origin main",
]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("wire", FORMATS, ids=[w.name for w in FORMATS])
def test_new_kinds_are_masked_and_look_alikes_pass(warden, fakes, redacting, wire, stream):  # noqa: F811
    texts = [text for text, _, _ in ATTACKS] + LOOK_ALIKES
    raw_texts = [json.dumps(t)[1:-1] for t in texts]  # the JSON string contents
    interaction_id, _raw, agent = _send(warden, wire, redacting, raw_texts, stream)
    upstream = fakes[wire.fake].last.raw_body.decode()
    sent = strings(json.loads(upstream))
    for text, secret, kind in ATTACKS:
        assert secret not in upstream
        assert text.replace(secret, f"[REDACTED:{kind}]") in sent, kind
    for text in LOOK_ALIKES:
        assert text in sent  # untouched: nothing in it is a credential
    detail = _recorded(warden, agent, interaction_id)
    assert detail["request_sent"] == upstream
    for _, secret, _ in ATTACKS:
        assert secret not in detail["request_received"]
