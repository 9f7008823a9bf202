"""Scenario ``liveness``: membership stays right while every node is flooded with slow work.

Every node runs :class:`~dspot.membership.Membership`, a
:class:`~dspot.looplag.LoopLagMonitor`, and ``USERS`` simulated users who each, over and
over, hash a password (``env.offload`` with ``kind="scrypt"``: 100 ms of virtual CPU, a
strong setting on a slow core) and search a table (``Database.read``, priced by the SQLite
steps it took), like a login flood and heavy searches on a real node. The nemesis crashes
nodes and partitions the network meanwhile, with quiet stretches in between: a death during
a fault, or within a detection bound after it, is excused, so the check bites in between.

Checks:

* **liveness first** (:func:`~dspot.sim.check_no_false_deaths`): no member is declared dead
  while it was running and reachable for a whole detection bound before;
* **no stalls**: no node's loop monitor saw a lag of ``STALL`` (100 ms) or more;
* the users got work done (so the checks had something to hold against).

Offloaded, the work waits for one of a node's few worker slots and the loop stays free.
The sabotage ``CpuMechanism.OFFLOAD`` disabled (``SimCpu.inline``) charges the same work
to the node's loop, as running it on the event loop would: probes then go
unanswered behind a queue of password hashes and both checks fail.
"""

from __future__ import annotations

import hashlib
from typing import Any

import anyio
import anyio.abc
import attrs

from dspot.cpu import CostModel, CpuMechanism
from dspot.disk import ReadTransaction, Row, Transaction
from dspot.env import NodeEnv
from dspot.looplag import LoopLagMonitor
from dspot.membership import Membership, MembershipConfig
from dspot.rpc import RpcNode
from dspot.sim._checks import Check, Sabotage
from dspot.sim._cluster import Simulation
from dspot.sim._liveness import FALSE_DEATH, check_no_false_deaths, watch_membership
from dspot.sim._nemesis import FaultConfig
from dspot.sim._scenario import Scenario, register

SECRET = b"simulated liveness secret"
PORT = 7300
CONFIG = MembershipConfig()
USERS = 8
"""Users per node, each with one password hash and one search in flight at a time."""
COSTS = CostModel(kinds={"scrypt": 0.1})
ROWS = 300
STALL = 0.1
WORDS = ("love", "night", "blue", "rain", "fire", "heart", "city", "dream")

_SCHEMA = "CREATE TABLE IF NOT EXISTS song (id INTEGER PRIMARY KEY, title TEXT NOT NULL);"


def _fill(tx: Transaction) -> None:
    if not tx.execute("SELECT 1 FROM song LIMIT 1"):
        tx.executemany(
            "INSERT INTO song (id, title) VALUES (?, ?)",
            [(i, f"{WORDS[i % 8]} {WORDS[i * 7 % 8]} {i}") for i in range(ROWS)],
        )


def _search(tx: ReadTransaction, word: str) -> list[Row]:
    return tx.execute("SELECT id, title FROM song WHERE title LIKE ? ORDER BY id", (f"%{word}%",))


def _password_hash(password: bytes) -> bytes:
    return hashlib.sha256(password).digest()  # priced as scrypt by the cost model


@attrs.define
class Ground:
    """What the nodes did, for the checks."""

    work: dict[str, int] = attrs.Factory(dict)
    """Requests each node's users got done."""
    monitors: list[tuple[str, LoopLagMonitor]] = attrs.Factory(list)
    summary: dict[str, Any] = attrs.Factory(dict)
    """What :func:`check` found (for tests and the trace)."""


async def _user(env: NodeEnv, sim: Simulation, index: int) -> None:
    rng = env.child_rng(f"user{index}")
    done = sim.state(Ground).work
    while True:
        await env.offload(_password_hash, b"hunter2", kind="scrypt")
        await env.disk.db.read(_search, rng.choice(WORDS))
        done[env.node_id] = done.get(env.node_id, 0) + 1
        await anyio.sleep(rng.uniform(0.0, 0.02))


async def node(env: NodeEnv, sim: Simulation, *, task_status: anyio.abc.TaskStatus[Any]) -> None:
    name = env.node_id
    await env.disk.db.executescript(_SCHEMA)
    await env.disk.db.write(_fill)
    monitor = LoopLagMonitor(env, interval=0.05, warn_after=STALL)
    sim.state(Ground).monitors.append((name, monitor))
    seeds = [f"{n}:{PORT}" for n in sim.names[:3] if n != name]
    async with RpcNode(env, listen=f"{name}:{PORT}", secret=SECRET, connect_timeout=1.0) as rpc:
        membership = Membership(env, rpc, CONFIG, seeds=seeds)
        async with anyio.create_task_group() as tg:
            await tg.start(monitor.run)
            await tg.start(watch_membership, sim, name, membership)
            await tg.start(membership.run)
            task_status.started(membership)
            for index in range(USERS):
                tg.start_soon(_user, env, sim, index)


def _starved(scenario: Scenario) -> Scenario:
    """Each password hash costs 3 s of CPU: on the loop, users get a handful done."""
    return attrs.evolve(scenario, costs=CostModel(kinds={"scrypt": 3.0}))


def check(sim: Simulation) -> None:
    summary = check_no_false_deaths(sim, grace=CONFIG.detection_bound(len(sim.names)))
    worst = 0.0
    ground = sim.state(Ground)
    for name, monitor in ground.monitors:
        worst = max(worst, monitor.recorder.max)
        if monitor.stalls:
            last = monitor.stalls[-1]
            sim.violation(
                f"{name}'s event loop lagged up to {monitor.recorder.max * 1000:.0f} ms (the "
                f"last stall: {last.lag * 1000:.0f} ms at {last.at:.3f}s, running "
                f"{last.running or '?'})",
                check="no-stall",
            )
    work = ground.work
    for name in sim.names:
        if work.get(name, 0) < 10:
            sim.violation(
                f"{name}'s users got only {work.get(name, 0)} requests done", check="work-done"
            )
    ground.summary = {**summary, "worst_lag": worst, "work": sum(work.values())}
    sim.trace.record("liveness.summary", **summary, worst_lag=round(worst, 6))


SCENARIO = register(
    Scenario(
        name="liveness",
        description="membership under a flood of offloaded password hashes and searches; no "
        "live, reachable member declared dead, no loop stalls",
        node=node,
        check=check,
        nodes=5,
        duration=20.0,
        faults=FaultConfig(
            kinds=("crash", "partition"), min_gap=2.0, max_gap=6.0, max_duration=3.0
        ),
        costs=COSTS,
        checks=(
            Check(
                FALSE_DEATH,
                "no member declared dead while running and reachable for a detection bound",
                Sabotage({CpuMechanism.OFFLOAD}, seeds=(1,)),
            ),
            Check(
                "no-stall",
                "no node's loop monitor saw a lag of STALL or more",
                Sabotage({CpuMechanism.OFFLOAD}, seeds=(1,)),
            ),
            Check(
                "work-done",
                "every node's users got at least 10 requests done (liveness of the work)",
                Sabotage({CpuMechanism.OFFLOAD}, seeds=(1,), adapt=_starved),
            ),
        ),
    )
)
