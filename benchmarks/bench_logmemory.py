"""Token-ring memory against log length: a bounded window (with and without snapshots)
against the whole log in memory, in the same run.

Each case is a fresh process running three token-ring members over TCP loopback, each on
its own ``LocalDisk`` (SQLite WAL, fsync per commit) in a temporary directory, that commits
``N`` entries of ``--size`` bytes and then reports the process's resident memory (VmRSS and
its peak VmHWM, all three members together), the entries each member holds in memory, the
ids in its duplicate-suppression window and the entries on its disk.

* ``snapshots``: a state machine that takes snapshots; ``compact_every=1000``,
  ``keep_entries=200``, ``memory_entries=512``, ``dedupe_window=1000``.
* ``window``: an ``apply`` callback (no snapshots, the log is never compacted), the same
  memory and id windows.
* ``whole log`` (the peer): the same code with windows as large as the log — what the ring
  kept before it had a memory window (every entry and every id in memory).

    python benchmarks/bench_logmemory.py [--entries 2000 8000 32000] [--size 200]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio
from _machine import machine_line
from _results import Results, add_json_option
from _ringnodes import ring_members

from dspot.tokenring import (
    CommittedEntry,
    SnapshotReader,
    SnapshotWriter,
    TokenRingConfig,
)

CASES = ("snapshots", "window", "whole log")


class Tally:
    """A small state machine: how many entries and bytes were applied."""

    def __init__(self) -> None:
        self.count = 0
        self.size = 0

    async def apply(self, entry: CommittedEntry) -> None:
        self.count += 1
        self.size += len(entry.data)

    async def applied_index(self) -> int:
        return 0

    async def save_snapshot(self, out: SnapshotWriter) -> None:
        await out.write(json.dumps([self.count, self.size]).encode())

    async def restore_snapshot(self, snapshot: SnapshotReader) -> None:
        self.count, self.size = json.loads(await snapshot.read())


def _config(case: str, entries: int) -> TokenRingConfig:
    if case == "whole log":
        big = entries + 1000
        return TokenRingConfig(min_members=3, memory_entries=big, dedupe_window=big)
    return TokenRingConfig(
        min_members=3,
        memory_entries=512,
        dedupe_window=1000,
        compact_every=1000,
        keep_entries=200,
    )


def _memory_kib() -> tuple[int, int]:
    """(VmRSS, VmHWM) of this process in KiB."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields["VmRSS"], fields["VmHWM"]


async def run_case(case: str, entries: int, size: int, tmp: Path) -> dict[str, Any]:
    names = ["n1", "n2", "n3"]
    config = _config(case, entries)
    async with contextlib.AsyncExitStack() as stack:
        if case == "snapshots":
            rings = await ring_members(stack, names, tmp, config, state_machine=Tally)
        else:
            rings = await ring_members(stack, names, tmp, config, apply=lambda: Tally().apply)
        payload = b"x" * size
        left = entries

        async def caller(i: int) -> None:
            nonlocal left
            while left > 0:
                left -= 1
                await rings[i % 3].submit(payload, timeout=60)

        async with anyio.create_task_group() as tg:
            for i in range(128):
                tg.start_soon(caller, i)
        last = rings[0].commit_position
        for ring in rings:
            await ring.wait_applied(last, timeout=60)
        rss, hwm = _memory_kib()
        return {
            "case": case,
            "entries": entries,
            "rss_kib": rss,
            "hwm_kib": hwm,
            "in_memory": max(r.status().in_memory for r in rings),
            "ids": max(len(r.core.ids) for r in rings),
            "on_disk": max([await r.log_entries_on_disk() for r in rings]),
        }


def _child(case: str, entries: int, size: int) -> None:
    with tempfile.TemporaryDirectory() as tmpdir:
        result = anyio.run(run_case, case, entries, size, Path(tmpdir))
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, nargs="+", default=[2000, 8000, 32000])
    parser.add_argument("--size", type=int, default=200, help="bytes per entry")
    parser.add_argument("--case", nargs=2, help=argparse.SUPPRESS)  # internal: one case
    add_json_option(parser)
    args = parser.parse_args()
    if args.case:
        _child(args.case[0], int(args.case[1]), args.size)
        return
    print(machine_line())
    rows: list[dict[str, Any]] = []
    for n in args.entries:
        for case in CASES:
            cmd = [sys.executable, __file__, "--case", case, str(n), "--size", str(args.size)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            r = rows[-1]
            print(
                f"{case:<10} {n:>7} entries: RSS {r['rss_kib'] / 1024:7.1f} MiB "
                f"(peak {r['hwm_kib'] / 1024:7.1f}), in memory {r['in_memory']:>6}, "
                f"ids {r['ids']:>6}, on disk {r['on_disk']:>6}",
                flush=True,
            )
    first = min(args.entries)
    base = {r["case"]: r["rss_kib"] for r in rows if r["entries"] == first}
    print(f"RSS growth over {first} entries (MiB), and against the whole log:")
    table = []
    for r in rows:
        growth = (r["rss_kib"] - base[r["case"]]) / 1024
        whole = next(w for w in rows if w["case"] == "whole log" and w["entries"] == r["entries"])
        ratio = r["rss_kib"] / whole["rss_kib"]
        print(f"  {r['case']:<10} {r['entries']:>7}: +{growth:6.1f} MiB, x{ratio:.2f} of whole log")
        cells = [r["case"], r["entries"], round(r["rss_kib"] / 1024, 1), round(growth, 1)]
        table.append([*cells, round(ratio, 2), r["in_memory"], r["ids"], r["on_disk"]])
    results = Results("logmemory", "Token ring: memory against log length", args)
    results.table(
        f"three members in one process, entries of {args.size} B",
        ["case", "entries", "RSS MiB", "growth MiB", "x whole log", "in memory", "ids", "on disk"],
        table,
        note="RSS counts the whole process (three members); 'whole log' keeps every entry "
        "and id in memory, as the ring did before it had a memory window",
    )
    results.write()


if __name__ == "__main__":
    main()
