"""The catalog state machine: :func:`apply` of one entry at one log position.

The handlers live by subject (``_users``, ``_music``, ``_lists``, ``_player``) and share
the rules of ``_rules``; this module runs one of them in a savepoint, records a rejection
instead of its effect when it refuses, and keeps the last applied position in the same
transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from dspot_spotify.catalog import _lists, _music, _player, _users
from dspot_spotify.catalog._entries import Entry, InvalidEntry, decode_entry, entry_type
from dspot_spotify.catalog._rules import Reject, check_common
from dspot_spotify.catalog._schema import ApplyResult, LogPosition, RejectCode
from dspot_spotify.catalog._sql import Tx
from dspot_spotify.catalog._sql import exec_ as _exec

HANDLERS: Final[Mapping[type[Entry], Any]] = {
    **_users.HANDLERS,
    **_music.HANDLERS,
    **_lists.HANDLERS,
    **_player.HANDLERS,
}
"""The handler of each entry type."""


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


def apply(tx: Tx, position: LogPosition, entry: Entry) -> ApplyResult:
    """Apply ``entry`` at ``position`` inside the caller's transaction.

    Skips positions at or below the last applied one; records a rejection (and changes
    nothing else) when the entry is invalid or not permitted. The caller must have opened
    the transaction (``BEGIN``): the entry runs in a ``SAVEPOINT`` nested in it, rolled
    back on rejection. Commit the caller's transaction to make the position durable.
    """
    current = applied_position(tx)
    if current is not None and position <= current:
        return ApplyResult("skipped")
    handler = HANDLERS.get(type(entry))
    _exec(tx, "SAVEPOINT catalog_apply")
    try:
        if handler is None:
            raise Reject(f"unknown entry type {type(entry).__name__}")
        check_common(entry)
        handler(tx, entry)
    except Reject as rej:
        _exec(tx, "ROLLBACK TO catalog_apply")
        _exec(tx, "RELEASE catalog_apply")
        _record_rejection(tx, position, entry_type(entry), entry.actor, rej.reason, rej.code)
        _set_position(tx, position)
        return ApplyResult("rejected", rej.reason, rej.code)
    _exec(tx, "RELEASE catalog_apply")
    _set_position(tx, position)
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
