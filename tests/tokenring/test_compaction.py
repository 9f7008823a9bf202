"""Compaction, snapshots, the memory window and the id window in the sans-I/O core.

Cores are driven by hand (``harness.Harness``); each has a dict for a disk, so entries that
left memory are read back and snapshots are "transferred" as the driver would.
"""

from __future__ import annotations

import random

import attrs
import pytest

from dspot.tokenring import (
    Append,
    Entry,
    Fetch,
    HardState,
    InstallSnapshot,
    Role,
    SnapshotMeta,
    TokenRingConfig,
    TokenRingCore,
    TokenRingMechanism,
    Vote,
)
from tests.tokenring.harness import Harness

SMALL = TokenRingConfig(max_batch=2, memory_entries=4, keep_entries=2, dedupe_window=6)
NAMES = ["a", "b", "c"]


def _cluster(cfg: TokenRingConfig = SMALL) -> Harness:
    h = Harness(NAMES, cfg)
    h.advance(3.0)
    assert len(h.holders()) == 1
    return h


def _fill(h: Harness, prefix: str, n: int, via: str | None = None) -> None:
    for i in range(n):
        node = via or NAMES[i % len(NAMES)]
        if (node, "x") not in h.cut:
            h.submit(node, f"{prefix}{i}")
        h.advance(0.05)
    h.advance(2.0)


def _meta(index: int, epoch: int) -> SnapshotMeta:
    return SnapshotMeta(index, epoch, "s", 10, "00", 0)


def test_a_member_behind_the_log_start_gets_the_snapshot_then_the_tail() -> None:
    h = _cluster()
    h.isolate("c")
    _fill(h, "w", 12, via=h.holders()[0])
    for node in ("a", "b"):
        h.compact(node)
    holder = next(n for n in ("a", "b") if h.cores[n].role is Role.HOLDER)
    hc = h.cores[holder]
    snap = hc.snapshot
    assert snap is not None and hc.base_index == snap.index - SMALL.keep_entries
    _fill(h, "t", 3, via=holder)  # the tail: entries after the snapshot
    assert hc.last_index > snap.index
    h.heal()
    h.advance(3.0)
    c = h.cores["c"]
    # c installed the snapshot (it had nothing of the log the holders still keep) ...
    assert [(src, dst, m.index) for src, dst, m in h.offers] == [(holder, "c", snap.index)]
    assert c.snapshot is not None and c.base_index == snap.index
    # ... then got the tail by log transfer: its log after the snapshot equals the holder's
    tail = [e for i, e in enumerate(h.log(holder), hc.base_index + 1) if i > snap.index]
    assert h.log("c") == tail and c.commit_index == hc.commit_index == hc.last_index
    assert h.fetches == 0  # what c lacked after the snapshot was still in memory


def test_without_the_tail_rule_the_offer_claims_the_commit_index() -> None:
    h = _cluster()
    h.isolate("c")
    _fill(h, "w", 8, via=h.holders()[0])
    holder = h.holders()[0]
    meta = h.compact(holder)
    _fill(h, "t", 3, via=holder)
    hc = h.cores[holder]
    hc.disabled = frozenset({TokenRingMechanism.SNAPSHOT_TAIL})
    h.heal()
    h.advance(3.0)
    offered = [m for src, dst, m in h.offers if dst == "c"]
    assert offered and offered[0].index > meta.index  # the entries in between are skipped
    assert h.cores["c"].base_index == offered[0].index


