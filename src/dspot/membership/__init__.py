"""Ring membership with SWIM failure detection (re-exports)."""

from dspot.membership._view import (
    EventKind,
    Member,
    MembershipEvent,
    MemberState,
    RingView,
    ring_order,
    ring_position,
    ring_successors,
)

__all__ = [
    "EventKind",
    "Member",
    "MemberState",
    "MembershipEvent",
    "RingView",
    "ring_order",
    "ring_position",
    "ring_successors",
]
