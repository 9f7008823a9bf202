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
The sabotage ``SimCpu.inline = True`` (set for every node by a test's ``setup``) charges
the same work to the node's loop, as running it on the event loop would: probes then go
unanswered behind a queue of password hashes and both checks fail.
"""

from __future__ import annotations

import hashlib
from typing import Any

import anyio
import anyio.abc

from dspot.cpu import CostModel
from dspot.disk import ReadTransaction, Row, Transaction
from dspot.env import NodeEnv
from dspot.looplag import LoopLagMonitor
from dspot.membership import Membership, MembershipConfig
from dspot.rpc import RpcNode
from dspot.sim._cluster import Simulation
from dspot.sim._liveness import check_no_false_deaths, watch_membership
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


async def _user(env: NodeEnv, sim: Simulation, index: int) -> None:
    rng = env.child_rng(f"user{index}")
    done: dict[str, int] = sim.data.setdefault("liveness.work", {})
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
    sim.data.setdefault("liveness.monitors", []).append((name, monitor))
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


def check(sim: Simulation) -> None:
    summary = check_no_false_deaths(sim, grace=CONFIG.detection_bound(len(sim.names)))
    worst = 0.0
    monitor: LoopLagMonitor
    for name, monitor in sim.data.get("liveness.monitors", []):
        worst = max(worst, monitor.recorder.max)
        if monitor.stalls:
            last = monitor.stalls[-1]
            sim.violation(
                f"{name}'s event loop lagged up to {monitor.recorder.max * 1000:.0f} ms (the "
                f"last stall: {last.lag * 1000:.0f} ms at {last.at:.3f}s, running "
                f"{last.running or '?'})"
            )
    work: dict[str, int] = sim.data.get("liveness.work", {})
    for name in sim.names:
        if work.get(name, 0) < 10:
            sim.violation(f"{name}'s users got only {work.get(name, 0)} requests done")
    sim.data["liveness.summary"] = {**summary, "worst_lag": worst, "work": sum(work.values())}
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
    )
)
