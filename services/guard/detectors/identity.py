"""Identity documents and records: national ids, passports, medical record numbers, dates of birth.

Numbers with a check digit are validated the way their issuer defines it (``python-stdnum``: Canada's SIN, Spain's
DNI and NIE, the NHS number); those without one (a passport, a record number, the UK's National Insurance number in
its compact form) are only taken when the text names them, since their shape alone (a few letters and digits) is
also the shape of order numbers and part codes. A date is personal data when it is said to be a birth date.
"""

from __future__ import annotations

import re

from stdnum.ca import sin as stdnum_sin
from stdnum.es import dni as stdnum_dni
from stdnum.es import nie as stdnum_nie
from stdnum.gb import nhs as stdnum_nhs

from services.detection.literals import Literals
from services.guard.detectors._hits import REDACTED, Hit, mask_tail

# Words that name a document; the value must follow within a short distance.
_CONTEXT: dict[str, tuple[str, ...]] = {
    "sin": ("sin", "social insurance", "assurance sociale", "nas"),
    "nino": ("national insurance", "nino", "ni number", "ni no"),
    "passport": ("passport", "pasaporte", "passeport", "reisepass", "passaporto"),
    "mrn": ("mrn", "medical record", "patient id", "patient number", "hospital number", "nhs number", "nhs no"),
    # Not "birthday": it names a party or an event date more often than the day someone was born.
    "dob": ("dob", "d.o.b", "date of birth", "birth date", "birthdate", "born", "fecha de nacimiento"),
}
_WORDS = Literals(w for words in _CONTEXT.values() for w in words)
_WINDOW = 40
_DIGIT = re.compile(r"\d")

_SIN = re.compile(r"(?<![\d\-])(\d{3})[ \-]?(\d{3})[ \-]?(\d{3})(?![\d\-])")
# UK National Insurance number: two prefix letters (D, F, I, Q, U, V never; O never second), six digits, A-D.
_NINO = re.compile(
    r"\b(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b", re.IGNORECASE
)
_NINO_SPACED = re.compile(r"\b(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] \d{2} \d{2} \d{2} [A-D]\b")
_DNI = re.compile(r"\b\d{8}[ \-]?[A-Z]\b")
_NIE = re.compile(r"\b[XYZ][ \-]?\d{7}[ \-]?[A-Z]\b")
_PASSPORT = re.compile(r"\b(?=[A-Z0-9]*\d{5})[A-Z0-9]{6,9}\b")
_MRN = re.compile(r"\b(?=[A-Z0-9\-]*\d{5})[A-Z]{0,3}[\-]?\d{5,12}\b")
_NHS = re.compile(r"(?<!\d)\d{3}[ \-]?\d{3}[ \-]?\d{4}(?!\d)")
_MONTHS = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_DATE = re.compile(
    rf"(?i)\b(?:\d{{1,2}}[/.\-]\d{{1,2}}[/.\-](?:19|20)?\d{{2}}|(?:19|20)\d{{2}}-\d{{2}}-\d{{2}}|"
    rf"\d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTHS}\s+(?:19|20)\d{{2}}|{_MONTHS}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+(?:19|20)\d{{2}})\b"
)


def _after(text: str, keywords: dict[str, list[int]], kind: str) -> list[tuple[int, int]]:
    """Windows of text that follow a word naming ``kind``."""
    windows: list[tuple[int, int]] = []
    if not keywords:
        return windows
    for word in _CONTEXT[kind]:
        for at in keywords.get(word, ()):
            before = text[at - 1 : at] if at else ""
            if before.isalpha():
                continue  # inside a longer word ("basin", "reborn")
            end = at + len(word)
            if text[end : end + 1].isalpha() and word != "passport":
                continue
            windows.append((end, min(len(text), end + _WINDOW)))
    return windows


def _in(pattern: re.Pattern[str], text: str, regions: list[tuple[int, int]]) -> list[re.Match[str]]:
    return [m for lo, hi in regions for m in pattern.finditer(text, lo, hi)]


def find_identity(text: str, regions: list[tuple[int, int]], lower: str | None = None) -> list[Hit]:
    """National ids, passport and record numbers, and birth dates, each where its validation or its name allows;
    ``regions``: where the text has runs of digits (``pii``'s), the only places an unnamed id can be; ``lower``: the
    text lower-cased, if the caller has it."""
    if not regions and _DIGIT.search(text) is None:
        return []  # every kind here holds digits
    lower = text.lower() if lower is None else lower
    keywords = _WORDS.locate(lower)
    hits: list[Hit] = []
    for lo, hi in _after(lower, keywords, "sin"):
        m = _SIN.search(text, lo, hi)
        if m and stdnum_sin.is_valid(m.group(0)):
            hits.append(Hit("pii.ca_sin", "pii", "high", 0.95, m.start(), m.end(), mask_tail(m.group(0), 3)))
    nino_windows = _after(lower, keywords, "nino")
    for lo, hi in nino_windows:
        m = _NINO.search(text, lo, hi)
        if m:
            hits.append(Hit("pii.uk_nino", "pii", "high", 0.93, m.start(), m.end(), REDACTED))
    if not nino_windows:
        hits += [
            Hit("pii.uk_nino", "pii", "high", 0.9, m.start(), m.end(), REDACTED)
            for m in _in(_NINO_SPACED, text, regions)
        ]
    if regions:
        for pattern, validator, name in ((_DNI, stdnum_dni, "es_dni"), (_NIE, stdnum_nie, "es_nie")):
            for m in _in(pattern, text, regions):
                if validator.is_valid(m.group(0)):
                    hits.append(Hit(f"pii.{name}", "pii", "high", 0.95, m.start(), m.end(), REDACTED))
    for lo, hi in _after(lower, keywords, "passport"):
        m = _PASSPORT.search(text, lo, hi)
        if m:
            hits.append(Hit("pii.passport_number", "pii", "high", 0.9, m.start(), m.end(), mask_tail(m.group(0), 2)))
    for lo, hi in _after(lower, keywords, "mrn"):
        nhs = _NHS.search(text, lo, hi)
        if nhs and stdnum_nhs.is_valid(nhs.group(0)):
            hits.append(Hit("pii.medical_record_number", "pii", "high", 0.93, nhs.start(), nhs.end(), REDACTED))
            continue
        m = _MRN.search(text, lo, hi)
        if m:
            hits.append(Hit("pii.medical_record_number", "pii", "high", 0.9, m.start(), m.end(), REDACTED))
    for lo, hi in _after(lower, keywords, "dob"):
        m = _DATE.search(text, lo, hi)
        if m:
            hits.append(Hit("pii.date_of_birth", "pii", "medium", 0.85, m.start(), m.end(), REDACTED))
    return hits
