"""Member roles: observers gossip and publish services but own no data and cast no vote.

A gateway or a dashboard joins membership to learn the cluster (and resolve services through
the :class:`~dspot.registry.Registry`) without becoming a member of the token ring or a
blob-store owner. It says so in its metadata (``ROLE_KEY: OBSERVER``, set when it is
created, so the first incarnation anyone hears of already carries it), and data-owning
components look at the cluster through :class:`VoterView`, which leaves observers out.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from dspot.env import Mechanism
from dspot.membership._config import MembershipMechanism
from dspot.membership._view import Member, MembershipEvent, RingView

__all__ = ["OBSERVER", "ROLE_KEY", "VoterView", "is_observer", "observer_meta"]

ROLE_KEY = "dspot.role"
OBSERVER = "observer"


def is_observer(member: Member) -> bool:
    """Whether ``member`` declared itself an observer."""
    return member.meta.get(ROLE_KEY) == OBSERVER


def observer_meta(meta: Mapping[str, str] | None = None) -> dict[str, str]:
    """``meta`` plus the observer role: pass it to ``Membership(..., meta=...)``."""
    return {**(meta or {}), ROLE_KEY: OBSERVER}


class VoterView:
    """``view`` without its observers: what the token ring and the blob store should see.

    Majorities, ring order and data placement are computed over voters only, so an
    observer joining or dying never changes a quorum or moves a blob. ``disabled`` (the
    node's ``env.disabled``): :attr:`MembershipMechanism.OBSERVERS_APART` off lets
    observers through (sabotage tests only).
    """

    def __init__(self, view: RingView, *, disabled: Iterable[Mechanism] = ()) -> None:
        self.view = view
        self._apart = MembershipMechanism.OBSERVERS_APART not in set(disabled)

    def _observer(self, member: Member) -> bool:
        return self._apart and is_observer(member)

    @property
    def self_id(self) -> str:
        return self.view.self_id

    @property
    def joined(self) -> bool:
        return self.view.joined

    def members(self) -> list[Member]:
        return [m for m in self.view.members() if not self._observer(m)]

    def live(self) -> list[Member]:
        return [m for m in self.view.live() if not self._observer(m)]

    def configured(self) -> list[Member]:
        return [m for m in self.view.configured() if not self._observer(m)]

    def get(self, node_id: str) -> Member | None:
        member = self.view.get(node_id)
        return None if member is None or self._observer(member) else member

    def subscribe(self) -> AbstractAsyncContextManager[MemoryObjectReceiveStream[MembershipEvent]]:
        return self._subscribe()

    @asynccontextmanager
    async def _subscribe(self) -> AsyncIterator[MemoryObjectReceiveStream[MembershipEvent]]:
        send, receive = anyio.create_memory_object_stream[MembershipEvent](math.inf)

        async def pump(events: MemoryObjectReceiveStream[MembershipEvent]) -> None:
            async with send:
                async for event in events:
                    if not self._observer(event.member):
                        await send.send(event)

        async with receive, self.view.subscribe() as events, anyio.create_task_group() as tg:
            tg.start_soon(pump, events)
            try:
                yield receive
            finally:
                tg.cancel_scope.cancel()
