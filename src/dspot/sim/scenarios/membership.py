"""Scenario ``membership``: SWIM membership under crashes, partitions, loss and churn.

Every node runs :class:`~dspot.membership.Membership` over its RPC node. The last node joins
late; the one before it leaves gracefully mid-run and rejoins; every node changes its
metadata once. Ground truth (when each membership instance ran, and why it stopped) and
every event each instance saw are kept in the run's :class:`Ground`, outside the nodes.

Checks:

* **detection** -- a crashed node that stays down for ``config.detection_bound(n)`` seconds
  is, at some point within that bound, not live in the view of every member that ran
  throughout (it was declared dead, or already was);
* **convergence** -- at the end (faults healed at ``heal_at``) every running member has the
  same view, in which exactly the running members are live, and all of them alive;
* **no false positives on a healthy network** -- after heal plus one bound nobody declares
  a running member dead.

False positives during the fault phase (a live node declared dead, which a partition or a
loss spike can legitimately cause) are counted, traced as ``op.membership.false_positive``
and left in :attr:`Ground.false_positives`; they are not violations.
"""

from __future__ import annotations

from typing import Any

import anyio
import anyio.abc
import attrs

from dspot.env import NodeEnv
from dspot.membership import (
    EventKind,
    Membership,
    MembershipConfig,
    MembershipEvent,
    MembershipMechanism,
    MemberState,
)
from dspot.rpc import RpcNode
from dspot.sim._checks import Check, Sabotage
from dspot.sim._cluster import Simulation
from dspot.sim._nemesis import FaultConfig
from dspot.sim._scenario import Scenario, register
from dspot.sim._stranger import StrangerConfig
from dspot.transport import LinkModel

DETECTION = "detection"
CONVERGENCE = "convergence"
NO_FALSE_DEATH = "no-false-death-after-heal"
SECRET = b"simulated membership secret"
PORT = 7100
CONFIG = MembershipConfig()
LIVE_STATES = ("alive", "suspect")


@attrs.define
class Life:
    """One membership instance of one node: when it ran and why it stopped."""

    node: str
    index: int
    begin: float
    started: float | None = None
    end: float | None = None
    reason: str = ""
    """``crash``, ``left`` or ``end`` (the run finished)."""


@attrs.define
class Holder:
    """The node handle: its current membership instance, if any."""

    membership: Membership | None = None
    life: Life | None = None


Log = list[tuple[float, str, int, str, str, int]]
"""``(when, observer, its instance, event kind, about whom, their incarnation)``."""
FinalViews = dict[str, list[tuple[str, str, int, tuple[tuple[str, str], ...]]]]


@attrs.define
class Ground:
    """Ground truth and every event each membership instance saw, for the checks."""

    config: MembershipConfig = CONFIG
    log: Log = attrs.Factory(list)
    lives: list[Life] = attrs.Factory(list)
    """Every membership instance that ran: when, where, and why it stopped."""
    final: FinalViews = attrs.Factory(dict)
    """Each running member's view at the end."""
    detections_checked: int = 0
    """(Crash, observer) pairs the detection check looked at."""
    false_positives: int = 0
    """Running members declared dead (during faults they are not violations)."""


def _config(sim: Simulation) -> MembershipConfig:
    return sim.state(Ground).config


async def _record(
    membership: Membership,
    life: Life,
    sim: Simulation,
    *,
    task_status: anyio.abc.TaskStatus[None],
) -> None:
    log = sim.state(Ground).log
    async with membership.subscribe() as events:
        task_status.started()
        event: MembershipEvent
        async for event in events:
            m = event.member
            log.append(
                (sim.now(), life.node, life.index, event.kind.value, m.node_id, m.incarnation)
            )


