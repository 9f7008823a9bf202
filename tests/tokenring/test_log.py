"""The core's in-memory view of the log: a bounded window of entries, epoch runs, ids."""

from __future__ import annotations

import pytest

from dspot.tokenring import Entry
from dspot.tokenring._log import IdWindow, LogWindow


def entries(*epochs: int) -> list[Entry]:
    return [Entry(e, f"id{i}", b"x") for i, e in enumerate(epochs, 1)]


def test_only_the_newest_entries_stay_in_memory_but_every_epoch_is_known() -> None:
    log = LogWindow(3)
    for e in entries(1, 1, 2, 2, 2, 3, 3):
        log.append(e)
    assert log.last_index == 7 and len(log) == 3 and log.window_start == 5
    assert [e.entry_id for e in log.in_memory()] == ["id5", "id6", "id7"]
    assert [log.epoch_at(i) for i in range(8)] == [0, 1, 1, 2, 2, 2, 3, 3]
    assert log.runs() == [(0, 0), (1, 1), (3, 2), (6, 3)]  # one pair per epoch change
    assert log.entry(4) is None and log.entry(6) == Entry(3, "id6", b"x")
    assert log.entries(5, 7) is not None and log.entries(4, 7) is None  # 4 is on disk only
    assert log.epoch_at(8) is None
    assert log.run_start(5) == 3 and log.run_start(2) == 1


def test_truncate_drops_the_suffix_and_its_epochs() -> None:
    log = LogWindow(4, entries=entries(1, 1, 2, 2, 3))
    log.truncate(4)
    assert log.last_index == 3 and log.last_epoch == 2
    assert [e.entry_id for e in log.in_memory()] == ["id2", "id3"]  # id1 left memory
    log.append(Entry(4, "new", b""))
    assert [log.epoch_at(i) for i in range(1, 5)] == [1, 1, 2, 4]
    log.truncate(9)  # past the end: nothing to do
    assert log.last_index == 4
    with pytest.raises(ValueError):
        LogWindow(4, base_index=3, base_epoch=1).truncate(2)


def test_compact_moves_the_base_and_keeps_its_epoch() -> None:
    log = LogWindow(10, entries=entries(1, 1, 2, 2, 3, 3))
    assert log.compact(4) == 2
    assert log.base_index == 4 and log.base_epoch == 2 and log.first_index == 5
    assert log.epoch_at(3) is None and log.epoch_at(4) == 2 and log.epoch_at(5) == 3
    assert [e.entry_id for e in log.in_memory()] == ["id5", "id6"]
    assert log.run_start(6) == 5
    with pytest.raises(ValueError):
        log.compact(9)
    log.reset(20, 7)  # a snapshot at 20 replaced the whole log
    assert (log.base_index, log.last_index, log.last_epoch, len(log)) == (20, 20, 7, 0)
    assert log.append(Entry(7, "a", b"")) == 21


def test_a_loaded_window_with_runs_from_disk() -> None:
    log = LogWindow(
        2,
        base_index=10,
        base_epoch=3,
        runs=[(11, 3), (13, 5)],
        last_index=14,
        entries=[Entry(5, "c", b""), Entry(5, "d", b"")],
    )
    assert [log.epoch_at(i) for i in range(10, 15)] == [3, 3, 3, 5, 5]
    assert log.window_start == 13 and log.entries(13, 14) is not None


def test_id_window_forgets_from_the_old_end_and_truncates_from_the_new() -> None:
    ids = IdWindow([("b", 2, 1), ("a", 1, 1), ("c", 5, 2)])
    assert ids.get("a") == (1, 1) and "c" in ids and len(ids) == 3
    ids.forget_upto(2)
    assert ids.get("a") is None and ids.get("b") is None and ids.get("c") == (5, 2)
    ids.add("d", 6, 2)
    ids.truncate(6)
    assert ids.items() == [("c", 5, 2)]
    with pytest.raises(ValueError):
        ids.add("e", 4, 2)  # ids come in log order
