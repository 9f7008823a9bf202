"""Subsonic endpoints of what a user keeps: stars (the catalog's likes), plays (scrobbles)
and playlists."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Final

from dspot_spotify import catalog
from dspot_spotify.subsonic.call import Call, Endpoint, album_elements, children, songs_by_id
from dspot_spotify.subsonic.player import record_now_playing
from dspot_spotify.subsonic.protocol import (
    GENERIC,
    MISSING_PARAMETER,
    NOT_AUTHORIZED,
    NOT_FOUND,
    SubsonicError,
    iso,
)

__all__ = ["ENDPOINTS"]

# -- stars and plays ---------------------------------------------------------------------------


async def _star(call: Call, *, like: bool) -> Mapping[str, Any]:
    """Star or unstar every ``id`` (a song, album or artist id), ``albumId`` and ``artistId``,
    all in one entry."""
    p = call.params
    named: list[tuple[str, catalog.LikeTarget | None]] = [
        *((i, None) for i in p.all("id") if i),
        *((i, "album") for i in p.all("albumId") if i),
        *((i, "artist") for i in p.all("artistId") if i),
    ]
    if not named:
        raise SubsonicError(MISSING_PARAMETER, "required parameter is missing: id")

    def resolve(tx: catalog.Tx) -> list[tuple[catalog.LikeTarget, str]]:
        """(what it is, the id) for each named id; error 70 for one that is nothing."""
        out: list[tuple[catalog.LikeTarget, str]] = []
        for item_id, wanted in named:
            kinds: list[catalog.LikeTarget] = [wanted] if wanted else ["song", "album", "artist"]
            found = next((k for k in kinds if catalog.exists(tx, k, item_id)), None)
            if found is None:
                raise SubsonicError(NOT_FOUND, f"no {wanted or 'song, album or artist'} {item_id}")
            out.append((found, item_id))
        return out

    await call.commit_all(
        [
            catalog.Like(target=target, target_id=item_id, liked=like)
            for target, item_id in dict.fromkeys(await call.read(resolve))
        ]
    )
    return {}


async def star(call: Call) -> Mapping[str, Any]:
    return await _star(call, like=True)


async def unstar(call: Call) -> Mapping[str, Any]:
    return await _star(call, like=False)


async def get_starred2(call: Call) -> Mapping[str, Any]:
    me = call.me

    def query(tx: catalog.Tx) -> Mapping[str, Any]:
        artists = [
            {"id": a.id, "name": a.name, "albumCount": a.album_count, "starred": iso(a.starred)}
            for a in catalog.starred_artists(tx, me.id)
        ]
        albums = catalog.starred_album_rows(tx, me.id)
        songs = songs_by_id(tx, catalog.liked_song_ids(tx, me.id))
        return {
            "starred2": {
                "artist": artists,
                "album": album_elements(tx, me.id, albums),
                "song": children(tx, me.id, songs),
            }
        }

    return await call.read(query)


async def scrobble(call: Call) -> Mapping[str, Any]:
    p = call.params
    ids = [i for i in p.all("id") if i]
    if not ids:
        raise SubsonicError(MISSING_PARAMETER, "required parameter is missing: id")
    for song_id in dict.fromkeys(ids):
        await call.song(song_id)
    if not p.flag("submission", True):  # a "now playing" notification, not a play
        await record_now_playing(call, ids[-1])
        return {}
    await call.commit_all(
        [catalog.RecordPlay(song_id=song_id, count=n) for song_id, n in Counter(ids).items()]
    )
    return {}


# -- playlists -----------------------------------------------------------------------------------


async def _playlist(call: Call, playlist_id: str) -> catalog.PlaylistDetail:
    playlist = await call.read(catalog.get_playlist, playlist_id)
    if playlist is None:
        raise SubsonicError(NOT_FOUND, f"no playlist {playlist_id}")
    return playlist


async def _own_playlist(call: Call, playlist_id: str) -> catalog.PlaylistDetail:
    playlist = await _playlist(call, playlist_id)
    if playlist.playlist.owner_id != call.me.id:
        raise SubsonicError(NOT_AUTHORIZED, "only the playlist's owner may edit it")
    return playlist


async def _playlist_element(
    call: Call, view: catalog.PlaylistView, *, entries: bool
) -> dict[str, Any]:
    """A ``playlist`` element; with ``entries``, its header and its songs are read again
    together, in one snapshot (``view`` may be older: a write between two reads would
    otherwise give the old name and count with the new songs)."""
    me = call.me

    def query(tx: catalog.Tx) -> dict[str, Any]:
        nonlocal view
        songs: list[catalog.SongView] = []
        if entries:
            detail = catalog.get_playlist(tx, view.id)
            if detail is None:
                raise SubsonicError(NOT_FOUND, f"no playlist {view.id}")
            view = detail.playlist
            songs = [i.song for i in detail.items]
        owner = catalog.get_user(tx, view.owner_id)
        out: dict[str, Any] = {
            "id": view.id,
            "name": view.name,
            "owner": owner.username if owner else None,
            "public": False,
            "songCount": view.song_count,
            "duration": round(view.duration),
            "created": iso(view.created_at),
            "changed": iso(view.updated_at),
        }
        if entries:
            out["entry"] = children(tx, me.id, songs)
            out["coverArt"] = next((s.id for s in songs if s.cover_sha256), None)
        return out

    return await call.read(query)


async def get_playlists(call: Call) -> Mapping[str, Any]:
    name = call.params.get("username")
    owner = await call.visible_user(name) if name else call.me
    views = await call.read(catalog.user_playlists, owner.id)
    items = [await _playlist_element(call, v, entries=False) for v in views]
    return {"playlists": {"playlist": items}}


async def get_playlist(call: Call) -> Mapping[str, Any]:
    detail = await _playlist(call, call.params.require("id"))
    return {"playlist": await _playlist_element(call, detail.playlist, entries=True)}


def _additions(call: Call, playlist_id: str, song_ids: Sequence[str]) -> list[catalog.Entry]:
    return [
        catalog.AddToPlaylist(playlist_id=playlist_id, item_id=call.node.env.ids(), song_id=s)
        for s in song_ids
    ]


def _removals(playlist_id: str, item_ids: Sequence[str]) -> list[catalog.Entry]:
    return [catalog.RemoveFromPlaylist(playlist_id=playlist_id, item_id=i) for i in item_ids]


async def create_playlist(call: Call) -> Mapping[str, Any]:
    """A new playlist with its songs, or (``playlistId``) an existing one's songs replaced:
    one entry either way."""
    p = call.params
    song_ids = [s for s in p.all("songId") if s]
    playlist_id = p.get("playlistId")
    name = p.get("name")
    for song_id in song_ids:
        await call.song(song_id)
    changes: list[catalog.Entry] = []
    if playlist_id:  # replace an existing playlist's songs
        detail = await _own_playlist(call, playlist_id)
        if name:
            changes.append(catalog.RenamePlaylist(playlist_id=playlist_id, name=name))
        changes += _removals(playlist_id, [i.item_id for i in detail.items])
    else:
        if not name:
            raise SubsonicError(
                MISSING_PARAMETER, "required parameter is missing: name or playlistId"
            )
        playlist_id = call.node.env.ids()
        changes.append(catalog.CreatePlaylist(playlist_id=playlist_id, name=name))
    await call.commit_all([*changes, *_additions(call, playlist_id, song_ids)])
    detail = await _playlist(call, playlist_id)
    return {"playlist": await _playlist_element(call, detail.playlist, entries=True)}


async def update_playlist(call: Call) -> Mapping[str, Any]:
    """Rename, remove by index and add songs, as one entry."""
    p = call.params
    playlist_id = p.require("playlistId")
    detail = await _own_playlist(call, playlist_id)
    remove: list[int] = []
    for text in p.all("songIndexToRemove"):
        if not re.fullmatch(r"\s*[+-]?[0-9]{1,9}\s*", text):
            raise SubsonicError(GENERIC, "songIndexToRemove must be an integer")
        index = int(text)
        if not 0 <= index < len(detail.items):
            raise SubsonicError(NOT_FOUND, f"no song at index {index} of the playlist")
        remove.append(index)
    add = [s for s in p.all("songIdToAdd") if s]
    for song_id in add:
        await call.song(song_id)
    changes: list[catalog.Entry] = []
    if name := p.get("name"):
        changes.append(catalog.RenamePlaylist(playlist_id=playlist_id, name=name))
    changes += _removals(playlist_id, [detail.items[i].item_id for i in sorted(set(remove))])
    await call.commit_all([*changes, *_additions(call, playlist_id, add)])
    return {}


async def delete_playlist(call: Call) -> Mapping[str, Any]:
    playlist_id = call.params.require("id")
    await _playlist(call, playlist_id)
    entry = catalog.DeletePlaylist(actor=call.me.id, at=call.node.now_ms(), playlist_id=playlist_id)
    await call.commit(entry)
    return {}


ENDPOINTS: Final[Mapping[str, Endpoint]] = {
    "star": star,
    "unstar": unstar,
    "getStarred2": get_starred2,
    "scrobble": scrobble,
    "getPlaylists": get_playlists,
    "getPlaylist": get_playlist,
    "createPlaylist": create_playlist,
    "updatePlaylist": update_playlist,
    "deletePlaylist": delete_playlist,
}
