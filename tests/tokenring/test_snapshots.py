"""Snapshots through the driver: compaction on disk, memory bounded by configuration,
installs onto members that fell behind or lost their disk, crashes in the middle of an
install, and the store and snapshot files on the production disk."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import anyio
import attrs
import pytest

from dspot.disk import LocalDisk, SimDisk
from dspot.env import NodeEnv
from dspot.sim.scenarios.tokenring import Ledger, LedgerState
from dspot.testing import run_with_mock_clock
from dspot.tokenring import (
    CommittedEntry,
    Entry,
    HardState,
    InstallSnapshot,
    Persist,
    SnapshotMeta,
    TokenRingConfig,
)
from dspot.tokenring._snapshot import SnapshotHeader, read_header, write_snapshot
from dspot.tokenring._store import LogStore
from dspot.tokenring._transfer import SnapshotReceiver
from dspot.transport import LinkModel, SimNetwork
from tests.tokenring.cluster import Cluster, CrashAt, run

NAMES = ["n1", "n2", "n3"]
CONFIG = TokenRingConfig(
    max_batch=4,
    memory_entries=8,
    compact_every=20,
    keep_entries=5,
    dedupe_window=32,
    snapshot_chunk=64,
    min_members=3,
)


async def _converged(c: Cluster, names: list[str], timeout: float = 20.0) -> None:
    """Wait until every member applied the commit point, with one state."""
    with anyio.fail_after(timeout):
        while True:
            top = max(c.rings[n].commit_position.seq for n in names)
            done = all(c.rings[n].applied_position.seq >= top for n in names)
            if done and len({c.states[n].chain for n in names}) == 1:
                return
            await anyio.sleep(0.1)


def test_compaction_keeps_disk_and_memory_bounded_while_the_log_grows() -> None:
    async def body(c: Cluster) -> None:
        most_memory = most_disk = 0
        for batch in range(43):  # 7 at a time: out of step with compact_every
            await c.fill(7, f"b{batch}-")
            for n in NAMES:
                ring = c.rings[n]
                most_memory = max(most_memory, ring.status().in_memory)
                most_disk = max(most_disk, await ring.log_entries_on_disk())
        await _converged(c, NAMES)
        status = c.rings["n1"].status()
        assert status.commit_index >= 300 and status.snapshot_index >= 280
        assert most_memory <= CONFIG.memory_entries
        # On disk: the kept entries before the snapshot, what came since, one batch more.
        assert most_disk <= CONFIG.keep_entries + CONFIG.compact_every + 2 * CONFIG.max_batch
        files = await c.disks["n1"].list_files("tokenring/snapshots/")
        assert files == [c.rings["n1"].core.snapshot.name]  # type: ignore[union-attr]

    run(body, NAMES, CONFIG, ledgers=True)


def test_without_snapshots_the_log_stays_on_disk_and_memory_is_still_bounded() -> None:
    async def body(c: Cluster) -> None:
        last = await c.fill(100, "x")
        ring = c.rings["n2"]
        await ring.wait_applied(last, timeout=10)
        assert ring.status().in_memory <= CONFIG.memory_entries
        assert await ring.log_entries_on_disk() >= 100  # never compacted
        assert ring.status().base_index == 0
        committed = await ring.committed()  # read back from disk
        assert [e.entry_id for e in committed][-100:] == [f"x{i}" for i in range(100)]
        # A restart applies the whole log again, from disk, in order.
        c.crash("n2")
        ring = await c.start("n2")
        await ring.wait_applied(last, timeout=10)
        assert [e.entry_id for e in c.applied["n2"]] == [e.entry_id for e in committed]

    run(body, NAMES, CONFIG)


def test_a_member_that_lost_its_disk_installs_the_snapshot_as_a_learner() -> None:
    async def body(c: Cluster) -> None:
        await c.fill(30, "a")
        c.crash("n3")
        c.disks["n3"].wipe()
        c.views["n1"].down = c.views["n2"].down = {"n3"}
        await c.fill(50, "b", via=["n1", "n2"])
        c.views["n1"].down = c.views["n2"].down = set()
        ring = await c.start("n3", learner=True)
        assert ring.core.learner
        await _converged(c, NAMES)
        core = ring.core
        assert core.snapshot is not None and core.base_index >= core.snapshot.index - 5
        assert not core.learner  # caught up with a holder: votes again
        assert ring.known_members == tuple(NAMES)  # the configured membership came back
        assert c.states["n3"] == c.states["n1"]

    run(body, NAMES, CONFIG, ledgers=True)


@pytest.mark.parametrize("step", ["chunk", "file", "recorded", "restored"])
def test_a_crash_during_an_install_leaves_the_old_state_or_the_new(step: str) -> None:
    async def body(c: Cluster) -> None:
        await c.fill(10, "a")
        c.isolate("n3")
        await c.fill(45, "b", via=["n1", "n2"])
        hook = CrashAt(c, "n3", step)
        c.crash("n3")
        await c.start("n3", on_install_step=hook)
        c.heal()
        with anyio.fail_after(20):
            await hook.fired.wait()
        # Crashed right there. What is on its disk now?
        loaded = await LogStore(c.disks["n3"].db).load(8, 32)
        files = await c.disks["n3"].list_files("tokenring/snapshots/")
        if step in ("chunk", "file"):  # the old state: no snapshot, the log it had
            assert loaded.snapshot is None and loaded.log.last_index >= 10
            assert len(files) == (1 if step == "file" else 0)  # a complete, unrecorded file
        else:  # the new state: the snapshot is the base, its file is there
            assert loaded.snapshot is not None and loaded.snapshot.index >= 40
            assert loaded.log.base_index == loaded.snapshot.index
            assert files == [loaded.snapshot.name]
        ring = await c.start("n3")
        await _converged(c, NAMES)
        assert c.states["n3"] == c.states["n1"]
        # Nothing left over: one snapshot file, the one recorded.
        assert await c.disks["n3"].list_files("tokenring/snapshots/") == [
            ring.core.snapshot.name  # type: ignore[union-attr]
        ]

    run(body, NAMES, CONFIG, ledgers=True)


def test_a_restarted_member_resumes_its_state_machine_where_it_durably_stopped() -> None:
    async def body(c: Cluster) -> None:
        await c.fill(30, "a")
        c.crash("n2")
        ring = await c.start("n2")
        durable = c.states["n2"].seq  # what the ledger found on its disk
        assert durable > 0 and ring.applied_position.seq == durable  # not replayed from 1
        await c.fill(5, "b")
        await _converged(c, NAMES)

    run(body, NAMES, CONFIG, ledgers=True)


def _env(disk: SimDisk) -> NodeEnv:
    return NodeEnv("n", SimNetwork(random.Random(1)).transport("n"), disk, random.Random(1))


def test_a_snapshot_with_a_bad_checksum_is_never_published() -> None:
    async def main() -> None:
        sender, receiver_disk = SimDisk(random.Random(1)), SimDisk(random.Random(2))
        header = SnapshotHeader(7, 2, [("x", 7, 2)], ["a", "b"])
        machine = _Blob(b"state " * 40)
        meta = await write_snapshot(sender, "snap", header, machine)
        data = await sender.read("snap")
        receiver = SnapshotReceiver(_env(receiver_disk), "in/")

        async def no_step(step: str) -> None:
            pass

        async def send(blob: bytes) -> SnapshotMeta | None:
            got: SnapshotMeta | None = None
            for offset in range(0, len(blob), 50):
                msg = InstallSnapshot(1, 0, "a", 7, 2, meta.size, meta.sha256, meta.data_offset,
                                      offset, blob[offset : offset + 50])  # fmt: skip
                got, ahead = await receiver.receive(msg, no_step)
                assert got is not None or ahead == min(offset + 50, len(blob)) or ahead == 0
            return got

        flipped = bytearray(data)
        flipped[100] ^= 1
        assert await send(bytes(flipped)) is None
        assert await receiver_disk.list_files() == []  # nothing half-written is visible
        got = await send(data)
        assert got is not None and got.sha256 == meta.sha256
        assert await receiver_disk.read(got.name) == data
        assert (await read_header(receiver_disk, got.name))[0] == header

    run_with_mock_clock(main)


def test_senders_taking_turns_each_resume_their_own_snapshot() -> None:
    """Token holders take turns, each offering its own snapshot from offset 0: the receiver
    answers each with where its snapshot stopped, so no turn's bytes are sent twice."""

    async def main() -> None:
        disk, receiver_disk = SimDisk(random.Random(1)), SimDisk(random.Random(2))
        metas = []
        for i in range(3):
            header = SnapshotHeader(7 + i, 2, [], ["a"])
            metas.append(await write_snapshot(disk, f"s{i}", header, _Blob(b"%d" % i * 1000)))
        blobs = [await disk.read(m.name) for m in metas]
        receiver = SnapshotReceiver(_env(receiver_disk), "in/", keep=3)
        sent = 0

        async def no_step(step: str) -> None:
            pass

        async def turn(i: int, chunks: int) -> SnapshotMeta | None:
            """One holder's turn: start over at 0, follow the receiver, send ``chunks``."""
            nonlocal sent
            meta, offset = metas[i], 0
            for _ in range(chunks + 1):
                payload = blobs[i][offset : offset + 40]
                msg = InstallSnapshot(1, i, "abcd"[i], meta.index, 2, meta.size, meta.sha256,
                                      meta.data_offset, offset, payload)  # fmt: skip
                got, offset = await receiver.receive(msg, no_step)
                sent += len(payload)
                if got is not None:
                    return got
            return None

        for _ in range(4):  # four rounds of three turns, five chunks of 40 bytes each
            for i in range(3):
                assert await turn(i, 4) is None
        # Every turn but a snapshot's first re-sends only its first chunk (to learn where
        # to resume): 200 + 3 * 160 bytes of each kept.
        assert sorted(receiver.partial.values()) == [680, 680, 680]
        assert sent == 3 * 4 * 200
        got = None
        while got is None:
            got = await turn(1, 4)
        assert await receiver_disk.read(got.name) == blobs[1]
        # The one at a lower index is moot now and dropped; the one at a higher index kept.
        assert list(receiver.partial) == ["in/000000000009-" + metas[2].sha256[:16]]
        # At most ``keep``: a fourth snapshot pushes out the least recently extended.
        meta = await write_snapshot(disk, "s3", SnapshotHeader(20, 2, [], ["a"]), _Blob(b"x" * 300))
        metas.append(meta)
        blobs.append(await disk.read("s3"))
        receiver = SnapshotReceiver(_env(SimDisk(random.Random(3))), "in/", keep=2)
        for i in (0, 2, 0, 3):
            await turn(i, 1)
        assert sorted(receiver.partial) == ["in/000000000007-" + metas[0].sha256[:16],
                                            "in/000000000020-" + meta.sha256[:16]]  # fmt: skip

    run_with_mock_clock(main)


