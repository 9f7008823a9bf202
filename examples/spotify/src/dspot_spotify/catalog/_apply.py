"""The catalog state machine: :func:`apply` of one entry at one log position.

The handlers live by subject (``_users``, ``_music``, ``_lists``, ``_player``, ``_blobs``) and
share the rules of ``_rules``; this module runs one of them (or every part of a
:class:`~dspot_spotify.catalog.Batch`) in a savepoint, records a rejection instead of its
effect when it refuses, and keeps the last applied position and the log's clock in the same
transaction. :func:`check` is the same run, always rolled back: what the log would say of
an entry now, before a writer stores anything for it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Final

from dspot_spotify.catalog import _blobs, _lists, _music, _player, _users
from dspot_spotify.catalog._entries import (
    NOT_IN_BATCH,
    Batch,
    CreateAlbum,
    CreateArtist,
    Entry,
    InvalidEntry,
    LeaseBlobs,
    decode_entry,
    entry_type,
)
from dspot_spotify.catalog._rules import PLAYLIST_ITEMS_MAX, Reject, check_common, exists
from dspot_spotify.catalog._schema import ApplyResult, LogPosition, RejectCode
from dspot_spotify.catalog._sql import Tx
from dspot_spotify.catalog._sql import exec_ as _exec

HANDLERS: Final[Mapping[type[Entry], Any]] = {
    **_users.HANDLERS,
    **_music.HANDLERS,
    **_lists.HANDLERS,
    **_blobs.HANDLERS,
    **_player.HANDLERS,
}
"""The handler of each entry type (a batch runs those of its parts)."""

BATCH_MAX: Final = PLAYLIST_ITEMS_MAX + 10
"""The most entries one batch holds (a playlist made whole, and a little more)."""


def applied_position(tx: Tx) -> LogPosition | None:
    """The position of the last entry applied (or rejected), None before the first."""
    rows = {
        str(r[0]): int(r[1])
        for r in _exec(
            tx,
            "SELECT key, value FROM catalog_meta WHERE key IN (?, ?)",
            ("applied_epoch", "applied_seq"),
        )
    }
    if len(rows) < 2:
        return None
    return LogPosition(rows["applied_epoch"], rows["applied_seq"])


def _set_position(tx: Tx, pos: LogPosition) -> None:
    for key, value in (("applied_epoch", pos.epoch), ("applied_seq", pos.seq)):
        _exec(
            tx,
            "INSERT INTO catalog_meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )


def _run(tx: Tx, entry: Entry) -> None:
    """Run the entry's handler (for a batch, its parts' in order); raise :class:`Reject`."""
    check_common(entry)
    if not isinstance(entry, Batch):
        handler = HANDLERS.get(type(entry))
        if handler is None:
            raise Reject(f"unknown entry type {type(entry).__name__}")
        handler(tx, entry)
        return
    if not 1 <= len(entry.entries) <= BATCH_MAX:
        raise Reject(f"a batch holds 1-{BATCH_MAX} entries")
    named = [sha for part in entry.entries for sha in _blobs.named_blobs(part)]
    before = _blobs.refs_of(tx, named)
    for part in entry.entries:
        if type(part) in NOT_IN_BATCH or (part.actor, part.at) != (entry.actor, entry.at):
            raise Reject(f"a batch cannot hold this {entry_type(part)} entry")
        if isinstance(part, CreateArtist) and exists(tx, "artists", part.artist_id):
            continue  # derived id, created by another upload first: the same artist
        if isinstance(part, CreateAlbum) and exists(tx, "albums", part.album_id):
            continue
        _run(tx, part)
    _blobs.require_leases(tx, before)


def apply(tx: Tx, position: LogPosition, entry: Entry) -> ApplyResult:
    """Apply ``entry`` at ``position`` inside the caller's transaction.

    Skips positions at or below the last applied one; records a rejection (and changes
    nothing else) when the entry is invalid or not permitted. The caller must have opened
    the transaction (``BEGIN``): the entry runs in a ``SAVEPOINT`` nested in it, rolled
    back on rejection. Commit the caller's transaction to make the position durable.
    Every entry, rejected or not, moves the log's clock to its ``at``.
    """
    current = applied_position(tx)
    if current is not None and position <= current:
        return ApplyResult("skipped")
    if isinstance(entry.at, int) and entry.at >= 0:
        _blobs.advance_clock(tx, entry.at)
    _exec(tx, "SAVEPOINT catalog_apply")
    try:
        _blobs.take_released(tx)
        _run(tx, entry)
    except Reject as rej:
        _exec(tx, "ROLLBACK TO catalog_apply")
        _exec(tx, "RELEASE catalog_apply")
        _record_rejection(tx, position, entry_type(entry), entry.actor, rej.reason, rej.code)
        _set_position(tx, position)
        return ApplyResult("rejected", rej.reason, rej.code)
    unowned = set(_blobs.take_released(tx))
    if isinstance(entry, LeaseBlobs):
        unowned |= set(entry.blobs)
    _exec(tx, "RELEASE catalog_apply")
    _set_position(tx, position)
    return ApplyResult("applied", unowned=tuple(sorted(unowned)))


def check(tx: Tx, entry: Entry, *, leased: Collection[str] = ()) -> ApplyResult:
    """What applying ``entry`` now would do, with nothing changed: ``applied`` or
    ``rejected`` with the reason and code the log would record. ``leased`` blobs count as
    under a live lease (the lease a writer commits once the entry is known to pass)."""
    _exec(tx, "SAVEPOINT catalog_check")
    try:
        _blobs.assume_leased(tx, leased)
        if isinstance(entry.at, int) and entry.at >= 0:
            _blobs.advance_clock(tx, entry.at)
        _run(tx, entry)
    except Reject as rej:
        return ApplyResult("rejected", rej.reason, rej.code)
    finally:
        _exec(tx, "ROLLBACK TO catalog_check")
        _exec(tx, "RELEASE catalog_check")
    return ApplyResult("applied")


def apply_encoded(tx: Tx, position: LogPosition, data: bytes) -> ApplyResult:
    """Decode and apply; bytes that do not decode are recorded as a rejection."""
    try:
        entry = decode_entry(data)
    except InvalidEntry as exc:
        current = applied_position(tx)
        if current is not None and position <= current:
            return ApplyResult("skipped")
        _record_rejection(tx, position, "invalid", None, str(exc)[:500], "invalid")
        _set_position(tx, position)
        return ApplyResult("rejected", str(exc)[:500], "invalid")
    return apply(tx, position, entry)


def _record_rejection(
    tx: Tx, pos: LogPosition, kind: str, actor: str | None, reason: str, code: RejectCode
) -> None:
    _exec(
        tx,
        "INSERT OR REPLACE INTO rejections (epoch, seq, kind, actor, reason, code) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (pos.epoch, pos.seq, kind, actor, reason, code),
    )


POSITION_KEYS: Final = frozenset({"applied_epoch", "applied_seq"})
"""The ``catalog_meta`` keys of the applied position."""


def set_applied_position(tx: Tx, position: LogPosition) -> None:
    """Record ``position`` as the last one applied (a snapshot restore sets it)."""
    _set_position(tx, position)
