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

from dspot.disk import Transaction
from dspot.env import NodeEnv
from dspot.membership import MemberState
from dspot.outbox import Inbox, InboxMessage, Outbox, OutboxConfig
from dspot.rpc import RetryPolicy, RpcNode
from dspot.sim._cluster import Simulation
from dspot.sim._scenario import Scenario, register
from dspot.sim._stranger import StrangerConfig
from dspot.testing import ScriptedMembership

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


def _directory(sim: Simulation) -> ScriptedMembership:
    return ScriptedMembership.shared(sim.data, sim.names, PORT)


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
        outbox.sync_before_send = not sim.data.get("sabotage_sync_before_send", False)
        inbox = Inbox(env, rpc)
        inbox.dedupe_enabled = not sim.data.get("sabotage_inbox", False)
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


async def _membership_oracle(sim: Simulation) -> None:
    directory = _directory(sim)
    while True:
        for name in sim.names:
            want = MemberState.ALIVE if sim.nodes[name].up else MemberState.DEAD
            directory.set_state(name, want)
        await anyio.sleep(0.25)


async def workload(sim: Simulation) -> None:
    async with anyio.create_task_group() as tg:
        tg.start_soon(_membership_oracle, sim)
        await anyio.sleep(sim.duration - 0.5)
        stats = {}
        for name in sim.names:
            outbox = sim.nodes[name].handle
            if outbox is not None:
                stats[name] = await outbox.stats()
        sim.data["stats"] = stats
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
    sim.data["truth"] = truth


def check(sim: Simulation) -> None:
    truth: dict[str, dict[str, list[tuple[Any, ...]]]] = sim.data.get("truth", {})
    if not truth:
        sim.violation("no ground truth collected")
        return
    committed: dict[tuple[str, str], tuple[str, int]] = {}
    for sender, tables in truth.items():
        for op, dst, n in tables["orders"]:
            committed[(sender, op)] = (dst, n)
    for sender, stats in sim.data.get("stats", {}).items():
        if stats.pending:
            sim.violation(f"{sender}: {stats.pending} messages still in the outbox at the end")
    applied: dict[tuple[str, str], int] = {}
    for receiver, tables in truth.items():
        last: dict[str, int] = {}
        for op, sender, n in tables["applied"]:
            applied[(sender, op)] = applied.get((sender, op), 0) + 1
            if (sender, op) not in committed:
                sim.violation(f"{receiver} applied {op} from {sender}, which {sender} never kept")
            elif committed[(sender, op)][0] != receiver:
                sim.violation(f"{receiver} applied {op} meant for {committed[(sender, op)][0]}")
            if n <= last.get(sender, 0):
                sim.violation(f"{receiver} applied {sender}'s #{n} after #{last[sender]}")
            last[sender] = max(n, last.get(sender, 0))
    for key, (dst, _n) in committed.items():
        count = applied.get(key, 0)
        if count != 1:
            sim.violation(f"message {key[1]} {key[0]}->{dst} applied {count} times")
    if not committed:
        sim.violation("no message was ever committed")


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
    )
)
