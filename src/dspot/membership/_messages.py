"""Membership wire messages. Each is an RPC request (idempotent: SWIM tolerates repeats).

Every message carries ``origin``, the sender's own current record: the freshest news about
the sender, and the identity the driver checks against the authenticated RPC peer.
``updates`` are piggybacked gossip.
"""

from __future__ import annotations

import attrs

from dspot import wire
from dspot.membership._view import Member


@wire.message("membership.ping", idempotent=True)
@attrs.frozen
class Ping:
    """Are you alive? Answered with :class:`Ack` in the RPC response."""

    origin: Member
    seq: int
    target: str
    updates: tuple[Member, ...] = ()


@wire.message("membership.ack", idempotent=True)
@attrs.frozen
class Ack:
    """Answer to ``Ping`` number ``seq``; also forwarded one way by an indirect prober."""

    origin: Member
    seq: int
    updates: tuple[Member, ...] = ()


@wire.message("membership.ping_req", idempotent=True)
@attrs.frozen
class PingReq:
    """Please ping ``target`` for me and forward its ack as ``Ack(seq)`` (one way)."""

    origin: Member
    seq: int
    target: str
    target_address: str
    updates: tuple[Member, ...] = ()


@wire.message("membership.gossip", idempotent=True)
@attrs.frozen
class Gossip:
    """Updates only (one way); also how a graceful leave is announced."""

    origin: Member
    updates: tuple[Member, ...] = ()


@wire.message("membership.sync", idempotent=True)
@attrs.frozen
class Sync:
    """Push-pull: my whole table; answer with yours (:class:`SyncReply`)."""

    origin: Member
    members: tuple[Member, ...]
    join: bool = False


@wire.message("membership.sync_reply", idempotent=True)
@attrs.frozen
class SyncReply:
    origin: Member
    members: tuple[Member, ...]


@wire.message("membership.received", idempotent=True)
@attrs.frozen
class Received:
    """The RPC response to a one-way message."""


Message = Ping | Ack | PingReq | Gossip | Sync | SyncReply
