"""Benchmark dspot.http against peers measured in the same run (run by hand or `nox -s bench`).

    python benchmarks/bench_http.py [--size-mib 64] [--seconds 5] [--connections 64]

1. One large download over loopback from each static server (dspot StaticFiles,
   uvicorn+starlette FileResponse, hypercorn+starlette, nginx), client: curl if present.
2. Small JSON GET over many keep-alive connections (wrk if present, else an anyio load
   generator in this process).
3. Memory per idle keep-alive connection: server RSS before and after 1,000 idle connections.

Each server runs in its own process. A peer that is not installed is skipped with a note.
Targets (from the issue): download >= 5x uvicorn+starlette and >= 0.7x nginx; JSON >= 1.0x
uvicorn; < 64 KiB per idle connection.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from _machine import stop

from dspot.testing import free_ports

JSON_DOC = {"id": "3f1c", "title": "Song", "seconds": 215, "tags": ["a", "b"]}
NGINX = "/usr/sbin/nginx"


# --- servers (each runs in a child process: `bench_http.py serve KIND PORT ROOT`) ----------


def serve_dspot(port: int, root: str, backend: str) -> None:
    import anyio

    from dspot.env import EventLoopClock, real_wall_base
    from dspot.http import HttpServer, Request, Response, Router, ServerConfig, StaticFiles
    from dspot.transport import TcpTransport

    app = Router()

    @app.get("/json")
    async def doc(request: Request) -> Response:
        return Response.json(JSON_DOC)

    app.mount("/", StaticFiles(root))

    async def main() -> None:
        server = HttpServer(
            app,
            ServerConfig(keepalive_timeout=120, max_connections=5000),
            clock=EventLoopClock(wall_base=real_wall_base()),  # a Date header, as the peers send
        )
        listener = await TcpTransport().listen(f"127.0.0.1:{port}")  # as dspot nodes listen
        await server.serve(listener)

    anyio.run(main, backend=backend)


def starlette_app(root: str) -> object:
    from starlette.applications import Starlette
    from starlette.responses import FileResponse, JSONResponse
    from starlette.routing import Route

    async def doc(request: object) -> JSONResponse:
        return JSONResponse(JSON_DOC)

    async def big(request: object) -> FileResponse:
        return FileResponse(os.path.join(root, "big.bin"))

    return Starlette(routes=[Route("/json", doc), Route("/big.bin", big)])


def serve_uvicorn(port: int, root: str) -> None:
    import uvicorn

    uvicorn.run(
        starlette_app(root),  # type: ignore[arg-type]
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        timeout_keep_alive=120,
    )


def serve_hypercorn(port: int, root: str) -> None:
    import asyncio

    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.errorlog = None
    config.keep_alive_timeout = 120
    asyncio.run(serve(starlette_app(root), config))  # type: ignore[arg-type]


def nginx_conf(port: int, root: str, workdir: Path) -> Path:
    conf = workdir / "nginx.conf"
    conf.write_text(
        f"""daemon off; worker_processes 1; pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off; sendfile on; keepalive_timeout 120s; keepalive_requests 1000000;
  client_body_temp_path {workdir}; proxy_temp_path {workdir}; fastcgi_temp_path {workdir};
  uwsgi_temp_path {workdir}; scgi_temp_path {workdir};
  server {{
    listen 127.0.0.1:{port}; root {root};
    location = /json {{ default_type application/json; return 200 '{json.dumps(JSON_DOC)}'; }}
  }}
}}
"""
    )
    return conf


# --- orchestration ---------------------------------------------------------------------------


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError("server did not start")


@contextlib.contextmanager
def running(kind: str, root: str, workdir: Path) -> Iterator[tuple[int, int]]:
    """Start server ``kind``; yields (port, pid of the process serving)."""
    port = free_ports(1)[0]
    if kind == "nginx":
        cmd = [NGINX, "-c", str(nginx_conf(port, root, workdir)), "-p", str(workdir)]
    else:
        cmd = [sys.executable, __file__, "serve", kind, str(port), root]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    try:
        wait_listening(port, proc)
        pid = proc.pid
        if kind == "nginx":  # the worker holds the connections
            time.sleep(0.3)
            children = subprocess.run(
                ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True
            ).stdout.split()
            pid = int(children[0]) if children else proc.pid
        yield port, pid
    finally:
        stop(proc)


def download_rate(port: int, size: int, repeats: int = 3) -> float:
    """Best of ``repeats`` downloads of /big.bin, in MiB/s."""
    best = 0.0
    url = f"http://127.0.0.1:{port}/big.bin"
    for _ in range(repeats):
        start = time.perf_counter()
        if shutil.which("curl"):
            out = subprocess.run(
                ["curl", "-s", "-o", "/dev/null", "-w", "%{size_download}", url],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            got = int(float(out))
        else:
            got = raw_download(port)
        elapsed = time.perf_counter() - start
        if got != size:
            raise RuntimeError(f"downloaded {got} bytes, expected {size}")
        best = max(best, size / elapsed / 2**20)
    return best


def raw_download(port: int) -> int:
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        buf = bytearray(1 << 20)
        total = 0
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(65536)
        total = len(head.split(b"\r\n\r\n", 1)[1])
        while n := s.recv_into(buf):
            total += n
        return total


def json_rate(port: int, seconds: float, connections: int) -> float:
    """Requests per second of GET /json over ``connections`` keep-alive connections."""
    if shutil.which("wrk"):
        out = subprocess.run(
            [
                "wrk",
                "-t2",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                f"http://127.0.0.1:{port}/json",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        m = re.search(r"Requests/sec:\s+([\d.]+)", out)
        if not m:
            raise RuntimeError(out)
        return float(m.group(1))
    return anyio_load(port, seconds, connections)


def anyio_load(port: int, seconds: float, connections: int) -> float:
    import anyio

    count = 0
    request = b"GET /json HTTP/1.1\r\nHost: x\r\n\r\n"

    async def worker(deadline: float) -> None:
        nonlocal count
        async with await anyio.connect_tcp("127.0.0.1", port) as s:
            buf = b""
            while anyio.current_time() < deadline:
                await s.send(request)
                while True:
                    head, sep, rest = buf.partition(b"\r\n\r\n")
                    if sep:
                        m = re.search(rb"(?i)content-length:\s*(\d+)", head)
                        need = int(m.group(1)) if m else 0
                        if len(rest) >= need:
                            buf = rest[need:]
                            break
                    buf += await s.receive()
                count += 1

    async def main() -> None:
        deadline = anyio.current_time() + seconds
        async with anyio.create_task_group() as tg:
            for _ in range(connections):
                tg.start_soon(worker, deadline)

    start = time.perf_counter()
    anyio.run(main)
    return count / (time.perf_counter() - start)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def idle_memory(port: int, pid: int, n: int = 1000) -> float:
    """KiB of server RSS per idle keep-alive connection (after one request each)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 1000), hard))
    # warm up: one request so lazily built state is not counted per connection
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"GET /json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        while s.recv(65536):
            pass
    time.sleep(0.5)
    before = rss_kib(pid)
    socks = []
    try:
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"GET /json HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            while b"}" not in data:
                data += s.recv(65536)
            socks.append(s)
        time.sleep(1.0)
        after = rss_kib(pid)
    finally:
        for s in socks:
            s.close()
    return (after - before) / n


