"""Data leaving through the model's actions, judged by where it goes and what the action does.

A tool call is read for its destinations: URLs, e-mail recipients, ``git push`` remotes, hosts named to DNS tools.

- Some destinations move data out whoever the profile trusts (``services.detection.destinations``): request
  collectors and file drops, raw public IP addresses, hosts whose labels carry encoded data, webhooks; and a ``git
  push`` to a remote named by URL rather than the repository's own (``origin``, ``upstream``) unless allowlisted.
- URLs whose query string or path carries a long or encoded value, whatever the host.
- With an allowlist configured, any other host or recipient domain outside it.
- Secrets and personal data in the arguments of a call that sends something out (it has a destination that is not
  local, or its name says it sends: ``send_email``, ``http_request``, ``upload``…). A credential of a known kind sent
  only to its own service (a SendGrid key to ``api.sendgrid.com``) is being used, not leaked; nor is a password or
  bearer token in the authorization part of a request (a header, ``curl -u``) to the host it is for.
- A local action (``write_file``, ``git commit``, a SQL insert into a local database) moves nothing out: secrets and
  personal data in its arguments are reported under their own category, not as exfiltration.
- Markdown or HTML images and links in answers whose URL carries data or points at a sink.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from services.detection.destinations import credential_belongs_to, domain_allowed, is_local_host, sink_reason
from services.guard.detectors._hits import REDACTED, Hit
from services.guard.detectors.pii import find_pii
from services.guard.detectors.secrets import find_secrets

_URL = re.compile(r"\b(?:https?|ftp|wss?)://[^\s\"'<>()\[\]{}`]+", re.IGNORECASE)
_EMAIL = re.compile(r"(?<![\w.%+\-:])[A-Za-z0-9][A-Za-z0-9._%+\-]{0,63}@((?:[A-Za-z0-9\-]{1,63}\.)+[A-Za-z]{2,24})\b")
_MD_IMAGE = re.compile(r"!\[[^\]\n]{0,200}\]\(\s*<?(https?://[^\s)>]+)>?(?:\s+\"[^\"]*\")?\s*\)", re.IGNORECASE)
_MD_LINK = re.compile(r"(?<!!)\[[^\]\n]{0,200}\]\(\s*<?(https?://[^\s)>]+)>?(?:\s+\"[^\"]*\")?\s*\)", re.IGNORECASE)
_HTML_IMAGE = re.compile(r"<img\b[^>]{0,200}?\bsrc\s*=\s*[\"']?(https?://[^\s\"'>]+)", re.IGNORECASE)
_HTML_LINK = re.compile(r"<a\b[^>]{0,200}?\bhref\s*=\s*[\"']?(https?://[^\s\"'>]+)", re.IGNORECASE)
_ENCODED = re.compile(r"^(?:[A-Za-z0-9+/_\-]{24,}={0,2}|(?:[0-9a-fA-F]{2}){16,}|(?:%[0-9A-Fa-f]{2}){8,}.*)$")
_DATA_KEYS = frozenset({"body", "content", "data", "text", "message", "payload", "html", "markdown", "file", "note"})
_RECIPIENT_KEYS = frozenset({"to", "cc", "bcc", "recipient", "recipients", "email", "address", "reply_to", "from"})
# Where a credential is presented rather than carried: a request's authorization.
_AUTH_KEYS = frozenset(
    {"authorization", "auth", "headers", "x-api-key", "api_key", "apikey", "token", "password", "user", "username"}
)
_AUTH_CONTEXT = re.compile(r"(?i)(?:-u|--user|authorization:|--header|-h|bearer|basic|token|--password|-p)\s*['\"]?$")

# A ``git push`` and what follows it up to the end of the command.
_GIT_PUSH = re.compile(r"\bgit\s+push\b([^\n;&|]*)")
_GIT_REMOTE_ADD = re.compile(r"\bgit\s+remote\s+(?:add|set-url)\s+(\S+)\s+(\S+)")
_SCP_REMOTE = re.compile(r"^(?:[\w.\-]+@)?([A-Za-z0-9.\-]+\.[A-Za-z]{2,}):(?!//)")
_OWN_REMOTES = frozenset({"origin", "upstream"})
# Hosts named to DNS tools: a lookup is a request to whoever serves the zone.
_DNS_QUERY = re.compile(r"\b(?:dig|nslookup|host|drill|ping)\s+(?:[-+@]\S+\s+)*([A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]+)+)")

# Tool names: verbs that hand data to someone, and verbs that only act on local state.
_OUTBOUND_NAME = re.compile(
    r"(?i)(?:^|[_\-.\s]|(?<=[a-z])(?=[A-Z]))(?:send|post|upload|share|publish|e?mail|webhook|http|request|fetch|curl|"
    r"wget|forward|notify|tweet|sms|transfer|browse|navigate|open_?url|visit|invite|reply)"
)
_SHELL_NAME = re.compile(r"(?i)(?:bash|shell|terminal|exec|run|command|cmd|sh)\b")


def host_allowed(host: str, allowed: frozenset[str]) -> bool:
    """A host is allowed when an allowlist entry covers it (``services.detection.destinations.domain_allowed``)."""
    return domain_allowed(host, allowed)


def carries_data(url: str) -> str | None:
    """Why a URL looks like it carries data out (a long or encoded query value or path segment), or None."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    host = parts.hostname or ""
    for _key, value in parse_qsl(parts.query, keep_blank_values=True):
        if len(value) >= 64:
            return "long query value"
        if len(value) >= 24 and _ENCODED.match(value):
            if any(credential_belongs_to(s.detector.split(".", 1)[1], host) for s in find_secrets(value)):
                continue  # a key sent to its own API (``?key=`` to Google): used, not carried
            return "encoded query value"
        if value:
            secrets = [s for s in find_secrets(value) if not credential_belongs_to(s.detector.split(".", 1)[1], host)]
            if secrets or find_pii(value):
                return "sensitive query value"
    for segment in parts.path.split("/"):
        segment = unquote(segment)
        if len(segment) >= 48 and _ENCODED.match(segment):
            return "encoded path segment"
    return None


