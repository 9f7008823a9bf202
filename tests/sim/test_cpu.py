"""The simulation's cost model: offloaded work costs its caller time, loop work stalls the node.

Everything here runs in virtual time (trio's MockClock): the costs are exact.
"""

from __future__ import annotations

import random

import anyio
import anyio.lowlevel
import pytest

from dspot._frame_io import FrameSender, read_frame
from dspot.cpu import CostModel, CpuGatedTransport, SimCpu
from dspot.disk import ReadTransaction, SimDisk, Transaction
from dspot.testing import run_with_mock_clock
from dspot.transport import SimNetwork
from dspot.wire import Frame, FrameDecoder, Kind

SCRYPT = CostModel(kinds={"scrypt": 0.05}, per_byte={"sha256": 1e-9}, offload=0.001)


def test_cost_model_prices_named_work_and_sql() -> None:
    assert SCRYPT.work("scrypt") == 0.05
    assert SCRYPT.work("sha256", 1_000_000) == pytest.approx(0.001 + 0.001)
    assert SCRYPT.work("unknown") == 0.001
    model = CostModel(statement=1e-5, kstep=1e-4, row=1e-6)
    assert model.sql(statements=2, ksteps=10, rows=100) == pytest.approx(2e-5 + 1e-3 + 1e-4)


async def _ticker(ticks: list[float], period: float = 0.01) -> None:
    while True:
        await anyio.sleep(period)
        ticks.append(anyio.current_time())


def test_offloaded_work_costs_its_caller_not_the_loop() -> None:
    async def main() -> None:
        cpu = SimCpu(SCRYPT, workers=4)
        ticks: list[float] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(_ticker, ticks)
            t0 = anyio.current_time()
            assert await cpu.offload(lambda: 42, kind="scrypt") == 42
            assert anyio.current_time() - t0 == pytest.approx(0.05)
            tg.cancel_scope.cancel()
        assert len(ticks) >= 4  # the loop went on meanwhile
        assert cpu.loop_seconds == 0
        assert cpu.worker_seconds == pytest.approx(0.05)

    run_with_mock_clock(main)


def test_workers_bound_how_much_offloaded_work_overlaps() -> None:
    async def main() -> None:
        cpu = SimCpu(SCRYPT, workers=4)
        done: list[float] = []

        async def one() -> None:
            await cpu.offload(lambda: None, kind="scrypt")
            done.append(anyio.current_time())

        async with anyio.create_task_group() as tg:
            for _ in range(8):
                tg.start_soon(one)
        assert sorted(done) == pytest.approx([0.05] * 4 + [0.1] * 4)

    run_with_mock_clock(main)


def test_cancelled_offloaded_work_gives_its_worker_back() -> None:
    async def main() -> None:
        cpu = SimCpu(SCRYPT, workers=1)

        async def hash_once() -> None:
            await cpu.offload(lambda: None, kind="scrypt")

        with anyio.move_on_after(0.01):  # cancelled while holding the only worker
            await cpu.offload(lambda: None, kind="scrypt")
        with anyio.move_on_after(0.01):  # cancelled while waiting for it
            async with anyio.create_task_group() as tg:
                tg.start_soon(hash_once)
                await anyio.lowlevel.checkpoint()  # the other task takes the worker
                await hash_once()
        t0 = anyio.current_time()
        assert await cpu.offload(lambda: 7, kind="scrypt") == 7
        assert anyio.current_time() - t0 == pytest.approx(0.05)  # no one holds the worker

    run_with_mock_clock(main)


def test_inline_work_stalls_the_loop_and_queues_behind_work_there() -> None:
    """The sabotage: each piece of inline work adds its cost to the loop's queue, and
    whoever waits for the loop (a timer through ``resume``) waits for the queue."""

    async def main() -> None:
        cpu = SimCpu(SCRYPT, inline=True)
        done: list[float] = []

        async def one() -> None:
            await cpu.offload(lambda: None, kind="scrypt")
            done.append(anyio.current_time())

        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(one)
            await anyio.sleep(0.001)
            assert cpu.stalled()
            await cpu.resume()
            resumed = anyio.current_time()
        assert sorted(done) == pytest.approx([0.05, 0.1, 0.15])
        assert resumed == pytest.approx(0.15)
        assert cpu.loop_seconds == pytest.approx(0.15)
        assert cpu.busy_with(0.0, 0.15) == "scrypt x3"

    run_with_mock_clock(main)


def test_a_stalled_node_neither_hears_nor_speaks() -> None:
    """Bytes sent to a node whose loop is busy reach its code only when the loop is free;
    what it sends leaves only then. Without the stall they arrive in one link latency."""

    async def main() -> None:
        net = SimNetwork(random.Random(1))
        cpu = SimCpu(SCRYPT, inline=True)
        busy = CpuGatedTransport(net.transport("busy"), cpu)
        peer = net.transport("peer")
        got: list[tuple[float, bytes]] = []

        async def echo(stream: anyio.abc.ByteStream) -> None:
            data = await stream.receive()
            got.append((anyio.current_time(), data))
            await stream.send(data.upper())

        listener = await busy.listen("busy:1")
        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, echo)
            stream = await peer.connect("busy:1")
            tg.start_soon(cpu.on_loop, 0.5, "scrypt")
            await anyio.lowlevel.checkpoint()
            await stream.send(b"ping")
            reply = await stream.receive()
            answered = anyio.current_time()
            await stream.aclose()
            await listener.aclose()
        assert reply == b"PING"
        assert got[0][0] >= 0.5  # the handler ran only once the stall was over
        assert answered >= 0.5

    run_with_mock_clock(main)


