"""Who may use the read side and the admin API, and whether a request that changes something may be believed.

- With an admin token: ``Authorization: Bearer <token>`` or a login session cookie (``sessions``); failed token
  attempts are throttled per client address (``throttle``).
- Without one: only clients on this machine, and only under a loopback name (``Host``): a page on another site can
  make a browser on this machine call a loopback address under a name of its own (DNS rebinding), never under one of
  these.
- Requests that change something (POST, PUT, PATCH, DELETE) must come from this console's own pages when a browser
  sends them (``Origin``, ``Sec-Fetch-Site``), and the admin API takes only JSON bodies: a form or a ``text/plain``
  body, which another site's page may send without asking, is refused.
- The client's address and whether it came over TLS are read from ``X-Forwarded-For`` / ``X-Forwarded-Proto`` only
  when the peer is a configured trusted proxy.

The functions are pure; ``Access`` holds the configuration and applies them to an ASGI scope.
"""

from __future__ import annotations

import hmac
import ipaddress
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from urllib.parse import urlsplit

from pydantic import SecretStr
from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.types import Scope

from plumbing.config.base import ReplicatedMap
from plumbing.settings import CommonSettings
from schemas.sessions import RevokedSession
from services.console.sessions import Sessions
from services.console.throttle import LoginThrottle

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

SESSION_COOKIE = "warden_session"
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_SAME_ORIGIN_FETCH = frozenset({"same-origin", "none"})


# -- pure rules --------------------------------------------------------------------------------------------------


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def split_host(value: str) -> tuple[str, str | None] | None:
    """``[::1]:9000`` → ``("[::1]", "9000")``, ``localhost`` → ``("localhost", None)``; None when malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[: end + 1], value[end + 1 :]
        if not rest:
            return name, None
        if not rest.startswith(":"):
            return None
        port: str | None = rest[1:]
    elif value.count(":") == 1:
        name, port = value.split(":")
    elif ":" in value:
        return None  # a bare IPv6 address is not a Host value
    else:
        name, port = value, None
    if not name or (port is not None and not port.isdigit()):
        return None
    return name, port


def host_allowed(host: str | None, allowed: Iterable[str]) -> bool:
    """Whether a ``Host`` value is one of ``allowed`` (an entry without a port matches any port)."""
    found = split_host(host) if host else None
    if found is None:
        return False
    for entry in allowed:
        wanted = split_host(entry)
        if wanted is not None and wanted[0] == found[0] and wanted[1] in (None, found[1]):
            return True
    return False


def in_networks(address: str | None, networks: Sequence[Network]) -> bool:
    if not address or not networks:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address(peer: str | None, forwarded_for: str | None, trusted: Sequence[Network]) -> str | None:
    """The client's address: the peer's, or, when the peer is a trusted proxy, the nearest address in
    ``X-Forwarded-For`` that is not itself a trusted proxy (the ones before it could be written by anyone)."""
    if not forwarded_for or not in_networks(peer, trusted):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not in_networks(hop, trusted):
            return hop
    return hops[0] if hops else peer


def origin_problem(origin: str | None, fetch_site: str | None, host: str | None, by_cookie: bool) -> str | None:
    """Why a state-changing request may not be from this console's own pages; None when it is.

    Browsers send ``Origin`` on every POST, PUT, PATCH and DELETE, and ``Sec-Fetch-Site`` where they support it. A
    request with neither is a script's (curl, the CLI) and passes, unless it rides on the session cookie, which only
    a browser holds: then it is refused rather than guessed about. ``Origin`` must name the host the request was sent
    to (``Host``, port included); the scheme is not compared, so a TLS-terminating proxy does not need to be trusted
    for this."""
    if fetch_site is not None and fetch_site.strip().lower() not in _SAME_ORIGIN_FETCH:
        return f"a cross-site request (Sec-Fetch-Site: {fetch_site}) may not change anything here"
    if origin is not None:
        parts = urlsplit(origin.strip())
        offered = split_host(parts.netloc) if parts.scheme in ("http", "https") and parts.netloc else None
        own = split_host(host) if host else None
        if offered is None or own is None or offered != own:
            return f"a request from another origin ({origin}) may not change anything here"
        return None
    if by_cookie and fetch_site is None:
        return "a request with the login cookie must carry an Origin header"
    return None


def json_body_problem(method: str, headers: Headers) -> str | None:
    """Why an admin API request's body is not acceptable (415); None when it is JSON or there is none."""
    if method not in _BODY_METHODS:
        return None
    content_type = headers.get("content-type")
    if content_type is None:
        empty = headers.get("content-length", "0").strip() == "0" and "transfer-encoding" not in headers
        return None if empty else "the admin API takes only application/json bodies (no Content-Type was given)"
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        return f"the admin API takes only application/json bodies, not {media_type or 'an empty media type'}"
    return None


