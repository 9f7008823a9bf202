"""The handlers of one stored thing of the catalog (a song, an album, an artist), read
through ``show(api, id)`` (404 when there is none) from the path's ``{kind}_id``: read it,
change it from a PATCH body, delete it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from dspot.http import Request, Response

from dspot_spotify import catalog
from dspot_spotify.api.context import Api
from dspot_spotify.api.route import Handler
from dspot_spotify.api.wire import changes, read_json

__all__ = ["Show", "delete_one", "get_one", "update_one"]

Show = Callable[[Api, str], Awaitable[Any]]
"""The thing with this id as its ``GET`` answers it (404 if there is none)."""


def get_one(kind: str, show: Show) -> Handler:
    """``GET`` of one ``kind``: ``show`` it (404 if there is none)."""

    async def get(api: Api, request: Request) -> Response:
        await api.authenticate(request)
        return api.reply(await show(api, request.path_params[f"{kind}_id"]))

    return get


def update_one(
    kind: str,
    show: Show,
    patch_type: type,
    keep: tuple[str, ...],
    entry: Callable[..., catalog.Entry],
) -> Handler:
    """``PATCH`` of one ``kind``: the fields in ``keep`` as they are, overridden by the
    patch (read, modify, write: the entry carries every field), committed as ``entry``;
    answers the thing as its ``GET`` shows it."""

    async def update(api: Api, request: Request) -> Response:
        claims = await api.authenticate(request)
        patch = changes(await read_json(request, patch_type))
        current = await show(api, request.path_params[f"{kind}_id"])
        fields = {name: getattr(current, name) for name in keep} | patch
        ids = {f"{kind}_id": current.id}
        pos = await api.writer.commit(
            entry(actor=claims.user_id, at=api.node.now_ms(), **ids, **fields)
        )
        return api.reply(await show(api, current.id), position=pos)

    return update


def delete_one(kind: str, show: Show, entry: Callable[..., catalog.Entry]) -> Handler:
    """``DELETE`` of one ``kind`` (404 if there is none), committed as ``entry``."""

    async def delete(api: Api, request: Request) -> Response:
        claims = await api.authenticate(request)
        current = await show(api, request.path_params[f"{kind}_id"])
        ids = {f"{kind}_id": current.id}
        return api.written(
            await api.writer.commit(entry(actor=claims.user_id, at=api.node.now_ms(), **ids))
        )

    return delete