def test_a_learner_gets_a_snapshot_that_takes_many_token_turns_to_send() -> None:
    """The snapshot needs many chunks and the token moves on every few of them (each
    member offering its own snapshot): the learner still installs one, and soon."""
    config = attrs.evolve(CONFIG, snapshot_chunk=8, idle_hold_time=0.05, compact_every=10)

    async def body(c: Cluster) -> None:
        c.crash("n3")
        c.disks["n3"].wipe()
        c.views["n1"].down = c.views["n2"].down = {"n3"}
        for batch in range(12):  # each member snapshots at its own index
            await c.fill(7, f"b{batch}-", via=["n1", "n2"])
        c.views["n1"].down = c.views["n2"].down = set()
        c.net.set_default_link(LinkModel(latency=0.01))  # ~200 chunks: a few seconds
        started = anyio.current_time()
        ring = await c.start("n3", learner=True)
        await _converged(c, NAMES, timeout=60)
        assert ring.core.snapshot is not None
        assert anyio.current_time() - started < 20

    run(body, NAMES, config, ledgers=True)


class _Blob:
    def __init__(self, data: bytes) -> None:
        self.data = data

    async def save_snapshot(self, out: object) -> None:
        await out.write(self.data)  # type: ignore[attr-defined]


def test_the_store_and_snapshot_files_on_the_production_disk(tmp_path: Path) -> None:
    async def main() -> None:
        disk = await LocalDisk.open(tmp_path / "node")
        async with disk:
            store = LogStore(disk.db)
            loaded = await store.load(4, 8)
            assert loaded.fresh and loaded.log.last_index == 0
            entries = {i: Entry(1 + i // 5, f"e{i}", b"d%d" % i) for i in range(1, 13)}
            await store.write(Persist(entries=entries, state=HardState(3, "a", 2, True)))
            meta = SnapshotMeta(8, 2, "tokenring/snapshots/8", 9, "ab", 3)
            await store.write(Persist(trim_to=6, base_epoch=2, snapshot=meta, members=("a",)))
            assert await store.read(5, 9) == []  # 5 and 6 are gone
            assert [e.entry_id for e in await store.read(7, 9)] == ["e7", "e8", "e9"]
            assert await store.count() == 6
        disk = await LocalDisk.open(tmp_path / "node")
        async with disk:
            store = LogStore(disk.db)
            loaded = await store.load(4, 8)
            assert not loaded.fresh and loaded.state == HardState(3, "a", 2, True)
            assert loaded.snapshot == meta
            log = loaded.log
            assert (log.base_index, log.base_epoch, log.last_index) == (6, 2, 12)
            assert [log.epoch_at(i) for i in range(6, 13)] == [2, 2, 2, 2, 3, 3, 3]
            assert [e.entry_id for e in log.in_memory()] == ["e9", "e10", "e11", "e12"]
            assert [i for i, _, _ in loaded.ids] == [f"e{i}" for i in range(7, 13)]
            assert await store.load_members() == ["a"]
            header = SnapshotHeader(8, 2, [], ["a"])
            written = await write_snapshot(disk, "tokenring/snapshots/8", header, _Blob(b"xyz"))
            assert (await read_header(disk, written.name)) == (header, written.data_offset)

    anyio.run(main)


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b'{"index":1,"epoch":2,"ids":[["a",1]],"members":[]}',
        b'{"index":true,"epoch":2,"ids":[],"members":[]}',
        b'{"index":1,"epoch":2,"ids":[],"members":[3]}',
        b"{not json",
    ],
)
def test_a_malformed_snapshot_header_is_refused_with_its_file_named(body: bytes) -> None:
    async def main() -> None:
        disk = SimDisk(random.Random(1))
        async with disk.create("snap") as writer:
            await writer.write(b"DSPOTSN1" + len(body).to_bytes(4, "big") + body)
            await writer.commit()
        with pytest.raises(ValueError, match="bad snapshot header in snap"):
            await read_header(disk, "snap")

    run_with_mock_clock(main)


