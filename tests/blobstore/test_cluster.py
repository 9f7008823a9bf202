"""The blob store on the simulated network, in virtual time."""

from __future__ import annotations

import errno
import hashlib
import itertools
from typing import Any

import anyio
import attrs
import pytest

from dspot.blobstore import BlobStoreMechanism, DeleteIncomplete, IntegrityError, UploadFailed
from dspot.blobstore._messages import ChunkAck, Hop, PutChunk, RangeData, ReadRange
from dspot.sim import Simulation
from tests.blobstore.harness import (
    SMALL,
    blob,
    chunks,
    holders,
    kill,
    revive,
    run_cluster,
    store,
)


def test_put_then_ranged_reads_from_every_node() -> None:
    data = blob(50_000)
    sha = hashlib.sha256(data).hexdigest()

    async def body(sim: Simulation) -> None:
        result = await store(sim, "n1").put_detailed(chunks(data, 777))
        assert result.sha256 == sha and result.size == len(data)
        assert len(result.replicas) >= 2
        for name in sim.names:
            s = store(sim, name)
            assert await s.read(sha) == data
            assert await s.read(sha, 12_345, 9_999) == data[12_345:22_344]
            assert await s.read(sha, 49_990, 100) == data[49_990:]
            assert await s.read(sha, 60_000) == b""
        empty = await store(sim, "n2").put(chunks(b""))
        assert await store(sim, "n3").read(empty) == b""

    run_cluster(body)


def test_known_hash_places_on_owners_and_wrong_hash_is_refused() -> None:
    data = blob(20_000, seed=5)
    sha = hashlib.sha256(data).hexdigest()

    async def body(sim: Simulation) -> None:
        s = store(sim, "n1")
        with pytest.raises(IntegrityError):
            await s.put(chunks(data), sha256=hashlib.sha256(b"nope").hexdigest())
        assert await s.put(chunks(data), sha256=sha) == sha
        await anyio.sleep(0.5)
        owners = [m.node_id for m in s.placement.owners(sha, s.view.live())]
        assert sorted(holders(sim, sha)) == sorted(owners)
        info = await s.stat(sha)
        assert info is not None and info.size == len(data)
        assert sorted(info.holders) == sorted(owners)

    run_cluster(body, nodes=5)


def _garble_writes(s: Any) -> None:
    """Make replica ``s`` write other bytes than it received (a fault between the network
    and its disk, after the bytes left the coordinator's hash)."""
    ingest = s.local.ingest

    def garbled(file_id: str, *, vouched: bool = False, f: Any = ingest) -> Any:
        made = f(file_id, vouched=vouched)
        write = made.write

        async def flipped(piece: bytes) -> None:
            await write(bytes([piece[0] ^ 1]) + piece[1:] if piece else piece)

        made.write = flipped
        return made

    s.local.ingest = garbled


@pytest.mark.parametrize("garbled", [1, 2])
def test_a_replica_that_wrote_other_bytes_does_not_commit(garbled: int) -> None:
    """Replicas check their copy against the coordinator's block checksums, not by hashing
    it whole: a replica whose bytes differ refuses the commit; with too few left the upload
    fails as an integrity error and no node keeps the bytes."""
    data = blob(20_000, seed=9)
    sha = hashlib.sha256(data).hexdigest()

    async def body(sim: Simulation) -> None:
        s = store(sim, "n1")
        chain = [m.node_id for m in s.placement.owners(sha, s.view.live())]
        for name in chain[:garbled]:
            _garble_writes(store(sim, name))
        if garbled == 1:
            result = await s.put_detailed(chunks(data), sha256=sha)
            assert sorted(result.replicas) == sorted(chain[1:])
            await anyio.sleep(0.5)
            assert chain[0] not in holders(sim, sha)
            for name in sim.names:
                assert await store(sim, name).read(sha) == data
        else:
            with pytest.raises(IntegrityError, match="block digests"):
                await s.put(chunks(data), sha256=sha)
            await anyio.sleep(0.5)
            assert holders(sim, sha) == [] or holders(sim, sha) == [chain[2]]
            for name in chain[:2]:
                assert store(sim, name).local.get(sha) is None

    run_cluster(body, nodes=3)