def _walk(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """(path, string) for every string in parsed JSON arguments, e.g. ``arguments.headers.Authorization``."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            key = str(k)
            yield from _walk(v, f"{path}.{key}" if re.fullmatch(r"[A-Za-z_][\w\-]*", key) else f"{path}[{key!r}]")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk(v, f"{path}[{i}]")


def _mask_url(url: str) -> str:
    """Scheme, host and path are shown; query values are the data and are masked."""
    parts = urlsplit(url)
    shown = f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}{parts.path[:60]}"
    return shown + ("?" + REDACTED if parts.query else "")


def _hit(detector: str, severity: str, score: float, start: int, end: int, mask: str, note: str) -> Hit:
    return Hit(f"exfiltration.{detector}", "exfiltration", severity, score, start, end, mask, note=note)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class _Destination:
    host: str
    local: bool


def _key(path: str) -> str:
    return re.split(r"[.\[]", path.rsplit(".", 1)[-1])[0].lower()


def _destinations(
    path: str, text: str, allowed: frozenset[str], sends: bool, local: bool = False
) -> tuple[list[Hit], list[_Destination]]:
    """The hits and the destinations of one string of a tool call's arguments; ``sends``: the tool's name says it
    sends something, so an address outside its data fields is a recipient; ``local``: the tool's name says it acts
    on local state only (writes a file or a note)."""
    hits: list[Hit] = []
    dests: list[_Destination] = []
    # The data a local action writes (a note's text, a file's content): the URLs in it are content, not where the
    # call sends anything. Sinks and URLs that carry data are still reported, as a link left to be opened later.
    local_data = local and _key(path) in _DATA_KEYS
    if "://" in text:
        for m in _URL.finditer(text):
            url = m.group(0).rstrip(".,;:!?")
            try:
                parts = urlsplit(url)
                host = parts.hostname or ""
            except ValueError:
                continue
            start, end = m.start(), m.start() + len(url)
            sink = sink_reason(host, parts.path)
            reason = carries_data(url)
            if not local_data or sink or reason:
                dests.append(_Destination(host, is_local_host(host)))
            if sink:
                hits.append(
                    _hit("sink_destination", "high", 0.9, start, end, _mask_url(url), f"{_mask_url(url)} ({sink})")
                )
            elif reason:
                hits.append(
                    _hit(
                        "data_in_url",
                        "high",
                        0.9,
                        start,
                        end,
                        _mask_url(url),
                        f"{_mask_url(url)} ({reason} sent to {host})",
                    )
                )
            elif local_data:
                continue  # a link written into a note or file by a local action goes nowhere
            elif allowed and host and not is_local_host(host) and not host_allowed(host, allowed):
                hits.append(
                    _hit(
                        "unlisted_destination",
                        "medium",
                        0.7,
                        start,
                        end,
                        _mask_url(url),
                        f"{_mask_url(url)} (host not allowed)",
                    )
                )
    if "@" in text and (_key(path) in _RECIPIENT_KEYS or (sends and _key(path) not in _DATA_KEYS)):
        for m in _EMAIL.finditer(text):
            domain = m.group(1)
            if text[m.end() : m.end() + 1] == ":":
                continue  # git@host:org/repo: a remote, read below
            dests.append(_Destination(domain, is_local_host(domain)))
            masked = m.group(0)[:1] + REDACTED + "@" + domain
            sink = sink_reason(domain)
            if sink:
                hits.append(_hit("sink_destination", "high", 0.9, m.start(), m.end(), masked, f"{masked} ({sink})"))
            elif allowed and not host_allowed(domain, allowed):
                hits.append(
                    _hit(
                        "unlisted_recipient",
                        "medium",
                        0.7,
                        m.start(),
                        m.end(),
                        masked,
                        f"{masked} (recipient domain not allowed)",
                    )
                )
    if "git" in text and "push" in text:
        for start, end, host in _git_push_remotes(text):
            dests.append(_Destination(host, is_local_host(host)))
            if not is_local_host(host) and not (allowed and host_allowed(host, allowed)):
                note = f"git push to {host} (a remote outside the allowed domains)"
                hits.append(_hit("git_push_remote", "high", 0.9, start, end, f"git push {host}", note))
    for m in _DNS_QUERY.finditer(text):
        host = m.group(1)
        dests.append(_Destination(host, is_local_host(host)))
        sink = sink_reason(host)
        if sink:
            hits.append(_hit("sink_destination", "high", 0.9, m.start(1), m.end(1), REDACTED, f"DNS query ({sink})"))
    return hits, dests


def _git_push_remotes(text: str) -> list[tuple[int, int, str]]:
    """(start, end, host) of every ``git push`` to a remote given by URL, or by a name the same text set a URL for."""
    named = {m.group(1): m.group(2) for m in _GIT_REMOTE_ADD.finditer(text)}
    found = []
    for m in _GIT_PUSH.finditer(text):
        for token in m.group(1).split():
            if token.startswith("-"):
                continue
            target = named.get(token, token) if token not in _OWN_REMOTES else None
            if target is None:
                break
            host = _remote_host(target)
            if host:
                found.append((m.start(), m.end(), host.lower()))
            break  # the first operand is the remote
    return found


def _remote_host(target: str) -> str | None:
    if "://" in target:
        try:
            return urlsplit(target).hostname
        except ValueError:
            return None
    scp = _SCP_REMOTE.match(target)
    return scp.group(1) if scp else None


def _in_auth_position(path: str, text: str, start: int) -> bool:
    """Whether a credential at ``start`` is presented as authorization (a header, a ``-u`` option, a user-info)."""
    if _key(path) in _AUTH_KEYS or ".headers" in path.lower():
        return True
    before = text[max(0, start - 24) : start]
    return bool(_AUTH_CONTEXT.search(before)) or (before.endswith(":") and "://" in before)


def scan_call(
    name: str, arguments: Any, *, allowed_domains: frozenset[str] = frozenset()
) -> list[tuple[str, str, Hit]]:
    """(path, string, hit) for what a tool call ``name(arguments)`` would move out, and for the secrets and personal
    data a local action holds (under their own category)."""
    strings = list(_walk(arguments, "arguments"))
    found: list[tuple[str, str, Hit]] = []
    destinations: list[_Destination] = []
    shell = bool(_SHELL_NAME.search(name))
    sends = bool(_OUTBOUND_NAME.search(name)) and not shell
    for path, text in strings:
        hits, dests = _destinations(path, text, allowed_domains, sends, local=not sends and not shell)
        destinations += dests
        found.extend((path, text, h) for h in hits)
    remote = [d.host for d in destinations if not d.local]
    outbound = bool(remote) or sends
    sink = any(h.detector == "exfiltration.sink_destination" for _p, _t, h in found)
    for path, text in strings:
        for h in find_secrets(text):
            kind = h.detector.split(".", 1)[1]
            if not outbound:
                found.append((path, text, h))
                continue
            if remote and all(credential_belongs_to(kind, host) for host in remote):
                continue  # a key sent to its own service
            generic = kind in _GENERIC_SECRETS
            if generic and not sink and (kind in _PRESENTED or _in_auth_position(path, text, h.start)):
                continue  # a credential presented to the host it is for
            severity = "critical" if h.severity in ("high", "critical") else "high"
            detector = "exfiltration.secret_in_arguments." + kind
            found.append((path, text, Hit(detector, "exfiltration", severity, h.score, h.start, h.end, h.mask)))
        for h in find_pii(text):
            key = _key(path)
            if h.detector == "pii.email" and (key not in _DATA_KEYS or _is_destination(text, h)):
                continue  # an address in a "to" field is where data goes, not data
            if not outbound:
                found.append((path, text, h))
                continue
            severity = "high" if h.severity == "high" else "medium"
            detector = h.detector.replace("pii.", "exfiltration.pii_in_arguments.")
            found.append(
                (path, text, Hit(detector, "exfiltration", severity, h.score * 0.9, h.start, h.end, h.mask))  # type: ignore[arg-type]
            )
    return found


def _is_destination(text: str, hit: Hit) -> bool:
    """An address at the start of a recipient list written into a data field (``"to: a@b.c"``)."""
    return bool(re.search(r"(?i)\b(?:to|cc|bcc)\s*:\s*$", text[max(0, hit.start - 8) : hit.start]))


_GENERIC_SECRETS = frozenset(
    {
        "password_assignment",
        "password_in_text",
        "generic_secret_assignment",
        "bearer_token",
        "url_credentials",
        "cli_credentials",
    }
)
# Kinds found only where a credential is presented: the user-info of a URL, ``curl -u``.
_PRESENTED = frozenset({"url_credentials", "cli_credentials"})


def scan_rendered_text(text: str, *, allowed_domains: frozenset[str] = frozenset()) -> list[Hit]:
    """Images and links in an answer (markdown or HTML) whose URL carries data or points at a sink; images also when
    they point outside the allowed domains (the client fetches an image without any click)."""
    if "](" not in text and "<img" not in text.lower() and "<a" not in text.lower():
        return []
    hits: list[Hit] = []
    for pattern, what in ((_MD_IMAGE, "image"), (_HTML_IMAGE, "image"), (_MD_LINK, "link"), (_HTML_LINK, "link")):
        for m in pattern.finditer(text):
            url = m.group(1)
            try:
                parts = urlsplit(url)
            except ValueError:
                continue
            host = parts.hostname or ""
            reason = sink_reason(host, parts.path) or carries_data(url)
            masked = _mask_url(url)
            if reason:
                hits.append(
                    _hit(
                        f"{what}_url_data",
                        "high",
                        0.9 if what == "image" else 0.85,
                        m.start(),
                        m.end(),
                        masked,
                        f"{what} {masked} ({reason})",
                    )
                )
            elif what == "image" and allowed_domains and host and not host_allowed(host, allowed_domains):
                hits.append(
                    _hit(
                        "image_unlisted_host",
                        "medium",
                        0.6,
                        m.start(),
                        m.end(),
                        masked,
                        f"image {masked} (host not allowed)",
                    )
                )
    return hits
