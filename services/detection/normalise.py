"""Other readings of a text: what a model would read in it that a detector scanning the bytes would not.

An attacker hides an instruction (or smuggles a secret) from pattern matching by encoding it (base64, hex,
URL-encoding, ROT13, ``\\u`` escapes), disguising its letters (homoglyphs from other scripts, fullwidth forms,
zero-width characters inside words, leetspeak), putting it where a human reader does not look (HTML or markdown
comments, CSS-hidden elements, ``alt`` / ``title`` / ``aria-label`` / ``data-*`` attributes, markdown link titles and
image alt text) or cutting it into string literals that code joins back together. :func:`variants` returns each such
reading with where it came from, so the detectors can scan it and a finding in it can say where it was hidden.

Everything here is bounded in bytes and depth: ``MAX_DECODE_CHARS`` of one encoded run are decoded (its prefix, so a
huge image blob costs no more than a small one), ``MAX_VARIANT_CHARS`` in total per text, ``MAX_DEPTH`` layers of
encoding inside encoding, ``MAX_VARIANTS`` readings per text. Pure functions, no I/O.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import html
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import unquote

MAX_DECODE_CHARS = 16_384
"""Characters of one encoded run that are decoded (a longer run is decoded from its start only)."""
MAX_VARIANT_CHARS = 65_536
"""Characters of all the readings of one text together; readings past it are dropped."""
MAX_DEPTH = 2
"""Layers of encoding followed (base64 of URL-encoded text is two)."""
MAX_VARIANTS = 32
"""Readings returned per text at most."""
MAX_TEXT_CHARS = 1_048_576
"""Texts longer than this are only searched in their first ``MAX_TEXT_CHARS`` characters."""


@dataclass(frozen=True, slots=True)
class Variant:
    text: str
    """The reading: decoded, folded or extracted text."""
    carrier: str
    """How it was hidden: ``base64``, ``hex``, ``url_encoding``, ``rot13``, ``unicode_escapes``, ``homoglyphs``,
    ``leetspeak``, ``html_comment``, ``hidden_element``, ``attribute``, ``link_title``, ``alt_text``,
    ``markup_stripped``, ``split_strings``; nested carriers are joined with ``/`` (``base64/url_encoding``)."""
    start: int
    """Span of the carrier in the original text (the encoded run, the comment, the whole text for a folding)."""
    end: int

    def describe(self) -> str:
        return f"{self.carrier.replace('_', ' ')} at characters {self.start}-{self.end}"


# --- encodings ----------------------------------------------------------------------------------------------------

_BASE64 = re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{20,}={0,2}")
_HEX_RUN = re.compile(r"(?<![0-9A-Fa-f])(?:[0-9A-Fa-f]{2}){12,}(?![0-9A-Fa-f])")
_SPACED_HEX = re.compile(r"(?:[0-9A-Fa-f]{2}[ :]){11,}[0-9A-Fa-f]{2}")
_TOKEN = re.compile(r"[^\s\"'<>]+")
_ESCAPE = re.compile(r"\\u[0-9A-Fa-f]{4}|\\x[0-9A-Fa-f]{2}")
_PERCENT_BYTE = re.compile(r"%[0-9A-Fa-f]{2}")
_HEX_DIGITS = "0123456789abcdefABCDEF"


def _readable(data: bytes, min_chars: int = 8) -> str | None:
    """The bytes as text if they are UTF-8 made mostly of letters, digits, punctuation and spaces (not an image, a
    compressed blob or a random token)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if len(text) < min_chars:
        return None
    printable = sum(c.isprintable() or c in "\n\r\t" for c in text)
    letters = sum(c.isalpha() for c in text)
    if printable < 0.97 * len(text) or letters < 0.5 * len(text):
        return None
    # Random tokens decode to noise; text has word breaks or is one short word-like value ("user:password").
    if " " not in text and "\n" not in text and not re.fullmatch(r"[\w.@:+/=-]{8,80}", text):
        return None
    return text


