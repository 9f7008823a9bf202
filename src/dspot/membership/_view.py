"""What other primitives see of membership: members, their states, the ring, and events.

The token ring, the blob store and the registry depend only on :class:`RingView`, never on
how membership is implemented, so each can be tested with a scripted view.
"""

from __future__ import annotations

import bisect
import enum
import hashlib
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol

import attrs
from anyio.streams.memory import MemoryObjectReceiveStream


class MemberState(enum.Enum):
    """A member's state as one node sees it (SWIM)."""

    ALIVE = "alive"
    SUSPECT = "suspect"
    DEAD = "dead"
    LEFT = "left"


@attrs.frozen
class Member:
    """One cluster member as gossiped: identity, where to reach it, and its metadata."""

    node_id: str
    address: str
    incarnation: int = 0
    state: MemberState = MemberState.ALIVE
    meta: Mapping[str, str] = attrs.field(factory=dict)
    """Free-form metadata that spreads with membership (services, version, http address...)."""


class EventKind(enum.Enum):
    JOINED = "joined"
    SUSPECT = "suspect"
    ALIVE = "alive"
    DEAD = "dead"
    LEFT = "left"
    UPDATED = "updated"
    """The member's metadata changed."""


@attrs.frozen
class MembershipEvent:
    """A change in one member's state, delivered to subscribers in the order it was seen."""

    kind: EventKind
    member: Member


def ring_position(node_id: str) -> int:
    """A member's position on the hash ring (stable across processes and versions)."""
    return int.from_bytes(hashlib.sha256(node_id.encode()).digest()[:8], "big")


def ring_order(node_ids: Sequence[str]) -> list[str]:
    """``node_ids`` sorted by ring position (ties, which never happen in practice, by id)."""
    return sorted(node_ids, key=lambda n: (ring_position(n), n))


def ring_successors(key: bytes | str, node_ids: Sequence[str], count: int) -> list[str]:
    """The ``count`` members that follow ``key``'s position on the ring (placement)."""
    ordered = ring_order(node_ids)
    if not ordered:
        return []
    raw = key.encode() if isinstance(key, str) else key
    point = int.from_bytes(hashlib.sha256(raw).digest()[:8], "big")
    positions = [ring_position(n) for n in ordered]
    start = bisect.bisect_right(positions, point)
    return [ordered[(start + i) % len(ordered)] for i in range(min(count, len(ordered)))]


class RingView(Protocol):
    """A node's current view of the cluster."""

    @property
    def self_id(self) -> str: ...

    @property
    def joined(self) -> bool:
        """Whether this node has exchanged state with the cluster (at once for a node that
        knows no one to join). Until then the view holds little more than the node itself
        and says nothing about the others: a restarted or wiped node must not act on it as
        if it were the whole cluster."""
        ...

    def members(self) -> list[Member]:
        """Every known member, whatever its state, ordered by node id."""
        ...

    def live(self) -> list[Member]:
        """Members believed up (alive or suspect), self included, in ring order."""
        ...

    def configured(self) -> list[Member]:
        """The configured membership: every member that has not gracefully left (alive,
        suspect or dead). Majorities are counted against this."""
        ...

    def get(self, node_id: str) -> Member | None: ...

    def subscribe(self) -> AbstractAsyncContextManager[MemoryObjectReceiveStream[MembershipEvent]]:
        """Events from now on, in order, until the context exits."""
        ...
