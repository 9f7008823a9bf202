"""Scenario ``tokenring``: every node submits log entries under the whole fault model.

Each node runs an :class:`~dspot.rpc.RpcNode`, a :class:`~dspot.tokenring.TokenRing` and a
submitter that appends entries with unique ids (retrying a failed submit with the *same*
id, so deduplication is exercised) and then reads its own write back on another node. The
apply callbacks report to ground truth kept outside the nodes, where crashes cannot touch
it.

**View**: the ring runs on real SWIM membership (:class:`~dspot.membership.Membership`,
every other node as a seed), with ``min_members`` set to the cluster size so a restarted
node that knows only itself never counts itself a majority. Setting
``sim.data["view"] = "oracle"`` (before the nodes start) runs it instead on an oracle view
fed by the simulation's knowledge of who is up and reachable.

Checks (DESIGN.md invariants 2, 3, 7):

* token safety: no two members ever apply different entries at one ``seq`` (so no
  ``(epoch, seq)`` is committed twice), no entry id is applied twice, and every
  acknowledged submit is in the final log exactly once, at the position it was given;
* convergence: after heal and a quiet period every node has applied the same log (same
  entries, same order, same state hash);
* liveness: after heal + ``SETTLE`` every node's submits succeed, and none fails.
"""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any

import anyio
import anyio.abc
import attrs

from dspot.env import NodeEnv
from dspot.membership import Membership, RingView
from dspot.rpc import RpcNode
from dspot.sim._cluster import Simulation
from dspot.sim._scenario import Scenario, register
from dspot.sim._stranger import StrangerConfig
from dspot.tokenring import (
    CommittedEntry,
    CommitTimeout,
    LogPosition,
    NoQuorum,
    TokenRing,
    TokenRingConfig,
)
from dspot.tokenring._testing import OracleView, addresses_for

SECRET = b"simulated cluster secret"
PORT = 7100
SETTLE = 5.0
"""Seconds after heal by which submits must work again on every node."""
QUIET = 4.0
"""Seconds before the end when submitters stop, so the logs can converge."""
CONFIG = TokenRingConfig()


def _reachable(sim: Simulation, a: str, b: str) -> bool:
    return sim.nodes[b].up and not sim.net.is_blocked(a, b) and not sim.net.is_blocked(b, a)


async def node(env: NodeEnv, sim: Simulation, *, task_status: anyio.abc.TaskStatus[Any]) -> None:
    me = env.node_id
    data = sim.data
    sabotage: dict[str, bool] = data.get("sabotage", {})
    committed: dict[int, tuple[int, str]] = data.setdefault("committed", {})
    acked: list[tuple[str, int, int, str, float]] = data.setdefault("acked", [])
    failed: list[tuple[str, str, float, str]] = data.setdefault("failed", [])
    applied: list[tuple[int, int, str]] = []
    data.setdefault("applied", {})[me] = applied  # this incarnation's view of the log
    seen: set[str] = set()
    rng = env.child_rng("tokenring-workload")

    async def apply(entry: CommittedEntry) -> None:
        seq, epoch = entry.position.seq, entry.position.epoch
        applied.append((seq, epoch, entry.entry_id))
        first = committed.setdefault(seq, (epoch, entry.entry_id))
        if first != (epoch, entry.entry_id):
            sim.violation(
                f"fork at seq {seq}: {me} applied {(epoch, entry.entry_id)}, another "
                f"member applied {first}"
            )
        if entry.entry_id in seen:
            sim.violation(f"{me} applied entry {entry.entry_id} twice (seq {seq})")
        seen.add(entry.entry_id)
        if entry.data != entry.entry_id.encode():
            sim.violation(f"{me}: entry {entry.entry_id} has the wrong data")

    config = attrs.evolve(CONFIG, min_members=len(sim.names))
    async with contextlib.AsyncExitStack() as stack:
        rpc = await stack.enter_async_context(RpcNode(env, listen=f"{me}:{PORT}", secret=SECRET))
        view: RingView
        if data.get("view") == "oracle":
            addresses = addresses_for(sim.names, PORT)
            view = OracleView(me, addresses, lambda a, b: _reachable(sim, a, b))
        else:
            seeds = [f"{n}:{PORT}" for n in sim.names if n != me]
            view = await stack.enter_async_context(Membership(env, rpc, seeds=seeds))
        ring = await stack.enter_async_context(TokenRing(env, rpc, view, config, apply=apply))
        if sabotage.get("epoch_check"):
            ring.core.epoch_check_enabled = False
        if sabotage.get("epoch_bump"):
            ring.core.epoch_bump_enabled = False
        if sabotage.get("majority"):
            ring.core.majority_enabled = False
        if sabotage.get("fsync"):
            ring.fsync_enabled = False
        task_status.started(ring)
        incarnation = sim.nodes[me].incarnation
        k = 0
        while True:
            await anyio.sleep(rng.uniform(0.2, 0.6))
            if sim.now() > sim.duration - QUIET:
                await anyio.sleep_forever()
            k += 1
            eid = f"{me}.{incarnation}.{k}"
            for _attempt in range(3):
                started = sim.now()
                try:
                    pos = await ring.submit(eid.encode(), entry_id=eid, timeout=5.0)
                except (NoQuorum, CommitTimeout) as exc:
                    failed.append((eid, me, started, type(exc).__name__))
                    sim.op("tokenring.submit_failed", node=me, entry=eid, error=type(exc).__name__)
                    await anyio.sleep(0.5)
                    continue
                acked.append((eid, pos.seq, pos.epoch, me, started))
                sim.op("tokenring.submit", node=me, entry=eid, seq=pos.seq, epoch=pos.epoch)
                await _read_back(sim, me, eid, pos.seq, rng.choice(sim.names))
                break


