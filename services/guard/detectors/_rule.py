"""A detection rule: a regex with the literals every match contains, so that it runs only on texts that hold them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from services.detection.leads import Leads, finditer, leading_literals

W = r"(?:[\w'\-]+[ ,]+)"  # one word and the space after it, for "up to n words" gaps


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    pattern: re.Pattern[str]
    score: float
    triggers: tuple[tuple[str, ...], ...]
    """Groups of literals: every match contains one literal of each group, so the regex runs only on texts that do
    (finding the literals takes one pass over the text, the regexes one each). Written ``"a|b&c|d"``: (a or b) and
    (c or d)."""
    leads: Leads | None = None
    """Literals every match starts with, read off the pattern (None if it cannot be told): see :mod:`._leads`."""
    indirect_only: bool = False
    """Read only in indirect channels (tool results and descriptions): the same words typed by the user are a request
    the user may make (change a payee, skip a review), not someone else's instruction."""

    def may_match(self, text: str) -> bool:
        """Whether ``text`` holds the triggers (the definition; :meth:`gate` is the same test, faster)."""
        contains = text.__contains__
        return all(any(map(contains, group)) for group in self.triggers)

    def gate(self, present: set[str]) -> bool:
        """:meth:`may_match` of a text, given the literals it contains (``_LITERALS.present``)."""
        return not any(map(present.isdisjoint, self.triggers))

    def finditer(self, text: str, located: dict[str, list[int]]) -> Iterator[re.Match[str]]:
        """``pattern.finditer(text)``, trying the pattern only where a leading literal occurs when they are known;
        ``located`` is ``_LITERALS.locate(text)``."""
        return finditer(self.pattern, text, self.leads, located)


def rule(name: str, pattern: str, score: float, triggers: str, *, indirect_only: bool = False) -> Rule:
    groups = tuple(tuple(group.split("|")) for group in triggers.split("&"))
    compiled = re.compile(pattern)
    # Leads are matched as written: a case-insensitive rule would need them located in a case-folded text.
    leads = None if compiled.flags & re.IGNORECASE else leading_literals(compiled)
    return Rule(name, compiled, score, groups, leads, indirect_only)
