"""The local copy of a replicated map: a snapshot plus a journal of changes, cheap per change, whole after a crash."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from plumbing.config.file_map import MIN_JOURNAL_LINES, FileMap


class Item(BaseModel):
    n: int


def test_every_change_survives_a_reload_and_the_journal_stays_shorter_than_the_map(tmp_path):
    changes = FileMap(tmp_path / "map.json", Item)
    for n in range(3000):
        changes.apply(f"k{n % 500}", Item(n=n))
    changes.apply("k1", None)
    changes.close()
    lines = len((tmp_path / "map.json.journal").read_bytes().splitlines())
    assert lines <= max(MIN_JOURNAL_LINES, 500)  # folded into the snapshot as it grew: no rewrite per change
    again = FileMap(tmp_path / "map.json", Item)
    assert len(again.values()) == 499 and again.get("k1") is None
    assert again.get("k7") == Item(n=2507)


def test_a_line_torn_by_a_crash_is_skipped(tmp_path):
    changes = FileMap(tmp_path / "map.json", Item)
    changes.apply("a", Item(n=1))
    changes.apply("b", Item(n=2))
    changes.close()
    with open(tmp_path / "map.json.journal", "ab") as journal:
        journal.write(b'{"k": "c", "v": {"n"')  # the process died mid-write
    again = FileMap(tmp_path / "map.json", Item)
    assert {k: again.get(k) for k in ("a", "b", "c")} == {"a": Item(n=1), "b": Item(n=2), "c": None}


def test_an_unreadable_copy_starts_empty_but_an_unreadable_record_refuses_to_start(tmp_path):
    (tmp_path / "map.json").write_bytes(b'{"a": {"n"')
    assert FileMap(tmp_path / "map.json", Item, fsync=False).values() == []
    with pytest.raises(ValueError):
        FileMap(tmp_path / "map.json", Item)


def test_a_snapshot_written_by_hand_is_read(tmp_path):
    (tmp_path / "map.json").write_text('{"a": {"n": 1}}')  # as bench/policy_profile.py seeds profiles
    assert FileMap(tmp_path / "map.json", Item).get("a") == Item(n=1)
