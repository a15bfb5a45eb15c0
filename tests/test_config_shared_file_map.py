"""The embedded replicated map as several processes share it: each sees the others' changes, none is lost when two
write at once or one compacts, and a torn line is skipped."""

from __future__ import annotations

import asyncio
import multiprocessing

import pytest
from pydantic import BaseModel

from plumbing.config.file_map import FileMap
from plumbing.config.shared_file_map import MIN_JOURNAL_BYTES, SharedFileMap


class Item(BaseModel):
    n: int
    note: str = ""


NOTE = "x" * 200  # about 230 bytes a change: the journal passes its floor a few times


async def test_a_change_made_by_one_holder_reaches_the_other_with_its_listeners(tmp_path):
    writer, follower = SharedFileMap(tmp_path / "m.json", Item), SharedFileMap(tmp_path / "m.json", Item)
    heard: list[tuple[str, object]] = []
    follower.listen(lambda key, value: heard.append((key, value)))
    await writer.put("a", Item(n=1))
    await writer.put("b", Item(n=2))
    assert await writer.delete("a")
    await follower.refresh()
    assert follower.get("a") is None and follower.get("b") == Item(n=2)
    assert heard == [("a", Item(n=1)), ("b", Item(n=2)), ("a", None)]
    assert not await follower.delete("a")


async def test_the_follower_task_picks_changes_up_by_itself(tmp_path):
    writer = SharedFileMap(tmp_path / "m.json", Item)
    follower = SharedFileMap(tmp_path / "m.json", Item, follow_interval_s=0.01)
    await follower.start()
    try:
        await writer.put("a", Item(n=7))
        while follower.get("a") is None:
            await asyncio.sleep(0.01)
        assert follower.get("a") == Item(n=7)
    finally:
        await follower.stop()


def _write_many(path: str, prefix: str, count: int) -> None:
    async def run() -> None:
        shared = SharedFileMap(__import__("pathlib").Path(path), Item)
        for n in range(count):
            await shared.put(f"{prefix}{n % 300}", Item(n=n, note=NOTE))

    asyncio.run(run())


def test_writers_in_several_processes_lose_nothing_across_compactions(tmp_path):
    count = 700
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_write_many, args=(str(tmp_path / "m.json"), p, count)) for p in "xy"]
    for process in writers:
        process.start()
    for process in writers:
        process.join(120)
        assert process.exitcode == 0
    final = SharedFileMap(tmp_path / "m.json", Item)
    # Each writer's last value for every key, whoever compacted in between.
    expected = {f"{p}{n % 300}": Item(n=n, note=NOTE) for p in "xy" for n in range(count)}
    assert {key: final.get(key) for key in expected} == expected
    journal, snapshot = (tmp_path / "m.json.journal").stat().st_size, (tmp_path / "m.json").stat().st_size
    assert journal <= max(MIN_JOURNAL_BYTES, snapshot) + 100  # folded as it grew


async def test_a_torn_line_is_skipped_and_the_next_whole_one_is_read(tmp_path):
    writer, follower = SharedFileMap(tmp_path / "m.json", Item), SharedFileMap(tmp_path / "m.json", Item)
    await writer.put("a", Item(n=1))
    with open(tmp_path / "m.json.journal", "ab") as journal:
        journal.write(b'{"k": "c", "v": {"n"')  # a writer died mid-line
    await writer.put("b", Item(n=2))
    await follower.refresh()
    assert [follower.get(k) for k in "abc"] == [Item(n=1), Item(n=2), None]


def test_an_unreadable_snapshot_refuses_to_start(tmp_path):
    (tmp_path / "m.json").write_bytes(b'{"a": {"n"')
    with pytest.raises(ValueError):
        SharedFileMap(tmp_path / "m.json", Item)


async def test_one_file_format_for_the_map_of_one_process_and_the_shared_one(tmp_path):
    """A data directory written by either map (``warden serve``'s shared maps, a distributed process's local copy) is
    read whole by the other: snapshot, journal, deletions, a torn last line skipped."""
    alone = FileMap(tmp_path / "m.json", Item)
    alone.replace({"a": Item(n=1), "b": Item(n=2)})  # a snapshot
    alone.apply("c", Item(n=3))  # then the journal
    alone.apply("a", None)
    alone.close()
    with open(tmp_path / "m.json.journal", "ab") as journal:
        journal.write(b'{"k": "d", "v": {"n"')
    shared = SharedFileMap(tmp_path / "m.json", Item)
    assert {k: shared.get(k) for k in "abcd"} == {"a": None, "b": Item(n=2), "c": Item(n=3), "d": None}
    await shared.put("e", Item(n=5))  # the torn line is kept apart from this one
    await shared.delete("b")
    again = FileMap(tmp_path / "m.json", Item)
    assert {k: again.get(k) for k in "abcde"} == {"a": None, "b": None, "c": Item(n=3), "d": None, "e": Item(n=5)}
