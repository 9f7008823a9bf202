"""``benchmarks/bench_scale.py --quick`` runs to the end against real node processes: the
catalog filled through the API, the log compacted within its configured bound, a fresh node
catching up by installing a snapshot (the log's start is compacted away) and a restarted one
catching up at all (by snapshot or from the log: how many entries its downtime spans depends
on how the ring batched the writes). (The figures themselves are the benchmark's business;
only what must hold on any machine is checked here.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")


def test_the_quick_scale_benchmark_runs_and_compacts(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    proc = subprocess.run(
        [sys.executable, "bench_scale.py", "--quick", "--json", str(out)],
        cwd=BENCHMARKS,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    tables = {t["title"].split(",")[0]: t for t in doc["tables"]}
    disk = dict(map(tuple, tables["disk"]["rows"]))
    committed = disk["log entries committed"]
    on_disk = disk["log entries on disk after compaction"]
    assert committed > disk["configured bound (compact every + kept)"] >= on_disk
    joined = tables["a fresh fourth node (--learner) joins"]
    assert int(joined["note"].split()[0]) >= 1, joined  # "N snapshot(s) installed"
    caught = next(t for title, t in tables.items() if title.startswith("a node down"))
    assert dict(map(tuple, caught["rows"]))["restart until applied them all"] > 0, caught
    reads = tables["reads on one node"]["rows"]
    assert all(row[4] == 0 for row in reads), reads  # no errors
