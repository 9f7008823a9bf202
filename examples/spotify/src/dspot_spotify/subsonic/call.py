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
    WRITES,
    WRONG_CREDENTIALS,
    Params,
    SubsonicError,
    album_dir,
    album_id3,
    song_child,
)
from dspot_spotify.writer import CatalogWriter

__all__ = [
    "Call",
    "Endpoint",
    "album_elements",
    "children",
    "search_text",
    "songs_by_id",
    "window",
]

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
    endpoint: str = ""
    """The endpoint's name: only those in :data:`WRITES` may write."""

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
        self._may_write()
        self.written.append(await self.writer.commit(entry))

    async def commit_all(self, entries: Sequence[catalog.Entry]) -> None:
        """Commit every change of the call as one entry, applied all or nothing (the user's,
        now); nothing when there is none."""
        self._may_write()
        if entries:
            at = self.node.now_ms()
            self.written.append(await self.writer.commit_all(entries, actor=self.me.id, at=at))

    def _may_write(self) -> None:
        if self.endpoint not in WRITES:
            # A gateway would retry this endpoint on another node after a failure (see
            # WRITES): a write here is a bug, refused before anything is committed.
            raise RuntimeError(f"Subsonic endpoint {self.endpoint!r} writes but is not in WRITES")

    async def found(self, what: str, item_id: str, fn: Callable[[catalog.Tx], T | None]) -> T:
        """``fn(tx)`` on this node's replica; error 70 ``no {what} {item_id}`` when it is
        None."""
        found = await self.read(fn)
        if found is None:
            raise SubsonicError(NOT_FOUND, f"no {what} {item_id}")
        return found

    async def song(self, song_id: str) -> catalog.SongView:
        """The song ``song_id`` (error 70 if there is none)."""
        return await self.found("song", song_id, lambda tx: catalog.get_song(tx, song_id))

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
    tx: catalog.Tx, user_id: str, albums: Sequence[catalog.AlbumRow], *, id3: bool = True
) -> list[dict[str, Any]]:
    """``albums`` as ``AlbumID3`` elements (``id3=False``: directory ``Child`` elements),
    starred and rated as ``user_id`` starred and rated them."""
    ids = [a.id for a in albums]
    stars = catalog.stars(tx, user_id, ids, "album")
    ratings = catalog.ratings(tx, user_id, ids, "album")
    element = album_id3 if id3 else album_dir
    return [element(a, stars.get(a.id), ratings.get(a.id)) for a in albums]


def children(
    tx: catalog.Tx, user_id: str, songs: Sequence[catalog.SongView]
) -> list[dict[str, Any]]:
    """``songs`` as ``Child`` elements, starred and rated as ``user_id`` did."""
    ids = [s.id for s in songs]
    stars = catalog.stars(tx, user_id, ids)
    ratings = catalog.ratings(tx, user_id, ids)
    return [song_child(s, stars.get(s.id), ratings.get(s.id)) for s in songs]


def window(
    query: Callable[..., catalog.Page[Any]], tx: catalog.Tx, offset: int, count: int, **kw: Any
) -> list[Any]:
    """``count`` items from ``offset`` of a paged catalog listing."""
    if count <= 0:
        return []
    size = catalog.MAX_LIMIT
    out: list[Any] = []
    first = offset // size + 1
    last = (offset + count - 1) // size + 1
    for page in range(first, last + 1):
        result = query(tx, page=page, limit=size, **kw)
        out.extend(result.items)
        if len(result.items) < size:
            break
    skip = offset - (first - 1) * size
    return out[skip : skip + count]


def search_text(raw: str | None) -> str:
    """A search query as clients send it: blank, or quoted (``""`` lists everything)."""
    text = (raw or "").strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1].strip()
    return text


def songs_by_id(tx: catalog.Tx, ids: Sequence[str]) -> list[catalog.SongView]:
    """The songs ``ids`` that exist, in the order given."""
    songs = (catalog.get_song(tx, i) for i in ids)
    return [s for s in songs if s is not None]
