"""What every member holds: the ``spotify.status`` RPC and the survey that asks all members.

**Asking the other members.** Each node serves one RPC, ``spotify.status``
(:class:`StatusRequest`): its applied log position, its blob count and bytes, the bytes of
its copies that no entry owns (awaiting collection), and — for a
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

**Sliced, and shared.** At 100,000 songs a survey is several passes over 100,000 hashes on
each member: every pass here gives the event loop a turn every
:data:`~dspot_spotify.holdings.SLICE` of them, and a node's
:class:`~dspot_spotify.holdings.Surveys` shares one survey among the cluster documents that
want it at about the same time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import anyio
import anyio.lowlevel
import attrs
from dspot import wire
from dspot.errors import DspotError, RemoteError
from dspot.membership import Member, MemberState
from dspot.rpc import Peer, RetryPolicy

from dspot_spotify import catalog
from dspot_spotify.holdings import SLICE, MemberStatus
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
    loop_lag_worst_us: int = 0
    """The worst event-loop lag in the last minute, in microseconds."""
    loop_lag_p99_us: int = 0
    """The 99th percentile of the event-loop lag (its histogram bucket's bound), in µs."""
    orphaned_bytes: int = 0
    """Bytes of copies no catalog entry owns, awaiting collection."""


def _lag_us(node: NodeParts) -> tuple[int, int]:
    """The node's worst recent and p99 loop lag, in whole microseconds."""
    snap = node.looplag.snapshot()
    p99 = snap.quantile(0.99)
    return round(snap.worst_recent * 1e6), round(min(p99, _LAG_CAP) * 1e6)


_LAG_CAP: Final = 3600.0  # a p99 beyond the last bucket is infinite: say "an hour"


def _pack(hashes: Sequence[str]) -> bytes:
    return bytes.fromhex("".join(hashes))


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


async def _held_bitmap(node: NodeParts, payload: bytes) -> bytes:
    """The bitmap of which of the digests in ``payload`` this node holds, a slice per turn."""
    local = node.blobs.local
    out = bytearray()
    step = SLICE * _DIGEST
    for start in range(0, len(payload), step):
        if start:
            await anyio.lowlevel.checkpoint()
        hexes = payload[start : start + step].hex()
        out += _bitmap([local.get(hexes[i : i + 64]) is not None for i in range(0, len(hexes), 64)])
    return bytes(out)


async def _held_bits(bitmap: bytes, count: int, offset: int) -> set[int]:
    """:func:`_bits` a slice per turn."""
    found: set[int] = set()
    for start in range(0, count, SLICE):
        if start:
            await anyio.lowlevel.checkpoint()
        part = bitmap[start // 8 : (start + SLICE) // 8]
        found |= _bits(part, min(SLICE, count - start), offset + start)
    return found


def serve_status(node: NodeParts) -> None:
    """Serve ``spotify.status`` on ``node``'s RPC (call once its blob store runs)."""

    async def on_status(req: StatusRequest, peer: Peer) -> StatusReply:
        if len(req.payload) % _DIGEST:
            raise RemoteError("invalid", "payload is not a list of 32-byte digests")
        local = node.blobs.local
        bitmap = await _held_bitmap(node, req.payload)
        pos = node.replica.position or catalog.LogPosition(0, 0)
        worst, p99 = _lag_us(node)
        return StatusReply(
            log_epoch=pos.epoch,
            log_seq=pos.seq,
            blobs=local.count,
            blob_bytes=local.bytes,
            payload=bitmap,
            loop_lag_worst_us=worst,
            loop_lag_p99_us=p99,
            orphaned_bytes=node.collector.orphaned_bytes,
        )

    node.rpc.handle(StatusRequest, on_status)


async def _local_status(node: NodeParts, hashes: Sequence[str]) -> MemberStatus:
    local = node.blobs.local
    held: list[int] = []
    for start in range(0, len(hashes), SLICE):
        if start:
            await anyio.lowlevel.checkpoint()
        part = hashes[start : start + SLICE]
        held.extend(start + i for i, h in enumerate(part) if local.get(h) is not None)
    worst, p99 = _lag_us(node)
    return MemberStatus(
        log_position=node.replica.position or catalog.LogPosition(0, 0),
        blobs=local.count,
        bytes=local.bytes,
        held=frozenset(held),
        loop_lag_worst_ms=worst / 1000,
        loop_lag_p99_ms=p99 / 1000,
        orphaned_bytes=node.collector.orphaned_bytes,
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
                held |= await _held_bits(reply.payload, len(batch), start)
    except (DspotError, TimeoutError):  # down, partitioned, not started, too slow
        return None
    assert reply is not None
    return MemberStatus(
        log_position=catalog.LogPosition(reply.log_epoch, reply.log_seq),
        blobs=reply.blobs,
        bytes=reply.blob_bytes,
        held=frozenset(held),
        loop_lag_worst_ms=reply.loop_lag_worst_us / 1000,
        loop_lag_p99_ms=reply.loop_lag_p99_us / 1000,
        orphaned_bytes=reply.orphaned_bytes,
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
            if m.node_id != me:
                tg.start_soon(one, m)
        if any(m.node_id == me for m in members):
            found[me] = await _local_status(node, hashes)
    return found
