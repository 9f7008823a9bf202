"""Invariant 10, liveness first: no live, reachable member is declared dead.

A scenario that runs :class:`~dspot.membership.Membership` starts :func:`watch_membership`
next to each instance; it records every suspicion and death that instance declares. After
the run, :func:`check_no_false_deaths` compares the deaths with the run's
:class:`~dspot.sim.FaultRecord`: a member declared dead although it had been running, and
reachable from everyone, for the whole ``grace`` period before is a violation. Such a
member was busy, not gone: the typical cause is an event loop blocked by users' work, so
its probes went unanswered.
"""

from __future__ import annotations

from typing import Any

import anyio
import anyio.abc
import attrs

from dspot.membership import EventKind, MembershipEvent
from dspot.membership._view import RingView
from dspot.sim._cluster import Simulation

__all__ = ["Declaration", "check_no_false_deaths", "declarations", "watch_membership"]

_WATCHED = {EventKind.SUSPECT: "suspect", EventKind.DEAD: "dead"}


@attrs.frozen
class Declaration:
    """``observer`` declared ``subject`` suspect or dead at virtual time ``at``."""

    at: float
    observer: str
    subject: str
    kind: str
    incarnation: int


@attrs.define
class _Declared:
    found: list[Declaration] = attrs.Factory(list)


def declarations(sim: Simulation) -> list[Declaration]:
    """Every declaration recorded so far, in the order they were made."""
    return sim.state(_Declared).found


async def watch_membership(
    sim: Simulation,
    observer: str,
    membership: RingView,
    *,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Record the suspicions and deaths ``observer``'s membership declares, until cancelled."""
    log = declarations(sim)
    async with membership.subscribe() as events:
        task_status.started()
        event: MembershipEvent
        async for event in events:
            kind = _WATCHED.get(event.kind)
            if kind is not None:
                m = event.member
                log.append(Declaration(sim.now(), observer, m.node_id, kind, m.incarnation))


FALSE_DEATH = "no-false-death"
"""The name :func:`check_no_false_deaths` reports under."""


def check_no_false_deaths(sim: Simulation, *, grace: float) -> dict[str, Any]:
    """Report every death of a member that was up and reachable for ``grace`` seconds before.

    ``grace`` should cover a detection (``MembershipConfig.detection_bound``) plus gossip:
    a fault that ended less than ``grace`` ago may still excuse a declaration. Returns counts
    for the scenario's summary: deaths seen, deaths excused by faults, false deaths.
    """
    record = sim.record
    deaths = excused = false = 0
    for d in declarations(sim):
        if d.kind != "dead":
            continue
        deaths += 1
        start = d.at - grace
        if not (
            record.up_throughout(d.subject, start, d.at)
            and record.reachable_throughout(d.subject, start, d.at)
        ):
            excused += 1
            continue
        false += 1
        sim.violation(
            f"{d.observer} declared {d.subject} dead at {d.at:.3f}s, but {d.subject} had been "
            f"running and reachable since {start:.3f}s (liveness first)",
            check=FALSE_DEATH,
        )
    suspicions = sum(1 for d in declarations(sim) if d.kind == "suspect")
    return {"deaths": deaths, "excused": excused, "false_deaths": false, "suspicions": suspicions}
