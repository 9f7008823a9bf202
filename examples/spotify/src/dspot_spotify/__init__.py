"""dspot-spotify: a replicated, Spotify-like music service built on the dspot library.

Laid out by what each part does: :mod:`~dspot_spotify.catalog` (the catalog as a replicated
log applied to SQLite, every query), :mod:`~dspot_spotify.tags`, :mod:`~dspot_spotify.upload`
and :mod:`~dspot_spotify.ingest` (uploads), :mod:`~dspot_spotify.auth` and
:mod:`~dspot_spotify.accounts` (passwords, tokens, credentials), :mod:`~dspot_spotify.writer`
(the catalog writes of both APIs), :mod:`~dspot_spotify.api` (REST, with its OpenAPI
document) and :mod:`~dspot_spotify.subsonic`, :mod:`~dspot_spotify.node`,
:mod:`~dspot_spotify.gateway`, :mod:`~dspot_spotify.process` (real processes),
:mod:`~dspot_spotify.client` and :mod:`~dspot_spotify.tools` (command-line tools),
:mod:`~dspot_spotify.simulation` and :mod:`~dspot_spotify.chaos` (fault testing),
:mod:`~dspot_spotify.demo` (a synthesized demo library), :mod:`~dspot_spotify.cli`.
"""

__version__ = "0.1.0"