def _b64(run: str) -> bytes | None:
    run = run[: MAX_DECODE_CHARS - MAX_DECODE_CHARS % 4] if len(run) > MAX_DECODE_CHARS else run
    core = run.rstrip("=")
    if len(core) % 4 == 1:
        core = core[:-1]
    padded = core + "=" * (-len(core) % 4)
    try:
        if "-" in core or "_" in core:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return None


def _encoded(text: str) -> list[tuple[str, int, int, str]]:
    """(carrier, start, end, decoded) for each encoded run in ``text`` that decodes to readable text. Each kind is
    looked for only when a cheap test of the whole text says it may be there (most texts have none)."""
    out: list[tuple[str, int, int, str]] = []
    lengths = list(map(len, text.split()))
    longest = max(lengths, default=0)
    hex_runs: list[re.Match[str]] = []
    if longest >= 20:
        for m in _BASE64.finditer(text):
            run = m.group(0)
            # Hex digits are base64 characters, and a base64 match is a whole run of them (its lookbehind): every
            # hex run of the text lies inside one, so looking for them there finds the same runs as the whole text.
            if longest >= 24 and len(run) >= 24:
                hex_runs += _HEX_RUN.finditer(text, m.start(), m.end())
            # A run of only hex digits or only letters is read as hex / a word below, not as base64.
            if run.isalpha() or not run.strip(_HEX_DIGITS):
                continue
            data = _b64(run)
            decoded = _readable(data) if data else None
            if decoded:
                out.append(("base64", m.start(), m.end(), decoded))
    if lengths.count(2) >= 12:
        hex_runs += _SPACED_HEX.finditer(text)
    for m in hex_runs:
        digits = re.sub(r"[ :]", "", m.group(0))[:MAX_DECODE_CHARS]
        decoded = _readable(bytes.fromhex(digits[: len(digits) - len(digits) % 2]))
        if decoded:
            out.append(("hex", m.start(), m.end(), decoded))
    if text.count("%") >= 3:
        for m in _TOKEN.finditer(text):
            run = m.group(0)[:MAX_DECODE_CHARS]
            if run.count("%") < 3 or len(_PERCENT_BYTE.findall(run)) < 3 or not _valid_percent(run):
                continue
            decoded = unquote(run.replace("+", " "))
            if _readable(decoded.encode(), 6):
                out.append(("url_encoding", m.start(), m.end(), decoded))
    if "\\u" in text or "\\x" in text:
        pos = 0
        for line in text.splitlines(keepends=True):
            start, pos = pos, pos + len(line)
            escapes = _ESCAPE.findall(line, 0, MAX_DECODE_CHARS)
            # JSON escapes non-ASCII letters as a matter of course; escaped ASCII letters are a disguise.
            hidden = [e for e in escapes if int(e[2:], 16) < 0x80 and chr(int(e[2:], 16)).isalpha()]
            if len(hidden) < 4:
                continue
            decoded = _ESCAPE.sub(lambda e: chr(int(e.group(0)[2:], 16)), line[:MAX_DECODE_CHARS]).strip()
            if _readable(decoded.encode(), 6):
                out.append(("unicode_escapes", start, start + len(line.rstrip()), decoded))
    return out


def _valid_percent(run: str) -> bool:
    try:
        unquote(run, errors="strict")
    except UnicodeDecodeError:
        return False
    return True


# --- ROT13 ----------------------------------------------------------------------------------------------------------

_COMMON = frozenset(
    [
        "the",
        "and",
        "you",
        "your",
        "all",
        "to",
        "of",
        "a",
        "in",
        "is",
        "are",
        "that",
        "this",
        "for",
        "with",
        "not",
        "be",
        "on",
        "it",
        "as",
        "do",
        "any",
        "from",
        "now",
        "must",
        "please",
        "ignore",
        "instructions",
        "previous",
        "system",
        "user",
        "send",
    ]
)
_PUNCTUATION = ".,;:!?'\"()[]{}<>*-"


