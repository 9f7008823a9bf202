"""Reads off the writer, writes off the loop: ``Database.read``, ``query`` and ``write``.

The conformance part runs on both disks in virtual time. The LocalDisk part uses real
threads and the real clock: a long read runs on a reader connection in a worker thread,
so a write commits and the loop's timers keep firing while it runs.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

from dspot.disk import Disk, LocalDisk, ReadTransaction, Row, Transaction

pytestmark = pytest.mark.anyio


async def _table(disk: Disk) -> None:
    await disk.db.executescript("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
    await disk.db.execute("INSERT INTO t VALUES (1, 'one'), (2, 'two')")


def _all(tx: ReadTransaction, above: int = 0) -> list[Row]:
    return tx.execute("SELECT k, v FROM t WHERE k > ? ORDER BY k", (above,))


async def test_read_sees_every_commit_that_returned(disk: Disk) -> None:
    await _table(disk)
    assert await disk.db.read(_all) == [(1, "one"), (2, "two")]
    assert await disk.db.read(_all, above=1) == [(2, "two")]
    await disk.db.execute("INSERT INTO t VALUES (3, 'three')", sync=False)
    assert await disk.db.query("SELECT v FROM t WHERE k = ?", (3,)) == [("three",)]


async def test_read_refuses_to_write(disk: Disk) -> None:
    await _table(disk)

    def sneaky(tx: ReadTransaction) -> None:
        tx.execute("DELETE FROM t")

    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        await disk.db.read(sneaky)
    assert len(await disk.db.query("SELECT * FROM t")) == 2
    await disk.db.execute("INSERT INTO t VALUES (3, 'three')")  # the writer still writes


async def test_read_inside_own_write_transaction_is_an_error(disk: Disk) -> None:
    """A snapshot could never see the open transaction's writes; say so instead of lying
    (production) or deadlocking (simulation)."""
    await _table(disk)
    async with disk.db.transaction() as tx:
        tx.execute("INSERT INTO t VALUES (3, 'three')")
        with pytest.raises(RuntimeError, match="inside a write transaction"):
            await disk.db.read(_all)
        with pytest.raises(RuntimeError, match="inside a write transaction"):
            async with disk.db.transaction():
                pass
    assert len(await disk.db.query("SELECT * FROM t")) == 3


async def test_write_commits_its_result_or_rolls_back(disk: Disk) -> None:
    await _table(disk)

    def add(tx: Transaction) -> int:
        tx.execute("INSERT INTO t VALUES (3, 'three')")
        return len(tx.execute("SELECT * FROM t"))

    assert await disk.db.write(add) == 3

    def fail(tx: Transaction) -> None:
        tx.execute("INSERT INTO t VALUES (4, 'four')")
        raise ValueError("no")

    with pytest.raises(ValueError):
        await disk.db.write(fail, sync=False)
    assert [k for k, _ in await disk.db.read(_all)] == [1, 2, 3]


async def test_read_after_close_is_refused(disk: Disk) -> None:
    await _table(disk)
    await disk.aclose()
    with pytest.raises(anyio.ClosedResourceError):
        await disk.db.read(_all)


# -- LocalDisk with real threads ---------------------------------------------------------------

_SLOW_COUNT = (
    "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < ?) "
    "SELECT count(*) FROM n"
)


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_a_long_read_blocks_neither_a_write_nor_a_timer(
    tmp_path: Path, anyio_backend: str
) -> None:
    """Real threads, real clock. The read holds its snapshot until the test lets it go, and
    counts rows in a query that takes a while; meanwhile a write commits (the writer is a
    different connection, under a lock reads do not take) and a 5 ms timer keeps firing (the
    read runs in a worker thread, and SQLite releases the GIL while it works)."""
    disk = await LocalDisk.open(tmp_path / "node")
    try:
        await _table(disk)
        first_query_done = threading.Event()
        release = threading.Event()

        def long_read(tx: ReadTransaction) -> tuple[list[Row], int, list[Row]]:
            before = tx.execute("SELECT k FROM t ORDER BY k")  # takes the snapshot
            first_query_done.set()
            counted = int(tx.execute(_SLOW_COUNT, (3_000_000,))[0][0])
            if not release.wait(10):
                raise TimeoutError("the test never released the read")
            after = tx.execute("SELECT k FROM t ORDER BY k")  # the same snapshot
            return before, counted, after

        order: list[str] = []
        twenty_ticks = anyio.Event()

        async def timer() -> None:
            for _ in range(20):
                await anyio.sleep(0.005)
            twenty_ticks.set()

        async def reader() -> None:
            result = await disk.db.read(long_read)
            order.append("read")
            assert result == ([(1,), (2,)], 3_000_000, [(1,), (2,)])

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(reader)
                assert await anyio.to_thread.run_sync(first_query_done.wait, 10)
                tg.start_soon(timer)
                await disk.db.execute("INSERT INTO t VALUES (3, 'three')")
                order.append("write")
                # The read holds its snapshot in its thread; the loop keeps ticking.
                await twenty_ticks.wait()
                assert order == ["write"]
                release.set()
        assert order == ["write", "read"]
        assert await disk.db.query("SELECT k FROM t ORDER BY k") == [(1,), (2,), (3,)]
    finally:
        release.set()
        await disk.aclose()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_reads_run_side_by_side_up_to_the_pool_size(
    tmp_path: Path, anyio_backend: str
) -> None:
    """Two reads that each wait for the other can only finish if they run at once."""
    disk = await LocalDisk.open(tmp_path / "node", readers=2)
    try:
        await _table(disk)
        barrier = threading.Barrier(2, timeout=5)

        def meet(tx: ReadTransaction) -> int:
            barrier.wait()
            return len(tx.execute("SELECT * FROM t"))

        results: list[int] = []

        async def one() -> None:
            results.append(await disk.db.read(meet))

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(one)
                tg.start_soon(one)
        assert results == [2, 2]
    finally:
        await disk.aclose()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_write_runs_off_the_loop(tmp_path: Path, anyio_backend: str) -> None:
    """``Database.write`` runs its body in a worker thread: a timer fires while it works."""
    disk = await LocalDisk.open(tmp_path / "node")
    try:
        await _table(disk)
        started = threading.Event()
        release = threading.Event()

        def slow(tx: Transaction) -> None:
            tx.execute("INSERT INTO t VALUES (3, 'three')")
            started.set()
            if not release.wait(10):
                raise TimeoutError("never released")

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(disk.db.write, slow)
                assert await anyio.to_thread.run_sync(started.wait, 10)
                await anyio.sleep(0.02)  # the loop is free: this timer fires
                release.set()
        assert len(await disk.db.query("SELECT * FROM t")) == 3
    finally:
        release.set()
        await disk.aclose()
