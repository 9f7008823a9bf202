"""Catalog handlers for what a user's players keep: ratings, bookmarks, the play queue (to
resume on another device) and what each player plays now."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from dspot_spotify.catalog._entries import (
    DeleteBookmark,
    Entry,
    NowPlaying,
    Rate,
    SavePlayQueue,
    SetBookmark,
)
from dspot_spotify.catalog._rules import Reject, actor_of, check_id, exists
from dspot_spotify.catalog._schema import LIKE_TABLES
from dspot_spotify.catalog._sql import Tx, marks
from dspot_spotify.catalog._sql import exec_ as _exec
from dspot_spotify.catalog._sql import scalar as _scalar

QUEUE_MAX: Final = 1000
"""The most songs a saved play queue holds."""
CLIENT_MAX: Final = 100
COMMENT_MAX: Final = 1000
POSITION_MAX: Final = 2**53
"""Positions (milliseconds) above this are refused (no song is 285,000 years long)."""


def _check_position(position: int) -> None:
    if isinstance(position, bool) or not isinstance(position, int):
        raise Reject("position must be an integer number of milliseconds")
    if not 0 <= position <= POSITION_MAX:
        raise Reject("position must be between 0 and 2**53 milliseconds")


def _check_client(client: str) -> str:
    text = " ".join(client.split()) if isinstance(client, str) else ""
    if not text or len(text) > CLIENT_MAX or not text.isprintable():
        raise Reject(f"client must be 1-{CLIENT_MAX} printable characters")
    return text


def _song(tx: Tx, song_id: str) -> None:
    check_id(song_id, "song id")
    if not exists(tx, "songs", song_id):
        raise Reject("unknown song", "not_found")


def _rate(tx: Tx, e: Rate) -> None:
    actor = actor_of(tx, e)
    if e.target not in LIKE_TABLES:
        raise Reject(f"cannot rate a {e.target}")
    if isinstance(e.rating, bool) or not isinstance(e.rating, int) or not 0 <= e.rating <= 5:
        raise Reject("rating must be 0 (none) to 5")
    if not exists(tx, LIKE_TABLES[e.target][2], e.target_id):
        raise Reject(f"unknown {e.target}", "not_found")
    if e.rating == 0:
        _exec(
            tx,
            "DELETE FROM ratings WHERE user_id = ? AND target = ? AND target_id = ?",
            (actor.id, e.target, e.target_id),
        )
        return
    _exec(
        tx,
        "INSERT INTO ratings (user_id, target, target_id, rating, at) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (user_id, target, target_id) DO UPDATE SET rating = excluded.rating, "
        "at = excluded.at",
        (actor.id, e.target, e.target_id, e.rating, e.at),
    )


def _set_bookmark(tx: Tx, e: SetBookmark) -> None:
    actor = actor_of(tx, e)
    _song(tx, e.song_id)
    _check_position(e.position)
    if e.comment is not None and len(e.comment) > COMMENT_MAX:
        raise Reject(f"a bookmark's comment has at most {COMMENT_MAX} characters")
    _exec(
        tx,
        "INSERT INTO bookmarks (user_id, song_id, position, comment, created_at, changed_at) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (user_id, song_id) DO UPDATE SET "
        "position = excluded.position, comment = excluded.comment, "
        "changed_at = excluded.changed_at",
        (actor.id, e.song_id, e.position, e.comment or None, e.at, e.at),
    )


def _delete_bookmark(tx: Tx, e: DeleteBookmark) -> None:
    actor = actor_of(tx, e)
    check_id(e.song_id, "song id")
    _exec(tx, "DELETE FROM bookmarks WHERE user_id = ? AND song_id = ?", (actor.id, e.song_id))


def _save_play_queue(tx: Tx, e: SavePlayQueue) -> None:
    actor = actor_of(tx, e)
    client = _check_client(e.client)
    if not e.song_ids:
        _exec(tx, "DELETE FROM play_queues WHERE user_id = ?", (actor.id,))
        return
    if len(e.song_ids) > QUEUE_MAX:
        raise Reject(f"a play queue holds at most {QUEUE_MAX} songs")
    for song_id in e.song_ids:
        check_id(song_id, "song id")
    unique = list(dict.fromkeys(e.song_ids))
    found = int(_scalar(tx, f"SELECT COUNT(*) FROM songs WHERE id IN ({marks(unique)})", unique))
    if found != len(unique):
        raise Reject("unknown song in the play queue", "not_found")
    if e.current is not None and e.current not in e.song_ids:
        raise Reject("the current song is not in the play queue")
    _check_position(e.position)
    _exec(
        tx,
        "INSERT INTO play_queues (user_id, song_ids, current, position, changed_at, changed_by) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET "
        "song_ids = excluded.song_ids, current = excluded.current, "
        "position = excluded.position, changed_at = excluded.changed_at, "
        "changed_by = excluded.changed_by",
        (actor.id, json.dumps(list(e.song_ids)), e.current, e.position, e.at, client),
    )


def _now_playing(tx: Tx, e: NowPlaying) -> None:
    actor = actor_of(tx, e)
    client = _check_client(e.client)
    _song(tx, e.song_id)
    _exec(
        tx,
        "INSERT INTO now_playing (user_id, client, song_id, at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (user_id, client) DO UPDATE SET song_id = excluded.song_id, "
        "at = excluded.at",
        (actor.id, client, e.song_id, e.at),
    )


def forget_song(tx: Tx, song_id: str) -> None:
    """Drop what players keep of a song being deleted (its play queues are filtered when
    read)."""
    _exec(tx, "DELETE FROM ratings WHERE target = 'song' AND target_id = ?", (song_id,))
    _exec(tx, "DELETE FROM bookmarks WHERE song_id = ?", (song_id,))
    _exec(tx, "DELETE FROM now_playing WHERE song_id = ?", (song_id,))


def forget_rated(tx: Tx, target: str, target_id: str) -> None:
    """Drop the ratings of an album or artist being deleted."""
    _exec(tx, "DELETE FROM ratings WHERE target = ? AND target_id = ?", (target, target_id))


HANDLERS: Final[Mapping[type[Entry], Any]] = {
    Rate: _rate,
    SetBookmark: _set_bookmark,
    DeleteBookmark: _delete_bookmark,
    SavePlayQueue: _save_play_queue,
    NowPlaying: _now_playing,
}
