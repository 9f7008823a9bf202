"""Log compaction in the scenario: a tiny token-ring configuration, so that every node takes
snapshots and installs them many times per seed; the disruptions that make members fall
behind the others' log start (one long cut-off, one lost disk, crashes in the middle of
snapshot installs and restores); and the check that every node's catalog equals replaying
the whole history.

The history — every entry applied anywhere, by ``seq`` — lives in the checker
(:attr:`Ground.log_history`), never in the nodes: :class:`CheckedMachine` reports each entry a
node applies, and a second node applying different bytes at the same ``seq`` is a fork.
"""

from __future__ import annotations

import random
import sqlite3
from typing import Final

import anyio
import anyio.abc
import anyio.lowlevel
import attrs
from dspot.disk import Disk
from dspot.sim import Simulation
from dspot.tokenring import CommittedEntry, SnapshotReader, SnapshotWriter, TokenRingConfig

from dspot_spotify import catalog
from dspot_spotify.catalog import snapshot
from dspot_spotify.node import SpotifyNode
from dspot_spotify.simulation.checknames import STATE
from dspot_spotify.simulation.ground import Ground
from dspot_spotify.statemachine import CatalogMachine

__all__ = [
    "RING",
    "CheckedMachine",
    "check_state_is_history",
    "disrupt",
    "install_crasher",
    "is_wiped",
    "restart_later",
]

RING: Final = TokenRingConfig(
    max_batch=8,
    memory_entries=16,
    compact_every=3,
    keep_entries=0,
    dedupe_window=64,
    snapshot_chunk=16 * 1024,
)
"""Tiny on purpose: a snapshot every 3 applied entries, no entry kept before it, a few in
memory, snapshots sent in 16 KiB chunks (a catalog copy is a few hundred KiB)."""
LISTENERS: Final = 3
"""Clients that make many small writes (plays, likes, playlists; see ``listener``)."""
LONG_CUT: Final = (4.0, 6.0)
"""How long (seconds) the workload cuts one node off from the others, early in the run."""
WIPES: Final = 2
"""Disk losses per run, at most."""
SHORT_CUT: Final = (1.5, 3.0)
"""How long each later cut lasts (long enough to fall behind the others' log start)."""
INSTALL_CRASH: Final = {"chunk": 0.01, "file": 0.1, "recorded": 0.1, "restored": 0.1}
"""Probability of crashing a node at each step of a snapshot install."""
RESTORE_CRASH: Final = 0.02
"""Probability of crashing a node after each batch of rows a snapshot restore copies."""


@attrs.define
class CheckedMachine:
    """A node's state machine as the ring sees it: every entry applied is reported to the
    checker's history first; snapshots taken and restored are counted."""

    machine: CatalogMachine
    sim: Simulation
    node: str

    async def apply(self, entry: CommittedEntry) -> None:
        history = self.sim.state(Ground).log_history
        seq, epoch = entry.position.seq, entry.position.epoch
        first = history.setdefault(seq, (epoch, entry.data))
        if first != (epoch, entry.data):
            self.sim.violation(
                f"fork at seq {seq}: {self.node} applied an entry of epoch {epoch}, another "
                f"node one of epoch {first[0]} (or different bytes)",
                check=STATE,
            )
        await self.machine.apply(entry)

    async def applied_index(self) -> int:
        return await self.machine.applied_index()

    async def save_snapshot(self, out: SnapshotWriter) -> None:
        await self.machine.save_snapshot(out)
        _count(self.sim, "taken")

    async def restore_snapshot(self, snap: SnapshotReader) -> None:
        await self.machine.restore_snapshot(snap)
        _count(self.sim, "restored")


def _count(sim: Simulation, what: str) -> None:
    counts = sim.state(Ground).snapshots
    counts[what] = counts.get(what, 0) + 1


def _rng(sim: Simulation) -> random.Random:
    ground = sim.state(Ground)
    if ground.snapshot_rng is None:
        ground.snapshot_rng = random.Random(f"snap:{sim.seed}")
    return ground.snapshot_rng


def restart_later(sim: Simulation, name: str, delay: float) -> None:
    """Restart the crashed node ``name`` after ``delay`` seconds (by heal at the latest), in
    the workload's task group (:attr:`Ground.tasks`)."""
    tasks = sim.state(Ground).tasks
    if tasks is None:
        return
    until = min(sim.now() + delay, sim.heal_at)

    async def revive() -> None:
        await anyio.sleep(max(0.0, until - sim.now()))
        await sim.start(name)

    tasks.start_soon(revive)


def _may_crash(sim: Simulation) -> bool:
    """Crash a node only before heal (minus time to restart) and while every node is up."""
    return (
        sim.state(Ground).tasks is not None
        and sim.now() < sim.heal_at - 3.0
        and len(sim.live()) == len(sim.names)
    )


def _victim(sim: Simulation, rng: random.Random, avoid: str | None = None) -> str | None:
    """A running node whose loss leaves the others up and reaching each other (a majority
    that goes on without it, and so leaves it behind), if there is one."""
    if sim.state(Ground).tasks is None or sim.now() >= sim.heal_at - 3.0:
        return None
    names = sim.names
    up = set(sim.live())

    def fine(victim: str) -> bool:
        rest = [n for n in names if n != victim]
        return (
            victim in up
            and victim != avoid
            and all(n in up for n in rest)
            and not any(sim.net.is_blocked(a, b) for a in rest for b in rest if a != b)
        )

    candidates = [n for n in names if fine(n)]
    return rng.choice(candidates) if candidates else None