async def node(env: NodeEnv, sim: Simulation, *, task_status: anyio.abc.TaskStatus[Any]) -> None:
    name = env.node_id
    lives = sim.state(Ground).lives
    config = _config(sim)
    rng = env.child_rng("scenario")
    first_boot = sim.nodes[name].incarnation == 1
    seeds = [f"{n}:{PORT}" for n in sim.names[:3] if n != name]
    late = first_boot and name == sim.names[-1]
    churn = first_boot and len(sim.names) >= 4 and name == sim.names[-2]
    meta_at = rng.uniform(3.0, 0.5 * sim.heal_at)
    holder = Holder()
    async with RpcNode(env, listen=f"{name}:{PORT}", secret=SECRET, connect_timeout=1.0) as rpc:
        task_status.started(holder)
        if late:
            await anyio.sleep(rng.uniform(2.0, 5.0))
        left_once = False
        while True:
            life = Life(name, sum(1 for x in lives if x.node == name), sim.now())
            lives.append(life)
            membership = Membership(
                env,
                rpc,
                config,
                seeds=seeds,
                meta={"version": "1", "life": str(life.index)},
            )
            try:
                async with anyio.create_task_group() as tg:
                    await tg.start(_record, membership, life, sim)
                    await tg.start(membership.run)
                    life.started = sim.now()
                    holder.membership, holder.life = membership, life
                    if churn and not left_once:
                        await anyio.sleep(max(0.0, rng.uniform(6.0, 10.0) - sim.now()))
                        await membership.leave()
                        left_once = True
                        life.end, life.reason = sim.now(), "left"
                        sim.op("membership.leave", node=name, life=life.index)
                        tg.cancel_scope.cancel()
                    else:
                        if sim.now() < meta_at:
                            await anyio.sleep(meta_at - sim.now())
                            membership.update_meta({"version": "2", "life": str(life.index)})
                        await anyio.sleep_forever()
            finally:
                if life.end is None:
                    life.end = sim.now()
                    life.reason = "end" if sim.nodes[name].up else "crash"
                holder.membership = holder.life = None
            await anyio.sleep(rng.uniform(2.0, 5.0))


async def workload(sim: Simulation) -> None:
    """Let the nodes run; just before the end, snapshot every running member's view."""
    await anyio.sleep(sim.duration - 0.001)
    final: FinalViews = {}
    for name in sim.names:
        holder = sim.nodes[name].handle if sim.nodes[name].up else None
        if isinstance(holder, Holder) and holder.membership is not None:
            final[name] = [
                (m.node_id, m.state.value, m.incarnation, tuple(sorted(m.meta.items())))
                for m in holder.membership.members()
            ]
    sim.state(Ground).final = final
    await anyio.sleep(0.001)


def _view_at(log: Log, observer: Life, subject: str, t: float) -> str:
    """The subject's state in one instance's view just after time ``t`` ('' if unknown)."""
    state = ""
    for when, node, index, kind, about, _inc in log:
        if when > t:
            break
        if node == observer.node and index == observer.index and about == subject:
            state = _STATE_AFTER[kind] or state
    return state


_STATE_AFTER = {
    EventKind.JOINED.value: "alive",
    EventKind.ALIVE.value: "alive",
    EventKind.UPDATED.value: "alive",
    EventKind.SUSPECT.value: "suspect",
    EventKind.DEAD.value: "dead",
    EventKind.LEFT.value: "left",
}


