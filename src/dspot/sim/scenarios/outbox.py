"""Scenario ``outbox``: every committed message is applied exactly once (invariant 4).

Five nodes each run an :class:`~dspot.outbox.Outbox` and an :class:`~dspot.outbox.Inbox`.
Each node's client commits "orders" to random peers: one transaction (synced or not, at
random) inserts the order row and adds the outbox message; the receiver's effect appends a
row to its ``applied`` table (no unique key, so a double application shows). Crashes hit
senders and receivers mid-delivery, partitions and loss delay it, and during the fault phase
5 % of request frames are duplicated. Clients stop ``DRAIN`` seconds before the end.

Ground truth is the nodes' durable state: at the end every node is crashed (dropping what
was never synced) and its tables are read. Checks: each order in a sender's durable
``orders`` is applied exactly once by its receiver; nothing is applied that no sender
durably committed; each sender's messages are applied in order per receiver; and every
outbox is empty just before the end (the relay drained; a crash may then bring back a few
delivered rows whose unsynced deletion it undoes, which is harmless).
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import anyio.abc
import attrs

from dspot.disk import Transaction
from dspot.env import NodeEnv
from dspot.membership import MemberState
from dspot.outbox import (
    Inbox,
    InboxMessage,
    Outbox,
    OutboxConfig,
    OutboxMechanism,
    OutboxStats,
)
from dspot.rpc import RetryPolicy, RpcNode
from dspot.sim._checks import Check, Sabotage
from dspot.sim._cluster import Simulation
from dspot.sim._nemesis import FaultConfig, Nemesis
from dspot.sim._scenario import Scenario, register
from dspot.sim._stranger import StrangerConfig
from dspot.testing import ScriptedMembership

EXACTLY_ONCE = "exactly-once"
KEPT = "applied-was-kept"
RECEIVER = "right-receiver"
ORDER = "in-order"
DRAINED = "drained"
SECRET = b"simulated cluster secret"
PORT = 7200
DRAIN = 8.0

_APP_SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (op TEXT PRIMARY KEY, dst TEXT NOT NULL, n INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS applied (
    row INTEGER PRIMARY KEY AUTOINCREMENT, op TEXT NOT NULL, sender TEXT NOT NULL,
    n INTEGER NOT NULL
);
"""


@attrs.define
class Ground:
    """The shared directory, and what survives on each disk at the end, for the checks."""

    directory: ScriptedMembership | None = None
    stats: dict[str, OutboxStats] = attrs.Factory(dict)
    """Each sender's outbox just before the end."""
    truth: dict[str, dict[str, list[tuple[Any, ...]]]] = attrs.Factory(dict)
    """Each node's ``orders`` and ``applied`` rows after the final crash."""
    moved: dict[str, float] = attrs.Factory(dict)
    """Members whose directory entry points at another member's address, and until when."""


def _directory(sim: Simulation) -> ScriptedMembership:
    ground = sim.state(Ground)
    if ground.directory is None:
        ground.directory = ScriptedMembership.on_port(sim.names, PORT)
    return ground.directory


def _apply(tx: Transaction, message: InboxMessage) -> None:
    body = json.loads(message.body)
    tx.execute(
        "INSERT INTO applied (op, sender, n) VALUES (?, ?, ?)",
        (body["op"], message.sender, body["n"]),
    )


async def node(env: NodeEnv, sim: Simulation, *, task_status: anyio.abc.TaskStatus[Any]) -> None:
    directory = _directory(sim)
    retry = RetryPolicy(attempts=3, max_delay=0.5, attempt_timeout=1.5)
    async with RpcNode(
        env, listen=f"{env.node_id}:{PORT}", secret=SECRET, call_timeout=4.0, retry=retry
    ) as rpc:
        await env.disk.db.executescript(_APP_SCHEMA)
        outbox = Outbox(
            env,
            rpc,
            directory.view(env.node_id),
            OutboxConfig(batch=16, poll_interval=0.5, backoff_cap=1.0, call_timeout=2.0),
        )
        inbox = Inbox(env, rpc)
        inbox.handle("order", _apply)
        await outbox.open()
        async with anyio.create_task_group() as tg:
            await tg.start(inbox.run)
            await tg.start(outbox.run)
            task_status.started(outbox)
            await _client(env, sim, rpc, outbox)


