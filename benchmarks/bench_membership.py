"""Membership benchmark: how fast a crash is detected, and false positives, in the simulation.

Run by hand (results are printed, never asserted)::

    .venv/bin/python benchmarks/bench_membership.py            # 200 seeds per cell
    .venv/bin/python benchmarks/bench_membership.py --seeds 50 --nodes 5

Each run is one seed of a simulated cluster (memory transport, trio MockClock) with a steady
packet loss and no other fault: the nodes join through three seeds, one random node crashes
at about t=5 s, and the run goes on for ``--window`` virtual seconds. For every surviving
node we record when it declared the crashed node dead; a *false positive* is any node
declaring a running node dead.

Two configurations run on the same seeds, both with our own core:

* ``dspot``: :class:`~dspot.membership.MembershipConfig` defaults;
* ``memberlist-lan``: memberlist's ``DefaultLANConfig`` timings (ProbeInterval 1 s,
  ProbeTimeout 500 ms, SuspicionMult 4, GossipInterval 200 ms, PushPullInterval 30 s,
  IndirectChecks 3, GossipNodes 3, RetransmitMult 4). Lifeguard's dynamic suspicion timeout
  (memberlist starts at SuspicionMaxTimeoutMult 6 times the minimum and shrinks it as other
  nodes confirm) is not modelled: our core uses the minimum, so real memberlist is, if
  anything, slower than this row.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import anyio
import anyio.abc
import attrs
from _results import Results, add_json_option

from dspot.env import NodeEnv
from dspot.membership import Membership, MembershipConfig
from dspot.rpc import RpcNode
from dspot.sim import FaultConfig, Scenario, Simulation, run_seed
from dspot.transport import LinkModel

PORT = 7100
SECRET = b"bench secret"
WARMUP = 5.0

CONFIGS = {
    "dspot": MembershipConfig(),
    "memberlist-lan": MembershipConfig(
        probe_interval=1.0,
        probe_timeout=0.5,
        suspicion_mult=4.0,
        gossip_interval=0.2,
        push_pull_interval=30.0,
        indirect_checks=3,
        gossip_fanout=3,
        retransmit_mult=4,
    ),
}


@attrs.define
class Ground:
    """Every dead/suspect event seen, the configuration, and the crash."""

    config: MembershipConfig = attrs.Factory(MembershipConfig)
    log: list[tuple[float, str, str, str]] = attrs.Factory(list)
    crash: tuple[float, str] = (0.0, "")


async def bench_node(
    env: NodeEnv, sim: Simulation, *, task_status: anyio.abc.TaskStatus[Any]
) -> None:
    log, config = sim.state(Ground).log, sim.state(Ground).config
    seeds = [f"{n}:{PORT}" for n in sim.names[:3] if n != env.node_id]
    async with RpcNode(env, listen=f"{env.node_id}:{PORT}", secret=SECRET) as rpc:
        membership = Membership(env, rpc, config, seeds=seeds)
        async with anyio.create_task_group() as tg, membership.subscribe() as events:
            await tg.start(membership.run)
            task_status.started(membership)
            async for event in events:
                log.append((sim.now(), env.node_id, event.kind.value, event.member.node_id))


async def bench_workload(sim: Simulation) -> None:
    crash_at = WARMUP + sim.rng.uniform(0.0, 1.0)
    await anyio.sleep(crash_at)
    victim = sim.rng.choice(sim.names)
    sim.state(Ground).crash = (sim.now(), victim)
    sim.crash(victim)
    await anyio.sleep(sim.duration - sim.now())


def one_run(args: tuple[str, int, float, int, float]) -> dict[str, Any]:
    """Run one seed; returns per-observer detection times and the false-positive count."""
    config_name, nodes, loss, seed, window = args
    logging.disable(logging.CRITICAL)
    scenario = Scenario(
        name="bench-membership",
        description="one crash under steady loss",
        node=bench_node,
        check=lambda sim: None,
        workload=bench_workload,
        nodes=nodes,
        duration=WARMUP + 1.0 + window,
        faults=FaultConfig(kinds=()),
        link=LinkModel(loss=loss),
    )
    box: dict[str, Simulation] = {}

    def setup(sim: Simulation) -> None:
        sim.state(Ground).config = CONFIGS[config_name]
        box["sim"] = sim

    run_seed(scenario, seed, setup=setup)
    data = box["sim"].state(Ground)
    crashed_at, victim = data.crash
    detected: dict[str, float] = {}
    false_positives = 0
    for when, observer, kind, subject in data.log:
        if kind != "dead":
            continue
        if subject == victim and when >= crashed_at:
            detected.setdefault(observer, when - crashed_at)
        else:
            false_positives += 1
    observers = [n for n in box["sim"].names if n != victim]
    times = [detected[o] for o in observers if o in detected]
    return {
        "times": times,
        "all": max(times) if len(times) == len(observers) else math.inf,
        "missed": len(observers) - len(times),
        "fp": false_positives,
    }


def _finite(value: float) -> float | None:
    return None if math.isinf(value) or math.isnan(value) else round(value, 2)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[index]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--nodes", type=int, nargs="*", default=[5, 20])
    parser.add_argument("--loss", type=float, nargs="*", default=[0.0, 0.01, 0.05])
    parser.add_argument("--configs", nargs="*", default=list(CONFIGS))
    parser.add_argument("--window", type=float, default=12.0, help="virtual s after the crash")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    add_json_option(parser)
    args = parser.parse_args()
    rows: list[list[Any]] = []

    header = (
        f"{'config':15} {'nodes':>5} {'loss':>5} {'runs':>5} | {'median':>7} {'p99':>7}"
        f" | {'all med':>7} {'all p99':>7} | {'missed':>6} {'FP':>4} {'FP runs':>7}"
    )
    print("time to declare a crashed node dead (s), per surviving observer and for all of them")
    print(header)
    print("-" * len(header))
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for config_name in args.configs:
            for nodes in args.nodes:
                for loss in args.loss:
                    jobs = [
                        (config_name, nodes, loss, seed, args.window)
                        for seed in range(1, args.seeds + 1)
                    ]
                    results = list(pool.map(one_run, jobs, chunksize=4))
                    times = [t for r in results for t in r["times"]]
                    alls = [r["all"] for r in results]
                    rows.append(
                        [
                            config_name,
                            nodes,
                            f"{loss:.0%}",
                            len(results),
                            round(statistics.median(times), 2),
                            round(percentile(times, 0.99), 2),
                            _finite(statistics.median(alls)),
                            _finite(percentile(alls, 0.99)),
                            sum(r["missed"] for r in results),
                            sum(r["fp"] for r in results),
                        ]
                    )
                    print(
                        f"{config_name:15} {nodes:>5} {loss:>5.0%} {len(results):>5} |"
                        f" {statistics.median(times):>7.2f} {percentile(times, 0.99):>7.2f} |"
                        f" {statistics.median(alls):>7.2f} {percentile(alls, 0.99):>7.2f} |"
                        f" {sum(r['missed'] for r in results):>6}"
                        f" {sum(r['fp'] for r in results):>4}"
                        f" {sum(1 for r in results if r['fp']):>7}",
                        flush=True,
                    )
    print(f"({time.perf_counter() - started:.0f} s wall)")
    print(
        "missed = observers that had not declared the crash within the window (inf in 'all');"
        " FP = live nodes declared dead (sum over runs); FP runs = runs with at least one."
    )
    report = Results("membership", "Membership: failure detection (virtual seconds)", args)
    report.table(
        "time to declare a crashed node dead (virtual s), per surviving observer and for all",
        [
            "config",
            "nodes",
            "loss",
            "runs",
            "median s",
            "p99 s",
            "all median s",
            "all p99 s",
            "missed",
            "false positives",
        ],
        rows,
        plot={"x": [0, 1, 2], "y": [4, 5], "ylabel": "virtual s to detection"},
        note="memberlist-lan = HashiCorp memberlist DefaultLANConfig timings on dspot's SWIM "
        "core; times are virtual, so they do not depend on the machine",
    )
    report.write()


if __name__ == "__main__":
    main()