def check(sim: Simulation) -> None:
    config = _config(sim)
    bound = config.detection_bound(len(sim.names))
    ground = sim.state(Ground)
    lives, log = ground.lives, ground.log
    end = sim.duration
    crashes = [x for x in lives if x.reason == "crash" and x.end is not None]
    checked = 0
    for crashed in crashes:
        assert crashed.end is not None
        t_crash = crashed.end
        back = min(
            (x.begin for x in lives if x.node == crashed.node and x.begin >= t_crash),
            default=end,
        )
        if back < t_crash + bound:
            continue
        for observer in lives:
            if observer.node == crashed.node or observer.started is None:
                continue
            if observer.started > t_crash or (observer.end or end) < t_crash + bound:
                continue
            checked += 1
            if _view_at(log, observer, crashed.node, t_crash) not in LIVE_STATES:
                continue
            declared = any(
                t_crash < when <= t_crash + bound
                and node == observer.node
                and index == observer.index
                and about == crashed.node
                and kind in ("dead", "left")
                for when, node, index, kind, about, _ in log
            )
            if not declared:
                sim.violation(
                    f"{crashed.node} crashed at {t_crash:.3f}s (down until {back:.3f}s) but "
                    f"{observer.node} (instance {observer.index}) still had it live "
                    f"{bound:.2f}s later",
                    check=DETECTION,
                )
    ground.detections_checked = checked

    false_positives = 0
    for when, node, _index, kind, about, inc in log:
        if kind != "dead":
            continue
        running = [
            x
            for x in lives
            if x.node == about and x.begin <= when - bound and (x.end is None or x.end > when)
        ]
        if not running:
            continue
        false_positives += 1
        sim.op("membership.false_positive", observer=node, subject=about, incarnation=inc, t=when)
        if when > sim.heal_at + bound:
            sim.violation(
                f"{node} declared running {about} dead at {when:.3f}s, after faults healed",
                check=NO_FALSE_DEATH,
            )
    ground.false_positives = false_positives
    sim.trace.record(
        "membership.summary", false_positives=false_positives, detections_checked=checked
    )

    final = ground.final
    running_now = sorted(x.node for x in lives if x.end is None or x.reason == "end")
    if not final:
        sim.violation("no member was running at the end", check=CONVERGENCE)
        return
    views = sorted(final.items())
    first_name, first_view = views[0]
    for name, view in views[1:]:
        if view != first_view:
            sim.violation(
                f"views differ at the end: {first_name} has {_brief(first_view)}, "
                f"{name} has {_brief(view)}",
                check=CONVERGENCE,
            )
    for name, view in views:
        live = sorted(m[0] for m in view if m[1] in LIVE_STATES)
        if live != running_now:
            message = f"{name} sees live {live} at the end; running: {running_now}"
            sim.violation(message, check=CONVERGENCE)
        not_alive = [m[0] for m in view if m[1] == MemberState.SUSPECT.value]
        if not_alive:
            sim.violation(f"{name} still suspects {not_alive} at the end", check=CONVERGENCE)


def lossy(scenario: Scenario) -> Scenario:
    """A steady 5 % loss and no other fault, from the start: every death is a false one."""
    return attrs.evolve(
        scenario, faults=FaultConfig(kinds=()), link=LinkModel(loss=0.05), heal_fraction=0.0
    )


def _brief(view: list[tuple[str, str, int, tuple[tuple[str, str], ...]]]) -> str:
    return ", ".join(f"{n}:{s}@{i}" for n, s, i, _ in view)


SCENARIO = register(
    Scenario(
        name="membership",
        description="SWIM membership under crashes, partitions, loss and churn; detection, "
        "convergence",
        node=node,
        check=check,
        workload=workload,
        nodes=5,
        duration=35.0,
        faults=FaultConfig(max_duration=12.0, max_loss=0.10),
        stranger=StrangerConfig(),
        checks=(
            Check(
                DETECTION,
                "a node down for a detection bound is not live in any member's view by then",
                Sabotage({MembershipMechanism.DETECTION}, seeds=(2,)),
            ),
            Check(
                CONVERGENCE,
                "at the end every running member has the same view: the running members, alive",
                Sabotage({MembershipMechanism.REFUTE}, seeds=(1,)),
            ),
            Check(
                NO_FALSE_DEATH,
                "after heal plus one bound nobody declares a running member dead",
                Sabotage(
                    {MembershipMechanism.SUSPICION, MembershipMechanism.INDIRECT_PROBES},
                    seeds=(1,),
                    adapt=lossy,
                ),
            ),
        ),
    )
)