async def _client(env: NodeEnv, sim: Simulation, rpc: RpcNode, outbox: Outbox) -> None:
    rng = env.child_rng("client")
    peers = [n for n in sim.names if n != env.node_id]
    while sim.now() < sim.duration - DRAIN:
        await anyio.sleep(rng.uniform(0.05, 0.3))
        rpc.duplicate_rate = 0.05 if sim.now() < sim.heal_at else 0.0
        dst = rng.choice(peers)
        op = env.ids()
        sync = rng.random() < 0.5
        async with env.disk.db.transaction(sync=sync) as tx:
            n = tx.execute("SELECT COALESCE(MAX(n), 0) + 1 FROM orders WHERE dst = ?", (dst,))[0][0]
            tx.execute("INSERT INTO orders (op, dst, n) VALUES (?, ?, ?)", (op, dst, n))
            outbox.add(tx, dst, "order", json.dumps({"op": op, "n": n}).encode())
        sim.op("outbox.order", src=env.node_id, dst=dst, op=op, n=n, sync=sync)


def on_fault(sim: Simulation, kind: str) -> None:
    """``readdress``: the directory gives one member's address as another's (a stale view
    after an address was reused), for a second or a few, ending by heal at the latest."""
    if kind != "readdress":
        raise ValueError(f"unknown fault kind {kind!r}")
    ground = sim.state(Ground)
    candidates = [n for n in sim.names if n not in ground.moved]
    if len(candidates) < 2 or sim.now() >= sim.heal_at - 0.5:
        return
    victim, other = sim.rng.sample(candidates, 2)
    directory = _directory(sim)
    member = directory.get(victim)
    assert member is not None
    directory.put(attrs.evolve(member, address=f"{other}:{PORT}"))
    ground.moved[victim] = min(sim.now() + sim.rng.uniform(1.0, 4.0), sim.heal_at)
    sim.fault("readdress", node=victim, answered_by=other)


async def _membership_oracle(sim: Simulation) -> None:
    directory = _directory(sim)
    moved = sim.state(Ground).moved
    while True:
        for name in sim.names:
            want = MemberState.ALIVE if sim.nodes[name].up else MemberState.DEAD
            directory.set_state(name, want)
        for name, until in sorted(moved.items()):
            if sim.now() >= until:
                member = directory.get(name)
                assert member is not None
                directory.put(attrs.evolve(member, address=f"{name}:{PORT}"))
                del moved[name]
        await anyio.sleep(0.25)


def readdressing(scenario: Scenario) -> Scenario:
    """Readdressed members as the only fault, often."""
    faults = FaultConfig(kinds=("readdress",), min_gap=0.3, max_gap=1.0)
    return attrs.evolve(scenario, faults=faults)


async def workload(sim: Simulation) -> None:
    async with anyio.create_task_group() as tg:
        tg.start_soon(_membership_oracle, sim)
        await anyio.sleep(sim.duration - 0.5)
        stats = {}
        for name in sim.names:
            outbox = sim.nodes[name].handle
            if outbox is not None:
                stats[name] = await outbox.stats()
        sim.state(Ground).stats = stats
        tg.cancel_scope.cancel()
    # Ground truth: what survives on each disk.
    truth: dict[str, dict[str, list[tuple[Any, ...]]]] = {}
    for name in sim.names:
        sim.crash(name)
        db = sim.nodes[name].disk.db
        truth[name] = {
            "orders": await db.execute("SELECT op, dst, n FROM orders ORDER BY op", sync=False),
            "applied": await db.execute(
                "SELECT op, sender, n FROM applied ORDER BY row", sync=False
            ),
        }
    sim.state(Ground).truth = truth


