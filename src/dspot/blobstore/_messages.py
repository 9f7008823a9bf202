"""Wire messages of the blob store. Chunk and block bytes travel in the raw ``payload``."""

from __future__ import annotations

import attrs

from dspot import wire


@attrs.frozen
class Hop:
    """One replica further down an upload chain."""

    node: str
    address: str


@wire.message("blob.chunk", idempotent=True)
@attrs.frozen
class PutChunk:
    """Chunk ``seq`` of upload ``upload``; the receiver forwards it on at once and stores it
    once every earlier chunk is stored."""

    upload: str
    seq: int
    downstream: list[Hop]
    payload: bytes


@wire.message("blob.chunk_ack")
@attrs.frozen
class ChunkAck:
    reached: list[str]
    """Replicas (this one first) that hold every chunk up to and including this one."""


@wire.message("blob.commit", idempotent=True)
@attrs.frozen
class PutCommit:
    """Verify the upload against ``sha256``/``size``/``chunks`` and publish it durably."""

    upload: str
    sha256: str
    size: int
    chunks: int
    stored_at: float
    """The coordinator's wall clock when the upload began (a delete after it wins)."""
    block_size: int
    payload: bytes
    """The block digests (one XXH3-128 per ``block_size`` bytes), computed by the coordinator
    over the bytes it sent; the replica stores them once its own digests of the bytes it
    wrote match them."""


@wire.message("blob.abort", idempotent=True)
@attrs.frozen
class PutAbort:
    upload: str


@wire.message("blob.done")
@attrs.frozen
class Done:
    ok: bool
    reason: str = ""


@wire.message("blob.read", idempotent=True)
@attrs.frozen
class ReadRange:
    """Up to ``length`` bytes of a blob from ``offset``, verified against its block hashes."""

    sha256: str
    offset: int
    length: int


@wire.message("blob.data")
@attrs.frozen
class RangeData:
    size: int
    """The whole blob's size."""
    payload: bytes


@wire.message("blob.has", idempotent=True)
@attrs.frozen
class Has:
    hashes: list[str]


@attrs.frozen
class Holding:
    sha256: str
    present: bool
    size: int = 0
    stored_at: float = 0.0
    deleted_at: float | None = None
    """When set, the node holds a tombstone for the blob."""


@wire.message("blob.holding")
@attrs.frozen
class HasReply:
    items: list[Holding]


@wire.message("blob.fetch", idempotent=True)
@attrs.frozen
class Fetch:
    """Copy blob ``sha256`` from ``sources`` (tried in order) unless it is already here."""

    sha256: str
    sources: list[Hop]
    stored_at: float


@wire.message("blob.delete", idempotent=True)
@attrs.frozen
class Delete:
    sha256: str
    deleted_at: float
