"""Subsonic endpoints that read: system, users, the artist index, artists, albums, songs,
album lists, random songs and search."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping
from typing import Any, Final

from dspot_spotify import catalog
from dspot_spotify.subsonic.call import (
    Call,
    Endpoint,
    album_elements,
    children,
    search_text,
    songs_by_id,
    window,
)
from dspot_spotify.subsonic.protocol import (
    EXTENSIONS,
    GENERIC,
    IGNORED_ARTICLES,
    MAX_LIST,
    MAX_NUMBER,
    MISSING_PARAMETER,
    MUSIC_FOLDER_ID,
    NOT_AUTHORIZED,
    SubsonicError,
    artist_element,
    iso,
)

__all__ = ["ENDPOINTS"]

_ARTICLES: Final = frozenset(a.casefold() for a in IGNORED_ARTICLES)


async def ping(call: Call) -> Mapping[str, Any]:
    return {}


async def get_license(call: Call) -> Mapping[str, Any]:
    return {"license": {"valid": True}}


async def get_extensions(call: Call) -> Mapping[str, Any]:
    return {
        "openSubsonicExtensions": [
            {"name": name, "versions": list(versions)} for name, versions in EXTENSIONS.items()
        ]
    }


async def token_info(call: Call) -> Mapping[str, Any]:
    return {"tokenInfo": {"username": call.me.username}}


async def get_music_folders(call: Call) -> Mapping[str, Any]:
    return {"musicFolders": {"musicFolder": [{"id": MUSIC_FOLDER_ID, "name": "Music"}]}}


def user_element(user: catalog.UserRecord) -> dict[str, Any]:
    """A user as Subsonic's ``User``: every role flag, what they may do here. There is no
    e-mail address in this catalog (``email`` is empty) and no bit-rate limit (0)."""
    return {
        "username": user.username,
        "email": "",
        "scrobblingEnabled": True,
        "maxBitRate": 0,
        "adminRole": user.admin,
        "settingsRole": True,
        "downloadRole": True,
        "uploadRole": True,
        "playlistRole": True,
        "coverArtRole": False,
        "commentRole": False,
        "podcastRole": False,
        "streamRole": True,
        "jukeboxRole": False,
        "shareRole": False,
        "videoConversionRole": False,
        "folder": [MUSIC_FOLDER_ID],
    }


async def get_user(call: Call) -> Mapping[str, Any]:
    user = await call.visible_user(call.params.require("username"))
    return {"user": user_element(user)}


async def get_users(call: Call) -> Mapping[str, Any]:
    if not call.me.admin:
        raise SubsonicError(NOT_AUTHORIZED, "only admins may list users")
    users = await call.read(catalog.all_users)
    return {"users": {"user": [user_element(u) for u in users]}}


# -- the artist index ----------------------------------------------------------------------------


def _without_article(name: str) -> str:
    words = name.split()
    if len(words) > 1 and words[0].casefold() in _ARTICLES:
        return " ".join(words[1:])
    return " ".join(words)


def _index_letter(name: str) -> str:
    first = unicodedata.normalize("NFKD", _without_article(name)[:1])[:1].upper()
    return first if first.isalpha() and first.isascii() else "#"


def _artist_index(tx: catalog.Tx, user_id: str) -> list[dict[str, Any]]:
    entries = catalog.artist_entries(tx, user_id)
    groups: dict[str, list[dict[str, Any]]] = {}
    for a in sorted(entries, key=lambda a: (_without_article(a.name).casefold(), a.id)):
        groups.setdefault(_index_letter(a.name), []).append(
            {"id": a.id, "name": a.name, "albumCount": a.album_count, "starred": iso(a.starred)}
        )
    return [
        {"name": letter, "artist": groups[letter]}
        for letter in sorted(groups, key=lambda k: (k == "#", k))
    ]


async def get_indexes(call: Call) -> Mapping[str, Any]:
    # ifModifiedSince is not honoured: deletions leave no timestamp behind, so "unchanged"
    # cannot be told reliably; the full index is always a correct answer.
    me = call.me

    def query(tx: catalog.Tx) -> Mapping[str, Any]:
        index = [
            {
                "name": g["name"],
                "artist": [
                    {"id": a["id"], "name": a["name"], "starred": a["starred"]} for a in g["artist"]
                ],
            }
            for g in _artist_index(tx, me.id)
        ]
        return {
            "indexes": {
                "lastModified": catalog.last_modified(tx),
                "ignoredArticles": " ".join(IGNORED_ARTICLES),
                "index": index,
            }
        }

    return await call.read(query)


async def get_artists(call: Call) -> Mapping[str, Any]:
    index = await call.read(_artist_index, call.me.id)
    return {"artists": {"ignoredArticles": " ".join(IGNORED_ARTICLES), "index": index}}


# -- artists, albums, songs ----------------------------------------------------------------------


async def get_artist(call: Call) -> Mapping[str, Any]:
    artist_id = call.params.require("id")
    me = call.me

    def query(tx: catalog.Tx) -> Mapping[str, Any] | None:
        detail = catalog.get_artist(tx, artist_id)
        if detail is None:
            return None
        albums = catalog.artist_album_rows(tx, artist_id)
        return {
            "artist": {
                "id": detail.artist.id,
                "name": detail.artist.name,
                "albumCount": len(albums),
                "starred": iso(catalog.stars(tx, me.id, [artist_id], "artist").get(artist_id)),
                "album": album_elements(tx, me.id, albums),
            }
        }

    return await call.found("artist", artist_id, query)


async def get_album(call: Call) -> Mapping[str, Any]:
    album_id = call.params.require("id")
    me = call.me

    def query(tx: catalog.Tx) -> Mapping[str, Any] | None:
        album = catalog.album_row(tx, album_id)
        detail = catalog.get_album(tx, album_id)
        if album is None or detail is None:
            return None
        [element] = album_elements(tx, me.id, [album])
        return {"album": {**element, "song": children(tx, me.id, detail.tracks)}}

    return await call.found("album", album_id, query)


async def get_song(call: Call) -> Mapping[str, Any]:
    song_id = call.params.require("id")
    me = call.me

    def query(tx: catalog.Tx) -> Mapping[str, Any] | None:
        song = catalog.get_song(tx, song_id)
        return None if song is None else {"song": children(tx, me.id, [song])[0]}

    return await call.found("song", song_id, query)


# -- lists -----------------------------------------------------------------------------------------


async def album_list(call: Call, *, id3: bool) -> list[dict[str, Any]]:
    """The albums of ``getAlbumList2`` (``id3=False``: of ``getAlbumList``, as directories)."""
    p = call.params
    kind = p.require("type")
    size = p.number("size", 10, high=MAX_LIST)
    offset = p.number("offset", 0)
    me = call.me
    years: tuple[int, int] | None = None
    genre: str | None = None
    if kind == "byYear":
        p.require("fromYear")
        p.require("toYear")
        years = (p.number("fromYear", 0, low=-MAX_NUMBER), p.number("toYear", 0, low=-MAX_NUMBER))
    elif kind == "byGenre":
        genre = p.require("genre")
    elif kind != "random" and kind not in catalog.ALBUM_LISTS:
        raise SubsonicError(GENERIC, f"unknown album list type: {kind}")
    rng = call.node.env.rng

    def query(tx: catalog.Tx) -> list[dict[str, Any]]:
        if kind == "random":
            ids = catalog.album_ids(tx)
            albums = catalog.album_rows(tx, rng.sample(ids, min(size, len(ids))))
        else:
            albums = catalog.album_list(
                tx, kind, user_id=me.id, size=size, offset=offset, years=years, genre=genre
            )
        return album_elements(tx, me.id, albums, id3=id3)

    return await call.read(query)


async def get_album_list2(call: Call) -> Mapping[str, Any]:
    return {"albumList2": {"album": await album_list(call, id3=True)}}


async def get_random_songs(call: Call) -> Mapping[str, Any]:
    p = call.params
    size = p.number("size", 10, high=MAX_LIST)
    genre = p.get("genre") or None
    start, end = p.optional_int("fromYear"), p.optional_int("toYear")
    rng = call.node.env.rng
    me = call.me

    def query(tx: catalog.Tx) -> list[dict[str, Any]]:
        ids = catalog.song_ids(tx, genre=genre, from_year=start, to_year=end)
        chosen = rng.sample(ids, min(size, len(ids)))
        return children(tx, me.id, songs_by_id(tx, chosen))

    return {"randomSongs": {"song": await call.read(query)}}


def search(call: Call, result: str, *, id3: bool) -> Callable[[catalog.Tx], Mapping[str, Any]]:
    """The query of ``search3`` (``search2`` with ``id3=False``: artists and albums in
    their folder-based forms), answering under ``result``."""
    p = call.params
    if p.get("query") is None:
        raise SubsonicError(MISSING_PARAMETER, "required parameter is missing: query")
    q = search_text(p.get("query")) or None  # OpenSubsonic: an empty query lists everything
    counts = {
        kind: (p.number(f"{kind}Count", 20, high=MAX_LIST), p.number(f"{kind}Offset", 0))
        for kind in ("artist", "album", "song")
    }
    me = call.me

    def take(kind: str, query: Callable[..., catalog.Page[Any]], tx: catalog.Tx) -> list[Any]:
        count, offset = counts[kind]
        return window(query, tx, offset, count, q=q)

    def query(tx: catalog.Tx) -> Mapping[str, Any]:
        artists = take("artist", catalog.list_artists, tx)
        albums = catalog.album_rows(tx, [a.id for a in take("album", catalog.list_albums, tx)])
        songs = take("song", catalog.list_songs, tx)
        stars = catalog.stars(tx, me.id, [a.id for a in artists], "artist")
        entries = [
            catalog.ArtistEntry(
                id=a.id, name=a.name, album_count=a.album_count, starred=stars.get(a.id)
            )
            for a in artists
        ]
        return {
            result: {
                "artist": [artist_element(a, id3=id3) for a in entries],
                "album": album_elements(tx, me.id, albums, id3=id3),
                "song": children(tx, me.id, songs),
            }
        }

    return query


async def search3(call: Call) -> Mapping[str, Any]:
    return await call.read(search(call, "searchResult3", id3=True))


ENDPOINTS: Final[Mapping[str, Endpoint]] = {
    "ping": ping,
    "getLicense": get_license,
    "getOpenSubsonicExtensions": get_extensions,
    "tokenInfo": token_info,
    "getMusicFolders": get_music_folders,
    "getUser": get_user,
    "getUsers": get_users,
    "getIndexes": get_indexes,
    "getArtists": get_artists,
    "getArtist": get_artist,
    "getAlbum": get_album,
    "getSong": get_song,
    "getAlbumList2": get_album_list2,
    "getRandomSongs": get_random_songs,
    "search3": search3,
}