def outages(scenario: Scenario) -> Scenario:
    """Crashes only, often and long: relays fail against a down receiver many times over."""
    faults = FaultConfig(kinds=("crash",), min_gap=0.3, max_gap=1.0, min_duration=3.0)
    return attrs.evolve(scenario, faults=faults)


def check(sim: Simulation) -> None:
    ground = sim.state(Ground)
    truth = ground.truth
    if not truth:
        sim.violation("no ground truth collected", check=DRAINED)
        return
    committed: dict[tuple[str, str], tuple[str, int]] = {}
    for sender, tables in truth.items():
        for op, dst, n in tables["orders"]:
            committed[(sender, op)] = (dst, n)
    for sender, stats in ground.stats.items():
        if stats.pending:
            message = f"{sender}: {stats.pending} messages still in the outbox at the end"
            sim.violation(message, check=DRAINED)
    applied: dict[tuple[str, str], int] = {}
    for receiver, tables in truth.items():
        last: dict[str, int] = {}
        for op, sender, n in tables["applied"]:
            applied[(sender, op)] = applied.get((sender, op), 0) + 1
            if (sender, op) not in committed:
                message = f"{receiver} applied {op} from {sender}, which {sender} never kept"
                sim.violation(message, check=KEPT)
            elif committed[(sender, op)][0] != receiver:
                message = f"{receiver} applied {op} meant for {committed[(sender, op)][0]}"
                sim.violation(message, check=RECEIVER)
            if n <= last.get(sender, 0):
                message = f"{receiver} applied {sender}'s #{n} after #{last[sender]}"
                sim.violation(message, check=ORDER)
            last[sender] = max(n, last.get(sender, 0))
    for key, (dst, _n) in committed.items():
        count = applied.get(key, 0)
        if count != 1:
            message = f"message {key[1]} {key[0]}->{dst} applied {count} times"
            sim.violation(message, check=EXACTLY_ONCE)
    if not committed:
        sim.violation("no message was ever committed", check=DRAINED)


SCENARIO = register(
    Scenario(
        name="outbox",
        description="transactional outbox + inbox under crashes, partitions, duplicates; inv. 4",
        node=node,
        check=check,
        workload=workload,
        nodes=5,
        duration=30.0,
        stranger=StrangerConfig(),
        faults=FaultConfig(kinds=(*FaultConfig().kinds, "readdress")),
        nemesis=lambda cfg: Nemesis(cfg, on_fault=on_fault),
        checks=(
            Check(
                EXACTLY_ONCE,
                "each order in a sender's durable table is applied exactly once",
                Sabotage({OutboxMechanism.INBOX_DEDUPE}, seeds=(1,), duration=20.0),
            ),
            Check(
                KEPT,
                "nothing is applied that its sender did not durably commit",
                Sabotage({OutboxMechanism.SYNC_BEFORE_SEND}, seeds=(2,), duration=20.0),
            ),
            Check(
                RECEIVER,
                "each message is applied by the receiver it was meant for",
                # Batches sent to a member's old address, which another member now answers.
                Sabotage(
                    {OutboxMechanism.RECEIVER_CHECK},
                    seeds=(1,),
                    adapt=readdressing,
                    duration=20.0,
                ),
            ),
            Check(
                ORDER,
                "each sender's messages are applied in order per receiver",
                Sabotage({OutboxMechanism.INBOX_DEDUPE}, seeds=(1,), duration=20.0),
            ),
            Check(
                DRAINED,
                f"liveness: every outbox is empty {DRAIN:g}s after clients stop committing",
                Sabotage({OutboxMechanism.BACKOFF_CAP}, seeds=(2,), adapt=outages),
            ),
        ),
    )
)