def test_a_state_machine_that_applies_batches_gets_the_log_in_runs() -> None:
    """A member that replays its log hands an ``AppliesBatches`` machine runs of entries,
    one call each, not one call per entry (a durable state then pays one commit per run:
    the catalog's catch-up after a restart)."""
    runs: list[list[int]] = []

    class Forgetful(Ledger):
        """Keeps its state in memory only, so a restart replays the whole log."""

        async def open(self) -> None:
            self._report(self.state)

        async def _save(self, state: LedgerState) -> None:
            self.state = state
            self._report(state)

        async def apply_batch(self, entries: Sequence[CommittedEntry]) -> None:
            runs.append([e.position.seq for e in entries])
            for entry in entries:
                await self.apply(entry)

    async def body(c: Cluster) -> None:
        last = await c.fill(60, "x")
        await _converged(c, NAMES)
        before = c.states["n2"]
        c.crash("n2")
        c.ledger_class = Forgetful
        ring = await c.start("n2")
        await ring.wait_applied(last, timeout=10)
        assert c.states["n2"] == before  # the same state, rebuilt from the log
        replayed = [seq for run in runs for seq in run]
        assert replayed == sorted(set(replayed)) and len(replayed) >= 60  # in order, once
        assert len(runs) < len(replayed) / 10  # in runs, not one call per entry

    run(body, NAMES, TokenRingConfig(max_batch=4, min_members=3), ledgers=True)


