"""SimDisk's fault model: crashes lose exactly the unsynced writes; slowness and rot."""

from __future__ import annotations

import errno
import random

import anyio
import pytest
import trio

from dspot.disk import DiskFault, DiskStats, SimDisk

pytestmark = pytest.mark.anyio


async def _write(disk: SimDisk, name: str, data: bytes, *, sync: bool = True) -> None:
    async with disk.create(name) as writer:
        await writer.write(data)
        await writer.commit(sync=sync)


async def _rows(disk: SimDisk) -> list[int]:
    return [x for (x,) in await disk.db.execute("SELECT x FROM t ORDER BY x")]


async def test_crash_keeps_synced_and_loses_unsynced_rows(sim_disk: SimDisk) -> None:
    await sim_disk.db.executescript("CREATE TABLE t (x INTEGER)")
    await sim_disk.db.execute("INSERT INTO t VALUES (1)")  # sync=True by default
    await sim_disk.db.execute("INSERT INTO t VALUES (2)", sync=False)
    async with sim_disk.db.transaction(sync=False) as tx:
        tx.execute("INSERT INTO t VALUES (3)")
    assert await _rows(sim_disk) == [1, 2, 3]
    sim_disk.crash()
    assert await _rows(sim_disk) == [1]


async def test_read_only_synced_transaction_makes_nothing_durable(sim_disk: SimDisk) -> None:
    await sim_disk.db.executescript("CREATE TABLE t (x INTEGER)")
    await sim_disk.db.execute("INSERT INTO t VALUES (1)", sync=False)
    image = sim_disk._db_image
    assert await _rows(sim_disk) == [1]  # a synced, read-only transaction
    assert sim_disk._db_image is image  # not re-serialized
    sim_disk.crash()
    assert await _rows(sim_disk) == []


async def test_synced_commit_makes_earlier_unsynced_rows_durable(sim_disk: SimDisk) -> None:
    # As with SQLite's WAL, a synced commit's fsync covers the commits before it.
    await sim_disk.db.executescript("CREATE TABLE t (x INTEGER)")
    await sim_disk.db.execute("INSERT INTO t VALUES (1)", sync=False)
    await sim_disk.db.execute("INSERT INTO t VALUES (2)")
    sim_disk.crash()
    assert await _rows(sim_disk) == [1, 2]


async def test_disk_sync_makes_earlier_writes_durable(sim_disk: SimDisk) -> None:
    await sim_disk.db.executescript("CREATE TABLE t (x INTEGER)")
    await _write(sim_disk, "keep/old", b"old")
    await sim_disk.db.execute("INSERT INTO t VALUES (1)", sync=False)
    await _write(sim_disk, "f/1", b"one", sync=False)
    await sim_disk.delete("keep/old", sync=False)
    await sim_disk.sync()
    await sim_disk.db.execute("INSERT INTO t VALUES (2)", sync=False)
    await _write(sim_disk, "f/2", b"two", sync=False)
    sim_disk.crash()
    assert await _rows(sim_disk) == [1]
    assert await sim_disk.list_files() == ["f/1"]
    assert await sim_disk.read("f/1") == b"one"


async def test_crash_keeps_synced_files_and_loses_unsynced(sim_disk: SimDisk) -> None:
    await _write(sim_disk, "synced", b"s")
    await _write(sim_disk, "replaced", b"v1")
    await _write(sim_disk, "replaced", b"v2-unsynced", sync=False)
    await _write(sim_disk, "unsynced", b"u", sync=False)
    await _write(sim_disk, "deleted-synced", b"d")
    await _write(sim_disk, "deleted-unsynced", b"d")
    await sim_disk.delete("deleted-synced")
    await sim_disk.delete("deleted-unsynced", sync=False)
    open_writer = sim_disk.create("never-committed")
    await open_writer.write(b"n")

    sim_disk.crash()

    assert await sim_disk.list_files() == ["deleted-unsynced", "replaced", "synced"]
    assert await sim_disk.read("replaced") == b"v1"
    assert sim_disk.stats() == DiskStats(files=3, bytes=4)
    with pytest.raises(DiskFault):
        await open_writer.write(b"more")
    with pytest.raises(DiskFault):
        await open_writer.commit()
    assert not await sim_disk.exists("never-committed")