def available(kind: str) -> str | None:
    """``None`` if the peer can run, else why not."""
    if kind == "nginx":
        return None if os.path.exists(NGINX) else f"{NGINX} not found"
    modules = {
        "uvicorn": ["uvicorn", "starlette"],
        "hypercorn": ["hypercorn", "starlette"],
        "dspot": [],
        "dspot-trio": [],
    }[kind]
    for module in modules:
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed (pip install uvicorn starlette hypercorn)"
    return None


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--size-mib", type=int, default=64)
    p.add_argument("--seconds", type=float, default=5)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--idle", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--servers", default="dspot,dspot-trio,uvicorn,hypercorn,nginx")
    p.add_argument("--json", metavar="PATH", default=None, help="also write the figures as JSON")
    args = p.parse_args()
    kinds = args.servers.split(",")
    size = args.size_mib * 2**20
    results: dict[str, dict[str, float]] = {}
    try:
        from _machine import machine_line

        print(machine_line())
    except ImportError:
        print(f"machine: {os.cpu_count()} cores")
    load = os.getloadavg()[0]
    print(f"load average before the run: {load:.2f} (other work on the machine skews numbers)")
    print(
        f"download client: {'curl' if shutil.which('curl') else 'python socket'}; "
        f"JSON load: {'wrk' if shutil.which('wrk') else 'anyio load generator'} "
        f"({args.connections} connections, {args.seconds:g} s); cores: {os.cpu_count()}"
    )
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        os.chmod(tmp, 0o755)  # nginx workers run as an unprivileged user
        root = Path(tmp) / "root"
        root.mkdir(mode=0o755)
        (root / "big.bin").write_bytes(random.Random(0).randbytes(size))
        servers: dict[str, tuple[int, int]] = {}
        for kind in kinds:
            why = available(kind)
            if why:
                print(f"skipping {kind}: {why}")
                continue
            workdir = Path(tmp) / kind
            workdir.mkdir()
            try:
                servers[kind] = stack.enter_context(running(kind, str(root), workdir))
            except (RuntimeError, OSError) as e:
                print(f"skipping {kind}: failed to start: {e}")
        # Interleaved rounds, best of each: the machine may be shared and noisy, and this
        # way every server sees the same conditions.
        for kind in servers:
            results[kind] = {"download": 0.0, "json": 0.0}
        for round_ in range(args.rounds):
            for kind, (port, _) in servers.items():
                r = results[kind]
                r["download"] = max(r["download"], download_rate(port, size, repeats=1))
                r["json"] = max(r["json"], json_rate(port, args.seconds, args.connections))
            print(f"  round {round_ + 1}/{args.rounds} done", flush=True)
        for kind, (port, pid) in servers.items():
            results[kind]["idle"] = idle_memory(port, pid, args.idle)
    base = {m: results.get("uvicorn", {}).get(m) for m in ("download", "json", "idle")}
    ngx = {m: results.get("nginx", {}).get(m) for m in ("download", "json", "idle")}

    def ratio(v: float, ref: float | None) -> str:
        return f"{v / ref:5.2f}x" if ref else "    -"

    print()
    print(
        f"{'server':<11} {'download MiB/s':>14} {'vs uvicorn':>10} {'vs nginx':>9} "
        f"{'JSON req/s':>11} {'vs uvicorn':>10} {'idle KiB/conn':>14}"
    )
    for kind, r in results.items():
        print(
            f"{kind:<11} {r['download']:>14.0f} {ratio(r['download'], base['download']):>10} "
            f"{ratio(r['download'], ngx['download']):>9} {r['json']:>11.0f} "
            f"{ratio(r['json'], base['json']):>10} {r['idle']:>14.1f}"
        )
    print(
        "\ntargets: download >= 5x uvicorn and >= 0.7x nginx; JSON >= 1.0x uvicorn; "
        "< 64 KiB per idle connection"
    )
    if args.json:
        write_json(args, results, base, ngx)


