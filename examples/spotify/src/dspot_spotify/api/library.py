"""The library around the songs: artists, albums, genres, and likes (of songs, albums and
artists alike) with the lists of what I like.

Unknown ids answer 404. Artists and albums may be changed or deleted by the user who
created them or an admin (anyone else: 403); one still holding albums or songs cannot be
deleted (409). A PATCH body is a JSON object of the fields to change: an unknown field or a
value of the wrong type is a 422 that names it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

import attrs
from dspot.http import Request, Response

from dspot_spotify import catalog
from dspot_spotify.api.context import LIMIT, PAGE, Api
from dspot_spotify.api.resource import delete_one, get_one, update_one
from dspot_spotify.api.route import (
    BAD_REQUEST,
    CONFLICT,
    FORBIDDEN,
    INVALID,
    NOT_FOUND,
    Handler,
    Param,
    Route,
)
from dspot_spotify.api.schema import json_schema
from dspot_spotify.api.songs import ARTIST as ARTIST_PARAM
from dspot_spotify.api.songs import GENRE, Q, Song
from dspot_spotify.api.wire import patch_of

__all__ = [
    "ALBUM_EDITABLE",
    "ARTIST_EDITABLE",
    "ROUTES",
    "AlbumDetail",
    "AlbumPatch",
    "ArtistDetail",
    "ArtistPatch",
    "Genre",
    "GenreList",
]

ALBUM_EDITABLE: Final = ("title", "artist_id", "year")
ARTIST_EDITABLE: Final = ("name",)


@attrs.frozen(kw_only=True)
class AlbumDetail(catalog.AlbumView):
    """An album with its tracks in order (track number, then title)."""

    tracks: tuple[Song, ...]

    @classmethod
    def of(cls, detail: catalog.AlbumDetail) -> AlbumDetail:
        """The API's form of a catalog album."""
        tracks = tuple(Song.of(s) for s in detail.tracks)
        return cls(**attrs.asdict(detail.album, recurse=False), tracks=tracks)


@attrs.frozen(kw_only=True)
class ArtistDetail(catalog.ArtistView):
    """An artist, their albums (by year) and their songs outside any album."""

    albums: tuple[catalog.AlbumView, ...]
    singles: tuple[Song, ...]

    @classmethod
    def of(cls, detail: catalog.ArtistDetail) -> ArtistDetail:
        """The API's form of a catalog artist."""
        return cls(
            **attrs.asdict(detail.artist, recurse=False),
            albums=detail.albums,
            singles=tuple(Song.of(s) for s in detail.singles),
        )


@attrs.frozen(kw_only=True)
class Genre:
    """A genre and how many songs carry it."""

    genre: str
    songs: int = attrs.field(metadata=json_schema(minimum=1))


@attrs.frozen(kw_only=True)
class GenreList:
    """Every genre with its song count, most songs first, then by name."""

    items: tuple[Genre, ...]


AlbumPatch = patch_of(catalog.UpdateAlbum, ALBUM_EDITABLE, "AlbumPatch")
ArtistPatch = patch_of(catalog.UpdateArtist, ARTIST_EDITABLE, "ArtistPatch")


async def album(api: Api, album_id: str) -> AlbumDetail:
    """The album ``album_id`` with its tracks (404 if there is none)."""
    return AlbumDetail.of(await api.found("album", catalog.get_album, album_id))


async def artist(api: Api, artist_id: str) -> ArtistDetail:
    """The artist ``artist_id`` with albums and singles (404 if there is none)."""
    return ArtistDetail.of(await api.found("artist", catalog.get_artist, artist_id))


async def list_artists(api: Api, request: Request) -> Response:
    await api.authenticate(request)
    page = await api.paged(
        request, catalog.list_artists, _same, q=Q.read(request), genre=GENRE.read(request)
    )
    return api.reply(page)


async def list_albums(api: Api, request: Request) -> Response:
    await api.authenticate(request)
    page = await api.paged(
        request,
        catalog.list_albums,
        _same,
        q=Q.read(request),
        artist_id=ARTIST_PARAM.read(request),
        genre=GENRE.read(request),
    )
    return api.reply(page)


async def list_genres(api: Api, request: Request) -> Response:
    await api.authenticate(request)
    rows = await api.read(catalog.genres)
    return api.reply(GenreList(items=tuple(Genre(genre=g, songs=n) for g, n in rows)))


def _same(item: Any) -> Any:
    return item


# -- likes: one handler for songs, albums and artists -----------------------------------------


async def _song(api: Api, song_id: str) -> Song:
    return Song.of(await api.song(song_id))


_SHOW: Final[dict[catalog.LikeTarget, Callable[[Api, str], Awaitable[Any]]]] = {
    "song": _song,
    "album": album,
    "artist": artist,
}


def like_handler(target: catalog.LikeTarget, liked: bool) -> Handler:
    """``PUT`` (``liked``) or ``DELETE`` ``/api/{target}s/{id}/like``: commit the like and
    answer with the thing liked, as its ``GET`` shows it."""

    async def like(api: Api, request: Request) -> Response:
        claims = await api.authenticate(request)
        target_id = request.path_params[f"{target}_id"]
        entry = catalog.Like(
            actor=claims.user_id,
            at=api.node.now_ms(),
            target=target,
            target_id=target_id,
            liked=liked,
        )
        pos = await api.writer.commit(entry)
        return api.reply(await _SHOW[target](api, target_id), position=pos)

    return like


