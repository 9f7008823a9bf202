"""Checking what clients send, cheaply and the same way everywhere.

A handler reads a JSON body with :meth:`Request.json <dspot.http.Request.json>` and integers
from the query or a header with :meth:`Request.query_int <dspot.http.Request.query_int>` /
:meth:`Request.header_int <dspot.http.Request.header_int>`. Each refuses bad input with a
problem answer before any work is done:

==============================================  ======
what arrived                                    status
==============================================  ======
``Content-Type`` present and not JSON           415
body larger than ``JsonLimits.max_size``        413
not UTF-8, not JSON, nested too deep,           400
a lone surrogate (``"\\ud800"``)
JSON of the wrong shape or types                422
integer malformed, too long, or out of range    400
==============================================  ======
"""

from __future__ import annotations

import json
import re
from typing import Any

import attrs

from dspot._json import JsonRejected, JsonTooDeep, JsonTooLarge, loads_limited
from dspot.env import Mechanism
from dspot.http._problem import HTTPError

JSON_TYPE = re.compile(r"^application/(?:[\w.+-]+\+)?json$", re.ASCII | re.IGNORECASE)
_INTEGER = re.compile(r"-?[0-9]+", re.ASCII)


class HttpMechanism(Mechanism):
    """What sabotage tests can build an :class:`~dspot.http.HttpServer` without
    (``HttpServer(disabled=env.disabled)``)."""

    JSON_GUARD = "http.json_guard"
    """Request bodies are parsed with their size and nesting depth checked before the
    parser runs, every failure a 400 or 413 (off: plain ``json.loads`` catching
    ``ValueError`` only, whose ``RecursionError`` on a deeply nested body is a 500)."""


@attrs.frozen
class JsonLimits:
    """Limits on JSON request bodies (:class:`~dspot.http.ServerConfig` sets the default)."""

    max_size: int = 1024 * 1024
    """Largest body accepted, in bytes (413 beyond)."""
    max_depth: int = 32
    """Deepest nesting of arrays and objects (400 beyond)."""
    require_content_type: bool = False
    """Also refuse a body that has no ``Content-Type`` (415). A present type that is not
    JSON (``text/plain``, a form) is always refused."""


def check_json_content_type(content_type: str | None, limits: JsonLimits) -> None:
    """415 unless ``content_type`` is ``application/json`` or ``application/*+json``."""
    if content_type is None:
        if limits.require_content_type:
            raise HTTPError(415, "this endpoint takes application/json")
        return
    media_type = content_type.split(";", 1)[0].strip()
    if not JSON_TYPE.match(media_type):
        raise HTTPError(
            415, f"this endpoint takes application/json, not {media_type[:100] or 'nothing'!r}"
        )


def parse_json_body(data: bytes, limits: JsonLimits, *, guarded: bool = True) -> Any:
    """``data`` as JSON within ``limits``: 413 when too large, 400 for anything else wrong.

    ``guarded=False``: :attr:`HttpMechanism.JSON_GUARD` switched off (sabotage tests only).
    """
    if not guarded:
        try:
            return json.loads(data)
        except ValueError as e:
            raise HTTPError(400, f"body is not valid JSON: {e}") from None
    try:
        return loads_limited(
            data,
            max_depth=limits.max_depth,
            max_size=limits.max_size,
            reject_lone_surrogates=True,
        )
    except JsonTooLarge as e:
        raise HTTPError(413, str(e)) from None
    except JsonTooDeep as e:
        raise HTTPError(400, str(e)) from None
    except JsonRejected as e:
        raise HTTPError(400, f"body is not valid JSON: {e}") from None


def parse_int(text: str, what: str, *, minimum: int, maximum: int) -> int:
    """``text`` as a decimal integer in ``[minimum, maximum]``, else 400 naming ``what``.

    Only ASCII digits with an optional ``-``: no spaces, ``+``, ``_`` or other scripts'
    digits (which ``int()`` would take), and the length is checked before converting.
    """
    longest = max(len(str(minimum)), len(str(maximum)))
    if len(text) > longest or not _INTEGER.fullmatch(text):
        raise HTTPError(400, f"{what} must be an integer from {minimum} to {maximum}")
    value = int(text)
    if not minimum <= value <= maximum:
        raise HTTPError(400, f"{what} must be an integer from {minimum} to {maximum}")
    return value