def _fill_disk(s: Any) -> None:
    """Make every upload write on replica ``s`` fail as on a full disk."""
    ingest = s.local.ingest

    def full(file_id: str, *, vouched: bool = False, f: Any = ingest) -> Any:
        made = f(file_id, vouched=vouched)

        async def no_space(piece: bytes) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        made.write = no_space
        return made

    s.local.ingest = full


def test_a_replica_that_fails_uploads_goes_last_in_the_chain() -> None:
    """A replica that failed an upload (here: its disk is full) goes to the end of the
    coordinator's chains for ``failed_replica_last`` seconds, where its failure cuts only the
    tail: the upload that met it at the head fails, the next ones succeed on the others."""

    async def body(sim: Simulation) -> None:
        s = store(sim, "n1")
        live = s.view.live()

        def headed_by(node: str, start: int) -> tuple[bytes, str]:
            for seed in itertools.count(start):
                data = blob(3000, seed=seed)
                sha = hashlib.sha256(data).hexdigest()
                if s.placement.owners(sha, live)[0].node_id == node:
                    return data, sha
            raise AssertionError

        _fill_disk(store(sim, "n3"))
        data, sha = headed_by("n3", 100)
        with pytest.raises(UploadFailed):
            await s.put(chunks(data), sha256=sha)
        for start in (200, 300, 400):  # the same failure would meet each of these
            data, sha = headed_by("n3", start)
            result = await s.put_detailed(chunks(data), sha256=sha)
            assert sorted(result.replicas) == ["n1", "n2"]
            assert await store(sim, "n2").read(sha) == data
        await anyio.sleep(s.config.failed_replica_last + 1)
        data, sha = headed_by("n3", 500)  # its time is up: back in its place, failing again
        with pytest.raises(UploadFailed):
            await s.put(chunks(data), sha256=sha)

    run_cluster(body, nodes=3)


def test_unknown_hash_upload_is_handed_over_to_its_owners() -> None:
    async def body(sim: Simulation) -> None:
        s = store(sim, "n1")
        shas = [await s.put(chunks(blob(3000, seed=i))) for i in range(8)]
        await anyio.sleep(5)  # a few repair rounds
        for sha in shas:
            owners = [m.node_id for m in s.placement.owners(sha, s.view.live())]
            assert sorted(holders(sim, sha)) == sorted(owners), sha

    run_cluster(body, nodes=6)


def test_replicas_all_puts_a_copy_on_every_node() -> None:
    data = blob(9000, seed=2)

    async def body(sim: Simulation) -> None:
        sha = await store(sim, "n2").put(chunks(data))
        await anyio.sleep(3)
        assert sorted(holders(sim, sha)) == sim.names

    run_cluster(body, nodes=4, config=attrs.evolve(SMALL, replicas="all"))


def test_upload_fails_without_a_write_quorum() -> None:
    async def body(sim: Simulation) -> None:
        kill(sim, "n2")
        kill(sim, "n3")
        with pytest.raises(UploadFailed):
            await store(sim, "n1").put(chunks(blob(1000)))

    run_cluster(body, nodes=3)


def test_read_fails_over_mid_stream_at_the_same_offset() -> None:
    data = blob(40_000, seed=7)
    sha = hashlib.sha256(data).hexdigest()

    async def body(sim: Simulation) -> None:
        await store(sim, "n1").put(chunks(data), sha256=sha)
        await anyio.sleep(1)
        reader_name = next(n for n in sim.names if n not in holders(sim, sha))
        reader = store(sim, reader_name)
        first_source = reader._sources(sha, holds_here=False)[0]
        assert first_source is not None
        served: list[str] = []
        for name in sim.names:
            s = store(sim, name)
            original = s._on_read

            async def spy(
                req: ReadRange, peer: object, name: str = name, f: object = original
            ) -> RangeData:
                served.append(name)
                return await f(req, peer)  # type: ignore[operator]

            s.rpc.handle(ReadRange, spy)
        got = bytearray()
        async for part in reader.get(sha, 1000):
            got += part
            if len(got) >= 8000 and sim.nodes[first_source.node].up:
                kill(sim, first_source.node)  # the replica dies mid-stream
        assert bytes(got) == data[1000:]
        assert served[0] == first_source.node
        assert len(set(served)) >= 2, served

    run_cluster(body, nodes=4)