def _liked(query: Callable[..., catalog.Page[Any]], item: Callable[[Any], Any]) -> Handler:
    async def liked(api: Api, request: Request) -> Response:
        claims = await api.authenticate(request)
        return api.reply(await api.paged(request, query, item, claims.user_id))

    return liked


_ARTICLE: Final = {"song": "a", "album": "an", "artist": "an"}


def _like_routes(target: catalog.LikeTarget, reply: Any) -> tuple[Route, ...]:
    return tuple(
        Route(
            method=method,
            path=f"/api/{target}s/{{{target}_id}}/like",
            handler=like_handler(target, liked),
            summary=f"{'Like' if liked else 'Unlike'} {_ARTICLE[target]} {target}",
            tag=f"{target}s",
            reply=reply,
            write=True,
            errors=(NOT_FOUND,),
        )
        for method, liked in (("PUT", True), ("DELETE", False))
    )


_PATCH_ERRORS: Final = (BAD_REQUEST, FORBIDDEN, NOT_FOUND, INVALID)


def _editable_routes(
    kind: str,
    show: Callable[[Api, str], Awaitable[Any]],
    list_handler: Handler,
    *,
    query: tuple[Param, ...],
    page: Any,
    detail: type,
    patch: type,
    keep: tuple[str, ...],
    update: Callable[..., catalog.Entry],
    delete: Callable[..., catalog.Entry],
    summaries: tuple[str, str, str, str],
) -> tuple[Route, ...]:
    """The routes of artists or albums: list and search, then get, change and delete one
    (``summaries`` in that order)."""
    tag, one = f"{kind}s", f"/api/{kind}s/{{{kind}_id}}"
    listed, shown, changed, deleted = summaries
    return (
        Route(
            method="GET",
            path=f"/api/{kind}s",
            handler=list_handler,
            summary=listed,
            tag=tag,
            query=query,
            reply=page,
            errors=(BAD_REQUEST, INVALID),
        ),
        Route(
            method="GET",
            path=one,
            handler=get_one(kind, show),
            summary=shown,
            tag=tag,
            reply=detail,
            errors=(NOT_FOUND,),
        ),
        Route(
            method="PATCH",
            path=one,
            handler=update_one(kind, show, patch, keep, update),
            summary=changed,
            tag=tag,
            body=patch,
            reply=detail,
            write=True,
            errors=_PATCH_ERRORS,
        ),
        Route(
            method="DELETE",
            path=one,
            handler=delete_one(kind, show, delete),
            summary=deleted,
            tag=tag,
            ok=204,
            ok_description="Deleted",
            write=True,
            errors=(FORBIDDEN, NOT_FOUND, CONFLICT),
        ),
    )


ROUTES: Final = (
    *_like_routes("song", Song),
    *_like_routes("album", AlbumDetail),
    *_like_routes("artist", ArtistDetail),
    *(
        Route(
            method="GET",
            path=path,
            handler=_liked(query, item),
            summary=f"The {tag} I like, most recently liked first",
            tag=tag,
            query=(PAGE, LIMIT),
            reply=reply,
            errors=(BAD_REQUEST, INVALID),
        )
        for path, tag, query, item, reply in (
            ("/api/me/likes", "songs", catalog.liked_songs, Song.of, catalog.Page[Song]),
            (
                "/api/me/likes/albums",
                "albums",
                catalog.liked_albums,
                _same,
                catalog.Page[catalog.AlbumView],
            ),
            (
                "/api/me/likes/artists",
                "artists",
                catalog.liked_artists,
                _same,
                catalog.Page[catalog.ArtistView],
            ),
        )
    ),
    Route(
        method="GET",
        path="/api/genres",
        handler=list_genres,
        summary="Every genre with its song count, most songs first, then by name",
        tag="songs",
        reply=GenreList,
    ),
    *_editable_routes(
        "artist",
        artist,
        list_artists,
        query=(Q, GENRE, PAGE, LIMIT),
        page=catalog.Page[catalog.ArtistView],
        detail=ArtistDetail,
        patch=ArtistPatch,
        keep=ARTIST_EDITABLE,
        update=catalog.UpdateArtist,
        delete=catalog.DeleteArtist,
        summaries=(
            "List and search artists",
            "An artist with albums and singles",
            "Rename an artist (creator or admin)",
            "Delete an artist without albums or songs (creator or admin)",
        ),
    ),
    *_editable_routes(
        "album",
        album,
        list_albums,
        query=(Q, ARTIST_PARAM, GENRE, PAGE, LIMIT),
        page=catalog.Page[catalog.AlbumView],
        detail=AlbumDetail,
        patch=AlbumPatch,
        keep=(*ALBUM_EDITABLE, "cover_sha256"),
        update=catalog.UpdateAlbum,
        delete=catalog.DeleteAlbum,
        summaries=(
            "List and search albums",
            "An album with its tracks",
            "Edit an album (creator or admin)",
            "Delete an album without songs (creator or admin); an unused cover goes too",
        ),
    ),
)