def _rot13_lines(text: str) -> list[tuple[int, int, str]]:
    """Lines that read as English after ROT13 and not before (a ciphered line has almost no common words)."""
    out: list[tuple[int, int, str]] = []
    pos = 0
    for line in text.splitlines(keepends=True):
        start, pos = pos, pos + len(line)
        # The first dozen words tell: English has common words among them, a ciphered line has none.
        words = line[:400].lower().split(None, 12)[:12]
        if len(words) < 4:
            continue
        before = sum(w.strip(_PUNCTUATION) in _COMMON for w in words)
        if before * 5 > len(words):
            continue
        after = sum(w.strip(_PUNCTUATION) in _COMMON for w in codecs.encode(" ".join(words), "rot13").split())
        if after >= 2 and after * 4 >= len(words) and after > 2 * before:
            out.append((start, start + len(line.rstrip()), codecs.encode(line, "rot13").strip()))
    return out


# --- disguised letters ------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _homoglyph_table() -> dict[int, str]:
    """Non-ASCII characters that look like an ASCII letter or digit, to that character (Unicode's confusables, as
    the ``confusable_homoglyphs`` package ships them)."""
    from confusable_homoglyphs.confusables import confusables_data

    table: dict[int, str] = {}
    for char, glyphs in confusables_data.items():
        if len(char) != 1 or char.isascii():
            continue
        ascii_like = [g["c"] for g in glyphs if len(g["c"]) == 1 and g["c"].isascii() and g["c"].isalnum()]
        letters = [c for c in ascii_like if c.isalpha()]
        if letters or ascii_like:
            table[ord(char)] = (letters or ascii_like)[0]
    return table


_COMPATIBILITY_LETTERS = re.compile("[\uff01-\uff5e\U0001d400-\U0001d7ff]")
_ZERO_WIDTH = re.compile("[\u00ad\u180e\u200b-\u200f\u2060-\u2064\ufeff]")
_LEET_WORD = re.compile(
    r"(?<![\w/+=])(?=[a-z0-9@$!|]*[a-z])(?=[a-z0-9@$!|]*[0134578@$|])[a-z0-9@$!|]{3,24}(?![\w/+=])", re.IGNORECASE
)
_LEET_INSIDE = re.compile(r"[A-Za-z][0134578@$][A-Za-z]")
"""A leet digit between two letters: texts without two of them are not leetspeak (and skip the word scan)."""
_LEET_CLASSES = str.maketrans(
    {**dict.fromkeys("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", "a"), **dict.fromkeys("0134578@$", "1")}
)
"""ASCII letters to ``a`` and leet characters to ``1``: ``_LEET_INSIDE``'s matches are then the occurrences of ``a1a``
(every other character keeps itself, and neither ``a`` nor ``1`` is one of them)."""


def _leet_inside(text: str, limit: int = 2) -> bool:
    """Whether ``_LEET_INSIDE`` matches at least ``limit`` times in the first ``MAX_DECODE_CHARS`` of ``text``. ASCII
    text is translated to character classes and counted with ``str.count``, which counts non-overlapping occurrences
    from the left as ``findall`` does (a quarter of the regex's time); other text runs the regex."""
    if text.isascii():
        return text[:MAX_DECODE_CHARS].translate(_LEET_CLASSES).count("a1a") >= limit
    return len(_LEET_INSIDE.findall(text, 0, MAX_DECODE_CHARS)) >= limit


_LEET = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "@": "a", "$": "s", "|": "l", "!": "i"}
)


def fold(text: str) -> str:
    """The text as it looks: homoglyphs and compatibility forms (fullwidth, mathematical letters) to ASCII,
    zero-width and soft-hyphen characters removed. ASCII text comes back unchanged."""
    if text.isascii():
        return text
    folded = unicodedata.normalize("NFKC", _ZERO_WIDTH.sub("", text))
    if folded.isascii():
        return folded
    return folded.translate(_homoglyph_table())


_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")


