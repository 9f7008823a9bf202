"""The history checker (dspot.history) on hand-made histories that must pass and must fail."""

from __future__ import annotations

import math
from typing import Any

from dspot.history import (
    Operation,
    Outcome,
    ViolationKind,
    check,
    dump_jsonl,
    load_jsonl,
)

OK, FAILED, UNKNOWN = Outcome.OK, Outcome.FAILED, Outcome.UNKNOWN


def w(
    client: str,
    t0: float,
    t1: float,
    key: str,
    value: Any,
    outcome: Outcome = OK,
    version: tuple[int, ...] | None = None,
) -> Operation:
    return Operation(
        client=client,
        name="write",
        invoke=t0,
        complete=t1,
        outcome=outcome,
        writes={key: value},
        version=version,
    )


def r(client: str, t0: float, t1: float, key: str, value: Any, outcome: Outcome = OK) -> Operation:
    return Operation(
        client=client, name="read", invoke=t0, complete=t1, outcome=outcome, reads={key: value}
    )


def kinds(history: list[Operation], **kw: Any) -> list[ViolationKind]:
    return [v.kind for v in check(history, **kw).violations]


def test_a_clean_history_passes() -> None:
    h = [
        w("a", 0, 1, "x", "a1"),
        r("a", 2, 3, "x", "a1"),
        r("b", 2, 3, "x", None),  # another client may lag (no linearizability promised)
        r("b", 4, 5, "x", "a1"),
        w("a", 6, 7, "x", "a2"),
        r("a", 8, 9, "x", "a2"),
        r("b", 8, 9, "x", "a1"),
    ]
    report = check(h, final={"x": "a2"})
    assert report.violations == ()
    assert report.reads_checked == 5 and report.writes_acknowledged == 2
    assert set(report.counts().values()) == {0}


def test_a_read_of_a_value_never_written_fails() -> None:
    assert kinds([w("a", 0, 1, "x", "a1"), r("b", 2, 3, "x", "zz")]) == [
        ViolationKind.NEVER_WRITTEN
    ]
    # A value written only after the read completed is as good as never written.
    assert kinds([r("b", 0, 1, "x", "a1"), w("a", 2, 3, "x", "a1")]) == [
        ViolationKind.NEVER_WRITTEN
    ]


def test_a_read_of_a_failed_write_fails_but_an_unknown_one_may_be_seen() -> None:
    h = [w("a", 0, 1, "x", "a1", FAILED), r("b", 2, 3, "x", "a1")]
    assert kinds(h) == [ViolationKind.FAILED_WRITE_SEEN]
    # An unknown outcome may have been applied: seeing it, even much later, is fine.
    h = [w("a", 0, 1, "x", "a1", UNKNOWN), r("b", 50, 51, "x", "a1")]
    assert kinds(h, final={"x": "a1"}) == []


def test_an_acknowledged_write_missing_from_the_final_state_is_lost() -> None:
    h = [w("a", 0, 1, "x", "a1"), w("a", 2, 3, "x", "a2")]
    lost = check(h, final={"x": "a1"}).violations
    assert [v.kind for v in lost] == [ViolationKind.LOST_WRITE] and lost[0].op == 1
    assert kinds([w("a", 0, 1, "x", "a1")], final={}, final_keys=["x"]) == [
        ViolationKind.LOST_WRITE
    ]
    # Concurrent writes may land in either order; an unknown one may land last, any time.
    concurrent = [w("a", 0, 5, "x", "a1"), w("b", 1, 2, "y", "b1"), w("c", 1, 6, "x", "c1")]
    assert kinds(concurrent, final={"x": "a1", "y": "b1"}) == []
    assert kinds(concurrent, final={"x": "c1", "y": "b1"}) == []
    late = [w("a", 0, math.inf, "x", "a1", UNKNOWN), w("a", 10, 11, "x", "a2")]
    assert kinds(late, final={"x": "a1"}) == []
    # Deleting is writing None: absent at the end is then right, and the write before lost.
    deleted = [w("a", 0, 1, "x", "a1"), w("a", 2, 3, "x", None)]
    assert kinds(deleted, final={}, final_keys=["x"]) == []
    assert kinds(deleted, final={"x": "a1"}) == [ViolationKind.LOST_WRITE]


def test_log_positions_order_writes_that_overlap_in_time() -> None:
    h = [
        w("a", 0, 5, "x", "a1", version=(1, 7)),
        w("b", 1, 6, "x", "b1", version=(1, 9)),
    ]
    assert kinds(h, final={"x": "b1"}) == []
    assert kinds(h, final={"x": "a1"}) == [ViolationKind.LOST_WRITE]


