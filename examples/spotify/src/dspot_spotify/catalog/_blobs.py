"""Who owns the blobs: the log's clock, upload leases, and the blobs nothing owns.

A blob is **owned** while an applied entry refers to it (a song's audio or cover, an
album's cover: ``blobs.refs``, kept by triggers of :mod:`~dspot_spotify.catalog._schema`)
or while a :class:`~dspot_spotify.catalog.LeaseBlobs` lasts. Time here is the **log's
clock**: the largest ``at`` of the entries applied so far, the same on every replica at the
same position. An unowned blob is garbage; the collector
(:mod:`dspot_spotify.collector`) deletes its copies after a grace period.

Why the log's clock and not a node's: a :class:`~dspot_spotify.catalog.Batch` may make a
blob that nothing referenced owned again only while its lease lasts by the log's clock, and
the collector deletes a blob only once its own replica's log clock is past the lease. An
entry applied after that point sees a clock at least as late, so a commit that arrives late
(after its upload gave up) is rejected instead of referring to a deleted blob.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, Final

import attrs

from dspot_spotify.catalog._entries import (
    CreateAlbum,
    CreateSong,
    Entry,
    LeaseBlobs,
    LogClock,
    UpdateAlbum,
)
from dspot_spotify.catalog._rules import Reject, actor_of, check_sha
from dspot_spotify.catalog._sql import Tx, marks
from dspot_spotify.catalog._sql import exec_ as _exec
from dspot_spotify.catalog._sql import scalar as _scalar

LEASE_MAX_MS: Final = 24 * 3600 * 1000
"""The longest lease an upload may take."""
LEASE_BLOBS_MAX: Final = 16


@attrs.frozen(kw_only=True)
class BlobOwnership:
    """A blob as the catalog knows it: references, lease end and release time (log ms)."""

    sha256: str
    refs: int
    lease_until: int
    released_at: int

    def unowned_since(self, clock: int) -> int | None:
        """Since when (log ms) nothing owns the blob at log time ``clock``; None if owned."""
        if self.refs > 0 or self.lease_until >= clock:
            return None
        return max(self.released_at, self.lease_until)


def log_clock(tx: Tx) -> int:
    """The largest ``at`` (ms) of the entries applied so far (0 before any)."""
    value = _scalar(tx, "SELECT value FROM catalog_meta WHERE key = 'log_clock'")
    return 0 if value is None else int(value)


def advance_clock(tx: Tx, at: int) -> None:
    """Move the log's clock to ``at`` if it is later."""
    _exec(
        tx,
        "INSERT INTO catalog_meta (key, value) VALUES ('log_clock', ?) "
        "ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
        (at,),
    )


def ownership(tx: Tx, hashes: Sequence[str]) -> dict[str, BlobOwnership]:
    """What the catalog knows of each of ``hashes`` (those it never heard of are absent)."""
    rows = _exec(
        tx,
        "SELECT sha256, refs, lease_until, released_at FROM blobs "
        f"WHERE sha256 IN ({marks(hashes)})",
        tuple(hashes),
    )
    return {
        str(r[0]): BlobOwnership(
            sha256=str(r[0]), refs=int(r[1]), lease_until=int(r[2]), released_at=int(r[3])
        )
        for r in rows
    }


def referenced_blobs(tx: Tx) -> list[str]:
    """Every blob some applied entry refers to, sorted."""
    return [str(r[0]) for r in _exec(tx, "SELECT sha256 FROM blobs WHERE refs > 0 ORDER BY 1")]


def blob_refs(tx: Tx) -> dict[str, int]:
    """Every blob the catalog knows, with its reference count (for checks and tests)."""
    return {str(r[0]): int(r[1]) for r in _exec(tx, "SELECT sha256, refs FROM blobs")}


def named_blobs(entry: Entry) -> tuple[str, ...]:
    """The blobs an entry would make a song or album refer to."""
    if isinstance(entry, CreateSong):
        return tuple(h for h in (entry.blob_sha256, entry.cover_sha256) if h is not None)
    if isinstance(entry, CreateAlbum | UpdateAlbum) and entry.cover_sha256 is not None:
        return (entry.cover_sha256,)
    return ()


def refs_of(tx: Tx, hashes: Iterable[str]) -> dict[str, int]:
    """The reference count of each of ``hashes`` (0 for one the catalog never heard of)."""
    wanted = sorted(set(hashes))
    found = ownership(tx, wanted)
    return {h: found[h].refs if h in found else 0 for h in wanted}


def require_leases(tx: Tx, before: Mapping[str, int]) -> None:
    """Refuse an entry that made a blob with no references (``before``: the counts before
    it ran) referenced again without a live lease by the log's clock."""
    clock = log_clock(tx)
    now = ownership(tx, sorted(before))
    for sha, refs in sorted(before.items()):
        row = now.get(sha)
        if refs == 0 and row is not None and row.refs > 0 and row.lease_until < clock:
            if row.lease_until > 0:  # the upload's own lease ran out while it was committing
                raise Reject(
                    f"the upload's lease on blob {sha[:16]} ran out before its song was "
                    "committed: upload again",
                    "expired",
                )
            raise Reject(
                f"blob {sha[:16]} is not referenced and its upload lease is over: upload again",
                "conflict",
            )


def take_released(tx: Tx) -> tuple[str, ...]:
    """The blobs the entry just applied released (and empty the list for the next)."""
    rows = _exec(tx, "DELETE FROM blob_released RETURNING sha256")
    return tuple(sorted(str(r[0]) for r in rows))


def assume_leased(tx: Tx, hashes: Collection[str]) -> None:
    """Lease ``hashes`` for ever (only inside a savepoint that is rolled back: a dry run)."""
    for sha in sorted(hashes):
        _exec(
            tx,
            "INSERT INTO blobs (sha256, lease_until) VALUES (?, ?) "
            "ON CONFLICT (sha256) DO UPDATE SET lease_until = excluded.lease_until",
            (sha, 2**62),
        )


def _lease_blobs(tx: Tx, e: LeaseBlobs) -> None:
    actor_of(tx, e)
    if not 1 <= len(e.blobs) <= LEASE_BLOBS_MAX:
        raise Reject(f"a lease names 1-{LEASE_BLOBS_MAX} blobs")
    for sha in e.blobs:
        check_sha(sha, "blob")
    if not e.at < e.until <= e.at + LEASE_MAX_MS:
        raise Reject("a lease ends after it begins, within a day")
    for sha in sorted(set(e.blobs)):
        _exec(
            tx,
            "INSERT INTO blobs (sha256, lease_until) VALUES (?, ?) ON CONFLICT (sha256) "
            "DO UPDATE SET lease_until = max(lease_until, excluded.lease_until)",
            (sha, e.until),
        )


def _log_clock(tx: Tx, e: LogClock) -> None:
    """Nothing: applying any entry moves the log's clock."""


HANDLERS: Final[Mapping[type[Entry], Any]] = {
    LeaseBlobs: _lease_blobs,
    LogClock: _log_clock,
}
