"""The example service's HTTPS gateway against peers measured in the same run (printed, never
asserted). Run by hand or by ``nox -s bench``::

    python benchmarks/bench_gateway.py [--size-mib 64] [--songs 10000] [--clients 32]
        [--seconds 20] [--only download|search ...] [--json PATH]

It starts a real cluster on loopback — ``--nodes`` ``dspot-spotify node`` processes
(:class:`dspot_spotify.process.supervisor.LocalCluster`) and one ``dspot-spotify gateway``
process with a certificate from the development CA
(:func:`dspot_spotify.devtls.ensure_dev_tls`) — then:

1. **Download**: one ``--size-mib`` song (a WAV file) uploaded once, then fetched whole with
   ``GET /api/songs/{id}/stream`` through the gateway over TLS, against nginx serving the
   same bytes over TLS with the same certificate, the median (and the best) of ``--repeats``
   interleaved rounds
   (client: curl when installed). Also shown: the same stream from a node directly (plain
   HTTP inside the cluster network). Target (issue 14): gateway >= 0.6x nginx (issue 6 asked 0.4x).
2. **Search**: a catalog of ``--songs`` songs — tiny distinct tagged WAV files uploaded
   **through the HTTP API of the nodes** (``--upload-workers`` concurrent uploads, round
   robin over the nodes and over ``--uploaders`` accounts; every node has applied them all
   and is idle again before measuring, see :func:`settle`) — then
   ``GET /api/songs?q=WORD&limit=20`` from ``--clients`` concurrent clients, each on its own
   keep-alive connection (``wrk`` when installed), for ``--seconds``: against one node
   directly (plain HTTP), through the gateway (HTTPS), and against the peer — the same
   catalog query on a copy of node 1's SQLite file served by uvicorn+starlette
   (``_search_peer.py``) — in the same run, in that order.
   Requests/s (and the ratio to the peer), p50/p99 latency, and the worst node's event-loop
   lag p99 during each load (from the ``/metrics`` histograms scraped before and after),
   next to its peer: the same lag monitor on an idle event loop in its own process during
   the same load (``_bare_loop.py``), which shows what the machine's scheduling alone costs.
   Targets (issue 14): a node >= 1.0x the peer; the gateway >= 0.6x with p99 <= 100 ms;
   loop lag p99 <= 20 ms.

The load generator (wrk, or this process's threads) runs on the same machine as the servers,
as do the servers of both sides; on a 2-core machine the figures are dominated by CPU sharing.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import http.client
import json
import math
import os
import random
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _machine import machine_line, stop
from _results import Results, add_json_option
from _search_peer import copy_catalog, lag_buckets, lag_quantile_ms

from dspot.testing import free_port_range, free_ports

NGINX = "/usr/sbin/nginx"
MiB = 1024 * 1024

ADJECTIVES = [
    "amber",
    "blue",
    "broken",
    "cold",
    "crimson",
    "dark",
    "distant",
    "electric",
    "empty",
    "golden",
    "green",
    "hidden",
    "hollow",
    "last",
    "lonely",
    "lost",
    "midnight",
    "neon",
    "northern",
    "quiet",
    "restless",
    "silver",
    "slow",
    "southern",
    "wild",
]
NOUNS = [
    "river",
    "city",
    "dream",
    "fire",
    "garden",
    "heart",
    "highway",
    "island",
    "light",
    "machine",
    "mirror",
    "moon",
    "ocean",
    "rain",
    "road",
    "shadow",
    "signal",
    "sky",
    "smoke",
    "star",
    "storm",
    "summer",
    "train",
    "valley",
    "window",
    "winter",
]


# --- processes -------------------------------------------------------------------------------


def wait_until(what: str, check: Any, timeout: float, proc: subprocess.Popen[Any] | None) -> Any:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: process exited with {proc.returncode}")
        try:
            result = check()
            if result:
                return result
        except (OSError, ValueError, http.client.HTTPException) as e:
            last = e
        time.sleep(0.2)
    raise RuntimeError(f"{what}: not ready after {timeout:g} s ({last})")


def gateway_available() -> str | None:
    """None when ``dspot-spotify gateway`` exists, else why not."""
    out = subprocess.run(
        [sys.executable, "-m", "dspot_spotify.cli", "gateway", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        return "`dspot-spotify gateway` is not available in this checkout"
    return None


@contextlib.contextmanager
def popen(cmd: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        stop(proc)


def nginx_conf(port: int, root: Path, workdir: Path, cert: Path, key: Path) -> Path:
    conf = workdir / "nginx.conf"
    conf.write_text(
        f"""daemon off; worker_processes 1; pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off; sendfile on; keepalive_timeout 120s;
  client_body_temp_path {workdir}; proxy_temp_path {workdir}; fastcgi_temp_path {workdir};
  uwsgi_temp_path {workdir}; scgi_temp_path {workdir};
  server {{
    listen 127.0.0.1:{port} ssl; root {root};
    ssl_certificate {cert}; ssl_certificate_key {key};
  }}
}}
"""
    )
    return conf


# --- test data -------------------------------------------------------------------------------


def write_wav(path: Path, frames: bytes, rate: int, channels: int) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)


def big_song(path: Path, size: int) -> None:
    """A ~``size``-byte stereo 16-bit WAV of noise, tagged."""
    from dspot_spotify.demo import tag_file

    write_wav(path, random.Random(1).randbytes(size - size % 4), 44100, 2)
    tag_file(path, title="Large Benchmark Song", artist="Bench", album="Big Files")


def small_song(path: Path, i: int) -> tuple[str, str, str]:
    """A tiny distinct tagged WAV; returns its (title, artist, album)."""
    from dspot_spotify.demo import tag_file

    rng = random.Random(i)
    title = f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} {i}"
    artist = f"Artist {i % 250}"
    album = f"{rng.choice(ADJECTIVES)} {NOUNS[i % len(NOUNS)]} {i % 1000}"
    write_wav(path, rng.randbytes(400), 8000, 1)
    tag_file(path, title=title, artist=artist, album=album, track=i % 12 + 1)
    return title, artist, album


# --- HTTP clients ----------------------------------------------------------------------------


class Target:
    """One HTTP(S) endpoint: a node (plain HTTP) or the gateway / nginx (TLS)."""

    def __init__(self, name: str, url: str, token: str | None, ca: Path | None) -> None:
        parts = urllib.parse.urlsplit(url)
        self.name = name
        self.url = url.rstrip("/")
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.tls = parts.scheme == "https"
        self.token = token
        self.ca = ca
        self.ctx = ssl.create_default_context(cafile=str(ca)) if self.tls and ca else None

    def connect(self) -> http.client.HTTPConnection:
        if self.tls:
            return http.client.HTTPSConnection(self.host, self.port, timeout=60, context=self.ctx)
        return http.client.HTTPConnection(self.host, self.port, timeout=60)

    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"} if self.token else {}

    def get_json(self, path: str) -> Any:
        conn = self.connect()
        try:
            conn.request("GET", path, headers=self.headers())
            resp = conn.getresponse()
            data = resp.read()
            if resp.status != 200:
                raise ValueError(f"{self.name} GET {path}: {resp.status} {data[:200]!r}")
            return json.loads(data)
        finally:
            conn.close()


def download_rate(target: Target, path: str, size: int) -> float:
    """One full download of ``path``, in MiB/s (curl when installed)."""
    start = time.perf_counter()
    if shutil.which("curl"):
        cmd = ["curl", "-s", "-f", "-o", "/dev/null", "-w", "%{size_download}"]
        if target.ca:
            cmd += ["--cacert", str(target.ca)]
        for k, v in target.headers().items():
            cmd += ["-H", f"{k}: {v}"]
        out = subprocess.run(
            [*cmd, target.url + path], capture_output=True, text=True, check=True
        ).stdout
        got = int(float(out))
    else:
        conn = target.connect()
        try:
            conn.request("GET", path, headers=target.headers())
            resp = conn.getresponse()
            got = 0
            while chunk := resp.read(1 << 20):
                got += len(chunk)
        finally:
            conn.close()
    elapsed = time.perf_counter() - start
    if got != size:
        raise RuntimeError(f"{target.name}: downloaded {got} bytes, expected {size}")
    return size / elapsed / MiB


WRK_SEARCH = """
local words = {%(words)s}
math.randomseed(%(seed)d)
%(auth)s
request = function()
  local w = words[math.random(#words)]
  return wrk.format("GET", "/api/songs?q=" .. w .. "&limit=20")
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("DSPOT %%d %%d %%d %%d %%d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
"""
"""wrk's script: a random word per request; prints requests, microseconds, p50 and p99 (us)
and errors (non-2xx answers included) on one line."""


def search_load(target: Target, clients: int, seconds: float, seed: int) -> dict[str, float]:
    """``clients`` keep-alive connections querying for ``seconds``: wrk when installed (two
    threads: it costs little CPU and measures latency without a GIL in the way), else as
    many Python threads."""
    if shutil.which("wrk"):
        return wrk_search_load(target, clients, seconds, seed)
    return thread_search_load(target, clients, seconds, seed)


def wrk_search_load(target: Target, clients: int, seconds: float, seed: int) -> dict[str, float]:
    words = ", ".join(f'"{w}"' for w in [*NOUNS, *ADJECTIVES])
    auth = f'wrk.headers["Authorization"] = "Bearer {target.token}"' if target.token else ""
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(WRK_SEARCH % {"words": words, "seed": seed, "auth": auth})
        script.flush()
        out = subprocess.run(
            [
                *("wrk", "-t2", f"-c{clients}", f"-d{max(1, round(seconds))}s"),
                *("--timeout", "30s", "-s", script.name, target.url + "/"),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    found = [line.split() for line in out.splitlines() if line.startswith("DSPOT ")]
    if not found:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    requests, micros, p50, p99, errors = (int(x) for x in found[-1][1:])
    return {
        "requests": requests - errors,
        "rate": (requests - errors) / (micros / 1e6),
        "p50": p50 / 1000,
        "p99": p99 / 1000,
        "errors": errors,
    }


def thread_search_load(target: Target, clients: int, seconds: float, seed: int) -> dict[str, float]:
    """``clients`` threads, each on one keep-alive connection, querying for ``seconds``."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds
    barrier = threading.Barrier(clients)

    def client(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        conn = target.connect()
        mine: list[float] = []
        bad = 0
        try:
            barrier.wait()
            while time.perf_counter() < deadline:
                word = rng.choice(NOUNS if rng.random() < 0.5 else ADJECTIVES)
                t = time.perf_counter()
                try:
                    conn.request("GET", f"/api/songs?q={word}&limit=20", headers=target.headers())
                    resp = conn.getresponse()
                    resp.read()
                    if resp.status != 200:
                        bad += 1
                        continue
                except (OSError, http.client.HTTPException):
                    bad += 1
                    conn.close()
                    conn = target.connect()
                    continue
                mine.append(time.perf_counter() - t)
        finally:
            conn.close()
            with lock:
                latencies.extend(mine)
                errors[0] += bad

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    start = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - start
    ordered = sorted(latencies)

    def pct(q: float) -> float:
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return {
        "requests": len(ordered),
        "rate": len(ordered) / wall,
        "p50": pct(0.50),
        "p99": pct(0.99),
        "errors": errors[0],
    }


# --- the run ---------------------------------------------------------------------------------


def uploader_tokens(node_url: str, first: str, count: int) -> list[str]:
    """``first`` (a signed-in user's token) and the tokens of ``count - 1`` more accounts
    registered on ``node_url``: a node runs only a few uploads of one user at once
    (``uploads_per_user``), so a fill wider than that spreads its uploads over accounts."""
    from dspot_spotify.client import ApiClient

    client = ApiClient(node_url, timeout=60)
    more = [client.register(f"uploader{k}", "bench-password-123")["token"] for k in range(1, count)]
    return [first, *map(str, more)]


def upload_catalog(
    node_urls: list[str], tokens: list[str], songs: int, workers: int, tmp: Path
) -> float:
    """Upload ``songs`` tiny songs through the nodes' API, song ``i`` to node ``i mod
    nodes`` as account ``i mod len(tokens)``; returns the seconds it took."""
    from dspot_spotify.client import ApiClient, ApiError

    folder = tmp / "catalog"
    folder.mkdir()
    started = time.perf_counter()
    done = [0]
    lock = threading.Lock()

    def one(i: int) -> None:
        path = folder / f"song{i}.wav"
        small_song(path, i)
        token = tokens[i % len(tokens)]
        client = ApiClient(node_urls[i % len(node_urls)], token=token, timeout=60)
        give_up = time.monotonic() + 300
        attempt = 0
        while True:
            # Transient answers are retried: a 503 while the ring settles, a 429 because one
            # user may upload only a few songs at once per node (more workers than that wait).
            try:
                client.upload(path)
                break
            except ApiError as e:
                status, detail = e.status, e.detail
            except (OSError, http.client.HTTPException) as e:
                status, detail = 0, repr(e)
            if status not in (0, 429, 502, 503, 504) or time.monotonic() > give_up:
                raise RuntimeError(f"upload of song {i}: {status} {detail}")
            attempt += 1
            time.sleep(min(2.0, 0.1 * attempt))
        path.unlink()
        with lock:
            done[0] += 1
            if done[0] % 1000 == 0:
                rate = done[0] / (time.perf_counter() - started)
                print(f"  uploaded {done[0]}/{songs} songs ({rate:.0f}/s)", flush=True)

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for future in [pool.submit(one, i) for i in range(songs)]:
            future.result()
    return time.perf_counter() - started


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--size-mib", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5, help="interleaved download rounds")
    p.add_argument("--songs", type=int, default=10000, help="catalog size for the search")
    p.add_argument("--upload-workers", type=int, default=16)
    p.add_argument(
        "--uploaders", type=int, default=4, help="accounts the catalog's uploads are spread over"
    )
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--seconds", type=float, default=20, help="search load per side")
    p.add_argument("--only", action="append", choices=["download", "search"])
    add_json_option(p)
    args = p.parse_args()
    parts = args.only or ["download", "search"]
    print(machine_line())
    print(f"load average before the run: {os.getloadavg()[0]:.2f}")
    results = Results("gateway", "Example service: the HTTPS gateway", args)
    if results.example_missing("dspot_spotify.devtls"):
        return
    why = gateway_available()
    if why:
        print(f"skipping the gateway rows: {why}")
        results.note(f"The gateway rows are missing: {why}.")

    from dspot_spotify.client import ApiClient
    from dspot_spotify.devtls import ensure_dev_tls
    from dspot_spotify.process.supervisor import LocalCluster

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        os.chmod(tmp, 0o755)  # nginx workers may run as an unprivileged user
        tls = ensure_dev_tls(tmp / "tls")
        cluster = LocalCluster(tmp / "cluster", args.nodes, free_port_range(2 * args.nodes))
        print(f"starting {args.nodes} nodes and the gateway", flush=True)
        with cluster.running(timeout=120), contextlib.ExitStack() as stack:
            rpcs = [proc.spec.rpc for proc in cluster.procs]
            node_urls = [proc.url for proc in cluster.procs]
            gport = free_ports(1)[0]
            gateway_cmd = [
                sys.executable,
                "-m",
                "dspot_spotify.cli",
                "gateway",
                "--listen",
                f"127.0.0.1:{gport}",
                "--join",
                ",".join(rpcs),
                "--rpc",
                f"127.0.0.1:{free_ports(1)[0]}",
                "--secret-file",
                str(cluster.secret_file),
                "--cert",
                str(tls.cert),
                "--key",
                str(tls.key),
            ]
            admin = ApiClient(node_urls[0], timeout=60)
            token = str(admin.register("bench", "bench-password-123")["token"])
            admin.token = token
            gateway: Target | None = None
            if not why:
                gproc = stack.enter_context(popen(gateway_cmd, tmp / "gateway.log"))
                gateway = Target("gateway", f"https://localhost:{gport}", token, tls.ca)
                wait_until(
                    "gateway",
                    lambda: gateway.get_json("/healthz").get("nodes", 0) >= args.nodes,
                    120,
                    gproc,
                )
                print(f"gateway ready on https://localhost:{gport}/", flush=True)
            if "download" in parts:
                bench_download(args, results, tmp, tls, admin, gateway, node_urls, token, stack)
            if "search" in parts:
                node_db = cluster.procs[0].spec.data / "disk" / "meta.sqlite3"
                pids = [proc.pid for proc in cluster.procs]
                bench_search(args, results, tmp, gateway, node_urls, token, node_db, pids, stack)
    results.write()


def bench_download(
    args: argparse.Namespace,
    results: Results,
    tmp: Path,
    tls: Any,
    admin: Any,
    gateway: Target | None,
    node_urls: list[str],
    token: str,
    stack: contextlib.ExitStack,
) -> None:
    root = tmp / "www"
    root.mkdir(mode=0o755)
    song = root / "big.wav"
    big_song(song, args.size_mib * MiB)
    os.chmod(song, 0o644)
    size = song.stat().st_size
    _, doc = admin.upload(song)
    path = f"/api/songs/{doc['id']}/stream"
    targets: list[tuple[Target, str]] = [
        (Target("node directly (plain HTTP)", node_urls[1], token, None), path),
    ]
    if gateway is not None:
        targets.insert(0, (gateway, path))
    if os.path.exists(NGINX):
        workdir = tmp / "nginx"
        workdir.mkdir()
        nport = free_ports(1)[0]
        conf = nginx_conf(nport, root, workdir, tls.cert, tls.key)
        nproc = stack.enter_context(
            popen([NGINX, "-c", str(conf), "-p", str(workdir)], workdir / "out.log")
        )
        nginx = Target("nginx", f"https://localhost:{nport}", None, tls.ca)
        wait_until("nginx", lambda: socket.create_connection(("127.0.0.1", nport), 1), 15, nproc)
        targets.insert(len(targets) - 1, (nginx, "/big.wav"))
    else:
        print(f"skipping nginx: {NGINX} not found")
    rates: dict[str, list[float]] = {t.name: [] for t, _ in targets}
    for round_ in range(args.repeats):
        for target, url_path in targets:
            rates[target.name].append(download_rate(target, url_path, size))
        print(f"  download round {round_ + 1}/{args.repeats} done", flush=True)
    # The median of each side's rounds (rounds interleave the servers, so a slow minute of
    # the machine falls on all of them); the best round is shown too.
    median = {name: statistics.median(r) for name, r in rates.items()}
    best = {name: max(r) for name, r in rates.items()}
    ngx, ngx_best = median.get("nginx"), best.get("nginx")
    print(f"\ndownload of one {size / MiB:.0f} MiB song, median and best of {args.repeats}")
    print(f"{'server':<28} {'MiB/s':>8} {'vs nginx':>9} {'best':>8} {'vs nginx':>9}")
    rows = []
    for name in rates:
        ratio = median[name] / ngx if ngx else None
        best_ratio = best[name] / ngx_best if ngx_best else None
        shown = f"{ratio:8.2f}x" if ratio is not None else "        -"
        shown_best = f"{best_ratio:8.2f}x" if best_ratio is not None else "        -"
        print(f"{name:<28} {median[name]:>8.0f} {shown} {best[name]:>8.0f} {shown_best}")
        rows.append(
            [
                name,
                round(median[name]),
                None if ratio is None else round(ratio, 2),
                round(best[name]),
                None if best_ratio is None else round(best_ratio, 2),
            ]
        )
    print("target: gateway >= 0.6x nginx, medians (issue 14)\n")
    results.table(
        f"download of one {size / MiB:.0f} MiB song over TLS, median and best of "
        f"{args.repeats} interleaved rounds",
        ["server", "MiB/s", "vs nginx", "best MiB/s", "best vs nginx"],
        rows,
        plot={"x": 0, "y": [1], "ylabel": "MiB/s (median)"},
        note="gateway: GET /api/songs/{id}/stream relayed from a node over TLS; nginx: the same "
        "bytes from disk over TLS with the same certificate; the node row is plain HTTP",
    )
    results.target(
        "download through the gateway >= 0.6x nginx, medians (issue 14)",
        None if not ngx or "gateway" not in median else median["gateway"] / ngx >= 0.6,
    )


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settle(pids: list[int], busy: float = 0.05, timeout: float = 120.0) -> float:
    """Wait until each of ``pids`` uses under ``busy`` of a core over 2 s (the upload burst's
    after-work done: repair rounds, checkpoints), at most ``timeout`` s; the seconds waited.
    The loads that follow then measure serving, not the tail of the burst; on Linux only."""
    start = time.monotonic()
    if not Path("/proc/self/stat").exists():
        return 0.0
    while time.monotonic() - start < timeout:
        before = [cpu_seconds(p) for p in pids]
        time.sleep(2.0)
        if all(cpu_seconds(p) - b < 2.0 * busy for p, b in zip(pids, before, strict=True)):
            break
    return time.monotonic() - start


def bench_search(
    args: argparse.Namespace,
    results: Results,
    tmp: Path,
    gateway: Target | None,
    node_urls: list[str],
    token: str,
    node_db: Path,
    pids: list[int],
    stack: contextlib.ExitStack,
) -> None:
    print(
        f"uploading {args.songs} songs through the API ({args.upload_workers} at a time, "
        f"as {args.uploaders} users)"
    )
    tokens = uploader_tokens(node_urls[0], token, args.uploaders)
    took = upload_catalog(node_urls, tokens, args.songs, args.upload_workers, tmp)
    print(f"  catalog uploaded in {took:.0f} s ({args.songs / took:.0f} songs/s)", flush=True)
    nodes = [Target(f"node {i + 1}", url, token, None) for i, url in enumerate(node_urls)]
    for node in nodes:
        wait_until(
            f"{node.name} catalog",
            lambda node=node: node.get_json("/api/songs?limit=1")["total"] >= args.songs,
            120,
            None,
        )
    settled = settle(pids)
    print(f"  nodes idle {settled:.0f} s after the catalog was applied", flush=True)
    direct = Target("one node directly (plain HTTP)", node_urls[0], token, None)
    peer = search_peer(tmp, node_db, stack)
    runs = [(direct.name, direct), ("gateway (HTTPS)", gateway), (PEER, peer)]
    sides: dict[str, list[dict[str, float]]] = {}
    lag_p99: dict[str, float] = {}
    bare_p99: dict[str, float] = {}
    for seed, (label, target) in enumerate(runs, start=1):
        if target is not None:
            before = [lag_buckets(url) for url in node_urls]
            with bare_loop() as bare:
                sides[label] = [search_load(target, args.clients, args.seconds, seed)]
            after = [lag_buckets(url) for url in node_urls]
            bare_p99[label] = lag_quantile_ms({}, bare.buckets, 0.99)
            if target is not peer:  # the worst node's loop lag p99 during this load
                lag_p99[label] = max(
                    lag_quantile_ms(b, a, 0.99) for b, a in zip(before, after, strict=True)
                )
    tool = "wrk" if shutil.which("wrk") else "Python threads"
    print(f"\nsearch, {args.songs} songs, {args.clients} clients ({tool}), {args.seconds:g} s each")
    print(
        f"{'path':<36} {'req/s':>8} {'vs peer':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}"
        f" {'loop lag p99':>13} {'idle loop p99':>14}"
    )
    rows = []
    base = sides[PEER][0]["rate"] if PEER in sides else None
    for label, [r] in sides.items():
        ratio = r["rate"] / base if base else None
        lag = lag_p99.get(label)
        idle = bare_p99.get(label, math.nan)
        print(
            f"{label:<36} {r['rate']:>8.0f} {'-' if ratio is None else f'{ratio:.2f}x':>8}"
            f" {r['p50']:>8.1f} {r['p99']:>8.1f} {r['errors']:>7}"
            f" {'-' if lag is None else f'{lag:.0f} ms':>13} {f'{idle:.0f} ms':>14}"
        )
        rows.append(
            [
                *(label, round(r["rate"]), None if ratio is None else round(ratio, 2)),
                *(round(r["p50"], 1), round(r["p99"], 1), int(r["errors"])),
                None if lag is None else round(lag, 1),
                None if math.isnan(idle) else round(idle, 1),
            ]
        )
    results.table(
        f"search GET /api/songs?q=WORD&limit=20 on {args.songs:,} songs, "
        f"{args.clients} concurrent clients, {args.seconds:g} s",
        [
            *("path", "req/s", "vs peer", "p50 ms", "p99 ms", "errors", "loop lag p99 ms"),
            "idle loop lag p99 ms (peer)",
        ],
        rows,
        plot={"x": 0, "y": [3, 4], "ylabel": "latency ms"},
        note=f"catalog uploaded through the nodes' API in {took:.0f} s; nodes idle again "
        f"{settled:.0f} s after it was applied; load from {tool}; each "
        "client keeps one "
        "connection; the gateway spreads queries over the nodes, the direct row asks one node; "
        "the peer runs the same catalog query on a copy of node 1's SQLite file, served by "
        "uvicorn+starlette (benchmarks/_search_peer.py); loop lag: the worst node's p99 "
        "during that load, from the /metrics histograms (interpolated inside its bucket, as "
        "Prometheus' histogram_quantile does); idle loop: the same monitor on an event loop "
        "with nothing else to do, in its own process during the same load "
        "(benchmarks/_bare_loop.py): what the machine's scheduling alone costs a timer",
    )
    if base:
        node, gw = sides[direct.name][0], sides.get("gateway (HTTPS)", [None])[0]
        results.target("search: one node >= 1.0x the uvicorn+starlette peer", node["rate"] >= base)
        results.target(
            "search: gateway >= 0.6x the peer with p99 <= 100 ms",
            None if gw is None else gw["rate"] >= 0.6 * base and gw["p99"] <= 100,
        )
    if lag_p99:
        results.target("loop lag p99 <= 20 ms under the search load", max(lag_p99.values()) <= 20)


PEER = "uvicorn+starlette peer (plain HTTP)"


class _BareLoop:
    def __init__(self) -> None:
        self.buckets: dict[float, float] = {}


@contextlib.contextmanager
def bare_loop() -> Iterator[_BareLoop]:
    """Run the idle-loop peer (``_bare_loop.py``) for the duration of the block; its lag
    histogram is in ``.buckets`` afterwards."""
    result = _BareLoop()
    script = Path(__file__).with_name("_bare_loop.py")
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the idle-loop peer did not start")
        yield result
    finally:
        proc.stdin.close()
        out = proc.stdout.read()
        proc.wait(timeout=30)
    result.buckets = {float(k): float(v) for k, v in json.loads(out).items()}


def search_peer(tmp: Path, node_db: Path, stack: contextlib.ExitStack) -> Target | None:
    """The peer on a copy of ``node_db``, or None (said) when uvicorn is not installed."""
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as e:
        print(f"skipping the uvicorn+starlette peer: {e}")
        return None
    db = tmp / "peer.sqlite3"
    copy_catalog(node_db, db)
    port = free_ports(1)[0]
    script = Path(__file__).with_name("_search_peer.py")
    proc = stack.enter_context(
        popen([sys.executable, str(script), str(port), str(db)], tmp / "peer.log")
    )
    wait_until("the peer", lambda: socket.create_connection(("127.0.0.1", port), 1), 30, proc)
    return Target(PEER, f"http://127.0.0.1:{port}", None, None)


if __name__ == "__main__":
    main()
