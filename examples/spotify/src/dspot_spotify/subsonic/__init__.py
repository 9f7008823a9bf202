"""The Subsonic / OpenSubsonic API of a node, so existing music players can use the cluster.

Served under ``/rest/NAME`` and ``/rest/NAME.view``, GET or form POST
(``application/x-www-form-urlencoded``; query and body parameters are merged, a name may
repeat). Answers are XML by default (namespace ``http://subsonic.org/restapi``), JSON with
``f=json`` (``{"subsonic-response": {...}}``) and JSONP with ``f=jsonp&callback=NAME``.
Errors answer HTTP 200 with ``status="failed"`` and the specification's code; binary
endpoints (``stream``, ``download``, ``getCoverArt``) answer bytes on success.

Authentication (every endpoint but ``getOpenSubsonicExtensions``): ``u`` + ``p``,
``u`` + ``t`` + ``s`` or ``apiKey`` (:mod:`~dspot_spotify.subsonic.auth`).

Apps sign in with the user's account password (kept sealed for token auth, see
:mod:`dspot_spotify.sealing`) unless an admin requires app passwords. The app password and
API key are random strings the server makes for each user (``GET /api/me/subsonic`` shows
them, creating them on first use; ``POST /api/me/subsonic/rotate`` replaces them). They are
stored in the replicated catalog through a
:class:`~dspot_spotify.catalog.SetSubsonicCredentials` entry, so every replica can check
them. Ids are the catalog's ids; a cover-art id is a song or album id.

The package: :mod:`~dspot_spotify.subsonic.protocol` (errors, parameters, rendering),
:mod:`~dspot_spotify.subsonic.auth`, :mod:`~dspot_spotify.subsonic.service` (dispatch), the
endpoints in :mod:`~dspot_spotify.subsonic.browse`, :mod:`~dspot_spotify.subsonic.folders`
(the non-ID3 forms), :mod:`~dspot_spotify.subsonic.info`,
:mod:`~dspot_spotify.subsonic.media`, :mod:`~dspot_spotify.subsonic.lists` and
:mod:`~dspot_spotify.subsonic.player`; every SQL statement they need is in
:mod:`dspot_spotify.catalog`. Writes go through the REST API's
:class:`~dspot_spotify.writer.CatalogWriter`.
"""

from __future__ import annotations

from dspot_spotify.subsonic.protocol import API_VERSION, EXTENSIONS, XMLNS, SubsonicError
from dspot_spotify.subsonic.service import ENDPOINTS, PUBLIC, SubsonicApi, add_routes

__all__ = [
    "API_VERSION",
    "ENDPOINTS",
    "EXTENSIONS",
    "PUBLIC",
    "XMLNS",
    "SubsonicApi",
    "SubsonicError",
    "add_routes",
]
