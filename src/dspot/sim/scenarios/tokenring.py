"""Scenario ``tokenring``: every node submits log entries under the whole fault model, with
log compaction and snapshot installs happening many times per seed.

Each node runs an :class:`~dspot.rpc.RpcNode`, a :class:`~dspot.tokenring.TokenRing` and a
submitter that appends entries with unique ids (retrying a failed submit with the *same*
id, so deduplication is exercised) and then reads its own write back on another node.

The ring drives :class:`Ledger`, a state machine kept on the node's simulated disk (a hash
chain over every entry applied, and counts per submitter) that takes snapshots. The
configuration is tiny on purpose — a snapshot every ``compact_every`` entries, a memory
window of a few entries, a small id window, snapshots sent in small chunks — so members
compact, read entries back from disk, and install snapshots all the time. On top of the
nemesis (crashes, wipes, partitions, loss, latency, slow disks) the workload cuts one node
off for a long stretch, so it returns far behind the other logs' start, and members crash
in the middle of snapshot installs (while receiving chunks, with the file complete, with
the new base recorded, after restoring the state).

The apply callbacks report to ground truth kept outside the nodes, where crashes cannot
touch it: the full history (``seq`` → entry) lives in the checker, never in the nodes.

**View**: the ring runs on real SWIM membership (:class:`~dspot.membership.Membership`,
every other node as a seed), with ``min_members`` set to the cluster size so a restarted
node that knows only itself never counts itself a majority. Setting
``sim.state(Ground).oracle_view = True`` (before the nodes start) runs it instead on an oracle view
fed by the simulation's knowledge of who is up and reachable.

Checks (DESIGN.md invariants 2, 3, 7):

* token safety: no two members ever apply different entries at one ``seq`` (so no
  ``(epoch, seq)`` is committed twice), no entry id is in the history twice, and every
  acknowledged submit is in the history exactly once, at the position it was given;
* state = history: every member's state (after snapshot installs, restores and restarts)
  equals replaying the full history up to the position it claims;
* convergence: after heal and a quiet period every node has reached the same position,
  with the same state;
* liveness: after heal + ``SETTLE`` every node's submits succeed, and none fails.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
import attrs

from dspot.disk import Database
from dspot.env import NodeEnv
from dspot.membership import Membership, RingView
from dspot.rpc import RpcMechanism, RpcNode
from dspot.sim._checks import Check, Sabotage
from dspot.sim._cluster import Simulation
from dspot.sim._nemesis import FaultConfig
from dspot.sim._scenario import Scenario, register
from dspot.sim._stranger import StrangerConfig
from dspot.testing import StaticView
from dspot.tokenring import (
    CommittedEntry,
    CommitTimeout,
    LogPosition,
    NoQuorum,
    SnapshotReader,
    SnapshotWriter,
    TokenRing,
    TokenRingConfig,
    TokenRingMechanism,
)

SAFETY = "token-safety"
ENTRY_DATA = "entry-data"
READ_YOUR_WRITES = "read-your-writes"
STATE = "state-is-history"
CONVERGENCE = "convergence"
ACKED = "acked-once"
RESUMES = "submits-resume"
SECRET = b"simulated cluster secret"
PORT = 7100
SETTLE = 5.0
"""Seconds after heal by which submits must work again on every node."""
QUIET = 4.0
"""Seconds before the end when submitters stop, so the logs can converge."""
CONFIG = TokenRingConfig(
    max_batch=4,
    memory_entries=6,
    compact_every=8,
    keep_entries=3,
    dedupe_window=40,
    snapshot_chunk=256,
)
LONG_PARTITION = (8.0, 12.0)
"""How long (seconds) the workload first cuts one node off: far longer than it takes the
others to compact past everything it has."""
SHORT_PARTITION = (2.0, 4.0)
"""How long each later cut lasts (long enough to fall behind the others' log start)."""
INSTALL_CRASH = {"chunk": 0.01, "file": 0.15, "recorded": 0.15, "restored": 0.15}
"""Probability of crashing a member at each step of a snapshot install."""
WIPES = 2
"""Disk losses per run (each only once every earlier one has caught up)."""


def _chain(chain: str, seq: int, entry_id: str) -> str:
    return hashlib.sha256(f"{chain}|{seq}:{entry_id}".encode()).hexdigest()[:32]


def replay(history: dict[int, tuple[int, str]], upto: int) -> str:
    """The state hash a member must have after applying the history up to ``upto``."""
    chain = ""
    for seq in sorted(s for s in history if s <= upto):
        chain = _chain(chain, seq, history[seq][1])
    return chain


@attrs.define
class LedgerState:
    seq: int = 0
    chain: str = ""
    counts: dict[str, int] = attrs.field(factory=dict)
    recent: list[str] = attrs.field(factory=list)
    """The newest entry ids applied (so a snapshot spans several chunks)."""


class Ledger:
    """The scenario's state machine, on the node's simulated disk: the last position
    applied, a hash chain over the entries applied, counts per submitting node. Snapshots
    are its JSON; a restore replaces the row in one transaction."""

    def __init__(self, db: Database, report: Any) -> None:
        self._db = db
        self._report = report
        self.state = LedgerState()

    async def open(self) -> None:
        await self._db.executescript(
            "CREATE TABLE IF NOT EXISTS ledger (id INTEGER PRIMARY KEY CHECK (id = 1),"
            " state TEXT NOT NULL);"
        )
        rows = await self._db.execute("SELECT state FROM ledger WHERE id = 1", sync=False)
        if rows:
            self.state = LedgerState(**json.loads(rows[0][0]))
        self._report(self.state)

    async def _save(self, state: LedgerState) -> None:
        text = json.dumps(attrs.asdict(state), sort_keys=True)
        async with self._db.transaction(sync=False) as tx:
            tx.execute("INSERT OR REPLACE INTO ledger (id, state) VALUES (1, ?)", (text,))
        self.state = state
        self._report(state)

    async def apply(self, entry: CommittedEntry) -> None:
        s = self.state
        node = entry.entry_id.split(".", 1)[0]
        await self._save(
            LedgerState(
                entry.position.seq,
                _chain(s.chain, entry.position.seq, entry.entry_id),
                dict(s.counts, **{node: s.counts.get(node, 0) + 1}),
                [*s.recent, entry.entry_id][-24:],
            )
        )

    async def applied_index(self) -> int:
        return self.state.seq

    async def save_snapshot(self, out: SnapshotWriter) -> None:
        await out.write(json.dumps(attrs.asdict(self.state), sort_keys=True).encode())

    async def restore_snapshot(self, snapshot: SnapshotReader) -> None:
        data = b"".join([chunk async for chunk in snapshot.chunks(100)])
        state = LedgerState(**json.loads(data))
        if state.seq > snapshot.index:
            raise ValueError(f"snapshot says {snapshot.index}, its state {state.seq}")
        # Positions after the last entry applied may be no-ops, which a state never sees.
        await self._save(attrs.evolve(state, seq=snapshot.index))


def _reachable(sim: Simulation, a: str, b: str) -> bool:
    return sim.nodes[b].up and not sim.net.is_blocked(a, b) and not sim.net.is_blocked(b, a)


@attrs.define
class Ground:
    """The full history and what each member did, kept outside the nodes for the checks."""

    oracle_view: bool = False
    """Run the ring on an oracle view instead of SWIM (set before the nodes start)."""
    committed: dict[int, tuple[int, str]] = attrs.Factory(dict)
    """``seq`` → ``(epoch, entry id)``, as first applied anywhere: the full history."""
    acked: list[tuple[str, int, int, str, float]] = attrs.Factory(list)
    """``(entry id, seq, epoch, submitter, submitted at)`` of every acknowledged submit."""
    failed: list[tuple[str, str, float, str]] = attrs.Factory(list)
    """``(entry id, submitter, submitted at, error)`` of every failed submit."""
    states: dict[str, LedgerState] = attrs.Factory(dict)
    """Each member's ledger state as last saved."""
    snapshots: dict[str, int] = attrs.Factory(dict)
    """Snapshots ``taken`` and ``restored`` over the whole run."""
    restart: list[tuple[float, str]] = attrs.Factory(list)
    """``(when, node)``: members to start again (crashed during an install, or wiped)."""
    wiped: list[str] = attrs.Factory(list)
    """Nodes whose disks were lost, in order."""
    install_rng: random.Random | None = None


async def node(env: NodeEnv, sim: Simulation, *, task_status: anyio.abc.TaskStatus[Any]) -> None:
    me = env.node_id
    ground = sim.state(Ground)
    committed, acked, failed, states = ground.committed, ground.acked, ground.failed, ground.states
    rng = env.child_rng("tokenring-workload")

    def report(state: LedgerState) -> None:
        states[me] = state

    async def apply(entry: CommittedEntry) -> None:
        seq, epoch = entry.position.seq, entry.position.epoch
        first = committed.setdefault(seq, (epoch, entry.entry_id))
        if first != (epoch, entry.entry_id):
            sim.violation(
                f"fork at seq {seq}: {me} applied {(epoch, entry.entry_id)}, another "
                f"member applied {first}",
                check=SAFETY,
            )
        if entry.data != entry.entry_id.encode():
            sim.violation(f"{me}: entry {entry.entry_id} has the wrong data", check=ENTRY_DATA)
        await ledger.apply(entry)

    # A restarted node with nothing on disk lost its disk (a wipe): it rejoins as a learner.
    tables = await env.disk.db.execute("SELECT name FROM sqlite_master", sync=False)
    wiped = sim.nodes[me].incarnation > 1 and not tables
    ledger = Ledger(env.disk.db, report)
    await ledger.open()
    config = attrs.evolve(CONFIG, min_members=len(sim.names))
    async with contextlib.AsyncExitStack() as stack:
        rpc = await stack.enter_async_context(RpcNode(env, listen=f"{me}:{PORT}", secret=SECRET))
        view: RingView
        if ground.oracle_view:
            addresses = {n: f"{n}:{PORT}" for n in sim.names}
            view = StaticView.fixed(me, addresses, reachable=lambda a, b: _reachable(sim, a, b))
        else:
            seeds = [f"{n}:{PORT}" for n in sim.names if n != me]
            view = await stack.enter_async_context(Membership(env, rpc, seeds=seeds))
        machine = _Checked(ledger, apply, ground.snapshots)
        ring = await stack.enter_async_context(
            TokenRing(
                env,
                rpc,
                view,
                config,
                state_machine=machine,
                learner=wiped,
            )
        )
        ring.on_install_step = _install_crasher(sim, me)
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


@attrs.define
class _Checked:
    """The ledger as the ring sees it: applies go through the checker's ground truth."""

    ledger: Ledger
    check: Any
    counts: dict[str, int]
    """Snapshots taken and restored, over the whole run (to show they happen)."""

    async def apply(self, entry: CommittedEntry) -> None:
        await self.check(entry)

    async def applied_index(self) -> int:
        return await self.ledger.applied_index()

    async def save_snapshot(self, out: SnapshotWriter) -> None:
        self.counts["taken"] = self.counts.get("taken", 0) + 1
        await self.ledger.save_snapshot(out)

    async def restore_snapshot(self, snapshot: SnapshotReader) -> None:
        self.counts["restored"] = self.counts.get("restored", 0) + 1
        await self.ledger.restore_snapshot(snapshot)


def _install_crasher(sim: Simulation, me: str) -> Any:
    """Crash this member at a step of a snapshot install, now and then, before heal."""
    ground = sim.state(Ground)
    if ground.install_rng is None:
        ground.install_rng = random.Random(f"install:{sim.seed}")
    rng = ground.install_rng

    async def step(name: str) -> None:
        if sim.now() < sim.heal_at - 3.0 and rng.random() < INSTALL_CRASH[name]:
            sim.fault("crash_installing", node=me, step=name)
            sim.crash(me)
            ground.restart.append((sim.now() + rng.uniform(0.5, 2.0), me))
            await anyio.lowlevel.checkpoint()  # cancelled here: the crash takes effect

    return step


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
        got = sim.state(Ground).committed.get(seq)
        if got is not None and got[1] != eid:
            message = f"{me} wrote {eid} at seq {seq} but {other} has {got[1]} there"
            sim.violation(message, check=READ_YOUR_WRITES)


async def workload(sim: Simulation) -> None:
    """Cut one node off at a time, the first for a long stretch, the others for a few
    seconds (each comes back behind the others' logs); wipe a node's disk now and then;
    restart members crashed during a snapshot install."""
    rng = random.Random(f"tokenring-workload:{sim.seed}")
    next_cut = rng.uniform(2.0, 5.0)
    length = rng.uniform(*LONG_PARTITION)
    pairs: list[tuple[str, str]] = []
    heal_cut = 0.0
    wipes = sorted(rng.uniform(3.0, sim.heal_at - 6.0) for _ in range(WIPES))
    while sim.now() < sim.duration:
        await anyio.sleep(0.1)
        now = sim.now()
        if wipes and now >= wipes[0]:
            wipes.pop(0)
            _wipe(sim, rng)
        if pairs and now >= heal_cut:
            sim.net.unblock(pairs)
            pairs = []
            next_cut = now + rng.uniform(0.5, 1.5)
            length = rng.uniform(*SHORT_PARTITION)
        elif not pairs and now >= next_cut and now + length < sim.heal_at - 1.0:
            victim = rng.choice(sim.names)
            sim.fault("cut_off", node=victim, seconds=round(length, 3))
            pairs = sim.net.partition([[victim], [n for n in sim.names if n != victim]])
            heal_cut = now + length
        restart = sim.state(Ground).restart
        for item in sorted(restart):
            if item[0] <= now:
                restart.remove(item)
                await sim.start(item[1])


def _wipe(sim: Simulation, rng: random.Random) -> None:
    """Lose one node's disk, unless a node that lost it earlier has not caught up yet: a
    cluster where most members lost their disks has lost its log, and cannot recover."""
    wiped = sim.state(Ground).wiped
    for name in wiped:
        ring = sim.nodes[name].handle
        if not isinstance(ring, TokenRing) or ring.core.learner:
            return
    up = [n for n in sim.names if sim.nodes[n].up]
    if not up:
        return
    victim = rng.choice(up)
    sim.fault("wipe", node=victim)
    wiped.append(victim)
    sim.crash(victim)
    sim.wipe(victim)
    sim.state(Ground).restart.append((sim.now() + rng.uniform(1.0, 4.0), victim))


POWER_LOSS = FaultConfig(
    kinds=("crash",), min_gap=0.3, max_gap=1.5, min_duration=0.3, max_duration=3.0, max_down=4
)
"""Frequent crashes of up to four of the five nodes at once (a rack losing power)."""


def power_loss(scenario: Scenario) -> Scenario:
    """The scenario with :data:`POWER_LOSS` as its only faults."""
    return attrs.evolve(scenario, faults=POWER_LOSS)


def check(sim: Simulation) -> None:
    ground = sim.state(Ground)
    history, states, acked, failed = ground.committed, ground.states, ground.acked, ground.failed
    # State = history: each member's state is the full history replayed to its position.
    final = {name: states.get(name, LedgerState()) for name in sim.names}
    for name, state in final.items():
        want = replay(history, state.seq)
        if state.chain != want:
            sim.violation(
                f"{name}'s state at seq {state.seq} differs from replaying the history "
                f"({state.chain[:12]} != {want[:12]})",
                check=STATE,
            )
    # Convergence: everyone ends with the whole history applied.
    top = max(history, default=0)
    want = replay(history, top)
    for name, state in final.items():
        if state.chain != want:
            message = f"{name} did not converge: applied up to {state.seq}, history {top}"
            sim.violation(message, check=CONVERGENCE)
    # Token safety: every acknowledged submit is in the history exactly once, where told.
    where: dict[str, list[int]] = {}
    for seq, (_epoch, eid) in sorted(history.items()):
        where.setdefault(eid, []).append(seq)
    for eid, seq, epoch, src, _ in acked:
        at = where.get(eid, [])
        if at != [seq] or history.get(seq) != (epoch, eid):
            sim.violation(
                f"acknowledged submit {eid} (from {src}, given ({epoch}, {seq})) is at {at} "
                "in the final log",
                check=ACKED,
            )
    for eid, seqs in where.items():
        if len(seqs) > 1:
            message = f"entry {eid} is in the final log {len(seqs)} times: {seqs}"
            sim.violation(message, check=ACKED)
    # Liveness after heal.
    since = sim.heal_at + SETTLE
    for eid, src, started, error in failed:
        if started > since:
            sim.violation(
                f"submit {eid} on {src} started at {started:.2f}s (after heal) failed: {error}",
                check=RESUMES,
            )
    for name in sim.names:
        if not any(src == name and started > since for _, _, _, src, started in acked):
            sim.violation(f"no submit on {name} succeeded after heal + {SETTLE:g}s", check=RESUMES)
    if not acked:
        sim.violation("no submit succeeded at all", check=RESUMES)


def entry_forger(scenario: Scenario) -> Scenario:
    """The stranger only tries to append an entry of its own to members' logs (refused
    unless nodes admit connections that did not prove the secret)."""
    return attrs.evolve(scenario, stranger=StrangerConfig(attacks=("forge_entry",)))


SCENARIO = register(
    Scenario(
        name="tokenring",
        description="submits on every node under the whole fault model, with compaction "
        "and snapshot installs; safety, state = history, convergence",
        node=node,
        check=check,
        workload=workload,
        nodes=5,
        duration=36.0,
        heal_fraction=0.55,
        stranger=StrangerConfig(),
        checks=(
            Check(
                SAFETY,
                "no two members apply different entries at one seq",
                Sabotage({TokenRingMechanism.MAJORITY}, seeds=(1,)),
            ),
            Check(
                ENTRY_DATA,
                "every applied entry carries the data it was submitted with",
                Sabotage({RpcMechanism.AUTH}, seeds=(1,), adapt=entry_forger),
            ),
            Check(
                READ_YOUR_WRITES,
                "a member that applied an acknowledged submit's seq holds that entry there",
                Sabotage({TokenRingMechanism.MAJORITY}, seeds=(1,)),
            ),
            Check(
                STATE,
                "every member's state is the history replayed up to its position",
                Sabotage({TokenRingMechanism.SNAPSHOT_TAIL}, seeds=(1,)),
            ),
            Check(
                CONVERGENCE,
                f"after heal and {QUIET:g}s without submits every member has the whole history",
                Sabotage({TokenRingMechanism.SNAPSHOT_TAIL}, seeds=(1,)),
            ),
            Check(
                ACKED,
                "every acknowledged submit is in the history once, where it was told",
                Sabotage({TokenRingMechanism.FSYNC}, seeds=(1,), adapt=power_loss),
            ),
            Check(
                RESUMES,
                f"liveness: {SETTLE:g}s after heal every node's submits succeed, none fails",
                Sabotage({TokenRingMechanism.EPOCH_BUMP}, seeds=(1,)),
            ),
        ),
    )
)