def test_deleting_old_snapshots_during_an_install_leaves_the_new_one() -> None:
    """Found by the token-ring sweep (seed 43): a pass deleting old snapshot files took the
    latest's name once, before its deletes; an install completing meanwhile made that name
    stale, and the new snapshot, listed by then, was deleted as old — the member then died
    restoring from it. Here a pass starts while an install has its file written but not yet
    recorded: the new file must survive the pass, and the member must take it."""

    async def body(c: Cluster) -> None:
        folder = "tokenring/snapshots/"
        await c.fill(30, "a")  # every member compacts: n3 has a snapshot of its own
        c.isolate("n3")
        await c.fill(45, "b", via=["n1", "n2"])
        ring, disk = c.rings["n3"], c.disks["n3"]
        assert ring.core.snapshot is not None
        survived: list[bool] = []
        # An old file the pass deletes first, slowly: the install completes meanwhile.
        stale = f"{folder}000000000001-0000"
        writer = disk.create(stale)
        await writer.write(b"old")
        await writer.commit()
        real_delete = disk.delete

        async def slow_delete(name: str, *, sync: bool = True) -> None:
            if name == stale:
                await anyio.sleep(1.0)
            await real_delete(name, sync=sync)

        disk.delete = slow_delete  # type: ignore[method-assign]

        async def delete_pass(new: str) -> None:
            await ring._delete_old_snapshots()
            survived.append(new in await disk.list_files(folder))

        async def during_install(step: str) -> None:
            if step == "file" and not survived:
                files = await disk.list_files(folder)
                new = max(files)  # names start with the zero-padded index
                assert ring.core.snapshot is not None and new != ring.core.snapshot.name
                c.tg.start_soon(delete_pass, new)
                await anyio.sleep(0.1)  # the pass has listed the files and is deleting

        ring.on_install_step = during_install
        c.heal()
        await _converged(c, NAMES)
        assert survived == [True]
        snap = ring.core.snapshot
        assert snap is not None and snap.index >= 40
        assert snap.name in await disk.list_files(folder)
        assert c.states["n3"] == c.states["n1"]

    run(body, NAMES, CONFIG, ledgers=True)