def test_scrub_finds_a_corrupted_copy_and_heals_it() -> None:
    data = blob(30_000, seed=9)
    sha = hashlib.sha256(data).hexdigest()

    async def body(sim: Simulation) -> None:
        await store(sim, "n1").put(chunks(data), sha256=sha)
        await anyio.sleep(1)
        victim = holders(sim, sha)[0]
        s = store(sim, victim)
        copy = s.local.get(sha)
        assert copy is not None
        sim.nodes[victim].disk.corrupt_file(copy.file, offset=12_345)
        assert victim not in holders(sim, sha)
        assert await s.scrub_once() == 1
        assert victim in holders(sim, sha)
        assert s.stats().healed == 1
        assert await s.read(sha) == data

    run_cluster(body, nodes=4)


def test_corrupt_block_is_never_served_and_read_moves_on() -> None:
    data = blob(30_000, seed=11)
    sha = hashlib.sha256(data).hexdigest()

    async def body(sim: Simulation) -> None:
        await store(sim, "n1").put(chunks(data), sha256=sha)
        await anyio.sleep(1)
        for name in holders(sim, sha)[:2]:
            copy = store(sim, name).local.get(sha)
            assert copy is not None
            sim.nodes[name].disk.corrupt_file(copy.file, offset=5000)
        for name in sim.names:
            assert await store(sim, name).read(sha) == data
        await anyio.sleep(2)  # reads queued the corrupt copies for healing
        assert len(holders(sim, sha)) == 3

    run_cluster(body, nodes=4)


@pytest.mark.parametrize("window", [4096, 3])
def test_dead_member_is_re_replicated_and_join_rebalances(
    monkeypatch: pytest.MonkeyPatch, window: int
) -> None:
    # With a window of 3 copies, every round goes through its copies in several windows.
    monkeypatch.setattr("dspot.blobstore._repair.REPAIR_WINDOW", window)

    async def body(sim: Simulation) -> None:
        s = store(sim, "n1")
        shas = [await s.put(chunks(blob(2000, seed=i))) for i in range(10)]
        await anyio.sleep(3)
        victim = "n3"
        held = [sha for sha in shas if victim in holders(sim, sha)]
        assert held
        kill(sim, victim)
        sim.wipe(victim)
        await anyio.sleep(3)
        for sha in shas:
            assert len(holders(sim, sha)) == 3, sha
            assert victim not in holders(sim, sha)
        assert all(store(sim, n).stats().under_replicated == 0 for n in sim.live())
        await revive(sim, victim)  # back with an empty disk: a join
        await anyio.sleep(4)
        for sha in shas:
            owners = [m.node_id for m in s.placement.owners(sha, s.view.live())]
            assert sorted(holders(sim, sha)) == sorted(owners), sha
        assert any(victim in holders(sim, sha) for sha in shas)

    run_cluster(body, nodes=5)


def test_delete_tombstones_survive_a_returning_replica() -> None:
    data = blob(5000, seed=3)
    sha = hashlib.sha256(data).hexdigest()

    async def body(sim: Simulation) -> None:
        s = store(sim, "n1")
        await s.put(chunks(data), sha256=sha)
        await anyio.sleep(1)
        away = next(n for n in holders(sim, sha) if n != "n1")
        kill(sim, away)  # misses the delete, keeps its copy
        # An owner is down: the delete is not complete (live members hold tombstones).
        with pytest.raises(DeleteIncomplete):
            await s.delete(sha)
        assert await s.stat(sha) is None
        await revive(sim, away)
        await anyio.sleep(4)  # its repair round learns the tombstone from the others
        assert holders(sim, sha) == []
        assert await s.delete(sha) == 4  # now every owner confirms
        with pytest.raises(Exception):  # noqa: B017
            await s.read(sha)
        # A new upload of the same bytes after the delete is a new fact and sticks.
        await anyio.sleep(1)
        await s.put(chunks(data), sha256=sha)
        await anyio.sleep(3)
        assert len(holders(sim, sha)) == 3

    run_cluster(body, nodes=4)


