"""Queries over what users' players keep: ratings, bookmarks, saved play queues, what plays
now, and songs' lyrics."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Final

import attrs

from dspot_spotify.catalog._schema import LikeTarget
from dspot_spotify.catalog._sql import Tx, marks, values_by_id
from dspot_spotify.catalog._sql import exec_ as _exec
from dspot_spotify.catalog._sql import one as _one


@attrs.frozen(kw_only=True)
class Bookmark:
    """A user's bookmark: where in a song (milliseconds), a comment, when."""

    song_id: str
    position: int
    comment: str | None
    created_at: int
    changed_at: int


@attrs.frozen(kw_only=True)
class PlayQueue:
    """A user's saved play queue: songs that still exist, in order; the current one (None if
    it is gone) and the position in it (milliseconds); when and by which client."""

    song_ids: tuple[str, ...]
    current: str | None
    position: int
    changed_at: int
    changed_by: str


@attrs.frozen(kw_only=True)
class Playing:
    """One player's "now playing": whose, which client, which song, since when."""

    user_id: str
    username: str
    client: str
    song_id: str
    at: int


def ratings(
    tx: Tx, user_id: str, ids: Sequence[str], target: LikeTarget = "song"
) -> dict[str, int]:
    """``user_id``'s ratings (1-5) of the songs (albums, artists) ``ids`` they rated."""
    sql = (
        "SELECT target_id, rating FROM ratings WHERE user_id = ? AND target = ? "
        "AND target_id IN ({marks})"
    )
    return values_by_id(tx, sql, [user_id, target], ids)


def bookmarks(tx: Tx, user_id: str) -> list[Bookmark]:
    """``user_id``'s bookmarks, most recently changed first."""
    rows = _exec(
        tx,
        "SELECT song_id, position, comment, created_at, changed_at FROM bookmarks "
        "WHERE user_id = ? ORDER BY changed_at DESC, song_id",
        (user_id,),
    )
    return [
        Bookmark(
            song_id=str(r[0]),
            position=int(r[1]),
            comment=r[2],
            created_at=int(r[3]),
            changed_at=int(r[4]),
        )
        for r in rows
    ]


def play_queue(tx: Tx, user_id: str) -> PlayQueue | None:
    """``user_id``'s saved play queue, or None (none saved, or none of its songs is left)."""
    row = _one(
        tx,
        "SELECT song_ids, current, position, changed_at, changed_by FROM play_queues "
        "WHERE user_id = ?",
        (user_id,),
    )
    if row is None:
        return None
    saved = [str(i) for i in json.loads(row[0])]
    unique = list(dict.fromkeys(saved))
    present = {
        str(r[0]) for r in _exec(tx, f"SELECT id FROM songs WHERE id IN ({marks(unique)})", unique)
    }
    ids = tuple(i for i in saved if i in present)
    if not ids:
        return None
    current = row[1] if row[1] in present else None
    return PlayQueue(
        song_ids=ids,
        current=current,
        position=int(row[2]) if current is not None else 0,
        changed_at=int(row[3]),
        changed_by=str(row[4]),
    )


NOW_PLAYING_GRACE_MS: Final = 60_000
"""How long after its song would have ended a "now playing" is still shown."""


def now_playing(tx: Tx, now_ms: int) -> list[Playing]:
    """What each player plays at ``now_ms``: entries whose song has not ended (plus a grace
    minute) by then, newest first."""
    rows = _exec(
        tx,
        "SELECT n.user_id, u.username, n.client, n.song_id, n.at FROM now_playing n "
        "JOIN users u ON u.id = n.user_id JOIN songs s ON s.id = n.song_id "
        "WHERE n.at <= ? AND n.at + CAST(s.duration * 1000 AS INTEGER) + ? > ? "
        "ORDER BY n.at DESC, n.user_id, n.client",
        (now_ms, NOW_PLAYING_GRACE_MS, now_ms),
    )
    return [
        Playing(
            user_id=str(r[0]), username=str(r[1]), client=str(r[2]), song_id=str(r[3]), at=int(r[4])
        )
        for r in rows
    ]


def lyrics(tx: Tx, song_id: str) -> str | None:
    """A song's lyrics from its tags, or None."""
    row = _one(tx, "SELECT lyrics FROM song_lyrics WHERE song_id = ?", (song_id,))
    return None if row is None else str(row[0])


def find_lyrics(tx: Tx, artist: str | None, title: str | None) -> tuple[str, str, str] | None:
    """``(artist name, title, lyrics)`` of the oldest song with lyrics whose artist and title
    are these (case and spacing aside; either may be left out), or None."""
    where: list[str] = []
    args: list[str] = []
    if artist:
        where.append("ar.name = ? COLLATE NOCASE")
        args.append(" ".join(artist.split()))
    if title:
        where.append("s.title = ? COLLATE NOCASE")
        args.append(" ".join(title.split()))
    if not where:
        return None
    row = _one(
        tx,
        "SELECT ar.name, s.title, l.lyrics FROM songs s JOIN artists ar ON ar.id = s.artist_id "
        f"JOIN song_lyrics l ON l.song_id = s.id WHERE {' AND '.join(where)} ORDER BY s.n LIMIT 1",
        args,
    )
    return None if row is None else (str(row[0]), str(row[1]), str(row[2]))