def test_read_your_writes() -> None:
    h = [w("a", 0, 1, "x", "a1"), r("a", 2, 3, "x", None)]
    assert kinds(h) == [ViolationKind.READ_YOUR_WRITES]
    h = [w("a", 0, 1, "x", "a1"), w("a", 2, 3, "x", "a2"), r("a", 4, 5, "x", "a1")]
    assert kinds(h) == [ViolationKind.READ_YOUR_WRITES]
    # Another client reading the old value is no violation; nor is reading a failed write's
    # predecessor.
    h = [w("a", 0, 1, "x", "a1"), w("a", 2, 3, "x", "a2", FAILED), r("a", 4, 5, "x", "a1")]
    assert kinds(h) == []
    h = [w("a", 0, 1, "x", "a1"), w("a", 2, 3, "x", "a2"), r("b", 4, 5, "x", "a1")]
    assert kinds(h) == []


def test_monotonic_reads() -> None:
    h = [
        w("a", 0, 1, "x", "a1"),
        w("a", 2, 3, "x", "a2"),
        r("b", 4, 5, "x", "a2"),
        r("b", 6, 7, "x", "a1"),
    ]
    assert kinds(h) == [ViolationKind.MONOTONIC_READS]
    # Back to "absent" after seeing the song: also backwards.
    h = [w("a", 0, 1, "x", "a1"), r("b", 2, 3, "x", "a1"), r("b", 4, 5, "x", None)]
    assert kinds(h) == [ViolationKind.MONOTONIC_READS]
    # Two values from overlapping writes: no order between them, either may come second.
    h = [
        w("a", 0, 10, "x", "a1"),
        w("c", 1, 9, "x", "c1"),
        r("b", 11, 12, "x", "c1"),
        r("b", 13, 14, "x", "a1"),
    ]
    assert kinds(h) == []
    # Failed or unknown reads observe nothing.
    h = [
        w("a", 0, 1, "x", "a1"),
        r("b", 2, 3, "x", "a1"),
        r("b", 4, 5, "x", None, UNKNOWN),
        r("b", 4, 5, "x", None, FAILED),
    ]
    assert kinds(h) == []


def test_every_kind_is_counted_and_reported_with_its_operation() -> None:
    h = [w("a", 0, 1, "x", "a1"), r("a", 2, 3, "x", None), r("a", 4, 5, "y", "q")]
    report = check(h)
    counts = report.counts()
    assert counts["read-your-writes"] == 1 and counts["never-written"] == 1
    assert {v.op for v in report.violations} == {1, 2}
    assert all(v.message for v in report.violations)
    assert ViolationKind.READ_YOUR_WRITES.session and not ViolationKind.LOST_WRITE.session


def test_histories_round_trip_through_json_lines() -> None:
    h = [
        Operation(
            client="a",
            name="playlist",
            invoke=1.5,
            complete=2.0,
            outcome=OK,
            writes={"p": ["s1", "s2"]},
            version=(3, 4),
            detail={"status": 201},
        ),
        r("b", 3, 4, "p", ("s1", "s2")),
    ]
    text = dump_jsonl(h)
    assert len(text.splitlines()) == 2
    again = load_jsonl(text)
    assert again == h
    assert again[0].writes["p"] == ("s1", "s2") and again[0].version == (3, 4)
    assert kinds(again, final={"p": ["s1", "s2"]}) == []


def test_a_read_overlapping_the_clients_own_write_may_see_either_value() -> None:
    """A client with several requests in flight: a read invoked before its write completed
    may see the value before it; one invoked after must see the write (and a read binds
    only what is invoked after it completed)."""
    h = [w("a", 0, 1, "x", "a1"), w("a", 2, 6, "x", "a2"), r("a", 3, 4, "x", "a1")]
    assert kinds(h) == []
    h = [w("a", 0, 1, "x", "a1"), w("a", 2, 6, "x", "a2"), r("a", 7, 8, "x", "a1")]
    assert kinds(h) == [ViolationKind.READ_YOUR_WRITES]
    # Two overlapping reads: the second may be older than the first (neither had completed
    # when the other began); a read invoked after both completed may not.
    h = [
        w("a", 0, 1, "x", "a1"),
        w("b", 2, 3, "x", "b1"),
        r("c", 4, 6, "x", "b1"),
        r("c", 5, 7, "x", "a1"),
        r("c", 8, 9, "x", "a1"),
    ]
    assert kinds(h) == [ViolationKind.MONOTONIC_READS]
