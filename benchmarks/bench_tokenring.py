"""Ordered, durable log appends: the token ring against PySyncObj (Raft) and a local SQLite
append, in the same run.

Every system appends the same number of small entries (64 bytes) from ``--concurrency``
callers spread over the nodes, and a call returns once its entry is committed. Nodes run in
this one process over TCP loopback; each token-ring node has its own ``LocalDisk`` (SQLite
WAL, fsync per commit) in a temporary directory. PySyncObj runs with a file journal
(mmap, no fsync per entry) and forwards follower calls to its leader. The ceiling is one
node appending one row per synced SQLite transaction. Printed, never asserted.

    python benchmarks/bench_tokenring.py [--entries 1000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import threading
import time
from pathlib import Path

import anyio
from _machine import machine_line
from _results import Results, add_json_option
from _ringnodes import ring_members

from dspot.disk import LocalDisk
from dspot.testing import free_ports
from dspot.tokenring import TokenRingConfig

ENTRY = b"x" * 64
Result = tuple[float, float, float]  # entries/s, p50 ms, p99 ms


def _summary(latencies: list[float], elapsed: float) -> Result:
    qs = statistics.quantiles(latencies, n=100)
    return len(latencies) / elapsed, qs[49] * 1000, qs[98] * 1000


async def bench_tokenring(nodes: int, entries: int, concurrency: int, tmp: Path) -> Result:
    names = [f"n{i}" for i in range(nodes)]
    config = TokenRingConfig(min_members=nodes)
    async with contextlib.AsyncExitStack() as stack:
        rings = await ring_members(stack, names, tmp / f"ring-{nodes}", config)
        await rings[0].submit(b"warm-up", timeout=30)
        latencies: list[float] = []
        left = entries

        async def caller(i: int) -> None:
            nonlocal left
            ring = rings[i % nodes]
            while left > 0:
                left -= 1
                t = time.perf_counter()
                await ring.submit(ENTRY)
                latencies.append(time.perf_counter() - t)

        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for i in range(concurrency):
                tg.start_soon(caller, i)
        return _summary(latencies, time.perf_counter() - start)


async def bench_sqlite(entries: int, concurrency: int, tmp: Path) -> Result:
    disk = await LocalDisk.open(tmp / "sqlite")
    async with disk:
        await disk.db.executescript("CREATE TABLE log (seq INTEGER PRIMARY KEY, data BLOB);")
        latencies: list[float] = []
        left = entries

        async def caller() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                t = time.perf_counter()
                async with disk.db.transaction(sync=True) as tx:
                    tx.execute("INSERT INTO log (data) VALUES (?)", (ENTRY,))
                latencies.append(time.perf_counter() - t)

        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for _ in range(concurrency):
                tg.start_soon(caller)
        return _summary(latencies, time.perf_counter() - start)


def bench_pysyncobj(nodes: int, entries: int, concurrency: int, tmp: Path) -> Result | None:
    try:
        from pysyncobj import SyncObj, SyncObjConf, replicated
    except ImportError:
        return None

    class Log(SyncObj):  # type: ignore[misc]
        def __init__(self, me: str, others: list[str], conf: SyncObjConf) -> None:
            super().__init__(me, others, conf)
            self.entries: list[bytes] = []

        @replicated  # type: ignore[misc]
        def append(self, data: bytes) -> int:
            self.entries.append(data)
            return len(self.entries)

    addrs = [f"127.0.0.1:{p}" for p in free_ports(nodes)]
    objs = [
        Log(
            a,
            [b for b in addrs if b != a],
            SyncObjConf(
                journalFile=str(tmp / f"raft-{nodes}-{i}.journal"), dynamicMembershipChange=False
            ),
        )
        for i, a in enumerate(addrs)
    ]
    try:
        deadline = time.time() + 30
        while time.time() < deadline and not all(o._getLeader() is not None for o in objs):
            time.sleep(0.05)
        objs[0].append(b"warm-up", sync=True, timeout=30)
        latencies: list[float] = []
        lock = threading.Lock()
        left = [entries]

        def caller(i: int) -> None:
            obj = objs[i % nodes]
            while True:
                with lock:
                    if left[0] <= 0:
                        return
                    left[0] -= 1
                t = time.perf_counter()
                obj.append(ENTRY, sync=True, timeout=30)
                with lock:
                    latencies.append(time.perf_counter() - t)

        threads = [threading.Thread(target=caller, args=(i,)) for i in range(concurrency)]
        start = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        return _summary(latencies, time.perf_counter() - start)
    finally:
        for o in objs:
            o.destroy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    add_json_option(parser)
    args = parser.parse_args()
    print(machine_line())
    print(f"{args.entries} entries of {len(ENTRY)} B, {args.concurrency} callers")
    rows: list[tuple[str, Result | None]] = []
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        ceiling = anyio.run(bench_sqlite, args.entries, args.concurrency, tmp)
        rows.append(("sqlite, 1 node, fsync per append (ceiling)", ceiling))
        for nodes in (3, 5):
            ring = anyio.run(bench_tokenring, nodes, args.entries, args.concurrency, tmp)
            rows.append((f"dspot token ring, {nodes} nodes", ring))
            raft = bench_pysyncobj(nodes, args.entries, args.concurrency, tmp)
            rows.append((f"PySyncObj, {nodes} nodes", raft))
    print(f"{'system':<45} {'entries/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'x ceiling':>10}")
    for name, res in rows:
        if res is None:
            print(f"{name:<45} {'(pysyncobj not installed)':>38}")
            continue
        rate, p50, p99 = res
        print(f"{name:<45} {rate:>10.0f} {p50:>8.1f} {p99:>8.1f} {rate / ceiling[0]:>10.2f}")
    by_name = dict(rows)
    for nodes in (3, 5):
        ring, raft = (
            by_name[f"dspot token ring, {nodes} nodes"],
            by_name[f"PySyncObj, {nodes} nodes"],
        )
        if ring and raft:
            print(f"{nodes} nodes: token ring / PySyncObj throughput = {ring[0] / raft[0]:.2f}")
    results = Results("tokenring", "Token ring: ordered, durable appends", args)
    results.table(
        f"{args.entries} entries of {len(ENTRY)} B, {args.concurrency} callers",
        ["system", "entries/s", "p50 ms", "p99 ms", "x ceiling"],
        [
            [name, round(res[0]), round(res[1], 1), round(res[2], 1), round(res[0] / ceiling[0], 2)]
            if res
            else [name + " (pysyncobj not installed)", None, None, None, None]
            for name, res in rows
        ],
        plot={"x": 0, "y": [1], "ylabel": "entries/s"},
        note="the token ring fsyncs every commit; PySyncObj's journal does not",
    )
    results.write()


if __name__ == "__main__":
    main()
