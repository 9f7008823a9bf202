"""The rules every catalog handler shares: the rejection it raises, field checks, who acts,
and who may edit what. Nothing here writes."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

import attrs

from dspot_spotify.catalog._entries import Entry
from dspot_spotify.catalog._schema import RejectCode
from dspot_spotify.catalog._sql import Tx
from dspot_spotify.catalog._sql import exec_ as _exec
from dspot_spotify.catalog._sql import one as _one


class Reject(Exception):
    """An entry every replica refuses: ``reason`` and ``code`` are recorded, nothing else
    changes."""

    def __init__(self, reason: str, code: RejectCode = "invalid") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code: RejectCode = code


SHA256_RE: Final = re.compile(r"^[0-9a-f]{64}$")
ID_MAX: Final = 64
NAME_MAX: Final = 200
GENRE_MAX: Final = 60
GENRES_MAX: Final = 10
PLAYLIST_ITEMS_MAX: Final = 10_000


def check_common(entry: Entry) -> None:
    if not isinstance(entry.at, int) or entry.at < 0:
        raise Reject("timestamp must be a non-negative integer")
    if entry.actor is not None:
        check_id(entry.actor, "actor")


def check_id(value: str, what: str) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= ID_MAX or not value.isprintable():
        raise Reject(f"{what} must be 1-{ID_MAX} printable characters")
    return value


def check_name(value: str, what: str) -> str:
    text = " ".join(value.split()) if isinstance(value, str) else ""
    if not text:
        raise Reject(f"{what} must not be empty")
    if len(text) > NAME_MAX:
        raise Reject(f"{what} must have at most {NAME_MAX} characters")
    return text


def check_sha(value: str | None, what: str) -> None:
    if value is not None and not SHA256_RE.match(value):
        raise Reject(f"{what} must be 64 lowercase hex digits")


def check_year(year: int | None) -> None:
    if year is not None and not 1 <= year <= 9999:
        raise Reject("year must be between 1 and 9999")


def check_track(track: int | None) -> None:
    if track is not None and not 0 <= track <= 9999:
        raise Reject("track number must be between 0 and 9999")


def check_genres(values: Sequence[str]) -> tuple[str, ...]:
    out: list[str] = []
    seen: set[str] = set()
    for g in values:
        text = " ".join(g.split())
        if not text:
            continue
        if len(text) > GENRE_MAX:
            raise Reject(f"genre must have at most {GENRE_MAX} characters")
        if text.casefold() not in seen:
            seen.add(text.casefold())
            out.append(text)
    if len(out) > GENRES_MAX:
        raise Reject(f"at most {GENRES_MAX} genres")
    return tuple(out)


@attrs.frozen
class Actor:
    id: str
    role: str

    @property
    def admin(self) -> bool:
        return self.role == "admin"


def actor_of(tx: Tx, entry: Entry) -> Actor:
    """Who writes ``entry``: a registered user who is not disabled (a request authenticated
    just before its user was disabled is refused when its entry comes after)."""
    if entry.actor is None:
        raise Reject("sign in required", "unauthenticated")
    row = _one(tx, "SELECT role, disabled FROM users WHERE id = ?", (entry.actor,))
    if row is None:
        raise Reject("unknown actor", "unauthenticated")
    if row[1]:
        raise Reject("this account is disabled", "forbidden")
    return Actor(entry.actor, str(row[0]))


def may_edit(actor: Actor, created_by: str | None, what: str) -> None:
    if not actor.admin and actor.id != created_by:
        raise Reject(f"only the {what}'s creator or an admin may change it", "forbidden")


def exists(tx: Tx, table: str, id_: str) -> bool:
    return _one(tx, f"SELECT 1 FROM {table} WHERE id = ?", (id_,)) is not None


def id_free(tx: Tx, table: str, id_: str, what: str) -> None:
    check_id(id_, f"{what} id")
    if exists(tx, table, id_):
        raise Reject(f"{what} id already exists", "conflict")


def owner_of(tx: Tx, table: str, id_: str, what: str) -> str | None:
    row = _one(tx, f"SELECT created_by FROM {table} WHERE id = ?", (id_,))
    if row is None:
        raise Reject(f"unknown {what}", "not_found")
    return None if row[0] is None else str(row[0])


def playlist_items(tx: Tx, playlist_id: str) -> list[str]:
    """A playlist's item ids in order."""
    return [
        str(r[0])
        for r in _exec(
            tx,
            "SELECT item_id FROM playlist_items WHERE playlist_id = ? ORDER BY position, item_id",
            (playlist_id,),
        )
    ]


def renumber(tx: Tx, playlist_id: str, order: list[str]) -> None:
    """Give the playlist's items the positions of ``order`` (only those that change)."""
    current = {
        str(r[0]): int(r[1])
        for r in _exec(
            tx, "SELECT item_id, position FROM playlist_items WHERE playlist_id = ?", (playlist_id,)
        )
    }
    for pos, item in enumerate(order):
        if current.get(item) != pos:
            _exec(tx, "UPDATE playlist_items SET position = ? WHERE item_id = ?", (pos, item))
