"""Session guarantees through the gateway: what they cost, and how fast a commit reaches
every member. Two measurements, each against its peer in the same run:

1. **Commit to applied everywhere** (token ring, 3 nodes, TCP loopback, SQLite with fsync):
   the holder announcing each new commit index at once (``commit_notify``, the default)
   against members learning it from the next heartbeat (the ring before issue 15).
2. **Read latency through a gateway under a steady write load**: 3 SpotifyNodes and three
   gateways in front of them, one per policy: forwarding no positions (the peer; what a
   client without ``X-Log-Position`` got before), gateway-wide positions, per-session
   positions. A writer records plays straight at the nodes (``--writes`` per second);
   readers (``--readers`` per gateway, one user each) read a song through their gateway as
   fast as they can, all at once, so every gateway sees the same load.

Printed, never asserted.

    python benchmarks/bench_sessions.py [--seconds 10] [--writes 20] [--readers 4]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import attrs
from _machine import machine_line
from _results import Results, add_json_option
from dspot.tokenring.testing import StaticView
from dspot_spotify.auth import ScryptParams
from dspot_spotify.config import NodeConfig, Sabotage
from dspot_spotify.gateway import Gateway, GatewayConfig, PositionScope
from dspot_spotify.node import SpotifyNode

from dspot.disk import LocalDisk, SimDisk
from dspot.env import NodeEnv, production_env
from dspot.http import HttpClient
from dspot.rpc import RpcNode
from dspot.tokenring import TokenRing, TokenRingConfig
from dspot.transport import TcpTransport

SECRET = b"benchmark cluster secret, 32 bytes"


def _pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] * 1000 if len(values) > 1 else 0.0


# -- 1. commit to applied everywhere ------------------------------------------------------------


async def commit_lag(notify: bool, entries: int, tmp: Path) -> tuple[float, float, float]:
    """p50 submit→commit, p50 and p90 commit→applied on every member (ms)."""
    names = ["n0", "n1", "n2"]
    config = TokenRingConfig(min_members=3, commit_notify=notify)
    async with contextlib.AsyncExitStack() as stack:
        envs, rpcs = [], []
        for name in names:
            disk = await LocalDisk.open(tmp / f"lag-{notify}-{name}")
            stack.push_async_callback(disk.aclose)
            env = NodeEnv(name, TcpTransport(), disk, random.Random(name))
            rpc = await stack.enter_async_context(
                RpcNode(env, listen="127.0.0.1:0", secret=b"bench")
            )
            envs.append(env)
            rpcs.append(rpc)
        addresses = {n: str(r.address) for n, r in zip(names, rpcs, strict=True)}
        rings = [
            await stack.enter_async_context(
                TokenRing(env, rpc, StaticView(env.node_id, addresses), config)
            )
            for env, rpc in zip(envs, rpcs, strict=True)
        ]
        await rings[0].submit(b"warm-up", timeout=30)
        commits, lags = [], []
        for i in range(entries):
            t0 = time.perf_counter()
            pos = await rings[i % 3].submit(b"x" * 64)
            t1 = time.perf_counter()
            for ring in rings:
                await ring.wait_applied(pos)
            commits.append(t1 - t0)
            lags.append(time.perf_counter() - t1)
            await anyio.sleep(0.02)
        return statistics.median(commits) * 1000, _pct(lags, 50), _pct(lags, 90)


# -- 2. reads through gateways -------------------------------------------------------------------


def _tagged_song(tmp: Path) -> bytes:
    from dspot_spotify.demo import encode_audio, synthesize, tag_file

    path = tmp / "bench.flac"
    path.write_bytes(encode_audio(synthesize(random.Random(1), 1.0), 22050, "flac"))
    tag_file(path, title="Bench", artist="The Benchmarks", album="Reads", track=1)
    return path.read_bytes()


POLICIES = {
    "no positions forwarded (peer)": GatewayConfig(sabotage=frozenset({Sabotage.NO_LOG_POSITIONS})),
    "gateway-wide positions": GatewayConfig(positions=PositionScope.GATEWAY),
    "per-session positions": GatewayConfig(positions=PositionScope.SESSION),
}


async def read_latency(
    seconds: float, writes: float, readers: int, notify: bool, tmp: Path
) -> dict[str, tuple[int, float, float, float, int]]:
    """Per policy: reads, reads/s, p50 ms, p99 ms, reads sent again after a 503 behind
    (``notify``: the token ring's ``commit_notify``)."""
    config = NodeConfig(
        cluster_size=3,
        scrypt=ScryptParams(n=2**4),
        tokenring=TokenRingConfig(commit_notify=notify),
    )
    async with contextlib.AsyncExitStack() as stack:
        disks = []
        for i in range(3):
            disks.append(await LocalDisk.open(tmp / f"node{i}"))
            stack.push_async_callback(disks[-1].aclose)
        tg = await stack.enter_async_context(anyio.create_task_group())
        stack.callback(tg.cancel_scope.cancel)  # before the disks close
        nodes: list[SpotifyNode] = []
        rpcs: list[str] = []
        for i, disk in enumerate(disks):
            env = production_env(f"n{i}", TcpTransport(), disk, seed=i)
            node = SpotifyNode(
                env,
                rpc_address="127.0.0.1:0",
                http_address="127.0.0.1:0",
                secret=SECRET,
                seeds=rpcs[:],
                config=config,
            )
            await tg.start(node.run)
            rpcs.append(str(node.rpc.address))
            nodes.append(node)
        gateways: dict[str, Gateway] = {}
        for i, (name, gw_config) in enumerate(POLICIES.items()):
            env = production_env(f"gw{i}", TcpTransport(), SimDisk(random.Random(i)), seed=10 + i)
            gw = Gateway(
                env,
                listen="127.0.0.1:0",
                rpc_address="127.0.0.1:0",
                secret=SECRET,
                seeds=rpcs,
                ssl_context=None,
                config=attrs.evolve(gw_config, health_interval=0.5),
            )
            await tg.start(gw.run)
            gateways[name] = gw
        client = await stack.enter_async_context(HttpClient(connect=TcpTransport().connect))
        node_urls = [f"http://{n.http_bound_address}" for n in nodes]

        def ready() -> bool:
            nodes_ready = all(n.has_quorum() and n.ring.holder for n in nodes)
            return nodes_ready and all(len(g.pool.healthy()) == 3 for g in gateways.values())

        with anyio.fail_after(60):
            while not ready():  # noqa: ASYNC110
                await anyio.sleep(0.2)

        async def call(method: str, url: str, body: Any = None, token: str | None = None) -> Any:
            headers = {"authorization": f"Bearer {token}"} if token else {}
            kwargs: dict[str, Any] = {"headers": headers}
            if isinstance(body, bytes):
                kwargs["body"] = body
            elif body is not None:
                kwargs["json"] = body
            for _ in range(50):
                resp = await client.request(method, url, **kwargs)
                data = await resp.read()
                if resp.status != 503:
                    return resp.status, json.loads(data) if data else None
                await anyio.sleep(0.2)
            raise RuntimeError(f"{method} {url}: 503 for too long")

        async def user(name: str) -> str:
            creds = {"username": name, "password": "benchmark password"}
            status, doc = await call("POST", f"{node_urls[0]}/api/auth/register", creds)
            assert status == 201, doc
            return str(doc["token"])

        writer = await user("writer")
        status, song = await call(
            "POST", f"{node_urls[0]}/api/songs?filename=b.flac", _tagged_song(tmp), writer
        )
        assert status == 201, song
        tokens = {
            name: [await user(f"r{i}-{j}") for j in range(readers)]
            for i, name in enumerate(gateways)
        }
        await anyio.sleep(1.0)  # everyone has applied the setup
        stop = time.perf_counter() + seconds
        times: dict[str, list[float]] = {name: [] for name in gateways}
        retried = {name: g.retried_behind for name, g in gateways.items()}

        async def write_steadily() -> None:
            """``writes`` per second, each its own task (a write takes longer than 1/rate)."""
            async with anyio.create_task_group() as many:
                i = 0
                while time.perf_counter() < stop:
                    url = f"{node_urls[i % 3]}/api/songs/{song['id']}/plays"
                    many.start_soon(call, "POST", url, None, writer)
                    i += 1
                    await anyio.sleep(1 / writes)

        async def read(name: str, token: str) -> None:
            base = f"http://{gateways[name].bound}"
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                resp = await client.get(
                    f"{base}/api/songs/{song['id']}", headers={"authorization": f"Bearer {token}"}
                )
                await resp.read()
                if resp.status == 200:
                    times[name].append(time.perf_counter() - t0)

        async with anyio.create_task_group() as work:
            work.start_soon(write_steadily)
            for name, toks in tokens.items():
                for token in toks:
                    work.start_soon(read, name, token)
        out = {}
        for name, gw in gateways.items():
            t = times[name]
            out[name] = (
                len(t),
                len(t) / seconds,
                _pct(t, 50),
                _pct(t, 99),
                gw.retried_behind - retried[name],
            )
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="read phase length")
    parser.add_argument("--writes", type=float, default=20.0, help="writes per second")
    parser.add_argument("--readers", type=int, default=4, help="reader sessions per gateway")
    parser.add_argument("--entries", type=int, default=100, help="entries for the lag")
    add_json_option(parser)
    args = parser.parse_args()
    print(machine_line())
    results = Results("sessions", "Session guarantees: commit lag and read latency", args)
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        lag = {notify: anyio.run(commit_lag, notify, args.entries, tmp) for notify in (False, True)}
        print(f"\ncommit -> applied on all 3 members ({args.entries} entries, one at a time)")
        print(f"{'ring':<40} {'submit p50':>11} {'lag p50':>9} {'lag p90':>9}")
        rows = []
        for notify, (commit, p50, p90) in lag.items():
            name = "commit index sent at once" if notify else "commit index on heartbeat (peer)"
            print(f"{name:<40} {commit:>9.1f}ms {p50:>7.1f}ms {p90:>7.1f}ms")
            rows.append([name, round(commit, 1), round(p50, 1), round(p90, 1)])
        ratio = lag[False][1] / max(lag[True][1], 1e-3)
        print(f"lag p50, heartbeat / at once = {ratio:.0f}x")
        results.table(
            "Commit to applied on every member (3 nodes, TCP loopback, fsync)",
            ["ring", "submit p50 ms", "lag p50 ms", "lag p90 ms"],
            rows,
        )
        # trio, as the node and gateway processes run.
        reads = {
            notify: anyio.run(
                read_latency,
                args.seconds,
                args.writes,
                args.readers,
                notify,
                tmp / f"reads-{notify}",
                backend="trio",
            )
            for notify in (False, True)
        }
    print(
        f"\nreads through a gateway, {args.readers} readers each, while "
        f"{args.writes:g} writes/s go straight to the nodes ({args.seconds:g} s)"
    )
    head = ("commit index", "gateway", "reads/s", "p50 ms", "p99 ms", "x peer p50", "behind")
    print(
        f"{head[0]:<13} {head[1]:<32} {head[2]:>8} {head[3]:>7} {head[4]:>7} {head[5]:>10} "
        f"{head[6]:>7}"
    )
    rows = []
    for notify, by_policy in reads.items():
        when = "at once" if notify else "heartbeat"
        peer = next(iter(by_policy.values()))
        for name, (_, rate, p50, p99, behind) in by_policy.items():
            print(
                f"{when:<13} {name:<32} {rate:>8.0f} {p50:>7.2f} {p99:>7.2f} "
                f"{p50 / peer[2]:>10.2f} {behind:>7}"
            )
            ratio = round(p50 / peer[2], 2)
            rows.append([when, name, round(rate), round(p50, 2), round(p99, 2), ratio, behind])
    results.table(
        f"Reads through a gateway under {args.writes:g} writes/s",
        ["commit index", "gateway", "reads/s", "p50 ms", "p99 ms", "x peer p50", "behind"],
        rows,
        note="one process, TCP loopback: the three gateways share the machine and the load; "
        "the peer of each row is the gateway forwarding no positions, same commit setting",
    )
    results.write()


if __name__ == "__main__":
    main()
