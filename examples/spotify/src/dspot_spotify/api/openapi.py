"""The OpenAPI 3.1 document of a node's REST API, served at ``GET /api/openapi.json``.

Generated, not written: the paths from the :class:`~dspot_spotify.api.route.Route` records
that the router serves (:data:`ROUTES`), the schemas from the attrs classes those routes
read and answer (:mod:`dspot_spotify.api.schema`). A test compares the document with the
routes the router actually serves, both ways, and checks real answers against the
schemas; the web frontend's TypeScript types are generated from this document
(``npm run api-types`` in ``frontend/``) and a test checks the committed ones match it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final

import attrs
from dspot.http import Request, Response

from dspot_spotify import __version__
from dspot_spotify.api import accounts, cluster, library, playlists, songs, users
from dspot_spotify.api.context import Api
from dspot_spotify.api.route import Route
from dspot_spotify.api.schema import Schema, SchemaBuilder
from dspot_spotify.writer import POSITION_PATTERN

__all__ = ["ROUTES", "Problem", "document", "document_text", "documented_routes"]


@attrs.frozen(kw_only=True)
class Problem:
    """An RFC 9457 problem document: every error answer (``application/problem+json``).

    A rejected catalog write adds the log's rejection ``code``; a body that does not fit
    its shape adds the ``errors``, one per field.
    """

    type: str
    title: str
    status: int
    detail: str


_PROBLEM_NAMES: Final[Mapping[int, tuple[str, str]]] = {
    400: ("BadRequest", "Malformed request"),
    401: ("Unauthorized", "Missing, invalid or expired token"),
    403: ("Forbidden", "Not the creator/owner or an admin"),
    404: ("NotFound", "Unknown id"),
    409: ("Conflict", "Conflicts with the catalog's state"),
    413: ("TooLarge", "The body is larger than allowed"),
    415: (
        "UnsupportedMediaType",
        "The body is not of a type this operation takes (JSON; for uploads, audio it reads)",
    ),
    426: ("UpgradeRequired", "This resource speaks WebSocket: send an upgrade request"),
    422: ("Invalid", "A field or parameter is invalid (the problem names it)"),
    429: (
        "TooManyRequests",
        "Too many failed sign-ins (this client or username) or uploads in progress; "
        "retry after `Retry-After` seconds",
    ),
    503: (
        "Unavailable",
        "No quorum (`read-only: no quorum`), the replica has not reached the requested "
        "log position or does not know the token's account yet, or stored data (a song's "
        "file, a cover) cannot be reached right now, or every password hasher is busy; "
        "retry later",
    ),
}
_POSITION: Final[Schema] = {"type": "string", "pattern": POSITION_PATTERN}


async def serve_document(api: Api, request: Request) -> Response:
    return Response.json(document())


ROUTES: Final[tuple[Route, ...]] = (
    *accounts.ROUTES,
    *users.ROUTES,
    *songs.ROUTES,
    *library.ROUTES,
    *playlists.ROUTES,
    *cluster.ROUTES,
    Route(
        method="GET",
        path="/api/openapi.json",
        handler=serve_document,
        summary="This document",
        tag="meta",
        auth=False,
        reply={"application/json": {"schema": {"type": "object"}}},
    ),
)
"""Every REST route, in the order the router adds them."""

_PARAM: Final = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def documented_routes() -> set[tuple[str, str]]:
    """The ``(METHOD, path template)`` pairs the document describes."""
    return {(r.method, r.path) for r in ROUTES}


def _content(value: Any, builder: SchemaBuilder, role: str) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return dict(value)
    schema = builder.schema(value, "request" if role == "request" else "response")
    return {"application/json": {"schema": schema}}


def _operation(route: Route, builder: SchemaBuilder) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PARAM.findall(route.path)
    ]
    params += [
        {
            "name": p.name,
            "in": "query",
            "required": False,
            "schema": p.schema(),
            "description": p.description,
        }
        for p in route.query
    ]
    if route.query_token:
        params.append(
            {
                "name": "token",
                "in": "query",
                "required": False,
                "schema": {"type": "string"},
                "description": "the bearer token, for clients that cannot send headers",
            }
        )
    if route.write or route.auth:
        params.append(
            {
                "name": "X-Log-Position",
                "in": "header",
                "required": False,
                "schema": _POSITION,
                "description": "read your writes: wait until this node applied the position",
            }
        )
    responses: dict[str, Any] = {}
    answers = {route.ok: (route.ok_description, route.reply), **route.also}
    for status, (description, reply) in answers.items():
        ok: dict[str, Any] = {"description": description}
        if reply is not None:
            ok["content"] = _content(reply, builder, "response")
        if route.write:
            ok["headers"] = {
                "X-Log-Position": {
                    "description": "Log position of the write: send it back on reads to see it",
                    "schema": _POSITION,
                }
            }
        responses[str(status)] = ok
    errors = set(route.errors)
    if route.auth:
        errors.add(401)
    if route.write or route.auth:
        errors |= {400, 503}  # a malformed X-Log-Position; one this replica has not reached
    if route.body is not None and not isinstance(route.body, Mapping):
        errors |= {400, 413, 415, 422}  # a JSON body: not JSON, too large, wrong type, shape
    for status in sorted(errors):
        responses[str(status)] = {"$ref": f"#/components/responses/{_PROBLEM_NAMES[status][0]}"}
    out: dict[str, Any] = {
        "operationId": _operation_id(route.method, route.path),
        "summary": route.summary,
        "tags": [route.tag],
        "responses": dict(sorted(responses.items())),
    }
    if params:
        out["parameters"] = params
    if route.body is not None:
        out["requestBody"] = {"required": True, "content": _content(route.body, builder, "request")}
    out["security"] = [{"bearer": []}] if route.auth else []
    return out


def _operation_id(method: str, path: str) -> str:
    words = [w for w in re.split(r"[^A-Za-z0-9]+", path.replace("{", "by_")) if w]
    return method.lower() + "".join(w[:1].upper() + w[1:] for w in words)


def document(
    *, server_url: str | None = None, routes: tuple[Route, ...] = ROUTES
) -> dict[str, Any]:
    """The OpenAPI 3.1 document (a fresh JSON-able dict) of ``routes``."""
    builder = SchemaBuilder()
    problem = {"application/problem+json": {"schema": builder.schema(Problem)}}
    # RFC 9457: ``detail`` may be left out, and extension members may be added.
    builder.schemas["Problem"].update(
        required=["type", "title", "status"], additionalProperties=True
    )
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, builder)
    for name, shape in cluster.EVENT_TYPES:
        builder.named(name, shape)
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "dspot music service",
            "version": __version__,
            "description": "The HTTP API of a dspot-spotify node (relayed by the gateway). "
            "Errors are RFC 9457 problem documents; writes answer `X-Log-Position`.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(builder.schemas.items())),
            "responses": {
                name: {"description": text, "content": problem}
                for name, text in sorted(_PROBLEM_NAMES.values())
            },
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
    if server_url is not None:
        doc["servers"] = [{"url": server_url}]
    return doc


def document_text(doc: Mapping[str, Any] | None = None) -> str:
    """The document as the file the web frontend's types are generated from: JSON,
    indented, ending with a newline (``dspot-spotify openapi``)."""
    return json.dumps(document() if doc is None else doc, indent=2, ensure_ascii=False) + "\n"
