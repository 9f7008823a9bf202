"""A node's HTTP routes: the REST API (every route of :mod:`dspot_spotify.api`) and the
Subsonic API under ``/rest/``, over one :class:`~dspot_spotify.writer.CatalogWriter`."""

from __future__ import annotations

import functools

from dspot.http import Router

from dspot_spotify import subsonic
from dspot_spotify.api.context import Api
from dspot_spotify.api.openapi import ROUTES
from dspot_spotify.parts import NodeParts
from dspot_spotify.sealing import PasswordSealer
from dspot_spotify.writer import CatalogWriter

__all__ = ["build_router"]


def build_router(node: NodeParts) -> Router:
    """The routes of ``node``."""
    writer = CatalogWriter(node)
    sealer = PasswordSealer(node, writer)
    api = Api(node, writer, sealer)
    router = Router()
    for route in ROUTES:
        router.add(route.method, route.path, functools.partial(route.handler, api))
    subsonic.add_routes(router, node, writer, sealer)
    return router
