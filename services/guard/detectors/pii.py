"""Personal data in text: e-mail addresses, phone numbers, payment cards, IBANs, US social security numbers, IPs.

Every candidate found by a cheap regex is then validated the way the number itself allows: Luhn and issuer ranges for
cards, mod-97 and the national format for IBANs (``python-stdnum``), the numbering plan for phone numbers
(``phonenumbers``), the SSA's never-issued ranges for SSNs, the ``ipaddress`` module for IPs. Validation is what keeps
hashes, order numbers, dates and version strings out.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import ipaddress
import re
from collections.abc import Iterator
from functools import lru_cache
from urllib.parse import unquote

import phonenumbers
from stdnum import iban as stdnum_iban

from services.detection.leads import finditer, leading_literals
from services.detection.literals import Literals
from services.guard.detectors._hits import REDACTED, Hit, mask_tail
from services.guard.detectors.identity import find_identity

# --- e-mail -------------------------------------------------------------------------------------------------------

_EMAIL = re.compile(r"(?<![\w.%+\-])[A-Za-z0-9][A-Za-z0-9._%+\-]{0,63}@(?:[A-Za-z0-9\-]{1,63}\.)+[A-Za-z]{2,24}\b(?!@)")
# Asset names like icon@2x.png look like addresses; their "top-level domain" is a file extension.
_FILE_TLDS = frozenset(
    [
        "png",
        "jpg",
        "jpeg",
        "gif",
        "svg",
        "webp",
        "bmp",
        "ico",
        "js",
        "mjs",
        "ts",
        "css",
        "scss",
        "html",
        "htm",
        "py",
        "rb",
        "go",
        "rs",
        "java",
        "json",
        "yaml",
        "yml",
        "xml",
        "txt",
        "md",
        "pdf",
        "zip",
        "gz",
        "tar",
        "mp3",
        "mp4",
        "wav",
        "lock",
        "toml",
        "ini",
        "cfg",
    ]
)
_SERVICE_LOCALS = frozenset({"git", "noreply", "no-reply", "donotreply", "mailer-daemon", "postmaster"})
# Mailboxes of a role, a team or a machine, not of a person (RFC 2142's names and the ones businesses print).
_ROLE_NAMES = """support help helpdesk info information contact contacts sales billing finance accounts accounting
    accountspayable
    ap ar invoices invoice payments payment orders order returns admin administrator webmaster hostmaster abuse
    security privacy legal compliance hr jobs careers recruiting press media marketing team hello office service
    services customerservice customer-service customer.service feedback newsletter news notifications notification
    notify alerts alert bounce bounces mailer daemon root ops it devops engineering dev enquiries inquiries booking
    bookings reservations reception tickets ticket procurement purchasing shipping logistics partners partner
    customercare accountsreceivable investors ir dpo gdpr office-manager frontdesk front-desk reply do-not-reply
    do_not_reply no_reply noreply-notifications notifications-noreply updates"""
_ROLE_LOCALS = frozenset(_ROLE_NAMES.split())
_ROLE_PREFIX = re.compile(
    r"^(?:no-?reply|do-?not-?reply|notifications?|bounces?|mailer|abuse|postmaster|hostmaster|webmaster)"
    r"(?:[+\-_.].*|complaints|reports?|desk|team)?$"
)


def is_role_mailbox(local: str) -> bool:
    """A mailbox that belongs to a role, a team or a machine (``support@``, ``finance@``, ``noreply+x@``)."""
    local = local.lower().split("+", 1)[0]
    if local in _SERVICE_LOCALS or local in _ROLE_LOCALS or _ROLE_PREFIX.match(local):
        return True
    return local.replace("-", "").replace("_", "").replace(".", "") in _ROLE_LOCALS  # accounts-payable, customer_care


# ``scheme://user:password@host``: the part before the "@" is a credential, not a mailbox.
_USERINFO_BEFORE = re.compile(r"://[^\s/@]*:$")


# What of an address comes before its "@": the address regex is only tried where this ends at an "@".
_EMAIL_LOCAL = re.compile(r"(?<![\w.%+\-])[A-Za-z0-9][A-Za-z0-9._%+\-]{0,63}@")


def _email_matches(text: str) -> Iterator[re.Match[str]]:
    """``_EMAIL.finditer(text)``, without trying the address regex at every letter of the text.

    A match's local part is a run of at most 64 local characters, none of them "@", that starts where the character
    before is not one (the lookbehind): so the match's "@" is the first one after its start, and the match can only
    start at the beginning of the run before that "@". One candidate per "@", found in the 64 characters before it."""
    pos = 0
    while (at := text.find("@", pos)) >= 0:
        local = _EMAIL_LOCAL.search(text, max(pos, at - 64), at + 1)
        m = _EMAIL.match(text, local.start()) if local is not None else None
        if m is not None:
            yield m
            pos = m.end()
        else:
            pos = at + 1


def _emails(text: str) -> list[Hit]:
    hits = []
    for m in _email_matches(text):
        local, _, domain = m.group(0).rpartition("@")
        tld = domain.rsplit(".", 1)[-1].lower()
        if tld in _FILE_TLDS or is_role_mailbox(local):
            continue
        if _USERINFO_BEFORE.search(text, max(0, m.start() - 256), m.start()):
            continue
        if text[m.end() : m.end() + 1] == ":" and text[m.end() + 1 : m.end() + 2] not in (" ", ""):
            continue  # git@host:org/repo is an SSH remote, not a mailbox
        mask = local[:1] + REDACTED + "@" + domain
        hits.append(Hit("pii.email", "pii", "medium", 0.95, m.start(), m.end(), mask))
    return hits


# --- payment cards --------------------------------------------------------------------------------------------------

# Not inside a longer token of letters and digits: a run of digits in a hex digest ("…2c4410760818393238fa…") is no
# card, however its digits add up.
_CARD = re.compile(r"(?<![\w.,\-/])\d{4}(?:[ \-]?\d){9,15}(?![\w])(?![.,]\d)")
# Issuer ranges (IIN prefixes) of the schemes in use: Visa, Mastercard, Amex, Discover, JCB, Diners, UnionPay, Maestro.
_CARD_PREFIX = re.compile(
    r"^(?:4\d{12}(?:\d{3}){0,2}|5[1-5]\d{14}|2(?:2[2-9][1-9]|2[3-9]\d|[3-6]\d\d|7[01]\d|720)\d{12}|3[47]\d{13}|"
    r"6(?:011|5\d\d|4[4-9]\d)\d{12,15}|35(?:2[89]|[3-8]\d)\d{12,15}|3(?:0[0-5]|[68]\d)\d{11,16}|62\d{14,17}|"
    r"(?:5018|5020|5038|5893|6304|6759|676[1-3])\d{8,15})$"
)


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


_IBAN_PREFIX = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4})* ?$")


def _in_regions(pattern: re.Pattern[str], text: str, regions: list[tuple[int, int]]) -> list[re.Match[str]]:
    """Matches of ``pattern`` inside the given regions only (lookbehinds still see the text before a region)."""
    return [m for lo, hi in regions for m in pattern.finditer(text, lo, hi)]


# Card numbers the payment processors publish for testing (Stripe, Adyen, Braintree, PayPal, Worldpay): they pass
# every check a real number passes, and appear in code, docs and test logs, never on a person's card.
TEST_CARDS = frozenset(
    {
        "4111111111111111",
        "4242424242424242",
        "4000056655665556",
        "4012888888881881",
        "4222222222222",
        "4000000000000002",
        "4000000000009995",
        "4000000000000077",
        "4000000000003220",
        "4000002500003155",
        "4000000000000101",
        "4917610000000000",
        "4444333322221111",
        "4005519200000004",
        "4009348888881881",
        "4012000033330026",
        "4012000077777777",
        "4217651111111119",
        "4500600000000061",
        "5555555555554444",
        "5105105105105100",
        "5200828282828210",
        "5454545454545454",
        "5425233430109903",
        "2223003122003222",
        "2222420000001113",
        "2223000048410010",
        "378282246310005",
        "371449635398431",
        "378734493671000",
        "6011111111111117",
        "6011000990139424",
        "6011000400000000",
        "3056930009020004",
        "30569309025904",
        "38520000023237",
        "36227206271667",
        "3566002020360505",
        "3530111333300000",
        "3566111111111113",
        "6200000000000005",
        "6759649826438453",
    }
)


def _cards(text: str, regions: list[tuple[int, int]]) -> list[Hit]:
    hits = []
    for m in _in_regions(_CARD, text, regions):
        raw = m.group(0)
        if _IBAN_PREFIX.search(text, max(0, m.start() - 40), m.start()):
            continue  # the digits are the tail of an IBAN (valid or not), not a card
        seps = {c for c in raw if not c.isdigit()}
        if len(seps) > 1:
            continue  # one kind of separator, as cards are printed
        digits = raw.replace(" ", "").replace("-", "")
        if seps and not _card_grouping(raw):
            continue
        if not (13 <= len(digits) <= 19) or len(set(digits)) < 2:
            continue
        if digits in TEST_CARDS:
            continue
        if _CARD_PREFIX.match(digits) and luhn_valid(digits):
            hits.append(Hit("pii.payment_card", "pii", "high", 0.98, m.start(), m.end(), mask_tail(digits)))
    return hits


def _card_grouping(raw: str) -> bool:
    """Cards are printed in groups of 4 (4-4-4-4, 4-4-4-4-3) or 4-6-4/4-6-5 (Amex, Diners)."""
    groups = [len(g) for g in re.split(r"[ \-]", raw)]
    return (groups[:-1] == [4] * (len(groups) - 1) and 1 <= groups[-1] <= 4) or groups in ([4, 6, 5], [4, 6, 4])


# --- IBAN ---------------------------------------------------------------------------------------------------------

_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,3})?\b")


# Letters as IBAN check-digit arithmetic reads them (A = 10 … Z = 35).
_BASE36 = str.maketrans({chr(ord("A") + k): str(10 + k) for k in range(26)})


def _iban_valid(raw: str) -> bool:
    """``stdnum``'s IBAN validation, whose first test (the ISO 7064 mod 97-10 checksum) is done here first, at C
    speed: ``stdnum`` computes it digit by digit in Python, and most look-alikes in text fail it."""
    compact = raw.replace(" ", "")
    try:
        if int((compact[4:] + compact[:4]).translate(_BASE36)) % 97 != 1:
            return False
    except ValueError:
        pass  # not a number as stdnum reads it: let stdnum say so
    return stdnum_iban.is_valid(raw)


# ASCII letters and digits by kind, everything else a dot: "DE89 3704" -> "AA00.0000".
_SHAPE = str.maketrans(
    {chr(c): "." for c in range(128)}
    | {chr(ord("A") + k): "A" for k in range(26)}
    | {chr(ord("0") + k): "0" for k in range(10)}
)


def _iban_starts(text: str) -> list[int]:
    """Offsets of ``_IBAN_HINT`` (two capitals, two digits), which never overlap. For ASCII text, found in its
    shape (translating ASCII to ASCII takes a fast path, then ``str.find``) rather than by the regex."""
    if not text.isascii():
        return [h.start() for h in _IBAN_HINT.finditer(text)]
    shape = text.translate(_SHAPE)
    starts = []
    at = shape.find("AA00")
    while at >= 0:
        starts.append(at)
        at = shape.find("AA00", at + 1)
    return starts


def _ibans(text: str) -> list[Hit]:
    hits = []
    end = 0
    # An IBAN starts with country letters and check digits: try the full pattern only where those are.
    matches = [_IBAN.match(text, start) for start in _iban_starts(text)]
    for m in matches:
        if m is None or m.start() < end:
            continue
        end = m.end()
        raw = m.group(0)
        # Greedy grouping may swallow a following upper-case word ("… 0130 00 THE"); drop trailing groups until valid.
        for _ in range(3):
            if _iban_valid(raw):
                end = m.start() + len(raw)
                hits.append(Hit("pii.iban", "pii", "high", 0.98, m.start(), end, raw[:2] + REDACTED))
                break
            if " " not in raw:
                break
            raw = raw.rsplit(" ", 1)[0]
    return hits


# --- US social security numbers -------------------------------------------------------------------------------------

_SSN = re.compile(r"(?<![\d\-./])(\d{3})([\- ])(\d{2})\2(\d{4})(?![\d\-])")
_SSN_BARE = re.compile(
    r"(?i)\b(?:ssn|social security(?: number| no\.?)?|ss#)\D{0,12}(?<!\d)(\d{3})(\d{2})(\d{4})(?!\d)"
)
_SSN_EXAMPLES = frozenset({"078051120", "219099999", "123456789"})
_SSN_WORDS = ("ssn", "social sec", "ss#")


def ssn_valid(area: str, group: str, serial: str) -> bool:
    """The SSA never issues area 000, 666 or 900-999, group 00 or serial 0000."""
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return False
    return area + group + serial not in _SSN_EXAMPLES


def _ssns(text: str, keywords: dict[str, list[int]], regions: list[tuple[int, int]]) -> list[Hit]:
    hits = []
    for m in _in_regions(_SSN, text, regions):
        if ssn_valid(m.group(1), m.group(3), m.group(4)):
            hits.append(Hit("pii.us_ssn", "pii", "high", 0.97, m.start(), m.end(), REDACTED))
    if not keywords.keys().isdisjoint(_SSN_WORDS):
        for m in _SSN_BARE.finditer(text):
            if ssn_valid(m.group(1), m.group(2), m.group(3)):
                hits.append(Hit("pii.us_ssn", "pii", "high", 0.95, m.start(1), m.end(3), REDACTED))
    return hits


# --- phone numbers --------------------------------------------------------------------------------------------------

_PHONE = re.compile(
    r"(?<![\w/.:=#@\-+])"
    r"(\+\d{1,3}[ .\-]?(?:\(\d{1,4}\)[ .\-]?)?\d{1,4}(?:[ .\-]?\d{2,4}){1,4}"
    r"|\(\d{2,4}\)[ .\-]?\d{3,4}[ .\-]\d{3,4}"
    r"|\d{3}[.\-]\d{3}[.\-]\d{4}"
    r"|\d{2,4} \d{3,4} \d{3,4}(?: \d{2,4})?)"
    r"(?![\w/]|[.\-]\d)"
)
_PHONE_WORDS = ("phone", "tel", "mobile", "cell", "call", "fax", "whatsapp", "sms")
_PHONE_CONTEXT = re.compile(r"(?i)\b(?:phone|tel|mobile|cell|call|fax|whatsapp|sms)\b\D{0,15}?(?<!\d)(\d{10,11})(?!\d)")


@lru_cache(maxsize=4096)
def _valid_phone(raw: str, region: str) -> int | None:
    """The country code of a valid phone number, else None (cached: parsing costs ~50 µs and numbers recur)."""
    try:
        number = phonenumbers.parse(raw, None if raw.startswith("+") else region)
    except phonenumbers.NumberParseException:
        return None
    return number.country_code if phonenumbers.is_valid_number(number) else None


# Numbers written the national way (a trunk 0, no country code) are read in other countries' plans only where the
# text says they are phone numbers: in the numbering plans of many countries together, almost any digits are valid.
_PHONE_NATIONAL = re.compile(
    r"(?<![\w/.:=#@\-+])(0\d{1,4}[ /\-]?\d{3,4}[ \-]?\d{3,4}|0\d{2,4}[ /\-]\d{5,8}|0\d(?:[ .]\d\d){4})"
    r"(?![\w/]|[.\-]\d)"
)
_PROSE_PHONE_CONTEXT = re.compile(
    r"(?i)(?:phone|tel|mobile|cell|call|ring|reach|contact|number|text|whatsapp|fax|sms|m[oó]vil|telefon|t[ée]l[ée]phone|"
    r"portable|handy|cellulare|numero|número|nummer)\b[^\n\d]{0,30}$"
)
# Countries whose national numbers start with a trunk 0, and two whose nine-digit numbers have none.
_TRUNK_REGIONS = ("GB", "DE", "FR", "IT", "NL", "IE", "BE", "CH", "AT", "SE", "AU", "IN", "BR")
_NINE_DIGIT_REGIONS = ("ES", "PT")


# "Company number 03877731", "order no. 0612…": the number named is a register's or a business's, not a phone.
_OTHER_NUMBER = re.compile(
    r"(?i)\b(?:company|registration|registered|order|account|invoice|reference|case|ticket|tracking|customer|member|"
    r"policy|serial|model|part|item|vat|tax|batch|lot|document|contract|shipment)\s+(?:number|no\.?|#)[^\n\d]{0,6}$"
)


def _valid_elsewhere(raw: str, text: str, start: int) -> int | None:
    """The country code of ``raw`` read as a national number of another country, when the text calls it a phone."""
    if raw.startswith("+") or not _PROSE_PHONE_CONTEXT.search(text, max(0, start - 40), start):
        return None
    if _OTHER_NUMBER.search(text, max(0, start - 40), start):
        return None
    digits = sum(c.isdigit() for c in raw)
    regions = _TRUNK_REGIONS if raw.startswith("0") else _NINE_DIGIT_REGIONS if digits == 9 else ()
    for other in regions:
        country = _valid_phone(raw, other)
        if country is not None:
            return country
    return None


def _phones(text: str, keywords: dict[str, list[int]], regions: list[tuple[int, int]], region: str) -> list[Hit]:
    hits = []
    candidates = [(m.start(1), m.end(1)) for m in _in_regions(_PHONE, text, regions)]
    candidates += [(m.start(1), m.end(1)) for m in _in_regions(_PHONE_NATIONAL, text, regions)]
    if not keywords.keys().isdisjoint(_PHONE_WORDS):
        # A context match starts at one of its words; in ASCII text, where they are in the lower-cased text.
        leads = _PHONE_CONTEXT_LEADS if text.isascii() else None
        candidates += [(m.start(1), m.end(1)) for m in finditer(_PHONE_CONTEXT, text, leads, keywords)]
    for start, end in candidates:
        raw = text[start:end]
        digits = sum(c.isdigit() for c in raw)
        if not 8 <= digits <= 15:
            continue
        country = _valid_phone(raw, region)
        if country is None:
            country = _valid_elsewhere(raw, text, start)
        if country is not None:
            keep = raw[: len(str(country)) + 1] if raw.startswith("+") else ""
            hits.append(Hit("pii.phone_number", "pii", "medium", 0.9, start, end, keep + REDACTED))
    return hits


# --- IP addresses ---------------------------------------------------------------------------------------------------

_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
# Dotted numbers right after these words are versions, not addresses.
_VERSION_CONTEXT = re.compile(
    r"(?i)(?:\b(?:v|version|ver\.?|release|build|rev(?:ision)?|python|node|java|go|firmware|os|sdk|api)|==|>=|<=|~=|@)\s*$"
)


def _ips(text: str, regions: list[tuple[int, int]]) -> list[Hit]:
    hits = []
    for m in _in_regions(_IPV4, text, regions):
        try:
            ip = ipaddress.ip_address(m.group(0))
        except ValueError:
            continue
        # Private, loopback and reserved addresses point at infrastructure, not at a person.
        if not ip.is_global or ip.is_multicast:
            continue
        if _VERSION_CONTEXT.search(text[max(0, m.start() - 16) : m.start()]):
            continue
        mask = m.group(0).split(".", 1)[0] + "." + REDACTED
        hits.append(Hit("pii.ip_address", "pii", "low", 0.7, m.start(), m.end(), mask))
    return hits


# Checksum- or range-validated kinds win over a phone number read from the same digits.
_PRIORITY = {
    "pii.payment_card": 5,
    "pii.iban": 5,
    "pii.ca_sin": 5,
    "pii.es_dni": 5,
    "pii.es_nie": 5,
    "pii.us_ssn": 4,
    "pii.uk_nino": 4,
    "pii.passport_number": 4,
    "pii.medical_record_number": 4,
    "pii.email": 3,
    "pii.date_of_birth": 3,
    "pii.phone_number": 2,
}


# Where numbers long enough to be a card, SSN, phone number or IP are: the numeric detectors only look there.
_NUMBER_RUN = re.compile(r"\d[\d \-.()/]{5,}\d")
# The same for ASCII text, where \d is [0-9]: re tests an ASCII class with a table, a Unicode category with a call.
_NUMBER_RUN_ASCII = re.compile(_NUMBER_RUN.pattern, re.ASCII)
_IBAN_HINT = re.compile(r"[A-Z]{2}\d\d")
# Words that make a bare number a phone number or an SSN, located in the lower-cased text in one pass.
_PHONE_CONTEXT_LEADS = leading_literals(_PHONE_CONTEXT)
_KEYWORDS = Literals([*_PHONE_WORDS, *_SSN_WORDS, *(_PHONE_CONTEXT_LEADS.literals if _PHONE_CONTEXT_LEADS else ())])


def find_pii(text: str, *, phone_region: str = "US", decode: bool = True) -> list[Hit]:
    """Every validated personal datum in ``text``; ``decode``: also inside encoded URL parts and DNS labels."""
    if len(text) < 6:
        return []
    hits: list[Hit] = []
    lower = text.lower()
    if decode and ("://" in text or _DNS_HINT.search(lower)):
        hits += _encoded(text, phone_region)
    if "@" in text:
        hits += _emails(text)
    runs = (_NUMBER_RUN_ASCII if text.isascii() else _NUMBER_RUN).finditer(text)
    regions = [(max(0, m.start() - 4), min(len(text), m.end() + 1)) for m in runs]
    # Ids are found in the digit runs (a NIE's or NINO's letters sit within the 4 characters before one).
    hits += find_identity(text, [(max(0, lo - 2), min(len(text), hi + 2)) for lo, hi in regions], lower)
    if regions:
        hits += _cards(text, regions)
        keywords = _KEYWORDS.locate(lower)
        hits += _ssns(text, keywords, regions)
        hits += _phones(text, keywords, regions, phone_region)
        hits += _ips(text, regions)
    hits += _ibans(text)
    if len(hits) < 2:
        return hits
    kept: list[Hit] = []
    for h in sorted(hits, key=lambda h: (_PRIORITY.get(h.detector, 1), h.end - h.start), reverse=True):
        if all(h.end <= k.start or h.start >= k.end for k in kept):
            kept.append(h)
    return sorted(kept, key=lambda h: h.start)


# --- personal data inside encoded URL parts and DNS labels -------------------------------------------------------

_URL_PART = re.compile(r"\b(?:https?|ftp|wss?)://[^\s\"'<>()\[\]{}`]+", re.IGNORECASE)
# A host name with at least one long label, as DNS tunnelling writes them (``<encoded>.x.attacker.net``).
_LONG_LABEL_HOST = re.compile(
    r"(?<![\w.@\-])(?:[A-Za-z0-9_\-]{1,63}\.)*[A-Za-z0-9_\-]{16,63}\.(?:[A-Za-z0-9\-]{1,63}\.)*[A-Za-z]{2,24}\b"
)
_ENCODED_TOKEN = re.compile(r"[A-Za-z0-9+/_\-]{12,}={0,2}|(?:%[0-9A-Fa-f]{2}|[^%&=/?#]){6,}")
_MAX_DECODES = 32
_DNS_HINT = re.compile(r"nslookup|dig |drill |host |resolve|dns|ping |getent ")


def _decodings(token: str) -> list[str]:
    """Printable texts ``token`` decodes to as base64, base32, hex or percent-encoding."""
    out = []
    if "%" in token:
        out.append(unquote(token))
    compact = token.rstrip("=")
    candidates: list[bytes] = []
    if re.fullmatch(r"(?:[0-9a-fA-F]{2})+", compact):
        candidates.append(bytes.fromhex(compact))
    if re.fullmatch(r"[A-Za-z0-9+/_\-]+", compact):
        padded = compact + "=" * (-len(compact) % 4)
        for decode in (base64.urlsafe_b64decode, base64.b64decode):
            with contextlib.suppress(binascii.Error, ValueError):
                candidates.append(
                    decode(padded.replace("-", "+").replace("_", "/") if decode is base64.b64decode else padded)
                )
        if re.fullmatch(r"[A-Za-z2-7]+", compact):
            with contextlib.suppress(binascii.Error, ValueError):
                candidates.append(base64.b32decode(compact.upper() + "=" * (-len(compact) % 8)))
    for raw in candidates:
        try:
            decoded = raw.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if len(decoded) >= 6 and decoded.isprintable():
            out.append(decoded)
    return out


def _label_parts(host: str, at: int) -> list[tuple[int, int, str]]:
    """The long labels of ``host`` (which starts at ``at``), alone and, for data chunked over several labels, the
    leading labels joined for each possible end."""
    labels = host.split(".")[:-2]
    if not any(len(label) >= 12 for label in labels):
        return []
    parts = []
    pos = at
    for label in labels:
        if len(label) >= 12:
            parts.append((pos, pos + len(label), label))
        pos += len(label) + 1
    for k in range(2, len(labels) + 1):
        parts.append((at, at + len(".".join(labels[:k])), "".join(labels[:k])))
    return parts


_URL_PIECE = re.compile(r"[^/?&=#]+")


def _encoded_parts(text: str) -> list[tuple[int, int, str]]:
    """(start, end, token) of the URL query values, path segments and host labels of ``text`` worth decoding, and
    of the host names given to a DNS tool (where something resolves them)."""
    parts: list[tuple[int, int, str]] = []
    for m in _URL_PART.finditer(text) if "://" in text else ():
        url = m.group(0)
        base = m.start() + url.find("://") + 3
        query_at = url.find("?")
        for n, piece in enumerate(_URL_PIECE.finditer(url, base - m.start())):
            token = piece.group(0)
            start = m.start() + piece.start()
            if n == 0:  # the host (and port)
                parts += _label_parts(token.rsplit("@", 1)[-1].split(":", 1)[0], start)
            elif len(token) >= 12 or (query_at >= 0 and start > m.start() + query_at and "%" in token):
                parts.append((start, start + len(token), token))
    if _DNS_HINT.search(text.lower()):
        for m in _LONG_LABEL_HOST.finditer(text):
            parts += _label_parts(m.group(0), m.start())
    return parts[:_MAX_DECODES]


def _encoded(text: str, phone_region: str) -> list[Hit]:
    hits = []
    seen = set()
    for start, end, token in _encoded_parts(text):
        if token in seen:
            continue
        seen.add(token)
        for decoded in _decodings(token):
            inner = find_pii(decoded, phone_region=phone_region, decode=False)
            if inner:
                kind = inner[0].detector.split(".", 1)[1]
                hits.append(Hit(f"pii.encoded_{kind}", "pii", inner[0].severity, 0.9, start, end, REDACTED))
                break
    return hits