@pytest.mark.parametrize("use_after_crash", [True, False])
async def test_transaction_open_across_crash_fails_and_does_not_block(
    sim_disk: SimDisk, use_after_crash: bool
) -> None:
    await sim_disk.db.executescript("CREATE TABLE t (x INTEGER)")
    in_tx = anyio.Event()
    resume = anyio.Event()
    outcome: list[BaseException] = []

    async def straddle() -> None:
        try:
            async with sim_disk.db.transaction() as tx:
                tx.execute("INSERT INTO t VALUES (1)")
                in_tx.set()
                await resume.wait()
                if use_after_crash:
                    tx.execute("INSERT INTO t VALUES (2)")
        except DiskFault as exc:
            outcome.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(straddle)
        await in_tx.wait()
        sim_disk.crash()
        # the old transaction still holds its lock; a new one must not wait for it
        with anyio.fail_after(1):
            await sim_disk.db.execute("INSERT INTO t VALUES (10)")
        resume.set()
    assert len(outcome) == 1
    assert await _rows(sim_disk) == [10]


async def test_crash_during_slow_commit_loses_it(sim_disk: SimDisk) -> None:
    await sim_disk.db.executescript("CREATE TABLE t (x INTEGER)")
    await _write(sim_disk, "f", b"v1")
    sim_disk.latency = 1.0
    failures: list[BaseException] = []

    async def commit_row() -> None:
        await anyio.sleep(1.0)
        with pytest.raises(DiskFault) as info:
            await sim_disk.db.execute("INSERT INTO t VALUES (1)")
        failures.append(info.value)

    async def commit_file() -> None:
        writer = sim_disk.create("f")
        await writer.write(b"v2")
        with pytest.raises(DiskFault) as info:
            await writer.commit()
        failures.append(info.value)

    async with anyio.create_task_group() as tg:
        tg.start_soon(commit_row)
        tg.start_soon(commit_file)
        await anyio.sleep(1.5)  # both commits are sleeping through their I/O
        sim_disk.crash()
    assert len(failures) == 2
    sim_disk.latency = 0.0
    assert await _rows(sim_disk) == []
    assert await sim_disk.read("f") == b"v1"


async def test_cancelled_transaction_rolls_back(sim_disk: SimDisk) -> None:
    await sim_disk.db.executescript("CREATE TABLE t (x INTEGER)")
    sim_disk.latency = 1.0
    with anyio.move_on_after(0.5):
        await sim_disk.db.execute("INSERT INTO t VALUES (1)")
    sim_disk.latency = 0.0
    assert await _rows(sim_disk) == []
    sim_disk.crash()
    assert await _rows(sim_disk) == []


async def test_wipe_loses_everything(sim_disk: SimDisk) -> None:
    await sim_disk.db.executescript("CREATE TABLE t (x INTEGER)")
    await sim_disk.db.execute("INSERT INTO t VALUES (1)")
    await _write(sim_disk, "f", b"data")
    await sim_disk.sync()
    sim_disk.wipe()
    assert await sim_disk.list_files() == []
    assert sim_disk.stats() == DiskStats(files=0, bytes=0)
    assert await sim_disk.db.execute("SELECT name FROM sqlite_master") == []
    sim_disk.crash()  # nothing durable left either
    assert await sim_disk.list_files() == []


async def test_close_and_restart_keep_unsynced_writes(sim_disk: SimDisk) -> None:
    await sim_disk.db.executescript("CREATE TABLE t (x INTEGER)")
    await sim_disk.db.execute("INSERT INTO t VALUES (1)", sync=False)
    await _write(sim_disk, "f", b"data", sync=False)
    await sim_disk.aclose()
    sim_disk.restart()
    assert await _rows(sim_disk) == [1]
    assert await sim_disk.read("f") == b"data"
    sim_disk.crash()  # a clean restart syncs nothing
    assert await _rows(sim_disk) == []
    assert not await sim_disk.exists("f")


