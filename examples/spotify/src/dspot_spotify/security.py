"""The headers every HTTP answer of the service carries, and what an answer may reveal.

A browser is told not to guess content types (``X-Content-Type-Options: nosniff``: a song
or a cover a user uploaded is never run as a script or page), not to send the address of a
page on (``Referrer-Policy: no-referrer``: stream and cover URLs carry a session token in
their query, for ``<audio src>`` and ``<img src>``), to reach the gateway over HTTPS only
(``Strict-Transport-Security``, sent over HTTPS only, as RFC 6797 requires), and what a
page may load (``Content-Security-Policy``): the web app only its own scripts, styles,
images, audio and API; anything else (the API's JSON, covers, audio) nothing at all.

:func:`hardened` puts them into a :class:`~dspot.http.ServerConfig`; headers the config
already sets, and those a handler sets on its response, win.

A 5xx answer names no internal address and carries no traceback (an unexpected exception is
the library's plain ``500 Internal Server Error``); :func:`unavailable` makes the 503 for a
failure of the cluster and logs the details instead.
"""

from __future__ import annotations

import logging
from typing import Final

import attrs
from dspot.env import NodeEnv
from dspot.http import Headers, HTTPError, ServerConfig

__all__ = [
    "API_CSP",
    "HSTS",
    "WEB_APP_CSP",
    "hardened",
    "security_headers",
    "unavailable",
]

WEB_APP_CSP: Final = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "media-src 'self'",
        "connect-src 'self'",  # the API and the /api/events WebSocket (same host)
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
"""What the web app (``frontend/``, built by Vite) may load: its own files only. It has no
inline script or style element (React's ``style`` props go through the DOM, which CSP does
not restrict) and no ``data:`` or ``blob:`` URL."""

API_CSP: Final = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
"""The API's answers (JSON, covers, audio) are no pages: opened in a tab, they load
nothing and cannot be framed."""

HSTS: Final = "max-age=31536000"
"""A year; without ``includeSubDomains``: the service may share a domain with others."""


def security_headers(*, https: bool, csp: str) -> Headers:
    """The headers every answer carries (``Strict-Transport-Security`` only when ``https``)."""
    headers = Headers(
        [
            ("x-content-type-options", "nosniff"),
            ("referrer-policy", "no-referrer"),
            ("content-security-policy", csp),
        ]
    )
    return headers.add("strict-transport-security", HSTS) if https else headers


def hardened(config: ServerConfig, *, csp: str) -> ServerConfig:
    """``config`` with :func:`security_headers` added to its ``response_headers`` (those it
    sets already are kept as they are)."""
    own = {name for name, _ in config.response_headers}
    defaults = security_headers(https=config.ssl_context is not None, csp=csp)
    extra = [(k, v) for k, v in defaults if k not in own]
    return attrs.evolve(config, response_headers=Headers([*config.response_headers, *extra]))


def unavailable(env: NodeEnv, what: str, error: BaseException) -> HTTPError:
    """The 503 for ``what`` (e.g. ``"the cover"``) failing in the cluster: the client learns
    it is temporary, the node's log (not the client) gets ``error``, which may name nodes
    and addresses."""
    env.log(logging.WARNING, "spotify.unavailable", what=what, error=error)
    return HTTPError(503, f"{what} is unavailable right now", headers=[("retry-after", "1")])