def test_a_stalled_node_queues_its_frames_until_the_loop_is_free() -> None:
    """RPC's frame sender hands a frame to the stream at once when the stream can take it
    without waiting; a busy node's stream cannot, so the frame leaves when the stall ends.
    Sent while the node is idle, the same frame arrives in one link latency."""

    async def main() -> None:
        net = SimNetwork(random.Random(1))
        cpu = SimCpu(SCRYPT, inline=True)
        busy = CpuGatedTransport(net.transport("busy"), cpu)
        arrived: list[float] = []

        async def receive(stream: anyio.abc.ByteStream) -> None:
            decoder = FrameDecoder()
            while True:
                await read_frame(stream, decoder)
                arrived.append(anyio.current_time())

        listener = await net.transport("peer").listen("peer:1")
        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, receive)
            stream = await busy.connect("peer:1")
            sender = FrameSender(stream)
            tg.start_soon(sender.run)
            await anyio.sleep(0.1)
            frame = Frame(Kind.REQUEST, 1, "ping", b"{}")
            await sender.send(frame)
            await anyio.sleep(0.1)
            assert arrived and arrived[-1] - 0.1 < 0.01
            stall_from = anyio.current_time()
            tg.start_soon(cpu.on_loop, 0.5, "scrypt")
            await anyio.sleep(0.01)
            assert cpu.stalled()
            await sender.send(frame)
            await anyio.sleep(1.0)
            assert len(arrived) == 2
            assert arrived[-1] >= stall_from + 0.5  # left only once the loop was free
            await stream.aclose()
            await listener.aclose()
            tg.cancel_scope.cancel()

    run_with_mock_clock(main)


def _fill(tx: Transaction) -> None:
    tx.executemany("INSERT INTO t (v) VALUES (?)", [(f"value {i}",) for i in range(2000)])


def _scan(tx: ReadTransaction) -> int:
    return len(tx.execute("SELECT v FROM t WHERE v LIKE '%9%'"))


def test_sim_disk_prices_reads_by_work_and_charges_a_worker() -> None:
    async def main() -> None:
        disk = SimDisk(random.Random(1))
        cpu = SimCpu(CostModel(statement=0.001, kstep=0.001, row=0.0))
        disk.cpu = cpu
        await disk.db.executescript("CREATE TABLE t (v TEXT)")
        await disk.db.write(_fill)
        written = cpu.worker_seconds
        assert written > 0.001 and cpu.loop_seconds == 0

        t0 = anyio.current_time()
        await disk.db.query("SELECT 1")
        small = anyio.current_time() - t0
        t0 = anyio.current_time()
        assert await disk.db.read(_scan) > 0
        big = anyio.current_time() - t0
        assert small == pytest.approx(0.001)  # one statement, no scan
        assert big > 10 * small  # a scan of 2000 rows runs thousands of VM steps
        assert cpu.loop_seconds == 0

        async with disk.db.transaction() as tx:  # statements of a transaction run on the loop
            tx.execute("UPDATE t SET v = v || '!'")
        assert cpu.loop_seconds > 0.001
        await disk.aclose()

    run_with_mock_clock(main)


def test_sim_disk_read_in_inline_mode_holds_the_write_lock_and_the_loop() -> None:
    async def main() -> None:
        disk = SimDisk(random.Random(1))
        disk.cpu = SimCpu(CostModel(statement=0.2), inline=True)
        await disk.db.executescript("CREATE TABLE t (v TEXT)")
        wrote_at: list[float] = []

        async def writer() -> None:
            await anyio.sleep(0.01)
            async with disk.db.transaction() as tx:
                tx.execute("INSERT INTO t VALUES ('x')")
            wrote_at.append(anyio.current_time())

        async with anyio.create_task_group() as tg:
            tg.start_soon(writer)
            await disk.db.query("SELECT count(*) FROM t")
        # The write waited for the read (0.2 s under the lock), then paid its own statement.
        assert wrote_at[0] == pytest.approx(0.4, abs=1e-3)

    run_with_mock_clock(main)


def test_sim_disk_charges_file_bytes_to_a_worker() -> None:
    async def main() -> None:
        disk = SimDisk(random.Random(1))
        disk.cpu = SimCpu(CostModel(file_byte=1e-6))
        t0 = anyio.current_time()
        await disk.write_file("a", b"x" * 100_000)
        assert anyio.current_time() - t0 == pytest.approx(0.1)
        t0 = anyio.current_time()
        assert len(await disk.read("a", 0, 50_000)) == 50_000
        assert anyio.current_time() - t0 == pytest.approx(0.05)

    run_with_mock_clock(main)


def test_a_crash_leaves_the_next_incarnation_an_idle_loop() -> None:
    async def main() -> None:
        cpu = SimCpu(SCRYPT, inline=True)
        with anyio.move_on_after(0.01):
            await cpu.on_loop(5.0, "scrypt")
        assert cpu.stalled()
        cpu.reset()
        assert not cpu.stalled()

    run_with_mock_clock(main)


def test_blob_ingest_hashes_on_a_worker() -> None:
    from dspot.blobstore import LocalBlobs

    async def main() -> None:
        disk = SimDisk(random.Random(1))
        cpu = SimCpu(CostModel(per_byte={"sha256": 1e-8}, file_byte=0.0))
        disk.cpu = cpu
        blobs = LocalBlobs(disk, block_size=1 << 16, offload=cpu.offload)
        await blobs.open()
        loop_before = cpu.loop_seconds
        ingest = blobs.ingest("upload-1")
        await ingest.write(b"x" * 1_000_000)  # 10 ms of hashing at this price
        assert cpu.worker_seconds >= 0.01
        await ingest.commit(None, stored_at=1.0)
        assert cpu.loop_seconds - loop_before < 0.001  # only the commit's bookkeeping

    run_with_mock_clock(main)