async def test_a_full_disk_refuses_file_bytes_but_keeps_its_database(sim_disk: SimDisk) -> None:
    await _write(sim_disk, "before", b"kept")
    await sim_disk.db.executescript("CREATE TABLE t (x INTEGER)")
    sim_disk.files_full = True
    with pytest.raises(OSError) as caught:
        await _write(sim_disk, "blob", b"no room")
    assert caught.value.errno == errno.ENOSPC
    assert await sim_disk.list_files() == ["before"]  # nothing half-written is left
    await _write(sim_disk, "empty", b"")  # no bytes: no room needed
    await sim_disk.db.execute("INSERT INTO t VALUES (1)")
    assert await _rows(sim_disk) == [1]
    sim_disk.files_full = False
    await _write(sim_disk, "blob", b"room again")
    assert await sim_disk.read("blob") == b"room again"


async def test_corrupt_file_flips_one_byte_durably(sim_disk: SimDisk) -> None:
    data = bytes(1000)
    await _write(sim_disk, "blob", data)
    offset = sim_disk.corrupt_file("blob")
    for _ in range(2):
        got = await sim_disk.read("blob")
        diff = [i for i in range(len(data)) if got[i] != data[i]]
        assert diff == [offset]
        assert bin(got[offset]).count("1") == 1  # one bit flipped
        sim_disk.crash()  # bit rot is on the platter: it survives
    assert sim_disk.corrupt_file("blob", offset=7) == 7
    assert (await sim_disk.read("blob", 7, 1)) != b"\0"
    with pytest.raises(FileNotFoundError):
        sim_disk.corrupt_file("missing")
    await sim_disk.write_file("empty", b"")
    with pytest.raises(ValueError):
        sim_disk.corrupt_file("empty")


async def test_corrupt_read_rate_one_always_corrupts_transiently() -> None:
    disk = SimDisk(random.Random(5), corrupt_read_rate=1.0)
    data = bytes(range(256)) * 4
    await _write(disk, "blob", data)
    for _ in range(20):
        got = await disk.read("blob", 10, 500)
        assert len(got) == 500
        assert sum(a != b for a, b in zip(got, data[10:510], strict=True)) == 1
    disk.corrupt_read_rate = 0.0
    assert await disk.read("blob") == data  # the stored data was never touched
    await disk.aclose()


async def _corruption_offsets(seed: int) -> list[int]:
    disk = SimDisk(random.Random(seed), corrupt_read_rate=0.5)
    data = bytes(4096)
    await _write(disk, "blob", data)
    offsets = []
    for _ in range(30):
        got = await disk.read("blob")
        offsets.append(next((i for i, b in enumerate(got) if b), -1))
    offsets.append(disk.corrupt_file("blob"))
    await disk.aclose()
    return offsets


async def test_same_seed_same_corruption() -> None:
    first = await _corruption_offsets(99)
    assert first == await _corruption_offsets(99)
    assert first != await _corruption_offsets(100)
    assert -1 in first and any(x >= 0 for x in first)  # rate 0.5: some reads are clean


async def _workload(disk: SimDisk) -> list[object]:
    results: list[object] = []
    await disk.db.executescript("CREATE TABLE t (x INTEGER)")
    for i in range(5):
        await disk.db.execute("INSERT INTO t VALUES (?)", (i,), sync=i % 2 == 0)
        await _write(disk, f"f/{i}", bytes([i]) * (i + 1), sync=i % 2 == 1)
    results.append(await disk.list_files())
    results.append(await disk.read("f/3", 1, 2))
    results.append(await disk.size("f/4"))
    await disk.delete("f/0")
    await disk.sync()
    results.append(await disk.db.execute("SELECT sum(x) FROM t"))
    results.append(disk.stats())
    return results


async def test_latency_advances_virtual_time_and_nothing_else() -> None:
    fast = SimDisk(random.Random(1))
    start = trio.current_time()
    expected = await _workload(fast)
    assert trio.current_time() == start
    rng = random.Random(1)
    slow = SimDisk(rng, latency=0.05)
    start = trio.current_time()
    assert await _workload(slow) == expected
    elapsed = trio.current_time() - start
    # executescript, 5 x (insert + write + commit), list, read, size, delete, sync, select
    assert elapsed == pytest.approx(0.05 * 22)
    assert rng.getstate() == random.Random(1).getstate()  # no jitter: rng untouched
    jittery = SimDisk(random.Random(1), latency=0.05, latency_jitter=0.1)
    start = trio.current_time()
    assert await _workload(jittery) == expected
    assert 0.05 * 22 < trio.current_time() - start < 0.15 * 22
    for disk in (fast, slow, jittery):
        await disk.aclose()


