"""The address the connect URLs and the start-up lines give, from WARDEN_PUBLIC_URL or the address listened on."""

from __future__ import annotations

import pytest

from services.ingress.settings import IngressSettings
from warden.composition import public_url


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"host": "0.0.0.0", "port": 9000}, "http://127.0.0.1:9000"),
        ({"host": "::", "port": 9000}, "http://127.0.0.1:9000"),
        ({"host": "10.1.2.3", "port": 8080}, "http://10.1.2.3:8080"),
        ({"host": "::1", "port": 9000}, "http://[::1]:9000"),
        ({"host": "fd00::5", "port": 9000}, "http://[fd00::5]:9000"),
        ({"public_url": "https://warden.example.com/", "port": 1}, "https://warden.example.com"),
        ({"public_url": "https://gw.example.com/warden", "host": "10.0.0.1"}, "https://gw.example.com/warden"),
    ],
)
def test_public_url(settings, expected, monkeypatch):
    for name in ("WARDEN_HOST", "WARDEN_PORT", "WARDEN_PUBLIC_URL", "WARDEN_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    assert public_url(IngressSettings(**settings)) == expected