def _mixed_script(text: str) -> bool:
    """Whether some word mixes ASCII letters with look-alikes from other scripts (a Russian or Greek text alone is
    not disguised; ``paypal`` with a Cyrillic ``\u0430`` in place of an ``a`` is)."""
    table = _homoglyph_table()
    for m in _NON_ASCII_RUN.finditer(text):
        run = _ZERO_WIDTH.sub("", m.group(0))
        if not run:
            continue
        start, end = m.span()
        before = text[start - 1] if start else ""
        after = text[end] if end < len(text) else ""
        if (before.isascii() and before.isalpha() and ord(run[0]) in table and run[0].isalpha()) or (
            after.isascii() and after.isalpha() and ord(run[-1]) in table and run[-1].isalpha()
        ):
            return True
    return False


def _leet(text: str) -> str | None:
    """Leetspeak words (``1gn0r3``, ``pr3v10us``) spelled out, if there are at least two."""
    found = [
        m
        for m in _LEET_WORD.finditer(text)
        if not m.group(0).isdigit() and sum(c.isdigit() for c in m.group(0)) < len(m.group(0)) - 1
    ]
    # A sentence in leetspeak, not an identifier or two (``sha256``, ``x86``, ``h264``) in ordinary text.
    if len(found) < 3 or len(found) < 0.15 * len(text.split()):
        return None
    out = text
    for m in reversed(found):
        out = out[: m.start()] + m.group(0).lower().translate(_LEET) + out[m.end() :]
    return out


# --- hidden carriers in markup ----------------------------------------------------------------------------------

_HTML_COMMENT = re.compile(r"<!--(.*?)(?:-->|$)", re.DOTALL)
_MD_COMMENT = re.compile(r"^\s*\[(?:[^\]\n]*)\]:\s*(?:#|<>)\s*\((.*)\)\s*$", re.MULTILINE)
_HIDDEN_STYLE = (
    r"display\s*:\s*none|visibility\s*:\s*hidden|font-size\s*:\s*0(?![.\d]*[1-9])|opacity\s*:\s*0(?![.\d]*[1-9])|"
    r"color\s*:\s*(?:white|#fff\b|#ffffff\b|transparent)|height\s*:\s*0|width\s*:\s*0|left\s*:\s*-\d{3,}|"
    r"clip\s*:\s*rect\(0"
)
_HIDDEN_ELEMENT = re.compile(
    r"<(\w+)\b[^>]*?(?:style\s*=\s*[\"'][^\"']*(?:"
    + _HIDDEN_STYLE
    + r")[^\"']*[\"']|\bhidden\b|aria-hidden\s*=\s*[\"']true)"
    r"[^>]*>(.*?)</\1\s*>",
    re.IGNORECASE | re.DOTALL,
)
_ATTRIBUTE = re.compile(
    r"\b(alt|title|aria-label|aria-description|placeholder|content|data-[\w-]+|value)\s*=\s*(?:\"([^\"]{12,})\"|'([^']{12,})')",
    re.IGNORECASE,
)
_MD_LINK_TITLE = re.compile(r"\]\(\s*\S+\s+(?:\"([^\"]{8,})\"|'([^']{8,})'|\(([^)]{8,})\))\s*\)")
_MD_IMAGE_ALT = re.compile(r"!\[([^\]]{12,})\]\(")
_TAG = re.compile(r"<[^>]{1,400}>")
_TAG_IN_WORD = re.compile(r"[A-Za-z]<[^>\s]{0,40}(?:\s[^>]{0,200})?>[A-Za-z]")


