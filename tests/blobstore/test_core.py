"""The blob store's decisions (``_core.py``) without an event loop: facts in, plans out."""

from __future__ import annotations

import hashlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dspot.blobstore import BlobPlacement, IntegrityError, UploadFailed
from dspot.blobstore._core import (
    Arrival,
    ChainReplica,
    ChunkTally,
    CommitQuorum,
    CommittedUploads,
    Drop,
    ReadCursor,
    RepairRound,
    delete_wins,
    heal_sources,
    plan_delete,
    read_order,
    upload_chain,
)
from dspot.blobstore._errors import BlobUnavailable
from dspot.blobstore._messages import Holding, Hop
from dspot.membership import Member

MEMBERS = [Member(f"n{i}", f"n{i}:1") for i in range(1, 6)]
THREE = BlobPlacement(3, 2)


def owners(key: str, live: list[Member] = MEMBERS) -> list[str]:
    return [m.node_id for m in THREE.owners(key, live)]


def hops(*names: str) -> list[Hop]:
    return [Hop(n, f"{n}:1") for n in names]


# -- tombstones ------------------------------------------------------------------------------


def test_a_delete_at_or_after_the_upload_began_wins() -> None:
    assert delete_wins(10.0, 10.0)  # a tie goes to the delete
    assert delete_wins(11.0, 10.0)
    assert not delete_wins(9.0, 10.0)  # an upload begun after the delete is a new fact
    assert not delete_wins(None, 10.0)


# -- upload: the coordinator -----------------------------------------------------------------


def test_upload_chain_is_the_keys_owners_and_needs_a_write_quorum() -> None:
    chain = upload_chain("key", MEMBERS, THREE)
    assert [h.node for h in chain] == owners("key")
    assert chain[0] == Hop(chain[0].node, f"{chain[0].node}:1")
    with pytest.raises(UploadFailed):
        upload_chain("key", MEMBERS[:1], THREE)


def test_only_replicas_that_acknowledged_every_chunk_are_asked_to_commit() -> None:
    tally = ChunkTally("u", hops("a", "b", "c"))
    for _ in range(3):
        seq = tally.next_seq()
        # "c" misses the last chunk: the chain was cut below "b".
        tally.acked(["a", "b"] if seq == 2 else ["a", "b", "c"])
    assert tally.sent == 3
    assert [h.node for h in tally.commit_targets(2)] == ["a", "b"]
    with pytest.raises(UploadFailed, match="only"):
        tally.commit_targets(3)


def test_a_failed_chunk_fails_the_upload() -> None:
    tally = ChunkTally("u", hops("a", "b"))
    tally.next_seq()
    tally.acked(["a", "b"])
    tally.next_seq()
    tally.failed("first")
    tally.failed("second")
    assert tally.error == "first"
    with pytest.raises(UploadFailed, match="first"):
        tally.commit_targets(1)


def test_commit_quorum_settles_at_w_commits_or_when_everyone_answered() -> None:
    q = CommitQuorum("u", hops("a", "b", "c"), 2)
    q.answered("a", True)
    assert not q.settled
    q.answered("b", False, "disk failure")
    assert not q.settled
    q.answered("c", True)
    assert q.settled and q.result() == ["a", "c"]

    short = CommitQuorum("u", hops("a", "b", "c"), 2)
    short.answered("a", True)
    short.answered("b", False, "deleted")
    short.answered("c", False, "unknown upload")
    assert short.settled
    with pytest.raises(UploadFailed, match="1 commits"):
        short.result()


def test_a_replica_whose_bytes_do_not_match_makes_it_an_integrity_error() -> None:
    q = CommitQuorum("u", hops("a", "b"), 2)
    q.answered("a", False, "hash mismatch: content hashes to x, expected y")
    q.answered("b", False, "hash mismatch: content hashes to x, expected y")
    with pytest.raises(IntegrityError):
        q.result()