async def _find_victim(
    sim: Simulation, rng: random.Random, deadline: float, avoid: str | None = None
) -> str | None:
    while (victim := _victim(sim, rng, avoid)) is None:
        if sim.now() >= deadline:
            return None
        await anyio.sleep(0.2)
    return victim


def install_crasher(sim: Simulation, spotify: SpotifyNode) -> None:
    """Crash this node now and then in the middle of a snapshot install or restore."""
    me = spotify.env.node_id
    rng = _rng(sim)

    async def crash(where: str) -> None:
        sim.fault("crash_installing", node=me, step=where)
        sim.crash(me)
        restart_later(sim, me, rng.uniform(0.5, 2.0))
        await anyio.lowlevel.checkpoint()  # cancelled here: the crash takes effect

    async def step(name: str) -> None:
        if _may_crash(sim) and rng.random() < INSTALL_CRASH[name]:
            await crash(name)

    async def batch() -> None:
        if _may_crash(sim) and rng.random() < RESTORE_CRASH:
            await crash("restore")

    spotify.ring.on_install_step = step
    spotify.machine.on_restore_batch = batch


async def disrupt(sim: Simulation) -> None:
    """Make nodes fall behind the others' log start, one at a time: cut one off for a long
    stretch early on; then, until heal, lose a node's disk now and then (it comes back
    empty, as a learner; at most :data:`WIPES` times, each once the one before caught up)
    and cut random nodes off for a few seconds. Each returns behind the others' log start
    and catches up by installing a snapshot."""
    rng = random.Random(f"disrupt:{sim.seed}")
    end = sim.heal_at - 1.0
    await anyio.sleep(rng.uniform(2.0, 3.0))
    cut = await _find_victim(sim, rng, end - LONG_CUT[0])
    if cut is not None:
        await _cut_off(sim, cut, rng.uniform(*LONG_CUT))
    wiped: str | None = None
    wipes = 0
    while True:
        await anyio.sleep(rng.uniform(0.5, 1.5))
        if wipes < WIPES and _caught_up(sim, wiped) and rng.random() < 0.5:
            victim = await _find_victim(sim, rng, end - 3.0)
            if victim is None:
                return
            sim.fault("wipe", node=victim)
            sim.crash(victim)
            sim.wipe(victim)
            restart_later(sim, victim, rng.uniform(1.0, 2.0))
            wiped, wipes = victim, wipes + 1
            continue
        length = rng.uniform(*SHORT_CUT)
        node = await _find_victim(sim, rng, end - length)
        if node is None:
            return
        await _cut_off(sim, node, length)


def _caught_up(sim: Simulation, name: str | None) -> bool:
    """Whether the node ``name`` (if any) is running and no longer a learner: a cluster
    where most members lost their disks has lost its log."""
    if name is None:
        return True
    spotify = sim.nodes[name].handle
    return isinstance(spotify, SpotifyNode) and not spotify.ring.core.learner


async def _cut_off(sim: Simulation, node: str, seconds: float) -> None:
    """Cut ``node`` off from the other nodes (not from clients) for ``seconds``."""
    seconds = min(seconds, max(0.0, sim.heal_at - 1.0 - sim.now()))
    sim.fault("cut_off", node=node, seconds=round(seconds, 3))
    pairs = sim.net.partition([[node], [n for n in sim.names if n != node]])
    await anyio.sleep(seconds)
    sim.net.unblock(pairs)


async def is_wiped(sim: Simulation, name: str, disk: Disk) -> bool:
    """A restarted node with nothing on its disk lost it: it must come back as a learner."""
    tables = await disk.db.execute("SELECT name FROM sqlite_master", sync=False)
    return sim.nodes[name].incarnation > 1 and not tables


def replay(history: dict[int, tuple[int, bytes]], upto: int) -> str:
    """The catalog digest of applying the whole history up to ``upto`` to an empty catalog."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        conn.execute("BEGIN")
        catalog.create_schema(conn)
        for seq in sorted(s for s in history if s <= upto):
            epoch, data = history[seq]
            catalog.apply_encoded(conn, catalog.LogPosition(epoch, seq), data)
        conn.execute("COMMIT")
        return snapshot.catalog_digest(conn)
    finally:
        conn.close()


async def check_state_is_history(sim: Simulation) -> None:
    """After heal: every node's catalog equals replaying the whole history (kept by the
    checker), up to the last entry anyone applied."""
    nodes = {name: sim.nodes[name].handle for name in sim.names}
    running = {n: s for n, s in nodes.items() if isinstance(s, SpotifyNode)}
    for name in sorted(set(nodes) - set(running)):
        sim.violation(f"state: {name} is not running at the end", check=STATE)
    commit = max((s.ring.commit_position for s in running.values()), default=None)
    for spotify in running.values():
        if commit is not None:
            with anyio.move_on_after(10.0):
                await spotify.ring.wait_applied(commit)
    history = sim.state(Ground).log_history
    top = max(history, default=0)
    want = replay(history, top)
    for name, spotify in running.items():
        pos = spotify.replica.position
        digest = await spotify.replica.read(snapshot.catalog_digest)
        if digest != want:
            sim.violation(
                f"state: {name}'s catalog at {pos} differs from replaying the history up to "
                f"seq {top} ({digest[:12]} != {want[:12]})",
                check=STATE,
            )
