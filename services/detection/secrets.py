"""The one catalogue of secret kinds, and the scan that finds them in a text.

Both the ingress (which masks what it finds before a request leaves, when the profile redacts) and the guard (which
reports what it finds as violations) use this module, so a kind means the same thing to both: same pattern, same
validation, same name.

The provider patterns come from ``detect-secrets`` (Yelp), read from its plugin classes at import so they follow its
releases; patterns it lacks (Anthropic, Google, fine-grained GitHub, Hugging Face, modern OpenAI keys, …) or that it
writes without word boundaries are defined here. Its scanning engine is not used: ``scan_line`` runs every plugin and
filter over every line (about 60 ms for a ten-message request) and its entropy plugins flag hashes and base64.
Instead each rule carries literal triggers and its regex runs only on texts that contain one, all triggers being found
in one Aho-Corasick pass, which keeps a typical request well under a millisecond.

Patterns require what real secrets have (length, word boundaries, a JWT header naming an algorithm) so identifiers
such as UUIDs, git SHAs and ordinary base64 are left alone. Where a secret is only recognisable by its label (an
assignment, an ``Authorization`` value), the span found is the value: the label is not secret.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from detect_secrets.plugins import (
    aws,
    azure_storage_key,
    basic_auth,
    cloudant,
    discord,
    gitlab_token,
    ibm_cos_hmac,
    mailchimp,
    npm,
    openai,
    pypi_token,
    sendgrid,
    slack,
    softlayer,
    square_oauth,
    telegram_token,
    twilio,
)

from schemas.events import Severity
from services.detection.leads import finditer, leading_literals, matches_at
from services.detection.literals import Literals


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    """The kind of secret: ``openai_api_key``, ``private_key``, … (several rules may find one kind)."""
    pattern: re.Pattern[str]
    severity: Severity
    triggers: tuple[str, ...]
    """Literals one of which any match contains; the regex runs only when one is in the text."""
    group: int = 0
    """The capture group holding the secret (0: the whole match)."""
    case: Literal["exact", "lower"] = "exact"
    """Whether the triggers are looked up in the text as is or lowercased."""
    score: float = 0.99
    ascii_anchor: tuple[tuple[str, ...], tuple[int, ...]] | None = None
    """For ASCII text (where ``\\d`` is ``[0-9]``, not any script's digits): literals one of which every match holds
    at one of the given offsets from its start. They replace the triggers there, and the regex is tried only at the
    starts they imply."""


@dataclass(frozen=True, slots=True)
class SecretSpan:
    """One secret found in a text: ``text[start:end]`` is the secret itself (never its label)."""

    kind: str
    severity: Severity
    score: float
    start: int
    end: int
    generic: bool = False
    """Found by its label only (an assignment, a bearer token), not by a provider's own format."""


def _ds(plugin: type, index: int) -> re.Pattern[str]:
    """One pattern of a detect-secrets plugin, as the library ships it."""
    return plugin.denylist[index]  # type: ignore[attr-defined, no-any-return]


_WORD_START = r"(?<![A-Za-z0-9_\-])"
"""Not the continuation of a longer word (``task-…`` holds no ``sk-`` key, ``mydisk_live_`` no Stripe key)."""
_TOKEN_END = r"(?![A-Za-z0-9_\-])"
_PEM_LABEL = r"(?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?"
_AWS_SECRET_LABELS = (
    r"aws_secret_access_key|aws_secret_key|aws-secret-access-key|secretaccesskey|secret_access_key|secret-access-key"
)

RULES: tuple[Rule, ...] = (
    # --- from detect-secrets ---------------------------------------------------------------------------------------
    Rule("aws_secret_access_key", _ds(aws.AWSKeyDetector, 1), "critical", ("aws",), group=1, case="lower"),
    Rule("azure_storage_key", _ds(azure_storage_key.AzureStorageKeyDetector, 0), "critical", ("AccountKey=",)),
    Rule("cloudant_credentials", _ds(cloudant.CloudantDetector, 2), "high", ("cloudant",), group=1, case="lower"),
    Rule("discord_bot_token", _ds(discord.DiscordBotTokenDetector, 0), "high", (".",)),
    *(
        Rule("gitlab_token", p, "high", ("gl", "GR1348941"))
        for p in gitlab_token.GitLabTokenDetector.denylist  # type: ignore[attr-defined]
    ),
    Rule("ibm_cos_hmac", _ds(ibm_cos_hmac.IbmCosHmacDetector, 0), "high", ("secret",), group=1, case="lower"),
    Rule("mailchimp_key", _ds(mailchimp.MailchimpDetector, 0), "high", ("-us",)),
    Rule("npm_token", _ds(npm.NpmDetector, 0), "high", ("_authToken",), group=1),
    Rule("openai_api_key", _ds(openai.OpenAIDetector, 0), "high", ("T3BlbkFJ",)),
    Rule("pypi_token", _ds(pypi_token.PypiTokenDetector, 0), "high", ("pypi-",)),
    Rule("pypi_token", _ds(pypi_token.PypiTokenDetector, 1), "medium", ("pypi-",)),
    Rule("sendgrid_key", _ds(sendgrid.SendGridDetector, 0), "high", ("SG.",)),
    Rule("slack_token", _ds(slack.SlackDetector, 0), "high", ("xox",), case="lower"),
    Rule("slack_webhook", _ds(slack.SlackDetector, 1), "medium", ("hooks.slack.com",), case="lower"),
    Rule("softlayer_key", _ds(softlayer.SoftlayerDetector, 0), "high", ("softlayer", "sl"), group=1, case="lower"),
    Rule("square_oauth_secret", _ds(square_oauth.SquareOAuthDetector, 0), "high", ("sq0csp-",)),
    Rule(
        "telegram_bot_token",
        _ds(telegram_token.TelegramBotTokenDetector, 0),
        "high",
        (":",),
        # \d{8,10}:… : the bot id's last digit and the colon sit 7 to 9 characters after the start.
        ascii_anchor=(tuple(f"{d}:" for d in range(10)), (7, 8, 9)),
    ),
    Rule("twilio_key", _ds(twilio.TwilioKeyDetector, 0), "high", ("AC",)),
    Rule("twilio_key", _ds(twilio.TwilioKeyDetector, 1), "high", ("SK",)),
    # --- written here: kinds detect-secrets lacks, or writes without word boundaries ------------------------------
    Rule(
        "aws_access_key_id",
        re.compile(r"(?<![A-Za-z0-9])(?:A3T[A-Z0-9]|ABIA|ACCA|AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])"),
        "high",
        ("AKIA", "ASIA", "ABIA", "ACCA", "A3T"),
    ),
    Rule(
        # The labels an AWS secret key is written under, quoted or not (the value alone is 40 characters of base64).
        "aws_secret_access_key",
        re.compile(
            rf"(?i:{_AWS_SECRET_LABELS})[\"']?\s*[:=]\s*[\"']?([A-Za-z0-9/+]{{40}})(?![A-Za-z0-9/+=])",
        ),
        "critical",
        ("secret",),
        group=1,
        case="lower",
    ),
    Rule(
        "github_token",
        re.compile(_WORD_START + r"gh[pousr]_[A-Za-z0-9]{36,}(?![A-Za-z0-9])"),
        "high",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
    ),
    Rule(
        "github_fine_grained_token",
        re.compile(_WORD_START + r"github_pat_[A-Za-z0-9_]{40,}"),
        "high",
        ("github_pat_",),
    ),
    Rule(
        "anthropic_api_key",
        re.compile(_WORD_START + r"sk-ant-[a-z]+\d*-[A-Za-z0-9_\-]{32,}" + _TOKEN_END),
        "high",
        ("sk-ant-",),
    ),
    Rule(
        "openai_api_key",
        # Project, service-account and admin keys; legacy keys (32+ letters and digits, with a digit).
        re.compile(
            _WORD_START
            + r"sk-(?:(?:proj|svcacct|admin|None)-[A-Za-z0-9_\-]{32,}|(?=[A-Za-z]*[0-9])[A-Za-z0-9]{32,})"
            + _TOKEN_END
        ),
        "high",
        ("sk-",),
    ),
    Rule("google_api_key", re.compile(_WORD_START + r"AIza[0-9A-Za-z_\-]{35}" + _TOKEN_END), "high", ("AIza",)),
    Rule("huggingface_token", re.compile(r"\bhf_[A-Za-z0-9]{34,40}\b"), "high", ("hf_",)),
    Rule("groq_api_key", re.compile(r"\bgsk_[A-Za-z0-9]{48,56}\b"), "high", ("gsk_",)),
    Rule("xai_api_key", re.compile(r"\bxai-[A-Za-z0-9]{60,100}\b"), "high", ("xai-",)),
    Rule("replicate_token", re.compile(r"\br8_[A-Za-z0-9]{37}\b"), "high", ("r8_",)),
    Rule(
        "stripe_live_key",
        re.compile(_WORD_START + r"[rs]k_live_[0-9a-zA-Z]{24,}(?![A-Za-z0-9])"),
        "critical",
        ("k_live_",),
    ),
    Rule(
        "stripe_test_key",
        re.compile(_WORD_START + r"[rs]k_test_[0-9a-zA-Z]{24,}(?![A-Za-z0-9])"),
        "low",
        ("k_test_",),
        score=0.9,
    ),
    Rule(
        "slack_token",
        re.compile(r"\bxox[abposre]-[A-Za-z0-9]{6,}(?:-[A-Za-z0-9]{4,}){1,4}\b"),
        "high",
        ("xox",),
    ),
    Rule(
        # The armour line, then either the whole block up to its END line, or (a key cut short, or a line that only
        # names the format) the key material that follows: runs of base64 and the PEM header lines. Never beyond.
        "private_key",
        re.compile(
            rf"-----BEGIN {_PEM_LABEL}-----"
            rf"(?:[\s\S]{{0,8192}}?-----END {_PEM_LABEL}-----"
            r"|(?:[ \t]*\r?\n?[ \t]*(?:[A-Za-z][A-Za-z\-]*: [^\r\n]*|[A-Za-z0-9+/]{16,}={0,2}(?![\w.\-])))*)"
        ),
        "critical",
        ("PRIVATE KEY",),
    ),
    Rule(
        "private_key",
        re.compile(r"PuTTY-User-Key-File-[23]: [^\n]+[\s\S]{0,4096}?Private-MAC: \S+"),
        "critical",
        ("PuTTY",),
    ),
    Rule(
        # Unsigned tokens (an empty signature) still carry their claims. The header must decode to JSON naming an
        # algorithm (checked after the match), so dotted base64 is not taken for a token.
        "jwt",
        re.compile(_WORD_START + r"eyJ[A-Za-z0-9_\-]{10,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*"),
        "medium",
        ("eyJ",),
        score=0.95,
    ),
    Rule("npm_token", re.compile(r"\bnpm_[A-Za-z0-9]{36}\b"), "high", ("npm_",)),
    # Webhook URLs: whoever holds one can post into the channel. Formats as Discord and Slack publish them (the same
    # shapes gitleaks' rules describe); Slack's legacy ``/services/`` form comes from detect-secrets above.
    Rule(
        "discord_webhook",
        re.compile(
            r"https://(?:(?:ptb|canary)\.)?discord(?:app)?\.com/api(?:/v\d+)?/webhooks/\d{17,20}/[A-Za-z0-9_\-]{60,68}"
            + _TOKEN_END
        ),
        "high",
        ("discord",),
        case="lower",
    ),
    Rule(
        "slack_webhook",
        re.compile(r"https://hooks\.slack\.com/(?:workflows|triggers)/T[A-Z0-9]+/[A-Z0-9]+/\d+/[A-Za-z0-9]{16,}"),
        "medium",
        ("hooks.slack.com",),
        case="lower",
    ),
    Rule(
        # HashiCorp Vault service, batch and recovery tokens (``hvs.``, ``hvb.``, ``hvr.``, since Vault 1.10).
        "vault_token",
        re.compile(_WORD_START + r"hv[sbr]\.[A-Za-z0-9_\-]{24,}" + _TOKEN_END),
        "high",
        ("hvs.", "hvb.", "hvr."),
    ),
    Rule(
        # Older Vault tokens (``s.`` and 24 characters) are too short a shape to find alone: only under their label.
        "vault_token",
        re.compile(r"(?i:vault[_\- ]?token|x-vault-token)[\"']?\s*[:=]?\s*[\"']?(s\.[A-Za-z0-9]{24})(?![A-Za-z0-9])"),
        "high",
        ("vault",),
        group=1,
        case="lower",
    ),
    Rule(
        # ``curl -u user:password``, ``--user user:password`` (also wget's ``--http-password`` is an assignment).
        "cli_credentials",
        re.compile(r"(?<!\S)(?:-u|--user)(?:\s+|=)[\"']?[^\s:\"'$]{1,64}:([^\s\"']{3,128}?)[\"']?(?=\s|$)"),
        "high",
        ("-u", "--user"),
        group=1,
        score=0.95,
    ),
    # Credentials inside URLs (scheme://user:password@host): the detect-secrets BasicAuth pattern, and a looser one
    # for passwords written with characters that should have been percent-encoded (#, !, …), as people do.
    Rule("url_credentials", _ds(basic_auth.BasicAuthDetector, 0), "high", ("://",), group=1, score=0.97),
    Rule(
        "url_credentials",
        re.compile(r"\b[a-z][a-z0-9+.\-]{1,15}://[^:@/\s\"'<>]{1,64}:([^@/\s\"'<>]{3,128})@[\w\-]+(?:\.[\w\-]+)*"),
        "high",
        ("://",),
        group=1,
        score=0.95,
    ),
)


# Keywords that end the name of a variable, key or header holding a credential (DB_PASSWORD, api_key, SMTP_PASS).
# The regex starts at the keyword, not at the name, so it is only tried where a keyword occurs.
_ASSIGNMENT = re.compile(
    r"(?P<kw>password|passwd|passphrase|pwd|secret(?:[_\-]?key)?|api[_\-]?key|apikey|access[_\-]?(?:key|token)|"
    r"auth[_\-]?token|bearer[_\-]?token|client[_\-]?secret|private[_\-]?key|token|(?<![a-z])pass)"
    r"\b[\"']?\s*(?::=|=>|=|:)\s*"
    r"(?:(?P<q>[\"'`])(?P<qv>[^\"'`\s]{4,200})(?P=q)|(?P<uv>[^\s\"'`,;)(}{\]\[<>]{6,200}))",
)
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_.-")
_ASSIGNMENT_TRIGGERS = ("pass", "pwd", "secret", "key", "token", "bearer", "basic")

# Names ending in "token" or "key" that hold ids rather than credentials (pagination cursors, counters, …).
_NOT_SECRET_NAME = re.compile(
    r"(?:page|next|prev|continuation|cursor|sync|resume|max|num|count|csrf_?form|idempotency)", re.I
)
# Names whose values are digests of secrets, not secrets (a secrets baseline's ``hashed_secret``, ``password_hash``).
_HASH_NAME = re.compile(r"hash|sha\d*|digest|checksum|fingerprint|md5", re.I)
# A password told in prose: "my password is Hunter2Blue!", "the VPN password has been reset to k9#Lm2pq".
_PROSE_PASSWORD = re.compile(
    r"\b(?:password|passwd|passcode|passphrase|pwd)s?\b(?:\s+(?:for|to|of|on)\s+[^\n.:;]{1,40}?)?"
    r"\s+(?:(?:has been |was |is )?(?:changed|reset|set|updated) to|is now|will be|is|was)\s*:?\s+"
    r"(?:(?P<q>[\"'`])(?P<qv>[^\"'`\s]{6,64})(?P=q)|(?P<uv>[^\s\"'`]{6,64}))"
)
_BEARER = re.compile(r"\b(?:Bearer|Basic|token)\s+([A-Za-z0-9_\-.=+/~]{20,})", re.IGNORECASE)

# Every distinct trigger, all found in one pass over the text (exact ones) and one over its lower-cased form.
_EXACT_TRIGGERS = Literals(
    t for r in RULES if r.case == "exact" for t in (*r.triggers, *(r.ascii_anchor[0] if r.ascii_anchor else ()))
)
_LOWER_RULE_TRIGGERS = frozenset(t for r in RULES if r.case == "lower" for t in r.triggers)
# Where an assignment or a bearer token can start, located with the lower-cased triggers (see ``leads``).
_ASSIGNMENT_LEADS = leading_literals(_ASSIGNMENT)
_BEARER_LEADS = leading_literals(_BEARER)  # lower-cased: _BEARER ignores case
_PROSE_LEADS = leading_literals(_PROSE_PASSWORD)
_LOWER_TRIGGERS = Literals(
    [
        *_LOWER_RULE_TRIGGERS,
        *_ASSIGNMENT_TRIGGERS,
        *(_ASSIGNMENT_LEADS.literals if _ASSIGNMENT_LEADS else ()),
        *(_BEARER_LEADS.literals if _BEARER_LEADS else ()),
        *(_PROSE_LEADS.literals if _PROSE_LEADS else ()),
    ]
)


@lru_cache(maxsize=4096)
def may_be_label(name: str) -> bool:
    """Whether ``name`` (a JSON key) holds a lower-case trigger: only then can it be the label a secret is known by,
    and a value under it must be read together with it. Other keys (``role``, ``content``) add nothing to a scan."""
    return bool(_LOWER_TRIGGERS.present(name.lower()))


def _rules_by_trigger(ascii_text: bool) -> dict[str, tuple[int, ...]]:
    """Trigger -> indexes of the rules it lets run, so that a text's few triggers pick its rules directly."""
    index: dict[str, list[int]] = {}
    for k, rule in enumerate(RULES):
        triggers = rule.ascii_anchor[0] if ascii_text and rule.ascii_anchor is not None else rule.triggers
        for t in triggers:
            index.setdefault(t, []).append(k)
    return {t: tuple(ks) for t, ks in index.items()}


_RULES_BY_TRIGGER = {True: _rules_by_trigger(True), False: _rules_by_trigger(False)}

# Values that are placeholders, references or examples rather than credentials.
_PLACEHOLDER = re.compile(
    r"^(?:\$\{?[\w.]+\}?|\{\{.*\}\}|<[^>]*>|%\(?\w*\)?s|\*+|x{3,}|\.{3,}|…|"
    r"(?:your|my|the|some|example|sample|dummy|fake|test|placeholder|redacted|changeme|change_me|secret|password|"
    r"passwd|none|null|nil|true|false|undefined|required|optional|string|str|empty|hidden|masked|env|token|"
    r"xxx+|abc123|123456|password123)(?:[_\-\s][\w\-]*)?)$",
    re.IGNORECASE,
)
_CODE_VALUE = re.compile(
    r"^(?:os\.|env\.|process\.env|getpass|input\(|get_|settings\.|config\.|self\.|request\.)|\(|\)"
)


_PLACEHOLDER_WORDS = ("your", "example", "placeholder", "changeme", "redacted", "dummy", "xxxx", "****", "here")

# Credentials the providers print in their own documentation (AWS, Azure's storage emulator, Stripe, GitHub, Slack,
# jwt.io): public, never valid, and copied everywhere. Most carry EXAMPLE and are caught by the markers below.
_DOCUMENTED_EXAMPLES = frozenset(
    {
        "AKIAIOSFODNN7EXAMPLE",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "AKIAI44QH8DHBEXAMPLE",
        "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY",
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==",
        "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
        "sk_test_BQokikJOvBiI2HlWgH4olfQ2",
        "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
        "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy",
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIy"
        "fQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
    }
)
# Words that mark a key-shaped value as a stand-in: ``sk-proj-your-key-here``, ``AKIA…EXAMPLE``.
_EXAMPLE_MARKERS = ("example", "your", "placeholder", "changeme", "replace", "dummy", "sample", "fake", "redacted")
_REPEATED_RUN = re.compile(r"(.)\1{7}")


def is_example_value(value: str, *, sequences: bool = True) -> bool:
    """Whether a value in a real key's shape is a documentation example or a placeholder (``.env.example``): a
    published example, a marker word, a run of one character (``xxxxxxxx``, ``00000000``) or a counting sequence
    (``1234567890abcdef``). Random key material has none of these: a run of eight equal characters has odds of
    about 1 in 10^12 at any position of a base62 key."""
    if any(example in value for example in _DOCUMENTED_EXAMPLES):
        return True
    lowered = value.lower()
    if any(marker in lowered for marker in _EXAMPLE_MARKERS) or _REPEATED_RUN.search(value):
        return True
    if not sequences:
        return False
    steps = sum(1 for a, b in itertools.pairwise(lowered) if ord(b) - ord(a) == 1)
    return len(value) >= 16 and steps * 2 >= len(value)


# A link where a password was expected: "reset your password: https://…" names a page, not a password.
_LINK_VALUE = re.compile(r"(?i)^(?:https?|ftp)://|^www\.")


def _is_credential_value(value: str, quoted: bool) -> bool:
    if _PLACEHOLDER.match(value) or _CODE_VALUE.search(value) or _LINK_VALUE.match(value):
        return False
    lowered = value.lower()
    if any(w in lowered for w in _PLACEHOLDER_WORDS):
        return False
    # A value found by its label only is not judged by counting sequences: short test tokens in code are written
    # that way, and a label says more about a value than its letters do.
    if len(set(value)) < 4 or is_example_value(value, sequences=False):
        return False
    if not quoted:
        # Unquoted values in prose ("password: required") are words; a credential mixes classes of characters.
        classes = sum(
            (any(c.islower() for c in value), any(c.isupper() for c in value), any(c.isdigit() for c in value))
        ) + any(not c.isalnum() for c in value)
        if classes < 2 or value.replace("_", "").replace("-", "").isalpha():
            return False
    # Attribute access or a dotted name (``settings.SECRET_KEY``) is code, not a value.
    return not re.fullmatch(r"[A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)+", value)


def _jwt_is_valid(token: str) -> bool:
    """A JWT whose header decodes to JSON naming an algorithm, so random dotted base64 is not taken for one."""
    head = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return False
    return isinstance(header, dict) and "alg" in header


def _span(match: re.Match[str], group: int) -> tuple[int, int]:
    return match.span(group) if group and match.group(group) is not None else match.span(0)


def find_secrets(text: str) -> list[SecretSpan]:
    """Every secret in ``text``, sorted by start and never overlapping: of overlapping matches the most specific (a
    provider's format over a label) and then the longest is kept."""
    return _dedupe(_matches(text))


def secret_regions(text: str) -> list[SecretSpan]:
    """The regions of ``text`` to mask, sorted and disjoint: overlapping matches make one region covering them all,
    named after the match ``find_secrets`` keeps. Masking these leaves nothing that any rule matched."""
    spans = sorted(_matches(text), key=lambda s: s.start)
    regions: list[SecretSpan] = []
    cluster: list[SecretSpan] = []
    end = -1
    for span in [*spans, None]:
        if span is not None and span.start < end:
            cluster.append(span)
            end = max(end, span.end)
            continue
        if cluster:
            best = max(cluster, key=_rank)  # ties: the first to start
            regions.append(SecretSpan(best.kind, best.severity, best.score, cluster[0].start, end, best.generic))
        if span is not None:
            cluster, end = [span], span.end
    return regions


def _matches(text: str) -> list[SecretSpan]:
    """Every match of every rule, overlapping or not."""
    if len(text) < 8:
        return []
    lower = text.lower()
    ascii_text = text.isascii()
    exact_located = _EXACT_TRIGGERS.locate(text)
    present = _EXACT_TRIGGERS.present(text, exact_located)
    located = _LOWER_TRIGGERS.locate(lower)
    lower_present = _LOWER_TRIGGERS.present(lower, located)
    present.update(lower_present & _LOWER_RULE_TRIGGERS)
    spans: list[SecretSpan] = []
    examples: list[tuple[int, int]] = []  # values in a provider's key shape that are placeholders or examples
    by_trigger = _RULES_BY_TRIGGER[ascii_text]
    # The rules with a trigger in the text, in their order (it decides between equally ranked overlapping spans).
    for k in sorted({k for t in present for k in by_trigger.get(t, ())}):
        rule = RULES[k]
        if ascii_text and rule.ascii_anchor is not None:
            anchors, offsets = rule.ascii_anchor
            starts = [at - d for lit in anchors for at in exact_located.get(lit, ()) for d in offsets if at >= d]
            matches = matches_at(rule.pattern, text, starts)
        else:
            matches = rule.pattern.finditer(text)
        for m in matches:
            start, end = _span(m, rule.group)
            value = text[start:end]
            if rule.name == "jwt" and not _jwt_is_valid(value):
                continue
            if rule.name == "url_credentials" and not _is_credential_value(value, quoted=True):
                continue
            if rule.name == "cli_credentials" and not _is_credential_value(value, quoted=False):
                continue
            if rule.name != "private_key" and is_example_value(value):
                examples.append((start, end))
                continue
            spans.append(SecretSpan(rule.name, rule.severity, rule.score, start, end))
    if not lower_present.isdisjoint(_ASSIGNMENT_TRIGGERS):
        # A label over a value already recognised as a provider's placeholder (OPENAI_API_KEY=sk-…xxxx) adds nothing.
        spans.extend(
            span
            for span in _assignments(text, lower, located)
            if all(span.end <= lo or span.start >= hi for lo, hi in examples)
        )
    return spans


def _assignments(text: str, lower: str, located: dict[str, list[int]]) -> list[SecretSpan]:
    """Credentials written into assignments and authorization headers; ``located`` is ``_LOWER_TRIGGERS.locate``."""
    found: list[SecretSpan] = []
    for m in finditer(_ASSIGNMENT, lower, _ASSIGNMENT_LEADS, located):
        quoted = m.group("qv") is not None
        group = "qv" if quoted else "uv"
        start, end = m.span(group)
        value = text[start:end]  # matched on the lower-cased text, read from the original
        if not _is_credential_value(value, quoted):
            continue
        name_start = m.start("kw")
        while name_start > 0 and lower[name_start - 1] in _NAME_CHARS:
            name_start -= 1
        name = lower[name_start : m.end("kw")]
        if _HASH_NAME.search(name):
            continue
        is_password = any(k in name for k in ("pass", "pwd"))
        # Short or single-class values under generic names (token: "abc12") are ids or examples more often than
        # credentials, and some names ending in "token" hold cursors.
        if not is_password and (
            len(value) < 12 or _NOT_SECRET_NAME.search(name) or not _is_credential_value(value, quoted=False)
        ):
            continue
        kind = "password_assignment" if is_password else "generic_secret_assignment"
        found.append(SecretSpan(kind, "high", 0.9 if is_password else 0.85, start, end, generic=True))
    for m in finditer(_PROSE_PASSWORD, lower, _PROSE_LEADS, located):
        quoted = m.group("qv") is not None
        start, end = m.span("qv" if quoted else "uv")
        value = text[start:end]
        if not quoted:
            trimmed = value.rstrip(".,;:)")  # the sentence's own punctuation
            end -= len(value) - len(trimmed)
            value = trimmed
        if len(value) >= 6 and _is_credential_value(value, quoted):
            found.append(SecretSpan("password_in_text", "high", 0.9, start, end, generic=True))
    # _BEARER ignores case: its lower-cased leads locate it in the lower-cased text when the text is ASCII.
    for m in finditer(_BEARER, text, _BEARER_LEADS if text.isascii() else None, located):
        value = m.group(1)
        if _is_credential_value(value, quoted=False):
            start, end = m.span(1)
            found.append(SecretSpan("bearer_token", "high", 0.9, start, end, generic=True))
    return found


def _rank(span: SecretSpan) -> tuple[int, int]:
    return (0 if span.generic else 1, span.end - span.start)


def _dedupe(spans: list[SecretSpan]) -> list[SecretSpan]:
    """Keep one span per region: a specific provider rule wins over a generic one, then the longer span."""
    if len(spans) < 2:
        return spans
    kept: list[SecretSpan] = []
    for s in sorted(spans, key=_rank, reverse=True):
        if all(s.end <= k.start or s.start >= k.end for k in kept):
            kept.append(s)
    return sorted(kept, key=lambda s: s.start)
