"""A Warden key as a Bedrock API key, the way boto3 sends one: ``AWS_BEARER_TOKEN_BEDROCK`` makes botocore send
``Authorization: Bearer …`` instead of signing, and only to an ``https://`` endpoint. The shared Warden's app is
served once more over TLS (a certificate made for 127.0.0.1) for this."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.bedrock.conftest import MODEL, streamed, user
from tests.bedrock.test_converse import recorded
from tests.conftest import BEDROCK_ACCESS_KEY_ID, BEDROCK_REGION
from tests.support.warden_server import free_port
from warden.serving import Server, uvicorn_config


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@pytest.fixture(scope="module")
def tls_warden(warden, tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """``(https URL, certificate)`` of the shared Warden's app served over TLS on its own loop."""
    cert, key = self_signed(tmp_path_factory.mktemp("tls"))
    port = free_port()

    async def start(embedded):
        config = uvicorn_config(embedded.app, "127.0.0.1", port, warden.settings)
        config.ssl_certfile, config.ssl_keyfile = str(cert), str(key)
        config.load()
        server = Server(config, signals=False)
        task = asyncio.get_running_loop().create_task(server.serve())
        while not server.started:
            if task.done():
                await task
            await asyncio.sleep(0.01)
        return server, task

    server, task = warden.call(start)
    yield f"https://127.0.0.1:{port}", cert

    async def stop(_):
        server.should_exit = True
        await task

    warden.call(stop)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_warden_key_in_aws_bearer_token_bedrock_is_signed_again_by_warden(
    tls_warden, warden, upstream, bedrock_profile, key_of, monkeypatch, stream
):
    import boto3

    url, cert = tls_warden
    key = key_of(bedrock_profile)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", key.secret)
    client = boto3.client(
        "bedrock-runtime", endpoint_url=f"{url}/v1/bedrock", region_name=BEDROCK_REGION, verify=str(cert)
    )
    sent: list[str] = []
    client.meta.events.register(
        "before-send.bedrock-runtime.*", lambda request, **_: sent.append(request.headers["Authorization"].decode())
    )
    if stream:
        events = streamed(client.converse_stream(modelId=MODEL, messages=user("over tls")))
        text = "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e)
    else:
        text = client.converse(modelId=MODEL, messages=user("over tls"))["output"]["message"]["content"][0]["text"]
    assert text == "echo: over tls"
    assert sent == [f"Bearer {key.secret}"]  # boto3 sent the key as a Bedrock API key, not a signature
    assert upstream.last.header("authorization").startswith(f"AWS4-HMAC-SHA256 Credential={BEDROCK_ACCESS_KEY_ID}/")
    assert key.secret not in str(upstream.last.headers)
    assert recorded(warden, key.agent_id)["auth"] == "warden_key"
