"""Simulation speed: virtual seconds per wall second.

Five nodes on the simulated network, each calling every other node once every 100 ms
(20 pairs, 200 RPCs per virtual second), no faults, on the simulation's virtual-time
asyncio loop and, in the same run, on trio's MockClock (the scheduler the simulation used
before; the rest of the code is the same). Printed, never asserted. Target (issue 17):
>= 150x real time on 2 cores.

    python benchmarks/bench_sim.py [--virtual 60] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import anyio
import anyio.abc
import attrs
from _machine import machine_line
from _results import Results, add_json_option

from dspot.env import NodeEnv
from dspot.rpc import Peer, RpcNode
from dspot.sim import FaultConfig, Scenario, Simulation, run_seed
from dspot.sim.scenarios.rpc import Read, Value


@attrs.define
class Calls:
    n: int = 0
    """Calls answered over the run."""


async def node(env: NodeEnv, sim: Simulation, *, task_status: anyio.abc.TaskStatus[Any]) -> None:
    async def read(req: Read, peer: Peer) -> Value:
        return Value(0, b"")

    async with RpcNode(env, listen=f"{env.node_id}:7000") as rpc:
        rpc.handle(Read, read)
        task_status.started(rpc)

        async def caller(dst: str) -> None:
            while True:
                await anyio.sleep(0.1)
                await rpc.call(f"{dst}:7000", Read(0))
                sim.state(Calls).n += 1

        async with anyio.create_task_group() as tg:
            for dst in sim.names:
                if dst != env.node_id:
                    tg.start_soon(caller, dst)


def _run(loop: str, nodes: int, virtual: float) -> tuple[int, int, float]:
    """One run on ``loop``: (calls, trace events, wall seconds)."""
    calls: dict[str, int] = {}

    def check(sim: Simulation) -> None:
        calls["n"] = sim.state(Calls).n

    scenario = Scenario(
        name="bench",
        description="",
        node=node,
        check=check,
        nodes=nodes,
        duration=virtual,
        faults=FaultConfig(kinds=()),
    )
    start = time.perf_counter()
    result = run_seed(scenario, 1, loop=loop)
    return calls["n"], result.events, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--virtual", type=float, default=60.0)
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3, help="alternating trio/asyncio rounds")
    add_json_option(parser)
    args = parser.parse_args()
    _run("asyncio", args.nodes, 1.0)  # imports and first-use costs out of the measurement
    _run("trio", args.nodes, 1.0)
    loops = ("trio", "asyncio")
    runs: dict[str, list[tuple[int, int, float]]] = {loop: [] for loop in loops}
    for _ in range(args.rounds):
        for loop in loops:
            runs[loop].append(_run(loop, args.nodes, args.virtual))
    print(machine_line())
    print(
        f"{args.nodes} nodes, RPC every 100 ms per ordered pair, {args.virtual:g} virtual s, "
        f"median of {args.rounds} alternating rounds"
    )
    print(f"{'scheduler':30} {'calls':>7} {'events':>8} {'wall s':>7} {'virtual/wall':>13}")
    rows = []
    speed: dict[str, float] = {}
    for loop, label in (("trio", "trio MockClock (previous)"), ("asyncio", "virtual-time asyncio")):
        calls, events, _ = runs[loop][0]
        wall = statistics.median(r[2] for r in runs[loop])
        speed[loop] = args.virtual / wall
        print(f"{label:30} {calls:>7} {events:>8} {wall:>7.2f} {speed[loop]:>12.1f}x")
        rows.append([label, round(speed[loop], 1), calls, events, round(wall, 2)])
    ratio = statistics.median(
        t[2] / a[2] for t, a in zip(runs["trio"], runs["asyncio"], strict=True)
    )
    print(f"asyncio loop vs trio loop, same code, same run: {ratio:.2f}x faster")
    print("target: >= 150x real time")
    results = Results("sim", "Simulation speed", args)
    results.table(
        f"{args.nodes} nodes, RPC every 100 ms per ordered pair, {args.virtual:g} virtual s",
        ["scheduler", "virtual s per wall s", "calls", "trace events", "wall s"],
        [*rows, ["real time (peer)", 1.0, None, None, None]],
        plot={"x": 0, "y": [1], "ylabel": "virtual s per wall s", "log": True},
    )
    results.target(">= 150x real time", speed["asyncio"] >= 150)
    results.write()


if __name__ == "__main__":
    main()