# -- upload: a replica -----------------------------------------------------------------------


def test_replica_writes_in_order_whatever_order_chunks_arrive_in() -> None:
    r = ChainReplica("a", hops("b", "c"), now=0.0)
    assert r.arrive(1, 0.0) is Arrival.NEW
    assert r.next_hop() == Hop("b", "b:1") and r.beyond_next() == hops("c")
    assert r.waiting(1) and not r.my_turn(1)  # chunk 0 first
    assert r.arrive(0, 0.1) is Arrival.NEW
    assert r.my_turn(0)
    with pytest.raises(ValueError):
        r.written(1, 10)
    r.written(0, 10)
    assert r.my_turn(1) and not r.waiting(1)
    r.written(1, 5)
    assert (r.next_seq, r.size) == (2, 15)
    assert r.finish(0, ["b", "c"], 0.2) == ["a", "b", "c"]
    assert r.arrive(0, 0.3) is Arrival.REPEAT
    assert r.answer(0) == ["a", "b", "c"] and r.answer(1) is None


def test_a_cut_chain_stops_forwarding_and_stops_counting_the_tail() -> None:
    r = ChainReplica("a", hops("b"), now=0.0)
    r.arrive(0, 0.0)
    r.written(0, 1)
    r.forward_failed()
    assert r.next_hop() is None
    # Even an answer that came back from the successor no longer counts it.
    assert r.finish(0, ["b"], 0.0) == ["a"]


def test_a_chunk_given_up_on_is_new_again_on_retry() -> None:
    r = ChainReplica("a", [], now=0.0)
    assert r.arrive(3, 0.0) is Arrival.NEW
    r.gave_up(3)
    assert r.arrive(3, 0.0) is Arrival.NEW


def test_replica_refuses_a_commit_that_does_not_match_what_it_wrote() -> None:
    r = ChainReplica("a", [], now=0.0)
    for seq, n in enumerate([100, 100, 50]):
        r.arrive(seq, 0.0)
        r.written(seq, n)
    blocks = 16 * 4  # 250 bytes in blocks of 64, XXH3-128 digests
    assert r.commit_refusal(3, 250, 64, blocks) is None
    assert r.commit_refusal(3, 250, 64, 32 * 4) is None  # a coordinator sending sha256 ones
    assert r.commit_refusal(4, 250, 64, blocks) == "have 3 chunks, 250 bytes"
    assert r.commit_refusal(3, 251, 64, blocks) == "have 3 chunks, 250 bytes"
    assert r.commit_refusal(3, 250, 64, blocks - 16) is not None
    assert r.commit_refusal(3, 250, 64, 24 * 4) is not None
    assert r.commit_refusal(3, 250, 0, 0) is not None
    r.fail("disk: gone")
    assert r.commit_refusal(3, 250, 64, blocks) == "disk: gone"
    empty = ChainReplica("a", [], now=0.0)
    empty.arrive(0, 0.0)
    empty.written(0, 0)
    assert empty.commit_refusal(1, 0, 64, 0) is None