def test_install_keeps_the_acknowledged_tail_when_the_log_matches_at_the_snapshot() -> None:
    f = TokenRingCore("f", SMALL, rng=random.Random(1), now=0.0)
    f.set_view(NAMES, NAMES)
    log = [Entry(1, f"e{i}", b"") for i in range(1, 6)]
    f.on_append(Append.build(epoch=1, hop=0, holder="a", prev_index=0, prev_epoch=0,
                             commit=2, token=False, entries=log), 1.0)  # fmt: skip
    chunk = InstallSnapshot(1, 0, "a", 3, 1, 10, "00", 0, 0, b"")
    assert f.on_snapshot_chunk(chunk, 1.0)[0] is None  # 3 > commit 2: take it
    reply, out = f.install_snapshot(_meta(3, 1), [("e3", 3, 1)], ["a", "b", "f"])
    assert reply.installed and reply.match_index == 3
    assert f.base_index == 3 and f.last_index == 5  # entries 4 and 5 stay
    assert out.persist is not None and out.persist.truncate_from is None
    assert out.persist.trim_to == 3 and out.persist.members == ("a", "b", "f")
    assert f.position_of("e3") is not None  # the snapshot's ids are known
    # A log that disagrees at the snapshot's index is discarded whole.
    g = TokenRingCore("g", SMALL, rng=random.Random(1), now=0.0)
    g.set_view(NAMES, NAMES)
    g.on_append(Append.build(epoch=1, hop=0, holder="a", prev_index=0, prev_epoch=0,
                             commit=0, token=False, entries=log), 1.0)  # fmt: skip
    g.enqueue("mine", b"m", 1.0)
    mine = [Entry(1, "mine", b"m")]
    g.on_append(Append.build(epoch=1, hop=0, holder="a", prev_index=5, prev_epoch=1,
                             commit=0, token=False, entries=mine), 1.0)  # fmt: skip
    _, out = g.install_snapshot(_meta(4, 2), [], [])
    assert g.base_index == g.last_index == 4 and g.last_epoch == 2
    assert out.persist is not None and out.persist.truncate_from == 1
    assert g.submits.queue == [("mine", b"m")]  # after the conflict: not committed, requeued
    # A snapshot already covered by the commit index changes nothing.
    reply, out = g.install_snapshot(_meta(3, 1), [], [])
    assert reply.installed and out.persist is None and g.base_index == 4


def test_an_append_from_below_the_base_matches_and_skips_what_the_snapshot_covers() -> None:
    f = TokenRingCore("f", SMALL, rng=random.Random(1), now=0.0)
    f.install_snapshot(_meta(10, 2), [], [])
    entries = [Entry(2, f"old{i}", b"") for i in range(8, 11)] + [Entry(3, "new", b"")]
    reply, _ = f.on_append(Append.build(epoch=3, hop=0, holder="a", prev_index=7, prev_epoch=2,
                                        commit=11, token=False, entries=entries), 1.0)  # fmt: skip
    assert reply.ok and reply.match_index == 11
    assert f.last_index == 11 and f.epoch_at(11) == 3 and f.commit_index == 11


def test_compaction_drops_only_what_the_snapshot_covers() -> None:
    h = _cluster()
    _fill(h, "w", 10)
    a = h.cores["a"]
    commit, last = a.commit_index, a.last_index
    h.compact("a")
    assert a.base_index == commit - SMALL.keep_entries
    assert min(h.disks["a"]) == a.base_index + 1 and max(h.disks["a"]) == last
    with pytest.raises(ValueError, match="past the commit index"):
        a.compacted(_meta(a.commit_index + 1, a.epoch))


def test_naive_trimming_drops_entries_a_lagging_majority_still_needs() -> None:
    h = _cluster()
    holder = h.holders()[0]
    for n in NAMES:
        if n != holder:
            h.isolate(n)
    hc = h.cores[holder]
    hc.view_has_quorum = lambda: True  # type: ignore[method-assign]  # its view lags
    hc.disabled = frozenset({TokenRingMechanism.TRIM_GUARD})
    for i in range(6):
        h.submit(holder, f"x{i}")
        h.advance(0.05)
    # Nothing it appended is committed (the others never got it), yet it is gone.
    assert hc.commit_index < hc.base_index
    assert hc.base_index == hc.last_index - SMALL.keep_entries


