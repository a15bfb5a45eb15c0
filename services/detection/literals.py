"""Which of a fixed set of literals occur in a text, and where, found in one pass over it.

Detectors gate their regexes on literal triggers (a rule runs only when one of its keywords is in the text). With a
couple of hundred triggers, testing each with ``in`` costs more than the regexes it saves, every test being a scan of
the whole text. An Aho-Corasick automaton (``ahocorasick_rs``, the Rust ``aho-corasick`` crate) reports every
occurrence of every literal, overlapping or not, in a single pass.

One-character literals stay out of the automaton and are tested with ``in`` (a ``memchr``), so that frequent ones
(``.``, ``:``) do not flood the result with one entry per occurrence.
"""

from __future__ import annotations

from collections.abc import Iterable

import ahocorasick_rs


class Literals:
    """A fixed set of literals: which of them a text contains (:meth:`present`), and where (:meth:`locate`)."""

    __slots__ = ("_automaton", "_chars", "_patterns", "literals")

    def __init__(self, literals: Iterable[str]) -> None:
        self.literals: frozenset[str] = frozenset(literals)
        if "" in self.literals:
            raise ValueError("the empty string is not a literal")
        self._chars = tuple(sorted(lit for lit in self.literals if len(lit) == 1))
        self._patterns = sorted(lit for lit in self.literals if len(lit) > 1)
        # A DFA: a few hundred short literals make a small one, and it scans about twice as fast as the NFAs.
        self._automaton = (
            ahocorasick_rs.AhoCorasick(
                self._patterns,
                matchkind=ahocorasick_rs.MatchKind.Standard,
                implementation=ahocorasick_rs.Implementation.DFA,
            )
            if self._patterns
            else None
        )

    def locate(self, text: str) -> dict[str, list[int]]:
        """Start offsets (ascending) of every occurrence of each multi-character literal found in ``text``."""
        found: dict[str, list[int]] = {}
        if self._automaton is None:
            return found
        patterns = self._patterns
        for index, start, _end in self._automaton.find_matches_as_indexes(text, overlapping=True):
            lit = patterns[index]
            if lit in found:
                found[lit].append(start)
            else:
                found[lit] = [start]
        return found

    def present(self, text: str, located: Iterable[str] | None = None) -> set[str]:
        """Exactly ``{lit for lit in self.literals if lit in text}``; ``located`` is ``locate(text)`` if known."""
        found: set[str] = set(filter(text.__contains__, self._chars))
        if located is not None:
            found.update(located)
        elif self._automaton is not None:
            found.update(self._automaton.find_matches_as_strings(text, overlapping=True))
        return found
