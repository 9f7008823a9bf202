"""The sans-I/O core, driven by hand: no event loop, no network, no disk."""

from __future__ import annotations

import itertools
import random

import pytest

from dspot.tokenring import (
    Append,
    AppendReply,
    Entry,
    HardState,
    Role,
    TokenRingConfig,
    TokenRingCore,
    TokenRingMechanism,
    Vote,
    VoteReply,
)
from tests.tokenring.harness import CFG, NAMES, Harness


def test_a_token_is_generated_and_circulates_in_ring_order() -> None:
    h = Harness()
    h.advance(4.0)
    assert len(h.holders()) == 1
    holder = h.cores[h.holders()[0]]
    assert holder.epoch == 1
    # the generating holder appended a no-op, committed on a majority
    assert holder.log.in_memory()[0].is_noop and holder.commit_index >= 1
    seen: list[str] = []
    for _ in range(800):
        h.advance(0.01)
        now = h.holders()[0]
        if not seen or seen[-1] != now:
            seen.append(now)
    assert len(seen) > 5  # the token moved, within epoch 1
    ring = [n for n in h.cores[seen[0]].live]
    for a, b in itertools.pairwise(seen):
        assert ring[(ring.index(a) + 1) % len(ring)] == b
    assert {c.epoch for c in h.cores.values()} == {1}


def test_submits_commit_in_one_order_everywhere_and_dedupe_by_id() -> None:
    h = Harness()
    h.advance(3.0)
    for i, n in enumerate(NAMES):
        h.feed(n, h.cores[n].enqueue(f"x{i}", b"data%d" % i, h.now))
    h.feed("c", h.cores["c"].enqueue("x0", b"data0", h.now))  # same id through another node
    h.advance(5.0)
    assert set(h.resolved) == {f"x{i}" for i in range(5)}
    logs = {
        n: [(e.epoch, e.entry_id) for e in c.log.in_memory()[: c.commit_index]]
        for n, c in h.cores.items()
    }
    first = logs["a"]
    assert all(log == first for log in logs.values())
    ids = [eid for _, eid in first if eid]
    assert sorted(ids) == [f"x{i}" for i in range(5)]  # x0 once
    pos = h.resolved["x3"]
    assert h.cores["e"].log.in_memory()[pos.seq - 1].entry_id == "x3"  # type: ignore[attr-defined]


def test_lost_token_is_regenerated_with_a_higher_epoch() -> None:
    h = Harness()
    h.advance(3.0)
    old = h.holders()[0]
    epoch = h.cores[old].epoch
    h.up.discard(old)
    h.view()
    h.advance(6.0)
    assert len(h.holders()) == 1
    new = h.cores[h.holders()[0]]
    assert new.epoch > epoch
    # (epoch, seq) of the old holder's log are never reused with other entries
    for n in h.up:
        c = h.cores[n]
        for seq, e in enumerate(c.log.in_memory()[: c.commit_index], 1):
            other = (
                h.cores[old].log.in_memory()[seq - 1] if seq <= h.cores[old].commit_index else None
            )
            assert other is None or other == e


def test_minority_holder_cannot_commit_and_steps_down() -> None:
    h = Harness()
    h.advance(3.0)
    holder = h.holders()[0]
    others = [n for n in NAMES if n != holder]
    minority = {holder, others[0]}
    for a in minority:
        for b in NAMES:
            if b not in minority:
                h.cut.add((a, b))
                h.cut.add((b, a))
    h.view()
    core = h.cores[holder]
    core.view_has_quorum = lambda: True  # type: ignore[method-assign]  # its view lags
    commit = core.commit_index
    h.feed(holder, core.enqueue("lonely", b"x", h.now))
    h.advance(0.5)
    assert core.last_index > commit  # appended ...
    assert core.commit_index == commit  # ... but two copies of five commit nothing
    assert "lonely" not in h.resolved
    h.advance(4.0)
    assert core.role is not Role.HOLDER  # stepped down without a majority
    majority_holders = [n for n in h.holders() if n not in minority]
    assert len(majority_holders) == 1


def test_no_quorum_view_rejects_queued_submits_only_if_never_appended() -> None:
    h = Harness()
    h.advance(3.0)
    f = next(n for n in NAMES if n not in h.holders())
    core = h.cores[f]
    core.set_view([f], NAMES)
    out = core.enqueue("q", b"x", h.now)
    out = core.tick(h.now)
    assert out.rejected == ["q"]
    assert not core.submits.queue


