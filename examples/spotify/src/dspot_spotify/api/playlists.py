"""Playlists: mine, one with its items, create, rename, delete, add, remove, move.

A playlist is edited by its owner only (deleted: also by an admin; anyone else gets 403)
and read by anyone. Items carry their own ids, so a remove or a move names what it means;
a move takes a 0-based ``position`` (past the end: last).
"""

from __future__ import annotations

from typing import Final

import attrs
from dspot.http import HTTPError, Request, Response

from dspot_spotify import catalog
from dspot_spotify.api.context import Api
from dspot_spotify.api.route import BAD_REQUEST, FORBIDDEN, INVALID, NOT_FOUND, Route
from dspot_spotify.api.schema import json_schema
from dspot_spotify.api.songs import Song
from dspot_spotify.api.wire import read_json

__all__ = [
    "ROUTES",
    "PlaylistDetail",
    "PlaylistItem",
    "PlaylistList",
    "PlaylistMove",
    "PlaylistName",
    "PlaylistSong",
]


@attrs.frozen(kw_only=True)
class PlaylistName:
    """A playlist's new name."""

    name: str


@attrs.frozen(kw_only=True)
class PlaylistSong:
    """The song to add at the end of a playlist."""

    song_id: str


@attrs.frozen(kw_only=True)
class PlaylistMove:
    """Move an item to a 0-based position (past the end: last)."""

    item_id: str
    position: int = attrs.field(metadata=json_schema(minimum=0))


@attrs.frozen(kw_only=True)
class PlaylistItem:
    """One playlist entry: its own id, its position and the song."""

    item_id: str
    position: int
    song: Song

    @classmethod
    def of(cls, item: catalog.PlaylistItemView) -> PlaylistItem:
        """The API's form of a catalog playlist item."""
        return cls(item_id=item.item_id, position=item.position, song=Song.of(item.song))


@attrs.frozen(kw_only=True)
class PlaylistDetail(catalog.PlaylistView):
    """A playlist with its items in order."""

    items: tuple[PlaylistItem, ...]

    @classmethod
    def of(cls, detail: catalog.PlaylistDetail) -> PlaylistDetail:
        """The API's form of a catalog playlist."""
        items = tuple(PlaylistItem.of(i) for i in detail.items)
        return cls(**attrs.asdict(detail.playlist, recurse=False), items=items)


@attrs.frozen(kw_only=True)
class PlaylistList:
    """My playlists, by name."""

    items: tuple[catalog.PlaylistView, ...]


async def playlist(api: Api, playlist_id: str) -> catalog.PlaylistDetail:
    """The playlist ``playlist_id`` with its items (404 if there is none)."""
    return await api.found("playlist", catalog.get_playlist, playlist_id)


async def _commit_and_show(api: Api, playlist_id: str, entry: catalog.Entry) -> Response:
    """Commit ``entry`` and answer with the playlist as it is now."""
    pos = await api.writer.commit(entry)
    return api.reply(PlaylistDetail.of(await playlist(api, playlist_id)), position=pos)


async def my_playlists(api: Api, request: Request) -> Response:
    claims = await api.authenticate(request)
    views = await api.read(catalog.user_playlists, claims.user_id)
    return api.reply(PlaylistList(items=tuple(views)))


async def create_playlist(api: Api, request: Request) -> Response:
    claims = await api.authenticate(request)
    body = await read_json(request, PlaylistName)
    playlist_id = api.node.env.ids()
    entry = catalog.CreatePlaylist(
        actor=claims.user_id, at=api.node.now_ms(), playlist_id=playlist_id, name=body.name
    )
    pos = await api.writer.commit(entry)
    created = PlaylistDetail.of(await playlist(api, playlist_id))
    location = [("location", f"/api/playlists/{playlist_id}")]
    return api.reply(created, 201, position=pos, headers=location)


async def get_playlist(api: Api, request: Request) -> Response:
    await api.authenticate(request)
    return api.reply(PlaylistDetail.of(await playlist(api, request.path_params["playlist_id"])))


async def rename_playlist(api: Api, request: Request) -> Response:
    claims = await api.authenticate(request)
    body = await read_json(request, PlaylistName)
    playlist_id = request.path_params["playlist_id"]
    entry = catalog.RenamePlaylist(
        actor=claims.user_id, at=api.node.now_ms(), playlist_id=playlist_id, name=body.name
    )
    return await _commit_and_show(api, playlist_id, entry)


