"""A membership view scripted from outside, for tests and simulation scenarios.

:class:`ScriptedMembership` is one shared directory of members whose states a test (or the
simulation's workload) sets directly; :meth:`ScriptedMembership.view` gives each node its
own :class:`StaticView` (a :class:`~dspot.membership.RingView`) over that directory. Every
view sees the same states at the same instant, like a perfect failure detector that cannot
tell a partition from a healthy network.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import anyio
import attrs
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from dspot.membership._view import (
    EventKind,
    Member,
    MembershipEvent,
    MemberState,
    ring_order,
)

_EVENT_FOR_STATE = {
    MemberState.ALIVE: EventKind.ALIVE,
    MemberState.SUSPECT: EventKind.SUSPECT,
    MemberState.DEAD: EventKind.DEAD,
    MemberState.LEFT: EventKind.LEFT,
}


class ScriptedMembership:
    """Members and their states, changed by calls; events go to every subscribed view."""

    def __init__(self) -> None:
        self._members: dict[str, Member] = {}
        self._subscribers: list[MemoryObjectSendStream[MembershipEvent]] = []

    @classmethod
    def shared(cls, data: dict[str, Any], names: list[str], port: int) -> ScriptedMembership:
        """The one directory a simulation's nodes share, kept in ``sim.data`` (made on first
        use with every node alive at ``name:port``)."""
        found = data.get("membership")
        if found is None:
            found = cls()
            for name in names:
                found.add(name, f"{name}:{port}")
            data["membership"] = found
        if not isinstance(found, ScriptedMembership):
            raise TypeError("sim.data['membership'] is not a ScriptedMembership")
        return found

    def view(self, self_id: str) -> StaticView:
        return StaticView(self, self_id)

    def add(self, node_id: str, address: str) -> None:
        """Add (or re-add) a member as alive; subscribers see ``JOINED``."""
        member = Member(node_id=node_id, address=address, state=MemberState.ALIVE)
        old = self._members.get(node_id)
        if old is not None:
            member = attrs.evolve(member, incarnation=old.incarnation + 1)
        self._members[node_id] = member
        self._publish(MembershipEvent(EventKind.JOINED, member))

    def set_state(self, node_id: str, state: MemberState) -> None:
        """Change a member's state; no event when it is unchanged."""
        old = self._members[node_id]
        if old.state is state:
            return
        member = attrs.evolve(old, state=state, incarnation=old.incarnation + 1)
        self._members[node_id] = member
        self._publish(MembershipEvent(_EVENT_FOR_STATE[state], member))

    def state(self, node_id: str) -> MemberState | None:
        member = self._members.get(node_id)
        return None if member is None else member.state

    def _publish(self, event: MembershipEvent) -> None:
        for stream in list(self._subscribers):
            try:
                stream.send_nowait(event)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._subscribers.remove(stream)

    def _members_sorted(self) -> list[Member]:
        return [self._members[k] for k in sorted(self._members)]

    @asynccontextmanager
    async def _subscribe(self) -> AsyncIterator[MemoryObjectReceiveStream[MembershipEvent]]:
        send, receive = anyio.create_memory_object_stream[MembershipEvent](math.inf)
        self._subscribers.append(send)
        try:
            yield receive
        finally:
            if send in self._subscribers:
                self._subscribers.remove(send)
            send.close()
            receive.close()


class StaticView:
    """One node's :class:`~dspot.membership.RingView` over a :class:`ScriptedMembership`."""

    def __init__(self, directory: ScriptedMembership, self_id: str) -> None:
        self._dir = directory
        self._self_id = self_id

    @property
    def self_id(self) -> str:
        return self._self_id

    def members(self) -> list[Member]:
        return self._dir._members_sorted()

    def live(self) -> list[Member]:
        up = {
            m.node_id: m
            for m in self._dir._members_sorted()
            if m.state in (MemberState.ALIVE, MemberState.SUSPECT)
        }
        return [up[n] for n in ring_order(list(up))]

    def configured(self) -> list[Member]:
        return [m for m in self._dir._members_sorted() if m.state is not MemberState.LEFT]

    def get(self, node_id: str) -> Member | None:
        return self._dir._members.get(node_id)

    def subscribe(self) -> AbstractAsyncContextManager[MemoryObjectReceiveStream[MembershipEvent]]:
        return self._dir._subscribe()
