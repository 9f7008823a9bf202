"""RPC over TCP loopback against a raw anyio stream echo, in the same run.

Small calls per second (one connection, 32 in flight on both sides) and MB/s for 1 MiB payloads
(a request carrying 1 MiB, answered with 1 MiB), compared with a raw anyio TCP echo moving
the same bytes with no framing. RPC and raw rounds alternate; printed are medians. Printed,
never asserted. Targets: small calls >= 0.5x raw, 1 MiB payloads >= 0.6x raw.

    python benchmarks/bench_rpc.py [--backend asyncio|trio] [--rounds 5]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import anyio
import anyio.abc
import attrs
from _machine import machine_line
from _results import Results, add_json_option

from dspot import wire
from dspot.disk import SimDisk
from dspot.env import NodeEnv
from dspot.rpc import Peer, RpcNode
from dspot.transport import TcpTransport

MiB = 1024 * 1024
IN_FLIGHT = 32
"""Small messages in flight at once on the one connection, on both sides."""


@wire.message("bench.blob", idempotent=True)
@attrs.frozen
class Blob:
    payload: bytes


def _env(name: str) -> NodeEnv:
    return NodeEnv(
        node_id=name,
        transport=TcpTransport(),
        disk=SimDisk(random.Random(0)),
        rng=random.Random(name),
    )


async def bench_rpc(small: int, big: int) -> tuple[float, float]:
    async def echo(req: Blob, peer: Peer) -> Blob:
        return req

    async with (
        RpcNode(_env("server"), listen="127.0.0.1:0") as server,
        RpcNode(_env("client")) as client,
    ):
        server.handle(Blob, echo)
        assert server.address is not None
        address = server.address
        await client.call(address, Blob(b""))
        start = time.perf_counter()

        async def worker(n: int) -> None:
            for _ in range(n):
                await client.call(address, Blob(b"x" * 32))

        async with anyio.create_task_group() as tg:
            for _ in range(IN_FLIGHT):
                tg.start_soon(worker, small // IN_FLIGHT)
        calls_per_s = (small // IN_FLIGHT * IN_FLIGHT) / (time.perf_counter() - start)
        payload = random.Random(1).randbytes(MiB)
        start = time.perf_counter()
        for _ in range(big):
            await client.call(address, Blob(payload))
        mb_per_s = big * 2 * MiB / (time.perf_counter() - start) / 1e6
    return calls_per_s, mb_per_s


async def bench_raw(small: int, big: int) -> tuple[float, float]:
    async def echo(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            try:
                while True:
                    await stream.send(await stream.receive(MiB))
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                pass

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, echo)
        stream = await anyio.connect_tcp("127.0.0.1", port)
        # Small messages with as many in flight as the RPC side has (32): a sender that
        # waits for a free slot, a receiver that frees one per 32 echoed bytes.
        slots = anyio.Semaphore(IN_FLIGHT)
        start = time.perf_counter()

        async def sender() -> None:
            for _ in range(small):
                await slots.acquire()
                await stream.send(b"x" * 32)

        async with anyio.create_task_group() as io:
            io.start_soon(sender)
            got = freed = 0
            while freed < small:
                got += len(await stream.receive())
                while freed < got // 32:
                    slots.release()
                    freed += 1
        calls_per_s = small / (time.perf_counter() - start)
        payload = random.Random(1).randbytes(MiB)
        start = time.perf_counter()
        for _ in range(big):
            async with anyio.create_task_group() as io:
                io.start_soon(stream.send, payload)
                got = 0
                while got < MiB:
                    got += len(await stream.receive(MiB))
        mb_per_s = big * 2 * MiB / (time.perf_counter() - start) / 1e6
        await stream.aclose()
        tg.cancel_scope.cancel()
    await listener.aclose()
    return calls_per_s, mb_per_s


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", default="asyncio", choices=["asyncio", "trio"])
    parser.add_argument("--small", type=int, default=20000)
    parser.add_argument("--big", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5, help="alternating rpc/raw rounds")
    add_json_option(parser)
    args = parser.parse_args()
    # RPC and the raw echo alternate, round after round, so both see the same machine load;
    # the figures are medians over rounds, the ratios medians of each round's own ratio.
    rounds: list[tuple[tuple[float, float], tuple[float, float]]] = []
    for _ in range(args.rounds):
        rpc = anyio.run(bench_rpc, args.small, args.big, backend=args.backend)
        raw = anyio.run(bench_raw, args.small, args.big, backend=args.backend)
        rounds.append((rpc, raw))
    rpc_small = statistics.median(r[0][0] for r in rounds)
    raw_small = statistics.median(r[1][0] for r in rounds)
    rpc_big = statistics.median(r[0][1] for r in rounds)
    raw_big = statistics.median(r[1][1] for r in rounds)
    small_ratio = statistics.median(r[0][0] / r[1][0] for r in rounds)
    big_ratio = statistics.median(r[0][1] / r[1][1] for r in rounds)
    print(f"{machine_line()}, anyio backend {args.backend}, median of {args.rounds} rounds")
    print(f"{'':24} {'dspot rpc':>12} {'raw anyio echo':>15} {'ratio':>7}")
    print(f"{'small calls/s':24} {rpc_small:>12.0f} {raw_small:>15.0f} {small_ratio:>6.2f}x")
    print(f"{'1 MiB payload MB/s':24} {rpc_big:>12.0f} {raw_big:>15.0f} {big_ratio:>6.2f}x")
    print(
        "per round (small, 1 MiB): "
        + ", ".join(f"{r[0][0] / r[1][0]:.2f}/{r[0][1] / r[1][1]:.2f}" for r in rounds)
    )
    print(f"note: small messages run {IN_FLIGHT} in flight on one connection on both sides")
    print("target: small calls >= 0.5x raw, 1 MiB payloads >= 0.6x raw")
    results = Results("rpc", f"RPC over TCP against a raw stream ({args.backend})", args)
    results.table(
        f"{args.small} small calls, {args.big} round trips of 1 MiB, anyio backend "
        f"{args.backend}, median of {args.rounds} alternating rounds",
        ["measure", "dspot rpc", "raw anyio echo", "ratio"],
        [
            ["small calls/s", round(rpc_small), round(raw_small), round(small_ratio, 2)],
            ["1 MiB payload MB/s", round(rpc_big), round(raw_big), round(big_ratio, 2)],
        ],
        plot={"x": 0, "y": [1, 2], "ylabel": "per second", "log": True},
        note=f"small messages run {IN_FLIGHT} in flight on one connection on both sides",
    )
    results.target("small calls >= 0.5x raw", small_ratio >= 0.5)
    results.target("1 MiB payloads >= 0.6x raw", big_ratio >= 0.6)
    results.write()


if __name__ == "__main__":
    main()
