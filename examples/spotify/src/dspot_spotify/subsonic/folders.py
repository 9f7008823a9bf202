"""The folder-based (non-ID3) forms of the Subsonic API, for clients that browse by
directory: ``getMusicDirectory``, ``getAlbumList``, ``getStarred`` and ``search2``.

The catalog has no folders, so it shows the layout the ``path`` of every song implies: the
music folder holds one directory per artist (``getIndexes``), an artist's directory holds
their albums (as directories) and their songs outside any album, an album's directory holds
its tracks. Directory ids are the artist and album ids, so the ID3 and folder forms name
the same things.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from dspot_spotify import catalog
from dspot_spotify.subsonic.browse import album_list, search
from dspot_spotify.subsonic.call import Call, Endpoint, album_elements, children, songs_by_id
from dspot_spotify.subsonic.protocol import (
    MUSIC_FOLDER_ID,
    NOT_FOUND,
    SubsonicError,
    artist_element,
    iso,
)

__all__ = ["ENDPOINTS"]


async def get_music_directory(call: Call) -> Mapping[str, Any]:
    directory_id = call.params.require("id")
    me = call.me

    def query(tx: catalog.Tx) -> Mapping[str, Any] | None:
        album = catalog.album_row(tx, directory_id)
        if album is not None:
            detail = catalog.get_album(tx, directory_id)
            tracks = detail.tracks if detail else ()
            starred = catalog.stars(tx, me.id, [album.id], "album").get(album.id)
            rating = catalog.ratings(tx, me.id, [album.id], "album").get(album.id)
            return {
                "id": album.id,
                "parent": album.artist_id,
                "name": album.title,
                "starred": iso(starred),
                "userRating": rating,
                "playCount": album.play_count,
                "child": children(tx, me.id, tracks),
            }
        artist = catalog.get_artist(tx, directory_id)
        if artist is None:
            return None
        albums = catalog.artist_album_rows(tx, directory_id)
        starred = catalog.stars(tx, me.id, [directory_id], "artist").get(directory_id)
        return {
            "id": artist.artist.id,
            "parent": str(MUSIC_FOLDER_ID),
            "name": artist.artist.name,
            "starred": iso(starred),
            "child": [
                *album_elements(tx, me.id, albums, id3=False),
                *children(tx, me.id, artist.singles),
            ],
        }

    found = await call.read(query)
    if found is None:
        raise SubsonicError(NOT_FOUND, f"no directory {directory_id}")
    return {"directory": found}


async def get_album_list(call: Call) -> Mapping[str, Any]:
    albums = await album_list(call, id3=False)
    return {"albumList": {"album": albums}}


async def get_starred(call: Call) -> Mapping[str, Any]:
    me = call.me

    def query(tx: catalog.Tx) -> Mapping[str, Any]:
        artists = [artist_element(a, id3=False) for a in catalog.starred_artists(tx, me.id)]
        albums = catalog.starred_album_rows(tx, me.id)
        songs = songs_by_id(tx, catalog.liked_song_ids(tx, me.id))
        return {
            "starred": {
                "artist": artists,
                "album": album_elements(tx, me.id, albums, id3=False),
                "song": children(tx, me.id, songs),
            }
        }

    return await call.read(query)


async def search2(call: Call) -> Mapping[str, Any]:
    return await call.read(search(call, "searchResult2", id3=False))


ENDPOINTS: Final[Mapping[str, Endpoint]] = {
    "getMusicDirectory": get_music_directory,
    "getAlbumList": get_album_list,
    "getStarred": get_starred,
    "search2": search2,
}
