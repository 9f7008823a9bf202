"""Subsonic endpoints about the music rather than its files: genres, top and similar songs,
artist and album information, lyrics, and the library scan (which this service does not
need: every upload is in the catalog once its log entry is applied).

"Similar" is what the catalog can tell without an outside service: songs by the same artist
or of the same genres, artists with songs of the same genres. Artist and album information
(biographies, notes, outside links) is answered empty, which the specification allows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from dspot_spotify import catalog
from dspot_spotify.subsonic.call import Call, Endpoint, children, songs_by_id, window
from dspot_spotify.subsonic.protocol import (
    MAX_LIST,
    NOT_FOUND,
    SubsonicError,
    artist_element,
)

__all__ = ["ENDPOINTS", "structured_lyrics"]


async def get_genres(call: Call) -> Mapping[str, Any]:
    rows = await call.read(catalog.genre_counts)
    return {
        "genres": {
            "genre": [
                {"songCount": songs, "albumCount": albums, "value": name}
                for name, songs, albums in rows
            ]
        }
    }


async def get_songs_by_genre(call: Call) -> Mapping[str, Any]:
    p = call.params
    genre = p.require("genre")
    count = p.number("count", 10, high=MAX_LIST)
    offset = p.number("offset", 0)
    me = call.me

    def query(tx: catalog.Tx) -> list[dict[str, Any]]:
        songs = window(catalog.list_songs, tx, offset, count, genre=genre)
        return children(tx, me.id, songs)

    return {"songsByGenre": {"song": await call.read(query)}}


async def get_top_songs(call: Call) -> Mapping[str, Any]:
    p = call.params
    name = p.require("artist")
    count = p.number("count", 50, high=MAX_LIST)
    me = call.me

    def query(tx: catalog.Tx) -> list[dict[str, Any]]:
        artist_id = catalog.find_artist(tx, name)
        if artist_id is None:
            return []  # an artist this catalog does not have has no top songs here
        return children(tx, me.id, songs_by_id(tx, catalog.top_song_ids(tx, artist_id, count)))

    return {"topSongs": {"song": await call.read(query)}}


def _seed(tx: catalog.Tx, item_id: str, *, artists_only: bool) -> tuple[str, list[str]] | None:
    """The artist and genres that "similar" starts from: an artist's own, or (unless
    ``artists_only``) an album's or a song's artist and genres."""
    if catalog.get_artist(tx, item_id) is not None:
        return item_id, catalog.artist_genres(tx, item_id)
    if artists_only:
        return None
    song = catalog.get_song(tx, item_id)
    if song is not None:
        return song.artist_id, list(song.genres)
    album = catalog.album_row(tx, item_id)
    if album is not None:
        detail = catalog.get_album(tx, item_id)
        genres = [g for t in (detail.tracks if detail else ()) for g in t.genres]
        return album.artist_id, list(dict.fromkeys(genres))
    return None


async def _similar(call: Call, result: str, *, artists_only: bool) -> Mapping[str, Any]:
    p = call.params
    item_id = p.require("id")
    count = p.number("count", 50, high=MAX_LIST)
    rng = call.node.env.rng
    me = call.me

    def query(tx: catalog.Tx) -> list[dict[str, Any]] | None:
        seed = _seed(tx, item_id, artists_only=artists_only)
        if seed is None:
            return None
        ids = [i for i in catalog.related_song_ids(tx, *seed) if i != item_id]
        chosen = rng.sample(ids, min(count, len(ids)))
        return children(tx, me.id, songs_by_id(tx, chosen))

    songs = await call.read(query)
    if songs is None:
        what = "artist" if artists_only else "artist, album or song"
        raise SubsonicError(NOT_FOUND, f"no {what} {item_id}")
    return {result: {"song": songs}}


async def get_similar_songs(call: Call) -> Mapping[str, Any]:
    return await _similar(call, "similarSongs", artists_only=False)


async def get_similar_songs2(call: Call) -> Mapping[str, Any]:
    return await _similar(call, "similarSongs2", artists_only=True)


# No outside source (MusicBrainz, Last.fm) is asked: every field of the information is there,
# and empty (some clients read each key unconditionally).
_NO_INFO: Final = {
    "musicBrainzId": "",
    "lastFmUrl": "",
    "smallImageUrl": "",
    "mediumImageUrl": "",
    "largeImageUrl": "",
}


async def _artist_info(call: Call, result: str, *, id3: bool) -> Mapping[str, Any]:
    p = call.params
    artist_id = p.require("id")
    count = p.number("count", 20, high=MAX_LIST)
    me = call.me

    def query(tx: catalog.Tx) -> list[dict[str, Any]] | None:
        if catalog.get_artist(tx, artist_id) is None:
            return None
        similar = catalog.related_artists(tx, me.id, artist_id, count)
        return [artist_element(a, id3=id3) for a in similar]

    similar = await call.read(query)
    if similar is None:
        raise SubsonicError(NOT_FOUND, f"no artist {artist_id}")
    return {result: {**_NO_INFO, "biography": "", "similarArtist": similar}}


async def get_artist_info(call: Call) -> Mapping[str, Any]:
    return await _artist_info(call, "artistInfo", id3=False)


async def get_artist_info2(call: Call) -> Mapping[str, Any]:
    return await _artist_info(call, "artistInfo2", id3=True)


async def _album_info(call: Call) -> Mapping[str, Any]:
    album_id = call.params.require("id")
    if await call.read(catalog.album_row, album_id) is None:
        raise SubsonicError(NOT_FOUND, f"no album {album_id}")
    return {"albumInfo": {**_NO_INFO, "notes": ""}}


async def get_scan_status(call: Call) -> Mapping[str, Any]:
    count = await call.read(catalog.song_count)
    return {"scanStatus": {"scanning": False, "count": count}}


async def get_lyrics(call: Call) -> Mapping[str, Any]:
    p = call.params
    found = await call.read(catalog.find_lyrics, p.get("artist"), p.get("title"))
    if found is None:
        return {"lyrics": {"value": ""}}  # none: empty lyrics, as other servers answer
    artist, title, text = found
    return {"lyrics": {"artist": artist, "title": title, "value": text}}


_LRC_TIME: Final = re.compile(r"\[(\d{1,3}):(\d{1,2}(?:[.:]\d{1,3})?)\]")
_LRC_TAG: Final = re.compile(r"^\[[a-z]+:.*\]$", re.IGNORECASE)


def structured_lyrics(text: str, *, artist: str, title: str) -> dict[str, Any]:
    """Lyrics as OpenSubsonic's ``structuredLyrics``: synced (times in ms) when every line
    carries an LRC time stamp, else one line per line of text."""
    lines = [line.strip() for line in text.replace("\r\n", "\n").split("\n")]
    lines = [line for line in lines if line and not _LRC_TAG.match(line)]
    synced: list[dict[str, Any]] = []
    is_synced = bool(lines)
    for line in lines:
        stamps = _LRC_TIME.findall(line)
        if not stamps:
            is_synced = False
            break
        words = _LRC_TIME.sub("", line).strip()
        for minutes, seconds in stamps:
            start = round((int(minutes) * 60 + float(seconds.replace(":", "."))) * 1000)
            synced.append({"start": start, "value": words})
    return {
        "displayArtist": artist,
        "displayTitle": title,
        "lang": "und",
        "synced": is_synced,
        "line": (
            sorted(synced, key=lambda line: int(line["start"]))
            if is_synced
            else [{"value": line} for line in lines]
        ),
    }


async def get_lyrics_by_song_id(call: Call) -> Mapping[str, Any]:
    song = await call.song(call.params.require("id"))
    text = await call.read(catalog.lyrics, song.id)
    found = (
        [] if text is None else [structured_lyrics(text, artist=song.artist_name, title=song.title)]
    )
    return {"lyricsList": {"structuredLyrics": found}}


ENDPOINTS: Final[Mapping[str, Endpoint]] = {
    "getGenres": get_genres,
    "getSongsByGenre": get_songs_by_genre,
    "getTopSongs": get_top_songs,
    "getSimilarSongs": get_similar_songs,
    "getSimilarSongs2": get_similar_songs2,
    "getArtistInfo": get_artist_info,
    "getArtistInfo2": get_artist_info2,
    "getAlbumInfo": _album_info,
    "getAlbumInfo2": _album_info,
    "getScanStatus": get_scan_status,
    "startScan": get_scan_status,  # nothing to scan: the catalog is always up to date
    "getLyrics": get_lyrics,
    "getLyricsBySongId": get_lyrics_by_song_id,
}
