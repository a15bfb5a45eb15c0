"""Where data goes: matching hosts against an allowlist, and judging a destination without one.

One matcher (:func:`domain_allowed`) serves every allowlist of domains a profile holds, so ``*.example.com`` means
the same wherever it is written. Without an allowlist some destinations are still judged by what they are: a known
request collector or file drop, a raw public IP address, a host whose labels carry encoded data, and the services a
credential of a known kind belongs to (a key sent to its own API is being used, not leaked).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from functools import lru_cache

WILDCARD = "*."


def normalise_host(host: str) -> str:
    return host.strip().lower().rstrip(".")


def domain_matches(host: str, entry: str) -> bool:
    """Whether ``host`` is covered by one allowlist ``entry``.

    ``example.com`` and ``*.example.com`` both cover the domain itself and every subdomain (``api.example.com``,
    ``a.b.example.com``): the wildcard form is accepted because people write it, and reading it as "subdomains only"
    would make ``*.example.com`` refuse ``example.com``, which is never what its author meant to allow less of.
    ``example.com.evil.net`` and ``notexample.com`` are not covered."""
    host = normalise_host(host)
    domain = normalise_host(entry)
    if domain.startswith(WILDCARD):
        domain = domain[len(WILDCARD) :]
    if not domain or not host:
        return False
    return host == domain or host.endswith("." + domain)


def domain_allowed(host: str, allowed: Iterable[str]) -> bool:
    """Whether ``host`` is covered by any entry of ``allowed`` (see :func:`domain_matches`)."""
    return any(domain_matches(host, entry) for entry in allowed)


# --- destinations judged without an allowlist ----------------------------------------------------------------------

# Services whose purpose is to receive arbitrary requests or files from anyone and show them to whoever set them up:
# request inspectors, out-of-band interaction servers, tunnels, paste sites and anonymous file drops.
SINK_DOMAINS: frozenset[str] = frozenset(
    {
        # request collectors and out-of-band interaction servers
        "webhook.site",
        "requestbin.com",
        "requestbin.net",
        "requestcatcher.com",
        "pipedream.net",
        "beeceptor.com",
        "hookbin.com",
        "postb.in",
        "ptsv2.com",
        "ptsv3.com",
        "webhookrelay.com",
        "mockbin.org",
        "burpcollaborator.net",
        "oastify.com",
        "interact.sh",
        "oast.fun",
        "oast.live",
        "oast.me",
        "oast.online",
        "oast.pro",
        "oast.site",
        "canarytokens.com",
        "dnslog.cn",
        "ceye.io",
        "requestrepo.com",
        "interactsh.com",
        # tunnels that expose a laptop under a public name
        "ngrok.io",
        "ngrok-free.app",
        "ngrok.app",
        "trycloudflare.com",
        "serveo.net",
        "loca.lt",
        "localhost.run",
        # paste sites and anonymous file drops
        "pastebin.com",
        "paste.ee",
        "hastebin.com",
        "ghostbin.com",
        "dpaste.com",
        "dpaste.org",
        "rentry.co",
        "termbin.com",
        "transfer.sh",
        "file.io",
        "0x0.st",
        "anonfiles.com",
        "gofile.io",
        "catbox.moe",
        "litterbox.catbox.moe",
        "tmpfiles.org",
        "bashupload.com",
        "filebin.net",
        "temp.sh",
        "oshi.at",
        "sendspace.com",
        "uguu.se",
        "pixeldrain.com",
        "keep.sh",
    }
)

# Paths on general-purpose services that act as sinks: anyone holding the URL receives what is posted.
_SINK_PATHS: tuple[tuple[str, str], ...] = (
    ("discord.com", "/api/webhooks/"),
    ("discordapp.com", "/api/webhooks/"),
    ("hooks.slack.com", "/"),
    ("api.telegram.org", "/bot"),
)

# The hosts each known kind of credential is used at (``services.detection.secrets`` names the kinds).
CREDENTIAL_SERVICES: dict[str, tuple[str, ...]] = {
    "openai_api_key": ("openai.com",),
    "anthropic_api_key": ("anthropic.com",),
    "google_api_key": ("googleapis.com", "google.com"),
    "github_token": ("github.com", "githubusercontent.com"),
    "github_fine_grained_token": ("github.com", "githubusercontent.com"),
    "gitlab_token": ("gitlab.com",),
    "sendgrid_key": ("sendgrid.com", "sendgrid.net"),
    "slack_token": ("slack.com",),
    "stripe_live_key": ("stripe.com",),
    "stripe_test_key": ("stripe.com",),
    "huggingface_token": ("huggingface.co",),
    "groq_api_key": ("groq.com",),
    "xai_api_key": ("x.ai",),
    "replicate_token": ("replicate.com",),
    "npm_token": ("npmjs.org", "npmjs.com"),
    "pypi_token": ("pypi.org",),
    "twilio_key": ("twilio.com",),
    "mailchimp_key": ("mailchimp.com",),
    "aws_access_key_id": ("amazonaws.com",),
    "aws_secret_access_key": ("amazonaws.com",),
    "azure_storage_key": ("core.windows.net",),
    "telegram_bot_token": ("api.telegram.org",),
    "discord_bot_token": ("discord.com", "discordapp.com"),
    "square_oauth_secret": ("squareup.com", "squareupsandbox.com"),
    "vault_token": (),  # a Vault server's host is the deployment's own: judged by the allowlist only
}


def credential_belongs_to(kind: str, host: str) -> bool:
    """Whether a credential of ``kind`` sent to ``host`` is being used at its own service."""
    return domain_allowed(host, CREDENTIAL_SERVICES.get(kind, ()))


def is_local_host(host: str) -> bool:
    """Loopback, private and link-local addresses and names that only resolve inside a network."""
    host = normalise_host(host).strip("[]")
    if host in ("localhost", "") or host.endswith((".localhost", ".local", ".internal", ".lan", ".home.arpa")):
        return True
    address = ip_of(host)
    return address is not None and (address.is_private or address.is_loopback or address.is_link_local)


def ip_of(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(normalise_host(host).strip("[]"))
    except ValueError:
        return None


# A label that carries data rather than names something: made of an encoding's alphabet (hex, base32, DNS-safe
# base64) with digits and letters mixed and no hyphen between words, as tools that tunnel data through DNS queries
# write them. Names people choose (``my-app-9f8e7d``, ``d1234abcd.cloudfront.net``) are shorter or hyphenated.
_ENCODED_LABEL = re.compile(r"^(?=(?:[a-z_]*\d){2})(?=(?:[0-9_]*[a-z]){2})[a-z0-9_]{12,63}$")


@lru_cache(maxsize=4096)
def sink_reason(host: str, path: str = "") -> str | None:
    """Why sending anything to ``host`` (with ``path``) moves data out whoever the profile trusts, or None."""
    host = normalise_host(host)
    if not host:
        return None
    if domain_allowed(host, SINK_DOMAINS):
        return "request collector or file drop"
    for domain, prefix in _SINK_PATHS:
        if domain_matches(host, domain) and path.startswith(prefix) and len(path) > len(prefix):
            return "webhook"
    address = ip_of(host)
    if address is not None:
        return "raw IP address" if address.is_global else None
    if dns_labels_carry_data(host):
        return "data chunked into DNS labels"
    return None


def dns_labels_carry_data(host: str) -> bool:
    """A host name whose labels, left of its registered domain, hold encoded data: one encoded label of 24
    characters or more, or encoded chunks adding up to 32 (``6a6f686e2e646f65.40676d61696c2e63.x.attacker.net``)."""
    labels = normalise_host(host).split(".")[:-2]
    encoded = [len(label) for label in labels if _ENCODED_LABEL.match(label)]
    return bool(encoded) and (max(encoded) >= 24 or sum(encoded) >= 32)