def test_entries_that_left_memory_are_read_back_and_checked_before_sending() -> None:
    cfg = attrs.evolve(SMALL, memory_entries=2)
    h = _cluster(cfg)
    h.isolate("c")
    _fill(h, "w", 8, via=h.holders()[0])
    h.heal()
    h.advance(3.0)
    assert h.fetches > 0  # c was further behind than the holder keeps in memory
    assert h.log("c") == h.log(h.holders()[0])
    assert h.most_in_memory <= cfg.memory_entries
    # A read that no longer fits the log (truncated or compacted meanwhile) is dropped.
    holder = h.cores[h.holders()[0]]
    fetch = Fetch("c", 1, 1)
    holder.inflight["c"] = fetch
    out = holder.on_fetched(fetch, [Entry(99, "?", b"")], h.now)
    assert out.sends == [] and "c" not in holder.inflight


def test_ids_are_forgotten_past_the_window_once_every_live_member_has_them() -> None:
    h = _cluster()
    _fill(h, "w", 12)
    a = h.cores["a"]
    assert a.commit_index >= 12
    # Only ids of the newest dedupe_window committed entries (and newer) remain.
    assert all(idx > a.commit_index - SMALL.dedupe_window for _, idx, _ in a.ids.items())
    assert a.position_of("w0") is None and a.position_of("w11") is not None
    # A live member that lags keeps the ids it has not reached.
    h2 = _cluster()
    h2.cut |= {("c", "a"), ("a", "c"), ("c", "b"), ("b", "c")}  # c stays live in the views
    _fill(h2, "w", 12, via=h2.holders()[0])
    holder = h2.cores[h2.holders()[0]]
    assert holder.floor <= h2.cores["c"].last_index
    assert holder.position_of("w0") is not None


def test_memory_is_bounded_by_configuration_not_by_log_length() -> None:
    cfg = TokenRingConfig(max_batch=4, memory_entries=8, dedupe_window=16, keep_entries=4)
    h = Harness(NAMES, cfg)
    h.advance(3.0)
    for round_ in range(60):
        for n in NAMES:
            h.submit(n, f"{n}.{round_}")
        h.advance(0.1)
        if round_ % 10 == 9:
            for n in NAMES:
                h.compact(n)
    h.advance(2.0)
    for n, core in h.cores.items():
        assert core.commit_index >= 180
        assert len(core.log) <= cfg.memory_entries
        assert len(core.ids) <= cfg.dedupe_window + cfg.max_batch * len(NAMES)
        assert len(h.disks[n]) <= 30 + cfg.keep_entries  # on disk: since the last snapshot
    assert h.most_in_memory <= cfg.memory_entries


def test_a_learner_neither_votes_nor_stands_until_it_matched_a_holder() -> None:
    core = TokenRingCore("l", SMALL, rng=random.Random(1), now=0.0, state=HardState(learner=True))
    core.set_view([*NAMES, "l"], [*NAMES, "l"])
    reply, _ = core.on_vote(Vote(1, "a", 0, 0), 1.0)
    assert not reply.granted  # even for an empty log: it may have forgotten a vote
    core.tick(100.0)
    assert core.role is Role.FOLLOWER  # never a candidate
    entries = [Entry(1, "x", b""), Entry(1, "y", b"")]
    msg = Append.build(epoch=2, hop=0, holder="a", prev_index=0, prev_epoch=0, commit=1,
                       token=False, entries=entries[:1], holder_last=2)  # fmt: skip
    core.on_append(msg, 101.0)
    assert core.learner  # matched up to 1 of the holder's 2
    msg = Append.build(epoch=2, hop=0, holder="a", prev_index=1, prev_epoch=1, commit=1,
                       token=False, entries=entries[1:], holder_last=2)  # fmt: skip
    _, out = core.on_append(msg, 101.0)
    assert not core.learner and core.voted_for == "a"  # counted as voted in epoch 2
    assert out.persist is not None and out.persist.state == HardState(2, "a", -1, False)
    reply, _ = core.on_vote(Vote(3, "b", 2, 1), 101.5)
    assert not reply.granted  # elections from before its disk was lost may still run
    reply, _ = core.on_vote(Vote(4, "b", 2, 1), 110.0)
    assert reply.granted