async def _read_back(sim: Simulation, me: str, eid: str, seq: int, other: str) -> None:
    """Read your write on another member: once it has applied ``seq``, it holds ``eid``."""
    target = sim.nodes[other]
    ring = target.handle
    if not isinstance(ring, TokenRing):
        return
    incarnation = target.incarnation
    with anyio.move_on_after(3.0):
        await ring.wait_applied(LogPosition(seq, 0))
        if target.incarnation != incarnation or not target.up:
            return
        log = sim.data["applied"].get(other, [])
        got = next((e for s, _, e in log if s == seq), None)
        if got is not None and got != eid:
            sim.violation(f"{me} wrote {eid} at seq {seq} but {other} has {got} there")


def _state_hash(log: list[tuple[int, int, str]]) -> str:
    h = hashlib.sha256()
    for seq, epoch, eid in log:
        h.update(f"{seq}:{epoch}:{eid}\n".encode())
    return h.hexdigest()[:16]


def check(sim: Simulation) -> None:
    applied: dict[str, list[tuple[int, int, str]]] = sim.data.get("applied", {})
    acked: list[tuple[str, int, int, str, float]] = sim.data.get("acked", [])
    failed: list[tuple[str, str, float, str]] = sim.data.get("failed", [])
    logs = {name: applied.get(name, []) for name in sim.names}
    longest = max(logs.values(), key=len, default=[])
    # Convergence: everyone ends with the same applied log and state hash.
    want = _state_hash(longest)
    for name, log in logs.items():
        if _state_hash(log) != want:
            sim.violation(
                f"{name} did not converge: applied {len(log)} entries (hash "
                f"{_state_hash(log)}), others {len(longest)} (hash {want})"
            )
    # Token safety: every acknowledged submit is in the final log exactly once, where told.
    where: dict[str, list[int]] = {}
    for seq, _epoch, eid in longest:
        where.setdefault(eid, []).append(seq)
    for eid, seq, epoch, src, _ in acked:
        at = where.get(eid, [])
        if at != [seq]:
            sim.violation(
                f"acknowledged submit {eid} (from {src}, given ({epoch}, {seq})) is at {at} "
                "in the final log"
            )
    for eid, seqs in where.items():
        if len(seqs) > 1:
            sim.violation(f"entry {eid} is in the final log {len(seqs)} times: {seqs}")
    # Liveness after heal.
    since = sim.heal_at + SETTLE
    for eid, src, started, error in failed:
        if started > since:
            sim.violation(
                f"submit {eid} on {src} started at {started:.2f}s (after heal) failed: {error}"
            )
    for name in sim.names:
        if not any(src == name and started > since for _, _, _, src, started in acked):
            sim.violation(f"no submit on {name} succeeded after heal + {SETTLE:g}s")
    if not acked:
        sim.violation("no submit succeeded at all")


SCENARIO = register(
    Scenario(
        name="tokenring",
        description="submits on every node under the whole fault model; safety, convergence",
        node=node,
        check=check,
        nodes=5,
        duration=36.0,
        heal_fraction=0.55,
        stranger=StrangerConfig(),
    )
)