async def delete_playlist(api: Api, request: Request) -> Response:
    claims = await api.authenticate(request)
    entry = catalog.DeletePlaylist(
        actor=claims.user_id,
        at=api.node.now_ms(),
        playlist_id=request.path_params["playlist_id"],
    )
    return api.written(await api.writer.commit(entry))


async def add_to_playlist(api: Api, request: Request) -> Response:
    claims = await api.authenticate(request)
    body = await read_json(request, PlaylistSong)
    playlist_id = request.path_params["playlist_id"]
    item_id = api.node.env.ids()
    entry = catalog.AddToPlaylist(
        actor=claims.user_id,
        at=api.node.now_ms(),
        playlist_id=playlist_id,
        item_id=item_id,
        song_id=body.song_id,
    )
    pos = await api.writer.commit(entry)
    [item] = [i for i in (await playlist(api, playlist_id)).items if i.item_id == item_id]
    return api.reply(PlaylistItem.of(item), 201, position=pos)


async def remove_from_playlist(api: Api, request: Request) -> Response:
    claims = await api.authenticate(request)
    playlist_id = request.path_params["playlist_id"]
    entry = catalog.RemoveFromPlaylist(
        actor=claims.user_id,
        at=api.node.now_ms(),
        playlist_id=playlist_id,
        item_id=request.path_params["item_id"],
    )
    return await _commit_and_show(api, playlist_id, entry)


async def move_in_playlist(api: Api, request: Request) -> Response:
    claims = await api.authenticate(request)
    body = await read_json(request, PlaylistMove)
    if body.position < 0:
        raise HTTPError(422, "position must be 0 or more")
    playlist_id = request.path_params["playlist_id"]
    current = await playlist(api, playlist_id)
    # The log names items, not indexes: "before the item now at that index, the moved
    # item left out" (None: to the end).
    others = [i.item_id for i in current.items if i.item_id != body.item_id]
    before = others[body.position] if body.position < len(others) else None
    entry = catalog.MovePlaylistItem(
        actor=claims.user_id,
        at=api.node.now_ms(),
        playlist_id=playlist_id,
        item_id=body.item_id,
        before_item_id=before,
    )
    return await _commit_and_show(api, playlist_id, entry)


_ONE: Final = "/api/playlists/{playlist_id}"
_EDIT_ERRORS: Final = (BAD_REQUEST, FORBIDDEN, NOT_FOUND, INVALID)

ROUTES: Final = (
    Route(
        method="GET",
        path="/api/playlists",
        handler=my_playlists,
        summary="My playlists",
        tag="playlists",
        reply=PlaylistList,
    ),
    Route(
        method="POST",
        path="/api/playlists",
        handler=create_playlist,
        summary="Create a playlist",
        tag="playlists",
        body=PlaylistName,
        ok=201,
        ok_description="Created",
        reply=PlaylistDetail,
        write=True,
        errors=(BAD_REQUEST, INVALID),
    ),
    Route(
        method="GET",
        path=_ONE,
        handler=get_playlist,
        summary="A playlist with its items",
        tag="playlists",
        reply=PlaylistDetail,
        errors=(NOT_FOUND,),
    ),
    Route(
        method="PATCH",
        path=_ONE,
        handler=rename_playlist,
        summary="Rename a playlist (owner)",
        tag="playlists",
        body=PlaylistName,
        reply=PlaylistDetail,
        write=True,
        errors=_EDIT_ERRORS,
    ),
    Route(
        method="DELETE",
        path=_ONE,
        handler=delete_playlist,
        summary="Delete a playlist (owner or admin)",
        tag="playlists",
        ok=204,
        ok_description="Deleted",
        write=True,
        errors=(FORBIDDEN, NOT_FOUND),
    ),
    Route(
        method="POST",
        path=f"{_ONE}/songs",
        handler=add_to_playlist,
        summary="Add a song to a playlist (owner)",
        tag="playlists",
        body=PlaylistSong,
        ok=201,
        ok_description="The new item",
        reply=PlaylistItem,
        write=True,
        errors=_EDIT_ERRORS,
    ),
    Route(
        method="DELETE",
        path=f"{_ONE}/songs/{{item_id}}",
        handler=remove_from_playlist,
        summary="Remove an item from a playlist (owner)",
        tag="playlists",
        reply=PlaylistDetail,
        write=True,
        errors=(FORBIDDEN, NOT_FOUND),
    ),
    Route(
        method="POST",
        path=f"{_ONE}/move",
        handler=move_in_playlist,
        summary="Move an item to a 0-based position (owner)",
        tag="playlists",
        body=PlaylistMove,
        reply=PlaylistDetail,
        write=True,
        errors=_EDIT_ERRORS,
    ),
)
