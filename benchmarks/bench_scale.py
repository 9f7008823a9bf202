"""The example service at catalog scale, with log compaction (printed, never asserted). Run by
hand or by ``nox -s bench``::

    python benchmarks/bench_scale.py [--songs 100000] [--writes 10000] [--quick]
        [--compact-every 10000] [--keep-entries 1000] [--json PATH]

It starts three ``dspot-spotify node`` processes on loopback (real disks in a temporary
directory, the given compaction settings), then:

1. **Fill**: ``--songs`` tiny distinct tagged WAV files uploaded **through the nodes' HTTP
   API** (each is several catalog entries and an R=3 blob), ``--upload-workers`` at a time
   spread over ``--uploaders`` accounts (a node runs only two uploads of one user at once);
   every node has applied them all before anything is measured. On a 2-core machine the
   fill runs at about 50 songs/s with the defaults (32 uploads as 8 users; 20 to 34 with 8
   uploads as one user), so 100,000 songs take about 35 minutes and 1,000,000 would take
   six hours or more.
2. **Memory and disk**: each node's RSS (``/proc/PID/status``) against its RSS before the
   fill (the peer); the database file; the catalog's own size (a snapshot copy made with the
   node's snapshot code); log entries ever committed against those still on disk (target:
   on disk within ``--compact-every`` + ``--keep-entries``).
3. **Reads on one node**: sequential ``GET /api/songs?q=WORD`` (search) and
   ``GET /api/albums?offset=N`` (album list) for ``--seconds`` each, p50/p99 against
   ``GET /healthz`` on the same node (the HTTP floor), with the node's event-loop lag p99
   during each (from its ``/metrics`` histogram, scraped before and after).
4. **A fresh fourth node** started with ``--learner``: seconds from its start until it serves
   the whole catalog (snapshot install + tail), against the seconds it took to print
   ``ready`` (the process's own start).
5. **Catch-up**: one node stopped during ``--writes`` small writes (plays), then started
   again: seconds until it has applied them all, against the seconds the writes took.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import os
import random
import re
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from _machine import machine_line
from _results import Results, add_json_option
from _search_peer import lag_buckets, lag_quantile_ms
from bench_gateway import ADJECTIVES, NOUNS, upload_catalog, uploader_tokens

from dspot.testing import free_port_range

MiB = 1024 * 1024
QUICK = {"songs": 150, "writes": 100, "seconds": 1.0, "compact_every": 50, "keep_entries": 10}
"""``--quick``: sizes for a smoke run (the test suite runs it) — a minute, not an hour."""


def rss_mib(pid: int) -> float:
    """Resident memory of process ``pid`` (Linux ``/proc``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def metric(url: str, name: str, labels: str = "") -> float:
    """One sample of the node's ``/metrics`` (0 when absent)."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=30) as resp:
        text = resp.read().decode()
    pattern = "^" + re.escape(name + (f"{{{labels}}}" if labels else "")) + r" (\S+)$"
    found = re.search(pattern, text, re.M)
    return float(found.group(1)) if found else 0.0


def wait(what: str, check: Callable[[], bool], timeout: float) -> float:
    """Poll ``check`` until it holds; the seconds it took."""
    started = time.perf_counter()
    while not check():
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"{what}: not after {timeout:g} s")
        time.sleep(0.05)
    return time.perf_counter() - started


def latencies(
    url: str, token: str, paths: Callable[[random.Random], str], seconds: float
) -> dict[str, float]:
    """Sequential GETs on one keep-alive connection for ``seconds``: p50/p99 in ms."""
    from bench_gateway import Target

    target = Target("node", url, token, None)
    conn = target.connect()
    rng = random.Random(1)
    took: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    try:
        while time.perf_counter() < deadline:
            t = time.perf_counter()
            conn.request("GET", paths(rng), headers=target.headers())
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                errors += 1
                continue
            took.append(time.perf_counter() - t)
    finally:
        conn.close()
    took.sort()

    def pct(q: float) -> float:
        return took[min(len(took) - 1, int(q * len(took)))] * 1000 if took else float("nan")

    return {"requests": len(took), "p50": pct(0.5), "p99": pct(0.99), "errors": errors}


class Nodes:
    """The node processes of the run, all stopped at the end."""

    def __init__(self, root: Path, extra: tuple[str, ...]) -> None:
        from dspot_spotify.process.setup import write_secret

        self.root = root
        self.extra = extra
        self.secret = root / "cluster-secret"
        root.mkdir(parents=True, exist_ok=True)
        write_secret(self.secret)
        self.base = free_port_range(8)
        self.seeds = tuple(f"127.0.0.1:{self.base + 2 * i}" for i in range(3))
        self.procs: dict[str, Any] = {}

    def spec(self, i: int, *, learner: bool = False) -> Any:
        from dspot_spotify.process.supervisor import NodeSpec

        return NodeSpec(
            name=f"s{i + 1}",
            data=self.root / f"s{i + 1}",
            rpc=f"127.0.0.1:{self.base + 2 * i}",
            http=f"127.0.0.1:{self.base + 2 * i + 1}",
            seeds=self.seeds,
            secret_file=self.secret,
            cluster_size=3,
            extra=(*self.extra, *(("--learner",) if learner else ())),
        )

    def start(self, i: int, *, learner: bool = False, quorum: bool = True) -> Any:
        from dspot_spotify.process.supervisor import NodeProcess, wait_for

        spec = self.spec(i, learner=learner)
        proc = NodeProcess(spec, spec.data / "node.log")
        self.procs[spec.name] = proc
        proc.start()
        wait_for([proc], "ready", 120)
        if quorum:
            wait_for([proc], "quorum", 120)
        return proc

    def stop_all(self) -> None:
        for proc in self.procs.values():
            proc.stop(10.0)


@contextlib.contextmanager
def running(root: Path, extra: tuple[str, ...]) -> Iterator[Nodes]:
    nodes = Nodes(root, extra)
    try:
        yield nodes
    finally:
        nodes.stop_all()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--songs", type=int, default=100_000)
    p.add_argument("--writes", type=int, default=10_000, help="writes while a node is down")
    p.add_argument("--seconds", type=float, default=10.0, help="read load per kind")
    p.add_argument("--compact-every", type=int, default=10_000)
    p.add_argument("--keep-entries", type=int, default=1_000)
    p.add_argument("--upload-workers", type=int, default=32)
    p.add_argument(
        "--uploaders", type=int, default=8, help="accounts the fill's uploads are spread over"
    )
    p.add_argument("--quick", action="store_true", help=f"smoke-test sizes ({QUICK})")
    add_json_option(p)
    args = p.parse_args()
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    print(machine_line())
    print(f"load average before the run: {os.getloadavg()[0]:.2f}", flush=True)
    results = Results("scale", "Example service: catalog scale and log compaction", args)
    if results.example_missing("dspot_spotify"):
        return
    if args.songs < 100_000:
        results.note(
            f"{args.songs:,} songs: the issue's targets are set for 100,000; this run only "
            "indicates them."
        )
    with tempfile.TemporaryDirectory() as tmpdir:
        run(args, results, Path(tmpdir))
    results.write()


def run(args: argparse.Namespace, results: Results, tmp: Path) -> None:
    from dspot_spotify.catalog import snapshot
    from dspot_spotify.client import ApiClient, ApiError

    extra = ("--compact-every", str(args.compact_every), "--keep-entries", str(args.keep_entries))
    with running(tmp / "cluster", extra) as nodes:
        for i in range(3):
            nodes.start(i, quorum=False)
        from dspot_spotify.process.supervisor import wait_for

        wait_for(list(nodes.procs.values()), "quorum", 120)
        s1, s2, s3 = (nodes.procs[f"s{i}"] for i in (1, 2, 3))
        empty = {name: rss_mib(proc.pid) for name, proc in nodes.procs.items()}
        admin = ApiClient(s1.url, timeout=60)
        token = str(admin.register("bench", "bench-password-123")["token"])
        admin.token = token

        # 1. fill
        print(
            f"uploading {args.songs} songs through the API ({args.upload_workers} at a time, "
            f"as {args.uploaders} users)"
        )
        tokens = uploader_tokens(s1.url, token, args.uploaders)
        took = upload_catalog(
            [s.url for s in (s1, s2, s3)], tokens, args.songs, args.upload_workers, tmp
        )
        print(f"  {args.songs} songs in {took:.0f} s ({args.songs / took:.0f} songs/s)", flush=True)

        def total(url: str) -> int:
            """Songs listed by the node at ``url`` (0 while it cannot answer: a newcomer
            does not know the user before it has caught up)."""
            try:
                doc = ApiClient(url, token=token, timeout=60).json("GET", "/api/songs?limit=1")
            except ApiError:
                return 0
            return int(doc["total"])

        for proc in (s1, s2, s3):
            wait(f"{proc.spec.name} catalog", lambda u=proc.url: total(u) >= args.songs, 300)

        # 2. memory and disk
        rows = []
        for name, proc in sorted(nodes.procs.items()):
            rows.append([name, round(empty[name]), round(rss_mib(proc.pid))])
        print(f"\nRSS MiB        {'empty':>8} {'filled':>8}")
        for name, before, after in rows:
            print(f"{name:<14} {before:>8} {after:>8}")
        worst = max(r[2] for r in rows)
        results.table(
            f"node RSS with {args.songs:,} songs",
            ["node", "RSS MiB before the fill", "RSS MiB after"],
            rows,
            plot={"x": 0, "y": [1, 2], "ylabel": "MiB"},
        )
        results.target(f"node RSS <= 300 MiB ({args.songs:,} songs)", worst <= 300)
        db = s1.spec.data / "disk" / "meta.sqlite3"
        db_bytes = sum(f.stat().st_size for f in db.parent.glob("meta.sqlite3*"))
        copy = tmp / "catalog-copy.sqlite3"
        snapshot.export_file(db, copy)
        commit = metric(s1.url, "dspot_tokenring_log", 'field="commit_index"')
        on_disk = metric(s1.url, "dspot_tokenring_log", 'field="entries_on_disk"')
        bound = args.compact_every + args.keep_entries
        print(
            f"database {db_bytes / MiB:.1f} MiB, catalog alone {copy.stat().st_size / MiB:.1f} MiB"
        )
        print(f"log entries committed {commit:.0f}, on disk {on_disk:.0f} (bound {bound})")
        results.table(
            "disk",
            ["what", "value"],
            [
                ["node database (with log, blob index) MiB", round(db_bytes / MiB, 1)],
                ["catalog alone (a snapshot) MiB", round(copy.stat().st_size / MiB, 1)],
                ["log entries committed", int(commit)],
                ["log entries on disk after compaction", int(on_disk)],
                ["configured bound (compact every + kept)", bound],
            ],
        )
        results.target("log on disk bounded by the configured tail", on_disk <= bound)

        # 3. reads on one node
        def search(rng: random.Random) -> str:
            return (
                f"/api/songs?q={rng.choice(NOUNS if rng.random() < 0.5 else ADJECTIVES)}&limit=20"
            )

        albums = int(ApiClient(s1.url, token=token).json("GET", "/api/albums?limit=1")["total"])

        def album_page(rng: random.Random) -> str:
            return f"/api/albums?limit=50&offset={rng.randrange(max(1, albums - 50))}"

        reads = [
            ("search /api/songs?q=WORD&limit=20", search),
            ("album list /api/albums?limit=50&offset=N", album_page),
            ("peer: /healthz", lambda rng: "/healthz"),
        ]
        read_rows = []
        print(f"\nreads on one node, sequential, {args.seconds:g} s each")
        for label, paths in reads:
            lag_before = lag_buckets(s1.url)
            r = latencies(s1.url, token, paths, args.seconds)
            lag = lag_quantile_ms(lag_before, lag_buckets(s1.url), 0.99)
            print(
                f"{label:<42} p50 {r['p50']:7.1f} ms  p99 {r['p99']:7.1f} ms  "
                f"({r['requests']} requests, {r['errors']} errors; loop lag p99 {lag:.1f} ms)"
            )
            read_rows.append(
                [
                    label,
                    round(r["p50"], 2),
                    round(r["p99"], 2),
                    r["requests"],
                    r["errors"],
                    round(lag, 1),
                ]
            )
        results.table(
            f"reads on one node, {args.songs:,} songs, one client, {args.seconds:g} s each",
            ["request", "p50 ms", "p99 ms", "requests", "errors", "node loop lag p99 ms"],
            read_rows,
            plot={"x": 0, "y": [1, 2], "ylabel": "latency ms"},
        )
        results.target("search p99 <= 100 ms on one node", read_rows[0][2] <= 100)

        # 4. a fresh fourth node
        started = time.perf_counter()
        s4 = nodes.start(3, learner=True, quorum=False)
        ready = time.perf_counter() - started
        wait("s4 catalog", lambda: total(s4.url) >= args.songs, 3600)
        serving = time.perf_counter() - started
        restored = metric(s4.url, "dspot_catalog_snapshots_total", 'action="restored"')
        print(
            f"\nfresh node: ready in {ready:.1f} s, serves {args.songs} songs after "
            f"{serving:.1f} s ({restored:.0f} snapshots installed)"
        )
        results.table(
            "a fresh fourth node (--learner) joins",
            ["step", "seconds"],
            [
                ["process ready (peer)", round(ready, 2)],
                ["serves the whole catalog", round(serving, 2)],
            ],
            note=f"{restored:.0f} snapshot(s) installed",
        )
        results.target("a fresh node serves reads <= 60 s after starting", serving <= 60)

        # 5. catch-up of a node down during writes
        s3.stop(30.0)
        writer = ApiClient(s1.url, token=token, timeout=60)
        ids = [s["id"] for s in writer.json("GET", "/api/songs?limit=50")["items"]]
        started = time.perf_counter()

        def play(i: int) -> None:
            client = ApiClient(s1.url if i % 2 else s2.url, token=token, timeout=60)
            client.request("POST", f"/api/songs/{ids[i % len(ids)]}/plays")

        with concurrent.futures.ThreadPoolExecutor(args.upload_workers) as pool:
            list(pool.map(play, range(args.writes)))
        writes = time.perf_counter() - started
        target_seq = metric(s1.url, "dspot_catalog_applied_seq")
        started = time.perf_counter()
        s3 = nodes.start(2, quorum=False)
        wait("s3 catch-up", lambda: metric(s3.url, "dspot_catalog_applied_seq") >= target_seq, 3600)
        caught = time.perf_counter() - started  # from the start of its process
        restored3 = metric(s3.url, "dspot_catalog_snapshots_total", 'action="restored"')
        print(
            f"catch-up: {args.writes} writes took {writes:.1f} s; the node had applied them "
            f"{caught:.1f} s after its restart ({restored3:.0f} snapshots installed)"
        )
        results.table(
            f"a node down during {args.writes:,} writes catches up",
            ["step", "seconds"],
            [
                ["the writes (peer)", round(writes, 2)],
                ["restart until applied them all", round(caught, 2)],
            ],
            note=f"{restored3:.0f} snapshot(s) installed",
        )


if __name__ == "__main__":
    main()
