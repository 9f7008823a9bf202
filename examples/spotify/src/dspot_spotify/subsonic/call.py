"""One Subsonic call as its endpoint sees it, and the reads several endpoints share."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar

import attrs
from dspot.http import Request, Response

from dspot_spotify import catalog
from dspot_spotify.parts import NodeParts
from dspot_spotify.subsonic.protocol import (
    NOT_AUTHORIZED,
    NOT_FOUND,
    WRONG_CREDENTIALS,
    Params,
    SubsonicError,
    album_id3,
    song_child,
)
from dspot_spotify.writer import CatalogWriter

__all__ = ["Call", "Endpoint", "album_elements", "children", "songs_by_id"]

P = ParamSpec("P")
T = TypeVar("T")


@attrs.frozen
class Call:
    """One authenticated call: the node, the request, its parameters and the user."""

    node: NodeParts
    writer: CatalogWriter
    request: Request
    params: Params
    user: catalog.UserRecord | None
    written: list[catalog.LogPosition] = attrs.field(factory=list)
    """Log positions of the call's writes (the last one goes out in ``X-Log-Position``)."""

    @property
    def me(self) -> catalog.UserRecord:
        """The authenticated user."""
        if self.user is None:  # only getOpenSubsonicExtensions runs without one
            raise SubsonicError(WRONG_CREDENTIALS, "authentication required")
        return self.user

    async def read(
        self, fn: Callable[Concatenate[catalog.Tx, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """A catalog read on this node's replica."""
        return await self.node.replica.read(fn, *args, **kwargs)

    async def commit(self, entry: catalog.Entry) -> None:
        """Commit one write through the token ring and wait for its outcome."""
        self.written.append(await self.writer.commit(entry))

    async def commit_all(self, entries: Sequence[catalog.Entry]) -> None:
        """Commit every change of the call as one entry, applied all or nothing (the user's,
        now); nothing when there is none."""
        if entries:
            at = self.node.now_ms()
            self.written.append(await self.writer.commit_all(entries, actor=self.me.id, at=at))

    async def song(self, song_id: str) -> catalog.SongView:
        """The song ``song_id`` (error 70 if there is none)."""
        song = await self.read(catalog.get_song, song_id)
        if song is None:
            raise SubsonicError(NOT_FOUND, f"no song {song_id}")
        return song

    async def visible_user(self, username: str) -> catalog.UserRecord:
        """The user named ``username``: oneself, or anyone for an admin (50 otherwise)."""
        me = self.me
        if me.role != "admin" and username.strip().lower() != me.username:
            raise SubsonicError(NOT_AUTHORIZED, "only admins may look at other users")
        user = await self.read(catalog.get_user_by_username, username)
        if user is None:
            raise SubsonicError(NOT_FOUND, f"no user {username}")
        return user


Endpoint = Callable[[Call], Awaitable[Mapping[str, Any] | Response]]
"""One ``/rest/NAME``: a payload to render, or a response (binary endpoints)."""


def album_elements(
    tx: catalog.Tx, user_id: str, albums: Sequence[catalog.AlbumRow]
) -> list[dict[str, Any]]:
    """``albums`` as ``AlbumID3`` elements, starred as ``user_id`` starred them."""
    stars = catalog.stars(tx, user_id, [a.id for a in albums], "album")
    return [album_id3(a, stars.get(a.id)) for a in albums]


def children(
    tx: catalog.Tx, user_id: str, songs: Sequence[catalog.SongView]
) -> list[dict[str, Any]]:
    """``songs`` as ``Child`` elements, starred as ``user_id`` starred them."""
    stars = catalog.stars(tx, user_id, [s.id for s in songs])
    return [song_child(s, stars.get(s.id)) for s in songs]


def songs_by_id(tx: catalog.Tx, ids: Sequence[str]) -> list[catalog.SongView]:
    """The songs ``ids`` that exist, in the order given."""
    songs = (catalog.get_song(tx, i) for i in ids)
    return [s for s in songs if s is not None]