def bearer(authorization: str | None) -> str | None:
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return None


def token_matches(token: SecretStr, offered: str) -> bool:
    return hmac.compare_digest(offered.encode(), token.get_secret_value().encode())


# -- applied to requests -----------------------------------------------------------------------------------------


class Verdict(Enum):
    ALLOWED = "allowed"
    NOT_LOCAL = "not_local"
    """No admin token, and the client is not on this machine."""
    FOREIGN_HOST = "foreign_host"
    """No admin token, and the request names a host that is not a loopback name."""
    NO_CREDENTIAL = "no_credential"
    WRONG_TOKEN = "wrong_token"
    THROTTLED = "throttled"


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    by_cookie: bool = False
    retry_after_s: float = 0.0

    @property
    def allowed(self) -> bool:
        return self.verdict is Verdict.ALLOWED


@dataclass
class Access:
    token: SecretStr | None
    allowed_hosts: tuple[str, ...]
    trusted_proxies: tuple[Network, ...]
    sessions: Sessions | None
    throttle: LoginThrottle

    @classmethod
    def from_settings(cls, settings: CommonSettings, revoked: ReplicatedMap[RevokedSession] | None) -> Access:
        token = settings.admin_token
        sessions = Sessions(token, settings.session_ttl_s, revoked) if token is not None and revoked else None
        return cls(
            token=token,
            allowed_hosts=tuple(settings.allowed_hosts),
            trusted_proxies=tuple(ipaddress.ip_network(p, strict=False) for p in settings.trusted_proxies),
            sessions=sessions,
            throttle=LoginThrottle(settings.login_max_failures, settings.login_lockout_s),
        )

    def client(self, scope: Scope) -> str | None:
        peer = scope.get("client")
        headers = Headers(scope=scope)
        return client_address(peer[0] if peer else None, headers.get("x-forwarded-for"), self.trusted_proxies)

    def over_tls(self, scope: Scope) -> bool:
        """Whether the browser reached us over TLS: directly, or per ``X-Forwarded-Proto`` from a trusted proxy."""
        if scope.get("scheme") in ("https", "wss"):
            return True
        peer = scope.get("client")
        if not in_networks(peer[0] if peer else None, self.trusted_proxies):
            return False
        proto = Headers(scope=scope).get("x-forwarded-proto", "")
        return "https" in (part.strip().lower() for part in proto.split(","))

    def session(self, scope: Scope) -> str | None:
        """The id of the request's running login session, if it has one."""
        if self.sessions is None:
            return None
        cookies = cookie_parser(Headers(scope=scope).get("cookie", ""))
        return self.sessions.verify(cookies.get(SESSION_COOKIE), time.time())

    def decide(self, scope: Scope) -> Decision:
        """Whether the request may use the read side. A wrong bearer token counts against the client's address."""
        headers = Headers(scope=scope)
        if self.token is None:
            if not is_loopback(self.client(scope)):
                return Decision(Verdict.NOT_LOCAL)
            if not host_allowed(headers.get("host"), self.allowed_hosts):
                return Decision(Verdict.FOREIGN_HOST)
            return Decision(Verdict.ALLOWED)
        offered = bearer(headers.get("authorization"))
        if offered is not None:
            return self.try_token(scope, offered)
        if self.session(scope) is not None:
            return Decision(Verdict.ALLOWED, by_cookie=True)
        return Decision(Verdict.NO_CREDENTIAL)

    def try_token(self, scope: Scope, offered: str) -> Decision:
        """Check an offered admin token, throttled per client address."""
        assert self.token is not None
        client = self.client(scope) or "unknown"
        now = time.monotonic()
        wait = self.throttle.wait_s(client, now)
        if wait > 0:
            return Decision(Verdict.THROTTLED, retry_after_s=wait)
        if token_matches(self.token, offered):
            self.throttle.succeeded(client)
            return Decision(Verdict.ALLOWED)
        wait = self.throttle.failed(client, now)
        return Decision(Verdict.WRONG_TOKEN, retry_after_s=wait)

    def rides_on_cookie(self, scope: Scope) -> bool:
        """Whether the request would be let in by the session cookie alone (no bearer header)."""
        return bearer(Headers(scope=scope).get("authorization")) is None and self.session(scope) is not None