def test_a_node_that_has_not_joined_refuses_to_delete() -> None:
    """A restarted or wiped node knows only itself until it joins: it must not take itself
    for every owner and acknowledge a delete the owners never saw (blobstore-swim, seed 153)."""
    data = blob(3000, seed=4)
    sha = hashlib.sha256(data).hexdigest()

    async def body(sim: Simulation) -> None:
        s = store(sim, "n1")
        await s.put(chunks(data), sha256=sha)
        await anyio.sleep(1)
        before = holders(sim, sha)
        s.view.joined = False  # type: ignore[attr-defined]
        with pytest.raises(DeleteIncomplete, match="not yet joined"):
            await s.delete(sha)
        assert holders(sim, sha) == before
        s.view.joined = True  # type: ignore[attr-defined]
        assert await s.delete(sha) == 3

    run_cluster(body, nodes=3)


def test_stats_report_bytes_and_under_replication() -> None:
    async def body(sim: Simulation) -> None:
        s = store(sim, "n1")
        shas = [
            await s.put(
                chunks(blob(1000, seed=i)),
            )
            for i in range(5)
        ]
        await anyio.sleep(2)
        assert sum(store(sim, n).stats().bytes for n in sim.names) == 5 * 1000 * 3
        # Background repair is off: rounds run only when the test asks.
        kill(sim, "n2")
        for n in sim.live():
            await store(sim, n).repair_once()
        # The round found copies missing on the new owners (and asked them to fetch).
        assert sum(store(sim, n).stats().under_replicated for n in sim.live()) > 0
        for n in sim.live():
            await store(sim, n).repair_once()
        assert sum(store(sim, n).stats().under_replicated for n in sim.live()) == 0
        assert all(len([h for h in holders(sim, sha) if h != "n2"]) == 3 for sha in shas)

    run_cluster(body, nodes=4, disabled=frozenset({BlobStoreMechanism.REPAIR}))


