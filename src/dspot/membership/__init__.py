"""Ring membership with SWIM failure detection (re-exports)."""

from dspot.membership._config import MembershipConfig, MembershipMechanism
from dspot.membership._core import MembershipCore, Output, Send
from dspot.membership._driver import Membership
from dspot.membership._messages import Ack, Gossip, Ping, PingReq, Received, Sync, SyncReply
from dspot.membership._roles import OBSERVER, ROLE_KEY, VoterView, is_observer, observer_meta
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
    "OBSERVER",
    "ROLE_KEY",
    "Ack",
    "EventKind",
    "Gossip",
    "Member",
    "MemberState",
    "Membership",
    "MembershipConfig",
    "MembershipCore",
    "MembershipEvent",
    "MembershipMechanism",
    "Output",
    "Ping",
    "PingReq",
    "Received",
    "RingView",
    "Send",
    "Sync",
    "SyncReply",
    "VoterView",
    "is_observer",
    "observer_meta",
    "ring_order",
    "ring_position",
    "ring_successors",
]
