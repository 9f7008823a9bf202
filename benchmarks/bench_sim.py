"""Simulation speed: virtual seconds per wall second.

Five nodes on the simulated network, each calling every other node once every 100 ms
(20 pairs, 200 RPCs per virtual second), no faults. Printed, never asserted.
Target from the foundation issue: >= 200x real time on 2 cores.

    python benchmarks/bench_sim.py [--virtual 60]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import anyio
import anyio.abc
from _machine import machine_line
from _results import Results, add_json_option

from dspot.env import NodeEnv
from dspot.rpc import Peer, RpcNode
from dspot.sim import FaultConfig, Scenario, Simulation, run_seed
from dspot.sim.scenarios.rpc import Read, Value


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
                sim.data["calls"] = sim.data.get("calls", 0) + 1

        async with anyio.create_task_group() as tg:
            for dst in sim.names:
                if dst != env.node_id:
                    tg.start_soon(caller, dst)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--virtual", type=float, default=60.0)
    parser.add_argument("--nodes", type=int, default=5)
    add_json_option(parser)
    args = parser.parse_args()
    calls: dict[str, int] = {}

    def check(sim: Simulation) -> None:
        calls["n"] = sim.data.get("calls", 0)

    scenario = Scenario(
        name="bench",
        description="",
        node=node,
        check=check,
        nodes=args.nodes,
        duration=args.virtual,
        faults=FaultConfig(kinds=()),
    )
    start = time.perf_counter()
    result = run_seed(scenario, 1)
    wall = time.perf_counter() - start
    print(machine_line())
    print(f"{args.nodes} nodes, RPC every 100 ms per ordered pair, {args.virtual:g} virtual s")
    print(f"{'calls':>10} {'events':>10} {'wall s':>8} {'virtual/wall':>13} {'calls/wall s':>13}")
    print(
        f"{calls['n']:>10} {result.events:>10} {wall:>8.2f} {args.virtual / wall:>12.1f}x "
        f"{calls['n'] / wall:>13.0f}"
    )
    print("target: >= 200x real time")
    speed = args.virtual / wall
    results = Results("sim", "Simulation speed", args)
    results.table(
        f"{args.nodes} nodes, RPC every 100 ms per ordered pair, {args.virtual:g} virtual s",
        ["clock", "virtual s per wall s", "calls", "trace events", "wall s"],
        [
            ["simulation", round(speed, 1), calls["n"], result.events, round(wall, 2)],
            ["real time (peer)", 1.0, None, None, None],
        ],
        plot={"x": 0, "y": [1], "ylabel": "virtual s per wall s", "log": True},
    )
    results.target(">= 200x real time", speed >= 200)
    results.write()


if __name__ == "__main__":
    main()
