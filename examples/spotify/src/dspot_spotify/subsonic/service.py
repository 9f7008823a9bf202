"""Answering ``/rest/NAME[.view]``: read the parameters, check the protocol version, catch
up to ``X-Log-Position``, authenticate, run the endpoint, render; a failure renders the
specification's error (HTTP 200, ``status="failed"``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final
from urllib.parse import parse_qsl

import attrs
from dspot.http import HTTPError, Request, Response, Router

from dspot_spotify import catalog
from dspot_spotify.parts import NodeParts
from dspot_spotify.sealing import PasswordSealer
from dspot_spotify.signin import client_address
from dspot_spotify.subsonic import browse, folders, info, lists, media, player
from dspot_spotify.subsonic.auth import SubsonicAuth
from dspot_spotify.subsonic.call import Call, Endpoint
from dspot_spotify.subsonic.protocol import (
    GENERIC,
    Params,
    SubsonicError,
    check_version,
    from_http,
    read_params,
    render,
    render_error,
)
from dspot_spotify.writer import BEHIND, LOG_POSITION_HEADER, CatalogWriter, format_position

__all__ = ["ENDPOINTS", "PUBLIC", "SubsonicApi", "add_routes"]

ENDPOINTS: Final[Mapping[str, Endpoint]] = {
    **browse.ENDPOINTS,
    **folders.ENDPOINTS,
    **info.ENDPOINTS,
    **media.ENDPOINTS,
    **lists.ENDPOINTS,
    **player.ENDPOINTS,
}
"""Every endpoint served, by name."""
PUBLIC: Final = frozenset({"getOpenSubsonicExtensions"})
"""Endpoints that answer without credentials (by the OpenSubsonic specification)."""


class SubsonicApi:
    """The Subsonic endpoints of one node; writes go through ``writer`` (the token ring)."""

    def __init__(
        self, node: NodeParts, writer: CatalogWriter, sealer: PasswordSealer | None = None
    ) -> None:
        self.node = node
        self.writer = writer
        self.auth = SubsonicAuth(node.replica, sealer or PasswordSealer(node, writer), node.signin)

    async def handle(self, request: Request) -> Response:
        """Answer ``/rest/NAME[.view]``: authenticate, run the endpoint, render."""
        name = request.path_params["endpoint"].removesuffix(".view")
        params = Params(tuple(parse_qsl(request.query_string, keep_blank_values=True)))
        written: list[catalog.LogPosition] = []
        try:
            params = await read_params(request)
            endpoint = ENDPOINTS.get(name)
            if endpoint is None:
                raise SubsonicError(GENERIC, f"not implemented: {name}")
            check_version(params.get("v"))
            # Read your writes, for a client (or proxy) that sends X-Log-Position back.
            await self.writer.catch_up(request)
            user = None if name in PUBLIC else await self.auth.user(params, client_address(request))
            result = await endpoint(
                Call(self.node, self.writer, request, params, user, written, endpoint=name)
            )
            response = result if isinstance(result, Response) else render(result, params)
        except SubsonicError as e:
            response = render_error(e, params)
        except HTTPError as e:
            if e.status in (304, 412, 416):  # the HTTP answers of a byte-range request
                raise
            if e.problem.extensions.get("code") == BEHIND:
                raise  # a 503 a gateway answers by asking a node that has caught up
            response = render_error(from_http(e), params)
        if written:  # also after a failure part-way through a call of several writes
            position = format_position(max(written))
            response = attrs.evolve(
                response, headers=response.headers.set(LOG_POSITION_HEADER, position)
            )
        return response


def add_routes(
    router: Router, node: NodeParts, writer: CatalogWriter, sealer: PasswordSealer | None = None
) -> SubsonicApi:
    """Register ``/rest/{endpoint}`` (GET, POST) on ``router``."""
    subsonic = SubsonicApi(node, writer, sealer)
    router.add(["GET", "POST"], "/rest/{endpoint}", subsonic.handle)
    return subsonic
