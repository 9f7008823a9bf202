"""dspot-spotify: a replicated, Spotify-like music service built on the dspot library.

Modules: :mod:`~dspot_spotify.tags` (tag reading), :mod:`~dspot_spotify.catalog` (the
catalog as a replicated log applied to SQLite), :mod:`~dspot_spotify.replica` (a node's
replica on a dspot disk), :mod:`~dspot_spotify.ingest` and :mod:`~dspot_spotify.upload`
(uploads), :mod:`~dspot_spotify.auth` and :mod:`~dspot_spotify.accounts` (passwords and
tokens), :mod:`~dspot_spotify.demo` (a synthesized demo library), :mod:`~dspot_spotify.cli`.
"""

__version__ = "0.1.0"
