"""How ``warden.interactions`` and its copies fold the rows of one interaction (migrations 001 and 003), for code
that folds rows before ClickHouse does (the logger, a batch) or after it has not yet (the console, unmerged parts).

Each column is ``anyLast`` over non-NULL values, so a value wins over a NULL; ``blocked`` is ``max``. The request
and response halves never disagree on a column both carry (attribution), so which of two values wins does not matter.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

Row = dict[str, Any]
MAX_COLUMNS = frozenset({"blocked"})


def fold_row(into: Row, row: Row) -> Row:
    """``row`` folded into ``into``, in place."""
    for column, value in row.items():
        if column in MAX_COLUMNS:
            into[column] = max(into.get(column, 0), value)
        elif value is not None:
            into[column] = value
    return into


def fold_by_interaction(rows: Iterable[Row]) -> list[Row]:
    """One row per interaction, in the order each was first seen; the first row of each is folded into in place."""
    folded: dict[str, Row] = {}
    for row in rows:
        existing = folded.get(row["interaction_id"])
        if existing is None:
            folded[row["interaction_id"]] = row
        else:
            fold_row(existing, row)
    return list(folded.values())