def test_upload_is_pipelined_through_the_chain_with_bounded_chunks_in_flight() -> None:
    data = blob(200_000, seed=13)
    sha = hashlib.sha256(data).hexdigest()
    seen: list[tuple[float, str, int]] = []
    in_flight: dict[str, int] = {}
    peak: dict[str, int] = {}

    async def body(sim: Simulation) -> None:
        for name in sim.names:
            s = store(sim, name)
            original = s._receiver.on_chunk

            async def spy(
                req: PutChunk, peer: object, name: str = name, f: object = original
            ) -> ChunkAck:
                seen.append((anyio.current_time(), name, req.seq))
                in_flight[name] = in_flight.get(name, 0) + 1
                peak[name] = max(peak.get(name, 0), in_flight[name])
                try:
                    return await f(req, peer)  # type: ignore[operator, no-any-return]
                finally:
                    in_flight[name] -= 1

            s.rpc.handle(PutChunk, spy)
        coordinator = store(sim, "n1")
        chain = [m.node_id for m in coordinator.placement.owners(sha, coordinator.view.live())]
        await coordinator.put(chunks(data, 5000), sha256=sha)
        head, tail = chain[0], chain[-1]
        last_at_head = max(t for t, n, _ in seen if n == head)
        first_at_tail = min(t for t, n, _ in seen if n == tail)
        assert first_at_tail < last_at_head, "the tail got nothing before the head had it all"
        chunks_total = -(-len(data) // SMALL.chunk_size)
        assert len([1 for _, n, _ in seen if n == tail]) == chunks_total
        assert 1 < max(peak.values()) <= SMALL.window, peak

    run_cluster(body, nodes=4)


def test_a_replica_forwards_each_chunk_before_it_writes_it() -> None:
    data = blob(60_000, seed=17)
    sha = hashlib.sha256(data).hexdigest()
    events: list[tuple[str, str, int]] = []

    async def body(sim: Simulation) -> None:
        coordinator = store(sim, "n1")
        chain = [m.node_id for m in coordinator.placement.owners(sha, coordinator.view.live())]
        for name in chain[:-1]:  # every replica with a successor
            s = store(sim, name)
            forward = s._receiver._forward

            async def spy_forward(
                hop: Hop, chunk: PutChunk, name: str = name, f: Any = forward
            ) -> list[str] | None:
                events.append((name, "forward", chunk.seq))
                return await f(hop, chunk)  # type: ignore[no-any-return]

            s._receiver._forward = spy_forward
            ingest = s.local.ingest

            def spy_ingest(file_id: str, *, vouched: bool = False, name: str = name,
                           f: Any = ingest) -> Any:  # fmt: skip
                made = f(file_id, vouched=vouched)
                write, written = made.write, itertools.count()

                async def spy_write(piece: bytes) -> None:
                    events.append((name, "write", next(written)))  # writes go in order
                    await write(piece)

                made.write = spy_write
                return made

            s.local.ingest = spy_ingest  # type: ignore[method-assign]
        await coordinator.put(chunks(data, 5000), sha256=sha)
        count = -(-len(data) // SMALL.chunk_size)
        for name in chain[:-1]:
            seen = [(kind, seq) for n, kind, seq in events if n == name]
            for seq in range(count):
                assert seen.index(("forward", seq)) < seen.index(("write", seq)), (name, seen)

    run_cluster(body, nodes=4)


@pytest.mark.parametrize(("pace", "fewest", "most"), [(0.5, 4, 7), (1000.0, 60, 100)])
def test_periodic_repair_rounds_come_less_often_on_a_large_store(
    monkeypatch: pytest.MonkeyPatch, pace: float, fewest: int, most: int
) -> None:
    # 10 copies at 0.5 copies/s: a periodic round every 20 s; at 1000/s, every second.
    from dspot.blobstore._repair import Repairer

    rounds: list[float] = []

    async def counted_round(self: Repairer) -> None:
        rounds.append(anyio.current_time())

    async def body(sim: Simulation) -> None:
        s = store(sim, "n1")
        for i in range(10):
            await s.put(chunks(blob(100, seed=i)))
        monkeypatch.setattr(Repairer, "repair_once", counted_round)
        await anyio.sleep(100.0)

    run_cluster(
        body, nodes=1, config=attrs.evolve(SMALL, replicas=1, write_quorum=1, repair_pace=pace)
    )
    assert fewest <= len(rounds) <= most, rounds


def test_quiet_repair_rounds_back_off_and_a_change_brings_them_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rounds that find nothing to do come ever less often (twice the pause each, up to
    ``repair_idle_interval``); a copy added here brings the next one back to the base pace."""
    from dspot.blobstore._repair import Repairer

    rounds: list[float] = []
    real = Repairer.repair_once

    async def counted_round(self: Repairer) -> None:
        if self.view.self_id == "n1":
            rounds.append(anyio.current_time())
        await real(self)

    async def body(sim: Simulation) -> None:
        s = store(sim, "n1")
        for i in range(3):
            await s.put(chunks(blob(100, seed=i)))
        monkeypatch.setattr(Repairer, "repair_once", counted_round)
        await anyio.sleep(200.0)
        quiet = len(rounds)
        await s.put(chunks(blob(100, seed=99)))
        added = anyio.current_time()
        await anyio.sleep(40.0)
        # The first round after the upload sees the change (not quiet): the next comes at
        # the base pace, not 20 s later.
        after = [t for t in rounds[quiet:] if t > added]
        assert len(after) >= 2 and after[1] - after[0] < 2.0, (added, after)

    run_cluster(
        body,
        nodes=3,
        config=attrs.evolve(SMALL, repair_interval=1.0, repair_idle_interval=20.0),
    )
    gaps = [b - a for a, b in itertools.pairwise(rounds)]
    # Without the back-off: a round about every second, 200 in 200 s.
    assert len([t for t in rounds if t <= rounds[0] + 200.0]) <= 20, gaps
    assert max(gaps) >= 19.0 and max(gaps) <= 21.5, gaps
