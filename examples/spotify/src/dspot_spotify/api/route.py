"""One REST route as a record: the method and path the router serves, the handler, and
what the OpenAPI document says about it (generated from these records, so the document
lists exactly the routes served and the shapes they answer)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import attrs
from dspot.http import Request, Response

from dspot_spotify.api.context import Api
from dspot_spotify.api.wire import IntParam

__all__ = [
    "BAD_REQUEST",
    "CONFLICT",
    "FORBIDDEN",
    "INVALID",
    "NOT_FOUND",
    "TOO_MANY",
    "UNAUTHORIZED",
    "UNAVAILABLE",
    "Handler",
    "Param",
    "Route",
    "TextParam",
    "binary",
]

Handler = Callable[[Api, Request], Awaitable[Response]]

BAD_REQUEST: Final = 400
UNAUTHORIZED: Final = 401
FORBIDDEN: Final = 403
NOT_FOUND: Final = 404
CONFLICT: Final = 409
INVALID: Final = 422
TOO_MANY: Final = 429
UNAVAILABLE: Final = 503


@attrs.frozen
class TextParam:
    """A text query parameter (``enum``: the values it may take)."""

    name: str
    description: str
    enum: tuple[str, ...] = ()

    def schema(self) -> dict[str, Any]:
        """Its JSON Schema in the OpenAPI document."""
        out: dict[str, Any] = {"type": "string"}
        if self.enum:
            out["enum"] = list(self.enum)
        return out

    def read(self, request: Request) -> str | None:
        """Its value in ``request``; None when absent or empty."""
        return request.query.get(self.name) or None


Param = IntParam | TextParam


def binary(*media_types: str) -> dict[str, Any]:
    """A content map of raw bytes in any of ``media_types``."""
    return {t: {"schema": {"type": "string", "format": "binary"}} for t in media_types}


@attrs.frozen(kw_only=True)
class Route:
    """One ``(method, path)`` of the REST API."""

    method: str
    path: str
    """The router's template (``/api/songs/{song_id}``)."""
    handler: Handler
    summary: str
    tag: str
    auth: bool = True
    """Whether a bearer token is required."""
    query_token: bool = False
    """Whether ``?token=`` is accepted instead of the header."""
    query: tuple[Param, ...] = ()
    body: Any = None
    """The request body: an attrs class (JSON), or a content map."""
    ok: int = 200
    """The main success status."""
    ok_description: str = "OK"
    reply: Any = None
    """What the success answers: a type (JSON), or a content map."""
    also: Mapping[int, tuple[str, Any]] = attrs.field(factory=dict)
    """Other success answers: status → (description, type)."""
    write: bool = False
    """A catalog write: answers ``X-Log-Position``, and 503 on a minority side."""
    errors: tuple[int, ...] = ()
    """Further documented error statuses (401 and a write's 503 are implied)."""
