"""Run a regex only where a match can start: at the literals every match of it begins with.

Most rules begin with a word from a list (``\\b(?:ignore|disregard|forget)\\s+…``). ``re`` cannot skip ahead to such
a pattern's possible starts (a leading ``\\b`` defeats its prefix scan), so ``finditer`` tries the pattern at every
offset of the text. The offsets of the leading words are known from the literal scan that gates the rules, so
:func:`matches_at` tries the pattern only there: the same matches, for a fraction of the cost.

:func:`leading_literals` reads the leading literals off the parsed pattern (``re``'s own parser), so they cannot drift
from the pattern. Whatever it does not understand, it answers ``None`` for, and the rule then runs with ``finditer``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

try:  # the parser of the running Python's ``re`` (``sre_parse`` before 3.11)
    from re import _constants as _c
    from re import _parser as _p
except ImportError:  # pragma: no cover - older or different runtimes fall back to finditer
    _c = _p = None  # type: ignore[assignment]

_MAX_LEADS = 256
_ZERO_WIDTH = (_c.AT, _c.ASSERT, _c.ASSERT_NOT) if _c is not None else ()
_REPEATS = (_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT) if _c is not None else ()


class Leads(NamedTuple):
    """Where a pattern's matches can start: at an occurrence of one of these literals."""

    literals: frozenset[str]
    """Two characters or longer: the caller locates them (``Literals.locate``)."""
    chars: tuple[str, ...] = ()
    """Single punctuation characters, located here with ``str.find`` (rare enough in prose to be worth it)."""


def leading_literals(pattern: re.Pattern[str]) -> Leads | None:
    """Literals one of which every match of ``pattern`` starts with; ``None`` when that cannot be told (a leading
    character class, a repetition, an alternative with no literal…) or when one of them is a single letter, digit or
    space (too frequent for the shortcut to pay).

    For a case-insensitive pattern the literals are lower-cased: they locate its matches in the lower-cased text,
    provided the text is ASCII (there, lower-casing and ``re``'s case folding agree; elsewhere they do not: the long s,
    U+017F, matches ``s``)."""
    if _p is None:
        return None
    try:
        parsed = list(_p.parse(pattern.pattern, pattern.flags))
        # The longest literals that stay few: lengthening multiplies their number (a word list, then another…).
        for cap in (_MAX_LEADS, 32, 4, 1):
            leads = _prefixes(parsed, cap)
            if leads is None or len(leads) <= _MAX_LEADS:
                break
    except Exception:  # an internal structure this code does not know: no shortcut, still correct
        return None
    if not leads or len(leads) > _MAX_LEADS:
        return None
    chars = tuple(sorted(lead for lead in leads if len(lead) == 1))
    if any(ch.isalnum() or ch.isspace() for ch in chars):
        return None
    if pattern.flags & re.IGNORECASE:
        if not all(map(str.isascii, leads)):
            return None
        leads = {lead.lower() for lead in leads}
    return Leads(frozenset(lead for lead in leads if len(lead) > 1), chars)


def _prefixes(items: list[Any], cap: int) -> set[str] | None:
    """Strings one of which every match of the sequence ``items`` starts with (None: no such finite set known);
    ``cap`` bounds how many strings an element may expand into."""
    i = 0
    # Zero-width assertions (\b, ^, lookarounds) only restrict where a match may be: skipping them keeps the answer
    # a necessary condition.
    while i < len(items) and items[i][0] in _ZERO_WIDTH:
        i += 1
    if i == len(items):
        return None
    op, av = items[i]
    rest = items[i + 1 :]
    heads = _strings([items[i]], cap)
    if heads is not None:
        # The element matches one of a few literal strings: the match starts with one of them, lengthened by what
        # must follow (longer literals are rarer: fewer places to try the pattern).
        tails = _prefixes(rest, cap) if rest else None
        if tails is not None and len(heads) * len(tails) <= cap:
            return {h + t for h in heads for t in tails}
        return None if "" in heads else heads
    if op is _c.SUBPATTERN:
        _group, add_flags, del_flags, sub = av
        return None if add_flags or del_flags else _prefixes(list(sub), cap)
    if op is _c.BRANCH:
        return _union(_prefixes(list(alternative), cap) for alternative in av[1])
    if op in _REPEATS:
        low, high, body = av
        if low >= 1:
            return _prefixes(list(body), cap)
        # X? Y starts like X Y or like Y; X* Y (or X{0,n} Y) like X or like Y.
        return _union((_prefixes(list(body) + rest if high == 1 else list(body), cap), _prefixes(rest, cap)))
    return None


def _strings(items: list[Any], cap: int) -> set[str] | None:
    """Every string the sequence can match, when it can only match a few literal strings (zero-width assertions are
    left out: the set is then a superset, which is all a necessary condition needs)."""
    out = {""}
    for op, av in items:
        if op in _ZERO_WIDTH:
            continue
        if op is _c.LITERAL:
            chunks: set[str] | None = {chr(av)}
        elif op is _c.IN:
            chunks = {chr(code) for _, code in av} if all(m is _c.LITERAL for m, _ in av) else None
        elif op is _c.SUBPATTERN:
            chunks = None if av[1] or av[2] else _strings(list(av[3]), cap)
        elif op is _c.BRANCH:
            chunks = _union(_strings(list(alternative), cap) for alternative in av[1])
        elif op in _REPEATS and av[0] == 0 and av[1] == 1:
            body = _strings(list(av[2]), cap)
            chunks = None if body is None else body | {""}
        else:
            chunks = None
        if chunks is None or len(out) * len(chunks) > cap:
            return None
        out = {s + c for s in out for c in chunks}
    return out


def _union(alternatives: Iterable[set[str] | None]) -> set[str] | None:
    out: set[str] = set()
    for leads in alternatives:
        if leads is None:
            return None
        out |= leads
    return out


def finditer(
    pattern: re.Pattern[str], text: str, leads: Leads | None, located: dict[str, list[int]]
) -> Iterator[re.Match[str]]:
    """``pattern.finditer(text)``, given the pattern's :func:`leading_literals` and where the literals occur in
    ``text`` (``Literals.locate``, over a set that includes the leads); without leads, a plain ``finditer``."""
    if leads is None:
        return pattern.finditer(text)
    starts = [start for lit in leads.literals.intersection(located) for start in located[lit]]
    for ch in leads.chars:
        at = text.find(ch)
        while at >= 0:
            starts.append(at)
            at = text.find(ch, at + 1)
    return matches_at(pattern, text, starts)


def matches_at(pattern: re.Pattern[str], text: str, starts: Iterable[int]) -> Iterator[re.Match[str]]:
    """``pattern.finditer(text)`` when every match starts at one of ``starts`` (which need not be sorted or unique).

    ``finditer`` tries offsets left to right and resumes after each match; so does this, over the given offsets only.
    Leading literals are non-empty, so no match is empty and the resumption needs no special case."""
    resume = 0
    for start in sorted(set(starts)):
        if start < resume:
            continue
        m = pattern.match(text, start)
        if m is not None:
            yield m
            resume = m.end()
