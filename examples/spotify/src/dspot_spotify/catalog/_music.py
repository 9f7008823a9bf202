"""Catalog handlers for the music: artists, albums and songs, with their full-text index."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

from dspot_spotify.catalog._entries import (
    CreateAlbum,
    CreateArtist,
    CreateSong,
    DeleteAlbum,
    DeleteArtist,
    DeleteSong,
    Entry,
    UpdateAlbum,
    UpdateArtist,
    UpdateSong,
)
from dspot_spotify.catalog._player import forget_rated, forget_song
from dspot_spotify.catalog._rules import (
    Reject,
    actor_of,
    check_genres,
    check_name,
    check_sha,
    check_track,
    check_year,
    exists,
    id_free,
    may_edit,
    owner_of,
    playlist_items,
    renumber,
)
from dspot_spotify.catalog._sql import Tx
from dspot_spotify.catalog._sql import exec_ as _exec
from dspot_spotify.catalog._sql import one as _one
from dspot_spotify.catalog._sql import scalar as _scalar
from dspot_spotify.tags import MAX_LYRICS


def _reindex_artist(tx: Tx, artist_id: str) -> None:
    row = _one(tx, "SELECT n, name FROM artists WHERE id = ?", (artist_id,))
    if row is None:
        return
    _exec(tx, "DELETE FROM artists_fts WHERE rowid = ?", (row[0],))
    _exec(tx, "INSERT INTO artists_fts (rowid, name) VALUES (?, ?)", (row[0], row[1]))


def _reindex_album(tx: Tx, album_id: str) -> None:
    row = _one(
        tx,
        "SELECT al.n, al.title, ar.name FROM albums al "
        "JOIN artists ar ON ar.id = al.artist_id WHERE al.id = ?",
        (album_id,),
    )
    if row is None:
        return
    _exec(tx, "DELETE FROM albums_fts WHERE rowid = ?", (row[0],))
    _exec(tx, "INSERT INTO albums_fts (rowid, title, artist) VALUES (?, ?, ?)", tuple(row))


def _reindex_song(tx: Tx, song_id: str) -> None:
    row = _one(
        tx,
        "SELECT s.n, s.title, ar.name, COALESCE(al.title, '') FROM songs s "
        "JOIN artists ar ON ar.id = s.artist_id LEFT JOIN albums al ON al.id = s.album_id "
        "WHERE s.id = ?",
        (song_id,),
    )
    if row is None:
        return
    _exec(tx, "DELETE FROM songs_fts WHERE rowid = ?", (row[0],))
    _exec(tx, "INSERT INTO songs_fts (rowid, title, artist, album) VALUES (?, ?, ?, ?)", tuple(row))


def _create_artist(tx: Tx, e: CreateArtist) -> None:
    actor = actor_of(tx, e)
    id_free(tx, "artists", e.artist_id, "artist")
    name = check_name(e.name, "artist name")
    _exec(
        tx,
        "INSERT INTO artists (id, name, created_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
        (e.artist_id, name, actor.id, e.at, e.at),
    )
    _reindex_artist(tx, e.artist_id)


def _update_artist(tx: Tx, e: UpdateArtist) -> None:
    actor = actor_of(tx, e)
    may_edit(actor, owner_of(tx, "artists", e.artist_id, "artist"), "artist")
    name = check_name(e.name, "artist name")
    _exec(tx, "UPDATE artists SET name = ?, updated_at = ? WHERE id = ?", (name, e.at, e.artist_id))
    _reindex_artist(tx, e.artist_id)
    for (album_id,) in _exec(tx, "SELECT id FROM albums WHERE artist_id = ?", (e.artist_id,)):
        _reindex_album(tx, album_id)
    for (song_id,) in _exec(tx, "SELECT id FROM songs WHERE artist_id = ?", (e.artist_id,)):
        _reindex_song(tx, song_id)


def _delete_artist(tx: Tx, e: DeleteArtist) -> None:
    actor = actor_of(tx, e)
    may_edit(actor, owner_of(tx, "artists", e.artist_id, "artist"), "artist")
    if _one(tx, "SELECT 1 FROM albums WHERE artist_id = ?", (e.artist_id,)):
        raise Reject("artist still has albums", "conflict")
    if _one(tx, "SELECT 1 FROM songs WHERE artist_id = ?", (e.artist_id,)):
        raise Reject("artist still has songs", "conflict")
    n = _scalar(tx, "SELECT n FROM artists WHERE id = ?", (e.artist_id,))
    _exec(tx, "DELETE FROM artist_likes WHERE artist_id = ?", (e.artist_id,))
    forget_rated(tx, "artist", e.artist_id)
    _exec(tx, "DELETE FROM artists_fts WHERE rowid = ?", (n,))
    _exec(tx, "DELETE FROM artists WHERE id = ?", (e.artist_id,))


def _check_album_fields(tx: Tx, e: CreateAlbum | UpdateAlbum) -> str:
    title = check_name(e.title, "album title")
    if not exists(tx, "artists", e.artist_id):
        raise Reject("unknown artist", "not_found")
    check_year(e.year)
    check_sha(e.cover_sha256, "cover")
    return title


def _create_album(tx: Tx, e: CreateAlbum) -> None:
    actor = actor_of(tx, e)
    id_free(tx, "albums", e.album_id, "album")
    title = _check_album_fields(tx, e)
    _exec(
        tx,
        "INSERT INTO albums (id, title, artist_id, year, cover_sha256, created_by, "
        "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (e.album_id, title, e.artist_id, e.year, e.cover_sha256, actor.id, e.at, e.at),
    )
    _reindex_album(tx, e.album_id)


def _update_album(tx: Tx, e: UpdateAlbum) -> None:
    actor = actor_of(tx, e)
    may_edit(actor, owner_of(tx, "albums", e.album_id, "album"), "album")
    title = _check_album_fields(tx, e)
    _exec(
        tx,
        "UPDATE albums SET title = ?, artist_id = ?, year = ?, cover_sha256 = ?, "
        "updated_at = ? WHERE id = ?",
        (title, e.artist_id, e.year, e.cover_sha256, e.at, e.album_id),
    )
    _reindex_album(tx, e.album_id)
    for (song_id,) in _exec(tx, "SELECT id FROM songs WHERE album_id = ?", (e.album_id,)):
        _reindex_song(tx, song_id)


def _delete_album(tx: Tx, e: DeleteAlbum) -> None:
    actor = actor_of(tx, e)
    may_edit(actor, owner_of(tx, "albums", e.album_id, "album"), "album")
    if _one(tx, "SELECT 1 FROM songs WHERE album_id = ?", (e.album_id,)):
        raise Reject("album still has songs", "conflict")
    n = _scalar(tx, "SELECT n FROM albums WHERE id = ?", (e.album_id,))
    _exec(tx, "DELETE FROM album_likes WHERE album_id = ?", (e.album_id,))
    forget_rated(tx, "album", e.album_id)
    _exec(tx, "DELETE FROM albums_fts WHERE rowid = ?", (n,))
    _exec(tx, "DELETE FROM albums WHERE id = ?", (e.album_id,))


def _check_song_fields(tx: Tx, e: CreateSong | UpdateSong) -> tuple[str, tuple[str, ...]]:
    title = check_name(e.title, "song title")
    if not exists(tx, "artists", e.artist_id):
        raise Reject("unknown artist", "not_found")
    if e.album_id is not None and not exists(tx, "albums", e.album_id):
        raise Reject("unknown album", "not_found")
    check_track(e.track)
    check_year(e.year)
    return title, check_genres(e.genres)


def _set_genres(tx: Tx, song_id: str, genres: tuple[str, ...]) -> None:
    _exec(tx, "DELETE FROM song_genres WHERE song_id = ?", (song_id,))
    for i, g in enumerate(genres):
        _exec(
            tx,
            "INSERT INTO song_genres (song_id, position, genre) VALUES (?, ?, ?)",
            (song_id, i, g),
        )


def _create_song(tx: Tx, e: CreateSong) -> None:
    actor = actor_of(tx, e)
    id_free(tx, "songs", e.song_id, "song")
    title, genres = _check_song_fields(tx, e)
    if not (isinstance(e.duration, int | float) and math.isfinite(e.duration) and e.duration >= 0):
        raise Reject("duration must be a finite, non-negative number of seconds")
    check_sha(e.blob_sha256, "blob")
    check_sha(e.cover_sha256, "cover")
    if not e.mime or len(e.mime) > 100 or "/" not in e.mime:
        raise Reject("mime must be a MIME type")
    if e.size < 0:
        raise Reject("size must not be negative")
    _exec(
        tx,
        "INSERT INTO songs (id, title, artist_id, album_id, track, year, duration, "
        "blob_sha256, mime, size, cover_sha256, created_by, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            e.song_id,
            title,
            e.artist_id,
            e.album_id,
            e.track,
            e.year,
            float(e.duration),
            e.blob_sha256,
            e.mime,
            e.size,
            e.cover_sha256,
            actor.id,
            e.at,
            e.at,
        ),
    )
    _set_genres(tx, e.song_id, genres)
    if e.lyrics is not None and e.lyrics.strip():
        if len(e.lyrics) > MAX_LYRICS:
            raise Reject(f"lyrics must have at most {MAX_LYRICS} characters")
        _exec(tx, "INSERT INTO song_lyrics (song_id, lyrics) VALUES (?, ?)", (e.song_id, e.lyrics))
    _reindex_song(tx, e.song_id)


def _update_song(tx: Tx, e: UpdateSong) -> None:
    actor = actor_of(tx, e)
    may_edit(actor, owner_of(tx, "songs", e.song_id, "song"), "song")
    title, genres = _check_song_fields(tx, e)
    _exec(
        tx,
        "UPDATE songs SET title = ?, artist_id = ?, album_id = ?, track = ?, year = ?, "
        "updated_at = ? WHERE id = ?",
        (title, e.artist_id, e.album_id, e.track, e.year, e.at, e.song_id),
    )
    _set_genres(tx, e.song_id, genres)
    _reindex_song(tx, e.song_id)


def _delete_song(tx: Tx, e: DeleteSong) -> None:
    actor = actor_of(tx, e)
    may_edit(actor, owner_of(tx, "songs", e.song_id, "song"), "song")
    playlists = [
        r[0]
        for r in _exec(
            tx,
            "SELECT DISTINCT playlist_id FROM playlist_items WHERE song_id = ? "
            "ORDER BY playlist_id",
            (e.song_id,),
        )
    ]
    _exec(tx, "DELETE FROM playlist_items WHERE song_id = ?", (e.song_id,))
    for pid in playlists:
        renumber(tx, pid, playlist_items(tx, pid))
    _exec(tx, "DELETE FROM likes WHERE song_id = ?", (e.song_id,))
    _exec(tx, "DELETE FROM plays WHERE song_id = ?", (e.song_id,))
    _exec(tx, "DELETE FROM song_genres WHERE song_id = ?", (e.song_id,))
    _exec(tx, "DELETE FROM song_lyrics WHERE song_id = ?", (e.song_id,))
    forget_song(tx, e.song_id)
    n = _scalar(tx, "SELECT n FROM songs WHERE id = ?", (e.song_id,))
    _exec(tx, "DELETE FROM songs_fts WHERE rowid = ?", (n,))
    _exec(tx, "DELETE FROM songs WHERE id = ?", (e.song_id,))


HANDLERS: Final[Mapping[type[Entry], Any]] = {
    CreateArtist: _create_artist,
    UpdateArtist: _update_artist,
    DeleteArtist: _delete_artist,
    CreateAlbum: _create_album,
    UpdateAlbum: _update_album,
    DeleteAlbum: _delete_album,
    CreateSong: _create_song,
    UpdateSong: _update_song,
    DeleteSong: _delete_song,
}