async def test_latency_can_change_at_runtime(sim_disk: SimDisk) -> None:
    await _write(sim_disk, "f", b"x")
    start = trio.current_time()
    sim_disk.latency = 2.0
    await sim_disk.exists("f")
    assert trio.current_time() - start == pytest.approx(2.0)
    sim_disk.latency = 0.0
    await sim_disk.exists("f")
    assert trio.current_time() - start == pytest.approx(2.0)


async def test_faultless_disk_draws_no_randomness() -> None:
    rng = random.Random(3)
    disk = SimDisk(rng)
    await _workload(disk)
    disk.crash()
    await disk.aclose()
    assert rng.getstate() == random.Random(3).getstate()


@pytest.mark.parametrize("seed", range(40))
async def test_random_workload_matches_durability_model(seed: int) -> None:
    """Random writes, deletes, syncs and crashes against a two-state model of the disk."""
    rng = random.Random(seed)
    disk = SimDisk(random.Random(seed), latency=0.001, latency_jitter=0.002)
    await disk.db.executescript("CREATE TABLE t (x INTEGER PRIMARY KEY)")
    live_rows: set[int] = set()
    durable_rows: set[int] = set()
    live_files: dict[str, bytes] = {}
    durable_files: dict[str, bytes] = {}
    for step in range(60):
        op = rng.choice(["row", "row", "file", "file", "delete", "sync", "crash"])
        sync = rng.random() < 0.5
        if op == "row":
            await disk.db.execute("INSERT INTO t VALUES (?)", (step,), sync=sync)
            live_rows.add(step)
            if sync:
                durable_rows = set(live_rows)
        elif op == "file":
            name = f"f/{rng.randrange(5)}"
            data = rng.randbytes(rng.randrange(1, 50))
            await disk.write_file(name, data, sync=sync)
            live_files[name] = data
            if sync:
                durable_files[name] = data
        elif op == "delete" and live_files:
            name = rng.choice(sorted(live_files))
            await disk.delete(name, sync=sync)
            del live_files[name]
            if sync:
                durable_files.pop(name, None)
        elif op == "sync":
            await disk.sync()
            durable_rows, durable_files = set(live_rows), dict(live_files)
        elif op == "crash":
            disk.crash()
            live_rows, live_files = set(durable_rows), dict(durable_files)
        assert {x for (x,) in await disk.db.execute("SELECT x FROM t")} == live_rows
        assert await disk.list_files() == sorted(live_files)
        for name, data in live_files.items():
            assert await disk.read(name) == data
        assert disk.stats() == DiskStats(len(live_files), sum(map(len, live_files.values())))
    await disk.aclose()


async def test_a_transaction_asked_for_before_a_crash_never_runs_after_it(
    sim_disk: SimDisk,
) -> None:
    # A task of the crashed process may still be waiting for the database; it must not
    # write to the disk the restarted node now uses.
    await sim_disk.db.executescript("CREATE TABLE t (x INTEGER)")
    holding, release = anyio.Event(), anyio.Event()
    outcome: list[str] = []

    async def holder() -> None:
        with pytest.raises(DiskFault):
            async with sim_disk.db.transaction() as tx:
                tx.execute("INSERT INTO t VALUES (1)")
                holding.set()
                await release.wait()

    async def waiter() -> None:
        try:
            async with sim_disk.db.transaction() as tx:
                tx.execute("INSERT INTO t VALUES (2)")
            outcome.append("ran")
        except DiskFault:
            outcome.append("refused")

    async with anyio.create_task_group() as tg:
        tg.start_soon(holder)
        await holding.wait()
        tg.start_soon(waiter)
        await anyio.wait_all_tasks_blocked()
        sim_disk.crash()
        release.set()
    assert outcome == ["refused"]
    assert await _rows(sim_disk) == []
