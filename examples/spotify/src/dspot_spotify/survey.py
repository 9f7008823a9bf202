"""What every member holds: the ``spotify.status`` RPC and the survey that asks all members.

**Asking the other members.** Each node serves one RPC, ``spotify.status``
(:class:`StatusRequest`): its applied log position, its blob count and bytes, and — for a
list of sha256 digests sent as raw 32-byte values — a bitmap of which of them it holds. A
cluster document asks every live voter once, concurrently, with a short deadline
(:data:`STATUS_TIMEOUT`); a member that does not answer in time is shown with nulls. So the
under-replication count of a 10 000-song catalog costs one ~320 KB request per member, not
one request per song.

**Under-replicated** means: a song's audio has fewer copies on the live voters that answered
than the blob store's target for the current cluster, ``min(R, live voters)`` (the number
repair restores; with R above the live count no repair could ever satisfy R itself). Right
after a crash the dead node still counts as live but cannot answer, so its songs show up as
under-replicated until it is declared dead and repair has copied them again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import anyio
import attrs
from dspot import wire
from dspot.errors import DspotError, RemoteError
from dspot.membership import Member, MemberState
from dspot.rpc import Peer, RetryPolicy

from dspot_spotify import catalog
from dspot_spotify.parts import NodeParts

__all__ = [
    "HASHES_PER_CALL",
    "LIVE",
    "STATUS_TIMEOUT",
    "MemberStatus",
    "StatusReply",
    "StatusRequest",
    "serve_status",
    "survey",
]

STATUS_TIMEOUT = 1.0
"""Seconds a cluster document waits for each member's status (then shows nulls)."""
HASHES_PER_CALL = 64 * 1024
"""Digests per status request (2 MiB, well under the RPC frame limit)."""
_DIGEST = 32
LIVE: Final = (MemberState.ALIVE, MemberState.SUSPECT)
"""The states of members that count as live (asked, holding copies)."""
_STATUS_RETRY = RetryPolicy(attempts=1, attempt_timeout=STATUS_TIMEOUT)


# -- the status RPC ------------------------------------------------------------------------------


@wire.message("spotify.status", idempotent=True)
@attrs.frozen
class StatusRequest:
    """Ask a node for its status and which of the digests in ``payload`` it holds."""

    payload: bytes = b""
    """Concatenated raw sha256 digests (32 bytes each)."""


@wire.message("spotify.status_reply")
@attrs.frozen
class StatusReply:
    log_epoch: int
    log_seq: int
    blobs: int
    blob_bytes: int
    payload: bytes = b""
    """Bitmap: bit ``i`` (byte ``i // 8``, bit ``i % 8``) set when digest ``i`` is held."""


@attrs.frozen
class MemberStatus:
    """One member's answer: applied log position, blob totals, and which asked hashes it
    holds (indexes into the list that was asked about)."""

    log_position: catalog.LogPosition
    blobs: int
    bytes: int
    held: frozenset[int]


def _pack(hashes: Sequence[str]) -> bytes:
    return b"".join(bytes.fromhex(h) for h in hashes)


def _bitmap(flags: Sequence[bool]) -> bytes:
    out = bytearray((len(flags) + 7) // 8)
    for i, flag in enumerate(flags):
        if flag:
            out[i // 8] |= 1 << (i % 8)
    return bytes(out)


def _bits(bitmap: bytes, count: int, offset: int) -> set[int]:
    return {
        offset + i for i in range(count) if i // 8 < len(bitmap) and bitmap[i // 8] >> (i % 8) & 1
    }


def serve_status(node: NodeParts) -> None:
    """Serve ``spotify.status`` on ``node``'s RPC (call once its blob store runs)."""

    async def on_status(req: StatusRequest, peer: Peer) -> StatusReply:
        if len(req.payload) % _DIGEST:
            raise RemoteError("invalid", "payload is not a list of 32-byte digests")
        local = node.blobs.local
        digests = [req.payload[i : i + _DIGEST] for i in range(0, len(req.payload), _DIGEST)]
        pos = node.replica.position or catalog.LogPosition(0, 0)
        return StatusReply(
            log_epoch=pos.epoch,
            log_seq=pos.seq,
            blobs=local.count,
            blob_bytes=local.bytes,
            payload=_bitmap([local.get(d.hex()) is not None for d in digests]),
        )

    node.rpc.handle(StatusRequest, on_status)


def _local_status(node: NodeParts, hashes: Sequence[str]) -> MemberStatus:
    local = node.blobs.local
    return MemberStatus(
        log_position=node.replica.position or catalog.LogPosition(0, 0),
        blobs=local.count,
        bytes=local.bytes,
        held=frozenset(i for i, h in enumerate(hashes) if local.get(h) is not None),
    )


async def _ask(node: NodeParts, member: Member, hashes: Sequence[str]) -> MemberStatus | None:
    held: set[int] = set()
    reply: StatusReply | None = None
    batches = range(0, max(len(hashes), 1), HASHES_PER_CALL)
    try:
        with anyio.fail_after(STATUS_TIMEOUT * len(batches)):
            for start in batches:
                batch = hashes[start : start + HASHES_PER_CALL]
                reply = await node.rpc.call(
                    member.address,
                    StatusRequest(_pack(batch)),
                    timeout=STATUS_TIMEOUT,
                    retry=_STATUS_RETRY,
                )
                held |= _bits(reply.payload, len(batch), start)
    except (DspotError, TimeoutError):  # down, partitioned, not started, too slow
        return None
    assert reply is not None
    return MemberStatus(
        log_position=catalog.LogPosition(reply.log_epoch, reply.log_seq),
        blobs=reply.blobs,
        bytes=reply.blob_bytes,
        held=frozenset(held),
    )


async def survey(
    node: NodeParts, members: Sequence[Member], hashes: Sequence[str]
) -> dict[str, MemberStatus | None]:
    """Ask ``members`` (this node answers locally) concurrently; None for those that could
    not answer within :data:`STATUS_TIMEOUT`."""
    me = node.env.node_id
    found: dict[str, MemberStatus | None] = {m.node_id: None for m in members}

    async def one(m: Member) -> None:
        found[m.node_id] = await _ask(node, m, hashes)

    async with anyio.create_task_group() as tg:
        for m in members:
            if m.node_id == me:
                found[me] = _local_status(node, hashes)
            else:
                tg.start_soon(one, m)
    return found
