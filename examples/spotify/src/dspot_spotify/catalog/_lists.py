"""Catalog handlers for what users keep: playlists, likes and plays."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from dspot_spotify.catalog._entries import (
    AddToPlaylist,
    CreatePlaylist,
    DeletePlaylist,
    Entry,
    Like,
    MovePlaylistItem,
    RecordPlay,
    RemoveFromPlaylist,
    RenamePlaylist,
)
from dspot_spotify.catalog._rules import (
    PLAYLIST_ITEMS_MAX,
    Actor,
    Reject,
    actor_of,
    check_id,
    check_name,
    exists,
    id_free,
    playlist_items,
    renumber,
)
from dspot_spotify.catalog._schema import LIKE_TABLES
from dspot_spotify.catalog._sql import Tx
from dspot_spotify.catalog._sql import exec_ as _exec
from dspot_spotify.catalog._sql import one as _one


def _playlist_owner(tx: Tx, playlist_id: str) -> str:
    row = _one(tx, "SELECT owner_id FROM playlists WHERE id = ?", (playlist_id,))
    if row is None:
        raise Reject("unknown playlist", "not_found")
    return str(row[0])


def _own_playlist(tx: Tx, e: Entry, playlist_id: str) -> Actor:
    actor = actor_of(tx, e)
    if _playlist_owner(tx, playlist_id) != actor.id:
        raise Reject("only the playlist's owner may edit it", "forbidden")
    return actor


def _insert_at(order: list[str], item: str, before: str | None) -> list[str]:
    if before is None:
        return [*order, item]
    i = order.index(before)
    return [*order[:i], item, *order[i:]]


def _touch_playlist(tx: Tx, playlist_id: str, at: int) -> None:
    _exec(tx, "UPDATE playlists SET updated_at = ? WHERE id = ?", (at, playlist_id))


def _create_playlist(tx: Tx, e: CreatePlaylist) -> None:
    actor = actor_of(tx, e)
    id_free(tx, "playlists", e.playlist_id, "playlist")
    name = check_name(e.name, "playlist name")
    _exec(
        tx,
        "INSERT INTO playlists (id, owner_id, name, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
        (e.playlist_id, actor.id, name, e.at, e.at),
    )


def _rename_playlist(tx: Tx, e: RenamePlaylist) -> None:
    _own_playlist(tx, e, e.playlist_id)
    name = check_name(e.name, "playlist name")
    _exec(
        tx,
        "UPDATE playlists SET name = ?, updated_at = ? WHERE id = ?",
        (name, e.at, e.playlist_id),
    )


def _delete_playlist(tx: Tx, e: DeletePlaylist) -> None:
    actor = actor_of(tx, e)
    if _playlist_owner(tx, e.playlist_id) != actor.id and not actor.admin:
        raise Reject("only the playlist's owner or an admin may delete it", "forbidden")
    _exec(tx, "DELETE FROM playlist_items WHERE playlist_id = ?", (e.playlist_id,))
    _exec(tx, "DELETE FROM playlists WHERE id = ?", (e.playlist_id,))


def _add_to_playlist(tx: Tx, e: AddToPlaylist) -> None:
    _own_playlist(tx, e, e.playlist_id)
    check_id(e.item_id, "item id")
    if not exists(tx, "songs", e.song_id):
        raise Reject("unknown song", "not_found")
    if _one(tx, "SELECT 1 FROM playlist_items WHERE item_id = ?", (e.item_id,)):
        raise Reject("item id already exists", "conflict")
    order = playlist_items(tx, e.playlist_id)
    if len(order) >= PLAYLIST_ITEMS_MAX:
        raise Reject(f"a playlist holds at most {PLAYLIST_ITEMS_MAX} songs", "conflict")
    if e.before_item_id is not None and e.before_item_id not in order:
        raise Reject("unknown item to insert before", "not_found")
    _exec(
        tx,
        "INSERT INTO playlist_items (item_id, playlist_id, position, song_id, added_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (e.item_id, e.playlist_id, len(order), e.song_id, e.at),
    )
    renumber(tx, e.playlist_id, _insert_at(order, e.item_id, e.before_item_id))
    _touch_playlist(tx, e.playlist_id, e.at)


def _remove_from_playlist(tx: Tx, e: RemoveFromPlaylist) -> None:
    _own_playlist(tx, e, e.playlist_id)
    order = playlist_items(tx, e.playlist_id)
    if e.item_id not in order:
        raise Reject("unknown playlist item", "not_found")
    _exec(tx, "DELETE FROM playlist_items WHERE item_id = ?", (e.item_id,))
    order.remove(e.item_id)
    renumber(tx, e.playlist_id, order)
    _touch_playlist(tx, e.playlist_id, e.at)


def _move_playlist_item(tx: Tx, e: MovePlaylistItem) -> None:
    _own_playlist(tx, e, e.playlist_id)
    order = playlist_items(tx, e.playlist_id)
    if e.item_id not in order:
        raise Reject("unknown playlist item", "not_found")
    if e.before_item_id is not None and e.before_item_id not in order:
        raise Reject("unknown item to move before", "not_found")
    if e.before_item_id == e.item_id:
        return
    order.remove(e.item_id)
    renumber(tx, e.playlist_id, _insert_at(order, e.item_id, e.before_item_id))
    _touch_playlist(tx, e.playlist_id, e.at)


def _set_like(tx: Tx, e: Like) -> None:
    """Add (``liked``) or drop the actor's like of a song, album or artist; a song also
    keeps its ``like_count``."""
    actor = actor_of(tx, e)
    if e.target not in LIKE_TABLES:
        raise Reject(f"cannot like a {e.target}")
    table, column, target_table = LIKE_TABLES[e.target]
    if not exists(tx, target_table, e.target_id):
        raise Reject(f"unknown {e.target}", "not_found")
    liked = _one(
        tx, f"SELECT 1 FROM {table} WHERE user_id = ? AND {column} = ?", (actor.id, e.target_id)
    )
    if e.liked == (liked is not None):
        return  # liking twice, or unliking what is not liked: nothing to do
    if e.liked:
        _exec(
            tx,
            f"INSERT INTO {table} (user_id, {column}, at) VALUES (?, ?, ?)",
            (actor.id, e.target_id, e.at),
        )
    else:
        _exec(
            tx, f"DELETE FROM {table} WHERE user_id = ? AND {column} = ?", (actor.id, e.target_id)
        )
    if e.target == "song":
        step = 1 if e.liked else -1
        _exec(tx, "UPDATE songs SET like_count = like_count + ? WHERE id = ?", (step, e.target_id))


def _record_play(tx: Tx, e: RecordPlay) -> None:
    actor = actor_of(tx, e)
    if not exists(tx, "songs", e.song_id):
        raise Reject("unknown song", "not_found")
    if not 1 <= e.count <= 10_000:
        raise Reject("play count must be between 1 and 10000")
    _exec(
        tx,
        "INSERT INTO plays (user_id, song_id, count, last_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (user_id, song_id) DO UPDATE SET count = count + excluded.count, "
        "last_at = max(last_at, excluded.last_at)",
        (actor.id, e.song_id, e.count, e.at),
    )
    _exec(tx, "UPDATE songs SET play_count = play_count + ? WHERE id = ?", (e.count, e.song_id))


HANDLERS: Final[Mapping[type[Entry], Any]] = {
    CreatePlaylist: _create_playlist,
    RenamePlaylist: _rename_playlist,
    DeletePlaylist: _delete_playlist,
    AddToPlaylist: _add_to_playlist,
    RemoveFromPlaylist: _remove_from_playlist,
    MovePlaylistItem: _move_playlist_item,
    Like: _set_like,
    RecordPlay: _record_play,
}