def _markup(text: str) -> list[tuple[str, int, int, str]]:
    out: list[tuple[str, int, int, str]] = []
    if "<!--" in text:
        out += [("html_comment", m.start(), m.end(), m.group(1)) for m in _HTML_COMMENT.finditer(text)]
    if "]:" in text:
        out += [("markdown_comment", m.start(), m.end(), m.group(1)) for m in _MD_COMMENT.finditer(text)]
    if "<" in text and ">" in text:
        out += [
            ("hidden_element", m.start(), m.end(), _TAG.sub(" ", m.group(2))) for m in _HIDDEN_ELEMENT.finditer(text)
        ]
        for m in _ATTRIBUTE.finditer(text):
            name = m.group(1).lower()
            carrier = "alt_text" if name == "alt" else "data_attribute" if name.startswith("data-") else "attribute"
            out.append((carrier, m.start(), m.end(), m.group(2) or m.group(3)))
        # Without tags only matters where a tag cuts a word (``ig<b></b>nore``): elsewhere the words are there as is.
        if _TAG_IN_WORD.search(text):
            out.append(("markup_stripped", 0, len(text), _TAG.sub("", text)))
    if "](" in text:
        out += [
            ("link_title", m.start(), m.end(), next(g for g in m.groups() if g)) for m in _MD_LINK_TITLE.finditer(text)
        ]
        out += [("alt_text", m.start(), m.end(), m.group(1)) for m in _MD_IMAGE_ALT.finditer(text)]
    return [(c, s, e, html.unescape(v).strip()) for c, s, e, v in out if v and v.strip()]


# --- payloads split across variables ------------------------------------------------------------------------------

_STRING_LITERAL = re.compile(r"\"((?:[^\"\\\n]|\\.){1,200})\"|'((?:[^'\\\n]|\\.){1,200})'")
_JOINS = re.compile(r"[\"'`]\s*\+|\+\s*[\"'`]|\w\s*\+\s*\w|\}\s*\$\{|\.join\(|\bconcat\(")
"""Pieces joined together (``a + b``, ``${a}${b}``, ``"".join(…)``); a single interpolation (``${doc}``) joins
nothing."""


def _split_strings(text: str) -> str | None:
    """The string literals of code that concatenates strings, joined in order (``a = "ign"; b = "ore all…"``)."""
    if not any(k in text for k in ("+", ".join(", "concat(", "${")) or _JOINS.search(text) is None:
        return None
    parts = [m.group(1) or m.group(2) for m in _STRING_LITERAL.finditer(text[:MAX_DECODE_CHARS])]
    if len(parts) < 2:
        return None
    joined = "".join(parts)
    return joined if len(joined) >= 12 and " " in joined else None


# --- all together -----------------------------------------------------------------------------------------------


def _one_level(text: str) -> list[tuple[str, int, int, str]]:
    found = _encoded(text) + _markup(text)
    found += [("rot13", s, e, d) for s, e, d in _rot13_lines(text)]
    if not text.isascii():
        if _mixed_script(text):
            found.append(("homoglyphs", 0, len(text), fold(text)))
        elif _ZERO_WIDTH.search(text):
            found.append(("zero_width", 0, len(text), fold(text)))
        elif _COMPATIBILITY_LETTERS.search(text):
            found.append(("fullwidth", 0, len(text), fold(text)))
    leet = _leet(fold(text)) if _leet_inside(text) else None
    if leet is not None:
        found.append(("leetspeak", 0, len(text), leet))
    split = _split_strings(text)
    if split is not None:
        found.append(("split_strings", 0, len(text), split))
    return found


def variants(text: str) -> list[Variant]:
    """Every other reading of ``text`` (never ``text`` itself), outermost first, within the bounds above."""
    text = text[:MAX_TEXT_CHARS]
    out: list[Variant] = []
    seen = {text}
    budget = MAX_VARIANT_CHARS
    frontier: list[tuple[str, str, int, int]] = [(text, "", 0, len(text))]
    for _ in range(MAX_DEPTH):
        nxt: list[tuple[str, str, int, int]] = []
        for source, prefix, base_start, base_end in frontier:
            nested = bool(prefix)
            for carrier, start, end, reading in _one_level(source):
                reading = reading[:budget]
                if not reading or reading in seen or len(out) >= MAX_VARIANTS:
                    continue
                seen.add(reading)
                budget -= len(reading)
                name = f"{prefix}/{carrier}" if prefix else carrier
                # A reading found inside another is located by the outer carrier's span: its inner offsets are
                # offsets into decoded text, which is not what the original bytes show.
                span = (base_start, base_end) if nested else (start, end)
                out.append(Variant(reading, name, *span))
                nxt.append((reading, name, *span))
                if budget <= 0:
                    return out
        frontier = nxt
    return out
