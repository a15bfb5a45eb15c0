"""Who may use the read side: the admin token when one is set, otherwise only clients on this machine."""

from __future__ import annotations

import hmac
import ipaddress

from pydantic import SecretStr


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def allowed(token: SecretStr | None, authorization: str | None, cookie: str | None, client_host: str | None) -> bool:
    if token is None:
        return is_loopback(client_host)
    expected = token.get_secret_value()
    offered = None
    if authorization and authorization.lower().startswith("bearer "):
        offered = authorization[7:].strip()
    elif cookie:
        offered = cookie
    return offered is not None and hmac.compare_digest(offered.encode(), expected.encode())