def test_vote_is_granted_once_per_epoch_and_only_to_an_up_to_date_log() -> None:
    core = TokenRingCore("a", CFG, rng=random.Random(1), now=0.0, log=[Entry(2, "x", b"")])
    core.set_view(NAMES, NAMES)
    reply, out = core.on_vote(Vote(3, "b", 0, 0), 10.0)  # b's log is behind ours
    assert not reply.granted and reply.epoch == 3
    reply, out = core.on_vote(Vote(3, "c", 1, 2), 10.0)
    assert reply.granted
    assert out.persist is not None and out.persist.state == HardState(3, "c", -1)
    reply, _ = core.on_vote(Vote(3, "d", 5, 3), 10.0)  # already voted in epoch 3
    assert not reply.granted
    reply, _ = core.on_vote(Vote(2, "d", 5, 3), 10.0)  # stale epoch
    assert not reply.granted and reply.epoch == 3


def test_restarted_member_keeps_its_vote() -> None:
    core = TokenRingCore("a", CFG, rng=random.Random(1), now=0.0, state=HardState(3, "c", -1))
    core.set_view(NAMES, NAMES)
    reply, _ = core.on_vote(Vote(3, "d", 0, 0), 10.0)
    assert not reply.granted


def _append(**kw: object) -> Append:
    args: dict[str, object] = dict(
        epoch=1, hop=0, holder="b", prev_index=0, prev_epoch=0, commit=0, token=False, entries=[]
    )
    args.update(kw)
    return Append.build(**args)  # type: ignore[arg-type]


def test_append_from_an_older_epoch_is_refused() -> None:
    core = TokenRingCore("a", CFG, rng=random.Random(1), now=0.0, state=HardState(5, None, -1))
    reply, out = core.on_append(_append(epoch=4, entries=[Entry(4, "x", b"")]), 1.0)
    assert not reply.ok and reply.epoch == 5
    assert core.last_index == 0 and out.persist is None


def test_entries_are_persisted_before_the_ack_and_the_token_hop_too() -> None:
    core = TokenRingCore("a", CFG, rng=random.Random(1), now=0.0)
    core.set_view(NAMES, NAMES)
    reply, out = core.on_append(
        _append(epoch=2, hop=3, token=True, entries=[Entry(2, "x", b"1"), Entry(2, "y", b"2")]),
        1.0,
    )
    assert reply.ok and reply.took_token and reply.match_index == 2
    assert out.persist is not None
    assert sorted(out.persist.entries) == [1, 2]
    assert out.persist.state == HardState(2, None, 3)
    assert core.role is Role.HOLDER
    # the same pass again (a duplicate or late retry) does not hand out the token twice
    core2 = TokenRingCore("a", CFG, rng=random.Random(1), now=0.0, state=HardState(2, None, 3))
    core2.set_view(NAMES, NAMES)
    reply, _ = core2.on_append(_append(epoch=2, hop=3, token=True), 1.0)
    assert not reply.took_token and core2.role is Role.FOLLOWER


def test_conflicting_uncommitted_entries_are_truncated_and_local_submit_requeued() -> None:
    core = TokenRingCore("a", CFG, rng=random.Random(1), now=0.0)
    core.set_view(NAMES, NAMES)
    core.on_append(_append(epoch=1, entries=[Entry(1, "x", b""), Entry(1, "y", b"")], commit=1), 1)
    core.enqueue("mine", b"m", 1.0)
    core.on_append(
        _append(epoch=1, prev_index=2, prev_epoch=1, entries=[Entry(1, "mine", b"m")]), 1
    )
    assert core.submits.pending["mine"] == 3 and not core.submits.queue
    reply, out = core.on_append(
        _append(epoch=2, prev_index=1, prev_epoch=1, entries=[Entry(2, "z", b"")], commit=1), 2
    )
    assert reply.ok
    assert [e.entry_id for e in core.log.in_memory()] == ["x", "z"]
    assert out.persist is not None and out.persist.truncate_from == 2
    assert core.submits.queue == [("mine", b"m")] and core.submits.pending["mine"] == 0
    # committed entries are never truncated, whatever an append says
    core.on_append(_append(epoch=2, prev_index=2, prev_epoch=2, commit=2), 3)
    reply, _ = core.on_append(_append(epoch=3, entries=[Entry(3, "evil", b"")]), 4)
    assert not reply.ok
    assert [e.entry_id for e in core.log.in_memory()] == ["x", "z"]


