"""The REST API of a node (JSON; errors are RFC 9457 problem documents), one module per
resource: :mod:`~dspot_spotify.api.accounts`, :mod:`~dspot_spotify.api.songs`,
:mod:`~dspot_spotify.api.library` (artists, albums, genres, likes),
:mod:`~dspot_spotify.api.playlists`, :mod:`~dspot_spotify.api.cluster` (cluster, replicas,
events, metrics, health). Each declares its request and response bodies as attrs classes and
its routes as :class:`~dspot_spotify.api.route.Route` records; :mod:`~dspot_spotify.api.
openapi` generates the OpenAPI document from them (the reference of every route, shape and
status), :mod:`~dspot_spotify.api.wire` holds the one JSON converter and the input limits,
:mod:`~dspot_spotify.api.resource` the get/change/delete handlers songs, albums and artists
share.

Writes go through the :class:`~dspot_spotify.writer.CatalogWriter` that the Subsonic API
shares. **Writes on a minority side** of a partition answer 503 with the detail
``read-only: no quorum`` (and ``Retry-After``); reads keep working there.
"""

from __future__ import annotations

from dspot_spotify.writer import LOG_POSITION_HEADER, NO_QUORUM

__all__ = ["LOG_POSITION_HEADER", "NO_QUORUM"]