def write_json(
    args: argparse.Namespace,
    results: dict[str, dict[str, float]],
    base: dict[str, float | None],
    ngx: dict[str, float | None],
) -> None:
    from _results import Results

    def ratio(v: float, ref: float | None) -> float | None:
        return round(v / ref, 2) if ref else None

    out = Results("http", "HTTP: dspot.http against uvicorn, hypercorn and nginx", args)
    out.table(
        f"download of one {args.size_mib} MiB file, best of {args.rounds} interleaved rounds",
        ["server", "MiB/s", "vs uvicorn", "vs nginx"],
        [
            [
                k,
                round(r["download"]),
                ratio(r["download"], base["download"]),
                ratio(r["download"], ngx["download"]),
            ]
            for k, r in results.items()
        ],
        plot={"x": 0, "y": [1], "ylabel": "MiB/s"},
    )
    out.table(
        f"small JSON GET, {args.connections} keep-alive connections, {args.seconds:g} s",
        ["server", "req/s", "vs uvicorn"],
        [[k, round(r["json"]), ratio(r["json"], base["json"])] for k, r in results.items()],
        plot={"x": 0, "y": [1], "ylabel": "requests/s", "log": True},
    )
    out.table(
        f"server memory per idle keep-alive connection ({args.idle} connections)",
        ["server", "KiB/conn"],
        [[k, round(r["idle"], 1)] for k, r in results.items()],
        plot={"x": 0, "y": [1], "ylabel": "KiB per connection"},
    )
    for kind in ("dspot", "dspot-trio"):
        r = results.get(kind)
        if r is None:
            continue
        dl_u, dl_n, js = (
            ratio(r["download"], base["download"]),
            ratio(r["download"], ngx["download"]),
            ratio(r["json"], base["json"]),
        )
        out.target(f"{kind}: download >= 5x uvicorn", None if dl_u is None else dl_u >= 5)
        out.target(f"{kind}: download >= 0.7x nginx", None if dl_n is None else dl_n >= 0.7)
        out.target(f"{kind}: JSON >= 1.0x uvicorn", None if js is None else js >= 1.0)
        out.target(f"{kind}: < 64 KiB per idle connection", r["idle"] < 64)
    out.write()


if __name__ == "__main__":
    if len(sys.argv) >= 5 and sys.argv[1] == "serve":
        kind, port, root = sys.argv[2], int(sys.argv[3]), sys.argv[4]
        if kind == "dspot":
            serve_dspot(port, root, "asyncio")
        elif kind == "dspot-trio":
            serve_dspot(port, root, "trio")
        elif kind == "uvicorn":
            serve_uvicorn(port, root)
        elif kind == "hypercorn":
            serve_hypercorn(port, root)
        else:
            raise SystemExit(f"unknown server {kind}")
    else:
        main()