def test_idle_uploads_and_recent_commits() -> None:
    r = ChainReplica("a", [], now=0.0)
    r.arrive(0, 5.0)
    assert not r.idle(30.0, 30.0) and r.idle(35.5, 30.0)
    recent = CommittedUploads(limit=2)
    for i in range(3):
        recent.add(f"u{i}", f"sha{i}")
    assert "u0" not in recent and recent.get("u2") == "sha2"


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_chain_counts_a_replica_only_if_it_holds_every_chunk(data: st.DataObject) -> None:
    """Three replica cores under arbitrary arrival orders, duplicates and forward failures:
    whoever the tally asks to commit wrote every chunk, in order."""
    names = ["a", "b", "c"]
    chunks = data.draw(st.integers(1, 6), label="chunks")
    reps = {n: ChainReplica(n, hops(*names[i + 1 :]), 0.0) for i, n in enumerate(names)}
    fails = data.draw(st.sets(st.tuples(st.sampled_from(names[:2]), st.integers(0, 5))))
    tally = ChunkTally("u", hops(*names))

    def deliver(name: str, seq: int) -> list[str] | None:
        r = reps[name]
        if r.arrive(seq, 0.0) is Arrival.REPEAT:
            return r.answer(seq)
        nxt = r.next_hop()
        below: list[str] | None = None
        if nxt is not None:
            if (name, seq) in fails:
                r.forward_failed()
            else:
                below = deliver(nxt.node, seq)
        if not r.my_turn(seq):
            r.gave_up(seq)
            return None
        r.written(seq, 1)
        return r.finish(seq, below, 0.0)

    order = data.draw(st.permutations(list(range(chunks)) * 2), label="arrivals")
    pending = list(range(chunks))
    for seq in order:  # each chunk sent up to twice (a retry), in any order
        if seq not in pending:
            continue
        reached = deliver("a", seq)
        if reached is not None:
            pending.remove(seq)
            tally.next_seq()
            tally.acked(reached)
    if pending:
        return  # the head never got them in order: the upload fails, nothing to check
    for target in tally.complete():
        assert reps[target.node].next_seq == chunks, target


# -- deletes ---------------------------------------------------------------------------------


def test_delete_must_reach_owners_that_are_down() -> None:
    sha = "f" * 64
    first = owners(sha)[0]
    live = [m for m in MEMBERS if m.node_id != first]
    plan = plan_delete(sha, live, MEMBERS, THREE)
    assert first in plan.owners
    assert {m.node_id for m in plan.targets} == {m.node_id for m in MEMBERS}
    assert plan.missing([m.node_id for m in live]) == [first]
    assert plan.missing([m.node_id for m in MEMBERS]) == []


# -- repair ----------------------------------------------------------------------------------


def _shas(count: int) -> list[str]:
    return [hashlib.sha256(str(i).encode()).hexdigest() for i in range(count)]


def test_repair_hands_off_a_copy_once_every_owner_confirmed_it() -> None:
    sha = next(s for s in _shas(50) if "n1" not in owners(s))
    rnd = RepairRound("n1", "n1:1", MEMBERS, [(sha, 1.0)], THREE)
    assert sorted(rnd.asks) == sorted(owners(sha))
    for node in owners(sha):
        rnd.record(node, [Holding(sha, True, 10, 1.0)])
    plan = rnd.plan()
    assert plan.drops == [Drop(sha)] and plan.fetches == [] and plan.under_replicated == 0


def test_repair_asks_a_missing_owner_to_fetch_and_keeps_the_copy() -> None:
    sha = next(s for s in _shas(50) if "n1" not in owners(s))
    missing, *present = owners(sha)
    rnd = RepairRound("n1", "n1:1", MEMBERS, [(sha, 1.0)], THREE)
    rnd.record(missing, [Holding(sha, False)])
    for node in present:
        rnd.record(node, [Holding(sha, True, 10, 1.0)])
    plan = rnd.plan()
    assert plan.drops == [] and plan.under_replicated == 1
    (order,) = plan.fetches
    assert order.target.node_id == missing and order.stored_at == 1.0
    assert [h.node for h in order.sources] == ["n1", *present]  # this node first


def test_repair_adopts_a_winning_tombstone_and_ignores_an_older_one() -> None:
    sha, other = _shas(2)
    held = [(sha, 5.0), (other, 5.0)]
    rnd = RepairRound("n1", "n1:1", MEMBERS, held, THREE)
    for node in owners(sha):
        if node != "n1":
            rnd.record(node, [Holding(sha, False, deleted_at=5.0)])
    for node in owners(other):
        if node != "n1":
            rnd.record(node, [Holding(other, False, deleted_at=4.0)])  # before the upload
    plan = rnd.plan()
    assert Drop(sha, 5.0) in plan.drops
    assert all(d.sha256 != other for d in plan.drops)
    assert {f.sha256 for f in plan.fetches} == {other}  # its owners still lack a copy