def test_mismatch_reply_points_the_holder_back() -> None:
    core = TokenRingCore("a", CFG, rng=random.Random(1), now=0.0, log=[Entry(1, "x", b"")] * 3)
    reply, _ = core.on_append(_append(epoch=2, prev_index=7, prev_epoch=2), 1.0)
    assert not reply.ok and reply.conflict_index == 4
    reply, _ = core.on_append(_append(epoch=2, prev_index=3, prev_epoch=2), 1.0)
    assert not reply.ok and reply.conflict_index == 1


def test_holder_commits_only_current_epoch_entries_by_counting() -> None:
    core = TokenRingCore(
        "a", CFG, rng=random.Random(1), now=0.0, state=HardState(1, None, -1),
        log=[Entry(1, "old", b"")],
    )  # fmt: skip
    core.set_view(NAMES, NAMES)
    core.tick(10.0)  # election timeout: candidate for epoch 2
    assert core.role is Role.CANDIDATE and core.epoch == 2
    for peer in ("b", "c"):
        core.on_vote_reply(peer, Vote(2, "a", 1, 1), VoteReply(2, True), 10.0)
    assert core.role is Role.HOLDER
    assert core.log.in_memory()[-1].is_noop and core.log.in_memory()[-1].epoch == 2
    core.persisted(2)
    sent = core.inflight["b"]
    core.on_append_reply("b", sent, AppendReply(2, True, 2, 0, False), 10.1)
    assert core.commit_index == 0  # two of five
    sent = core.inflight["c"]
    core.on_append_reply("c", sent, AppendReply(2, True, 2, 0, False), 10.1)
    assert core.commit_index == 2  # the no-op and, with it, the old entry


@pytest.mark.parametrize("broken", ["majority", "epoch"])
def test_sabotage_switches_change_the_outcome(broken: str) -> None:
    core = TokenRingCore("a", CFG, rng=random.Random(1), now=0.0, state=HardState(5, None, -1))
    core.set_view(NAMES, NAMES)
    if broken == "majority":
        core.disabled = frozenset({TokenRingMechanism.MAJORITY})
        assert core.quorum() == 1
    else:
        core.disabled = frozenset({TokenRingMechanism.EPOCH_CHECK})
        reply, _ = core.on_append(_append(epoch=4, entries=[Entry(4, "x", b"")]), 1.0)
        assert reply.ok and core.last_index == 1


@pytest.mark.parametrize("check", [True, False])
def test_epoch_check_keeps_a_deposed_holder_from_overwriting_newer_entries(check: bool) -> None:
    # f has the new holder's entry (epoch 3) at seq 2, acknowledged but not yet known
    # committed; a late append from the holder of epoch 2 conflicts with it.
    f = TokenRingCore("f", CFG, rng=random.Random(1), now=0.0)
    f.set_view(NAMES, NAMES)
    f.on_append(_append(epoch=3, entries=[Entry(2, "a", b""), Entry(3, "new", b"")]), 1.0)
    f.disabled = frozenset() if check else frozenset({TokenRingMechanism.EPOCH_CHECK})
    reply, _ = f.on_append(
        _append(epoch=2, prev_index=1, prev_epoch=2, entries=[Entry(2, "old", b"")], commit=2),
        2.0,
    )
    if check:
        assert not reply.ok and reply.epoch == 3
        assert [e.entry_id for e in f.log.in_memory()] == ["a", "new"]
    else:  # sabotaged: the acknowledged entry is gone, and "old" is applied at seq 2
        assert [e.entry_id for e in f.log.in_memory()] == ["a", "old"] and f.commit_index == 2


@pytest.mark.parametrize("notify", [True, False])
def test_members_hear_of_a_commit_at_once_not_at_the_next_heartbeat(notify: bool) -> None:
    """The holder sends the new commit index as soon as it moves: every member knows an
    entry is committed once the messages of that commit are delivered, with no timer
    running in between. Without ``commit_notify`` they learn it from the next heartbeat."""
    h = Harness(cfg=TokenRingConfig(commit_notify=notify, idle_hold_time=60.0))
    h.advance(3.0)
    [holder] = h.holders()
    h.feed(holder, h.cores[holder].enqueue("w", b"write", h.now))
    h.run()  # deliver everything, no time passes
    index = h.cores[holder].commit_index
    assert (e := h.cores[holder].log.entry(index)) is not None and e.entry_id == "w"
    knows = [n for n, c in h.cores.items() if c.commit_index >= index]
    if notify:
        assert sorted(knows) == sorted(NAMES)
    else:
        assert knows == [holder]
        h.advance(CFG.heartbeat_interval + 0.02)
        assert all(c.commit_index >= index for c in h.cores.values())
