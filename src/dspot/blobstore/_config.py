"""The blob store's tuning and the records its public calls return."""

from __future__ import annotations

import attrs

from dspot.blobstore._placement import BlobPlacement, Replication
from dspot.env import Mechanism

KiB = 1024
MiB = 1024 * KiB


class BlobStoreMechanism(Mechanism):
    """What sabotage tests can build a blob store without (``NodeEnv.disabled``)."""

    SYNC_BEFORE_ACK = "blobstore.sync_before_ack"
    """A replica commits an upload durably before acknowledging it."""
    REPAIR = "blobstore.repair"
    """The background repair loop that brings every blob back to R copies."""
    READ_VERIFY = "blobstore.read_verify"
    """Every block a read returns is checked against its digest (off: a corrupt copy's
    bytes are served as they are on disk)."""
    SCRUB = "blobstore.scrub"
    """Every ``scrub_interval`` each node re-verifies its copies and heals a corrupt one
    from another replica (off: bit rot stays until a verified read meets it)."""
    TOMBSTONES = "blobstore.tombstones"
    """A delete leaves a tombstone that beats older copies (off: the copy on a node that
    missed the delete is repaired back to R copies)."""


@attrs.frozen
class BlobStoreConfig:
    """Tuning of a :class:`~dspot.blobstore.BlobStore`. Every node of a cluster should use
    the same values."""

    replicas: Replication = 3
    write_quorum: int = 2
    chunk_size: int = 1 * MiB
    """Bytes per upload chunk (one RPC frame; must stay well under the 16 MiB frame limit).
    Each chunk costs a fixed overhead on every hop (a request, a task, two thread hand-offs),
    so chunks are large; memory per upload is about ``window * chunk_size`` per hop."""
    window: int = 4
    """Upload chunks in flight along the whole chain: bounds memory, keeps the pipeline full."""
    block_size: int = 64 * KiB
    """Granularity of stored checksums: the unit a replica verifies before serving bytes."""
    read_size: int = 256 * KiB
    """Bytes asked for per read request to another node."""
    local_read_size: int = 1024 * KiB
    """Bytes read at a time from this node's own copy."""
    call_timeout: float = 10.0
    read_timeout: float = 5.0
    upload_idle_timeout: float = 30.0
    """A partial upload with no traffic for this long is aborted (its coordinator is gone)."""
    repair_interval: float = 5.0
    """Seconds between periodic repair rounds (a member joining, leaving or dying starts one
    at once), or more on a large store (``repair_pace``)."""
    repair_pace: float = 2000.0
    """Copies per second that periodic repair rounds go through at most: a round walks every
    copy this node holds and asks the other owners about each, so a node holding N copies
    starts one every max(repair_interval, N / repair_pace) seconds. At 46,000 songs, rounds
    every 5 s took about a third of each node's CPU during an import."""
    repair_idle_interval: float = 60.0
    """Longest pause between periodic repair rounds while they find nothing to do: each quiet
    round (no copy missing, surplus or unreachable owner, and no copy added or dropped here
    since the last) doubles the pause, from the one above up to this; any round that finds
    work goes back to it. At 10,000 copies a round every 5 s kept each idle node of a 3-node
    cluster about 13 % busy (asking owners and answering them)."""
    repair_batch: int = 512
    repair_parallel: int = 4
    fetch_timeout: float = 120.0
    scrub_interval: float = 300.0
    drop_behind_writes: bool = True
    """A copy's pages leave the OS page cache once it is durable (see
    :meth:`dspot.disk.Disk.create`): uploads are written once and streamed later, and a cache
    growing by every uploaded byte made each further upload slower (64 MiB, R=3, one process
    per node on a 2-core VM: 0.61 s with the pages kept, 0.39 s dropped)."""
    failed_replica_last: float = 60.0
    """Seconds a replica that failed an upload (a chunk, its commit, or its successor's
    forward) goes to the end of this coordinator's upload chains, where its failure cuts
    only the chain's tail: with R=3 and W=2 one node with a full disk then costs each upload
    a copy instead of failing two in three of them."""
    read_passes: int = 3
    """How many times a read walks the replica list before giving up."""
    tombstone_ttl: float = 7 * 86400.0
    """Tombstones older than this are forgotten. Must exceed the longest time a node holding
    a copy can stay away and come back, or it would bring the blob back."""

    @property
    def placement(self) -> BlobPlacement:
        return BlobPlacement(self.replicas, self.write_quorum)


@attrs.frozen
class PutResult:
    sha256: str
    size: int
    replicas: list[str]
    """Nodes that committed a synced copy before the upload was acknowledged."""


@attrs.frozen
class BlobInfo:
    sha256: str
    size: int
    holders: list[str]


@attrs.frozen
class BlobStats:
    """One node's share: what it stores and what its last repair round found."""

    blobs: int
    bytes: int
    under_replicated: int
    """Copies held here whose owners (per the last repair round) hold fewer than min(R, live)."""
    uploads_in_progress: int
    fetched: int
    handed_off: int
    corrupt_found: int
    healed: int