def test_repair_asks_nothing_of_an_unreachable_owner_and_batches_questions() -> None:
    shas = _shas(40)
    held = [(s, 1.0) for s in shas]
    rnd = RepairRound("n1", "n1:1", MEMBERS, held, THREE)
    node = sorted(rnd.asks)[0]
    batches = rnd.batches(node, 7)
    assert [s for b in batches for s in b] == rnd.asks[node] and max(map(len, batches)) == 7
    rnd.record(node, [Holding(s, False) for s in rnd.asks[node]])
    rnd.unreachable(node)
    assert all(f.target.node_id != node for f in rnd.plan().fetches)


def test_a_node_missing_from_its_own_view_offers_its_address_as_a_source() -> None:
    sha = _shas(1)[0]
    others = [m for m in MEMBERS if m.node_id != "n9"]
    rnd = RepairRound("n9", "n9:7", others, [(sha, 1.0)], THREE)
    for node in owners(sha, others):
        rnd.record(node, [Holding(sha, False)])
    plan = rnd.plan()
    assert plan.fetches and all(f.sources[0] == Hop("n9", "n9:7") for f in plan.fetches)
    assert plan.drops == []  # no owner holds it yet: never drop the only copy


# -- reads and healing -----------------------------------------------------------------------


def test_read_order_local_then_owners_then_the_rest_suspects_last() -> None:
    sha = _shas(1)[0]
    own = [n for n in owners(sha) if n != "n1"]
    rest = [m.node_id for m in MEMBERS if m.node_id not in owners(sha) and m.node_id != "n1"]
    order = read_order(sha, "n1", MEMBERS, THREE, holds_here=True, suspects={}, now=0.0)
    assert order[0] is None
    assert [h.node for h in order[1:] if h is not None] == own + rest
    doubt = own[0]
    order = read_order(sha, "n1", MEMBERS, THREE, holds_here=False, suspects={doubt: 5.0}, now=1.0)
    assert [h.node for h in order if h is not None] == own[1:] + rest + [doubt]
    later = read_order(sha, "n1", MEMBERS, THREE, holds_here=False, suspects={doubt: 5.0}, now=6.0)
    assert [h.node for h in later if h is not None] == own + rest
    assert [h.node for h in heal_sources(sha, "n1", MEMBERS, THREE)] == own + rest


@settings(max_examples=100, deadline=None)
@given(
    size=st.integers(0, 300),
    offset=st.integers(0, 320),
    length=st.none() | st.integers(0, 320),
    steps=st.lists(st.integers(1, 64), min_size=1, max_size=8),
)
def test_read_cursor_returns_exactly_the_range(
    size: int, offset: int, length: int | None, steps: list[int]
) -> None:
    blob = random.Random(size).randbytes(size)
    cursor = ReadCursor("x", offset, length, passes=3)
    got = bytearray()
    for i in range(1000):
        if cursor.done:
            break
        want = cursor.want(steps[i % len(steps)])
        got += cursor.take(size, blob[cursor.pos : cursor.pos + want])
    assert cursor.done
    assert bytes(got) == blob[offset : None if length is None else offset + length]


def test_read_cursor_refuses_empty_answers_and_gives_up_after_idle_passes() -> None:
    cursor = ReadCursor("x", 0, None, passes=2)
    with pytest.raises(BlobUnavailable):
        cursor.take(10, b"")
    assert not cursor.pass_over(progressed=False)
    assert not cursor.pass_over(progressed=True)  # progress resets the count
    assert not cursor.pass_over(progressed=False)
    assert cursor.pass_over(progressed=False)
    with pytest.raises(ValueError):
        ReadCursor("x", -1, None, passes=1)
