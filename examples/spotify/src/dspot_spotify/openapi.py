"""The OpenAPI 3.1 document of a node's HTTP API, served at ``GET /api/openapi.json``.

Built from :data:`OPERATIONS`, a table keyed by ``(METHOD, path template)`` with the
router's own templates (``/api/songs/{song_id}``), so a test can compare the document with
the routes actually served, both ways: a route added without being documented here (or
documented and gone) fails it. Path parameters come from the templates; the rest (summary,
query parameters, request body, main responses, whether a bearer token is needed) is in the
table. Schemas follow JSON Schema 2020-12, as OpenAPI 3.1 does.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any, Final

import attrs

__all__ = ["OPERATIONS", "Operation", "document", "documented_routes"]

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(type_: str) -> Schema:
    return {"type": [type_, "null"]}


def _object(required: tuple[str, ...] = (), **props: Schema) -> Schema:
    out: Schema = {"type": "object", "properties": props}
    if required:
        out["required"] = list(required)
    return out


def _page(item: str) -> Schema:
    return _object(
        ("items", "page", "limit", "total"),
        items={"type": "array", "items": _ref(item)},
        page={"type": "integer", "minimum": 1},
        limit={"type": "integer", "minimum": 1},
        total={"type": "integer", "minimum": 0},
    )


_STR: Final[Schema] = {"type": "string"}
_INT: Final[Schema] = {"type": "integer"}
_BOOL: Final[Schema] = {"type": "boolean"}
_NUM: Final[Schema] = {"type": "number"}
_POSITION: Final[Schema] = {"type": "string", "pattern": r"^\d+\.\d+$"}

SCHEMAS: Final[dict[str, Schema]] = {
    "Problem": _object(
        ("type", "title", "status"),
        type=_STR,
        title=_STR,
        status=_INT,
        detail=_STR,
    ),
    "Credentials": _object(("username", "password"), username=_STR, password=_STR),
    "Session": _object(
        ("token", "user_id", "username"),
        token=_STR,
        user_id=_STR,
        username=_STR,
        role={"type": "string", "enum": ["user", "admin"]},
    ),
    "Me": _object(
        ("user_id", "username", "role"),
        user_id=_STR,
        username=_STR,
        role={"type": "string", "enum": ["user", "admin"]},
    ),
    "Song": _object(
        ("id", "title", "artist_id", "blob_sha256", "mime", "size", "duration"),
        id=_STR,
        title=_STR,
        artist_id=_STR,
        artist_name=_STR,
        album_id=_nullable("string"),
        album_title=_nullable("string"),
        track=_nullable("integer"),
        year=_nullable("integer"),
        genres={"type": "array", "items": _STR},
        duration=_NUM,
        blob_sha256=_STR,
        mime=_STR,
        size=_INT,
        cover_sha256=_nullable("string"),
        play_count=_INT,
        plays=_INT,
        like_count=_INT,
        created_by=_nullable("string"),
        created_at={"type": "integer", "description": "milliseconds since the Unix epoch"},
        duplicate={"type": "boolean", "description": "upload only: these bytes existed"},
    ),
    "SongPage": _page("Song"),
    "SongPatch": _object(
        (),
        title=_STR,
        artist_id=_STR,
        album_id=_nullable("string"),
        track=_nullable("integer"),
        year=_nullable("integer"),
        genres={"type": "array", "items": _STR},
    ),
    "Artist": _object(("id", "name"), id=_STR, name=_STR, album_count=_INT, song_count=_INT),
    "ArtistPage": _page("Artist"),
    "ArtistDetail": {
        "allOf": [
            _ref("Artist"),
            _object(
                ("albums", "singles"),
                albums={"type": "array", "items": _ref("Album")},
                singles={"type": "array", "items": _ref("Song")},
            ),
        ]
    },
    "ArtistPatch": _object((), name=_STR),
    "Album": _object(
        ("id", "title", "artist_id"),
        id=_STR,
        title=_STR,
        artist_id=_STR,
        artist_name=_STR,
        year=_nullable("integer"),
        cover_sha256=_nullable("string"),
        song_count=_INT,
        duration=_NUM,
    ),
    "AlbumPage": _page("Album"),
    "AlbumDetail": {
        "allOf": [
            _ref("Album"),
            _object(("tracks",), tracks={"type": "array", "items": _ref("Song")}),
        ]
    },
    "GenreList": _object(
        ("items",),
        items={
            "type": "array",
            "items": _object(
                ("genre", "songs"), genre=_STR, songs={"type": "integer", "minimum": 1}
            ),
        },
    ),
    "AlbumPatch": _object((), title=_STR, artist_id=_STR, year=_nullable("integer")),
    "Playlist": _object(
        ("id", "owner_id", "name"),
        id=_STR,
        owner_id=_STR,
        name=_STR,
        song_count=_INT,
        duration=_NUM,
        created_at=_INT,
        updated_at=_INT,
    ),
    "PlaylistItem": _object(
        ("item_id", "position", "song"), item_id=_STR, position=_INT, song=_ref("Song")
    ),
    "PlaylistDetail": {
        "allOf": [
            _ref("Playlist"),
            _object(("items",), items={"type": "array", "items": _ref("PlaylistItem")}),
        ]
    },
    "PlaylistList": _object(("items",), items={"type": "array", "items": _ref("Playlist")}),
    "PlaylistName": _object(("name",), name=_STR),
    "PlaylistSong": _object(("song_id",), song_id=_STR),
    "PlaylistMove": _object(
        ("item_id", "position"), item_id=_STR, position={"type": "integer", "minimum": 0}
    ),
    "SubsonicCredentials": _object(
        ("username", "password", "api_key", "path"),
        username=_STR,
        password=_STR,
        api_key=_STR,
        updated_at=_INT,
        path={"type": "string", "description": "where the Subsonic API is served"},
    ),
    "Health": _object(("status",), status=_STR, quorum=_BOOL),
    "Member": _object(
        ("id", "address", "state", "role", "incarnation"),
        id=_STR,
        address={"type": "string", "description": "RPC address"},
        http=_nullable("string"),
        state={"type": "string", "enum": ["alive", "suspect", "dead", "left"]},
        role={"type": "string", "enum": ["voter", "observer"]},
        incarnation=_INT,
        log_position={"type": ["string", "null"], "pattern": r"^\d+\.\d+$"},
        blobs=_nullable("integer"),
        bytes=_nullable("integer"),
    ),
    "Cluster": _object(
        (
            "node",
            "quorum",
            "log_position",
            "token",
            "ring",
            "replication",
            "members",
            "songs",
            "under_replicated",
            "under_replicated_songs",
        ),
        node=_STR,
        quorum=_BOOL,
        log_position=_POSITION,
        token=_object(("holder", "epoch"), holder=_nullable("string"), epoch=_INT),
        ring={"type": "array", "items": _STR},
        replication=_INT,
        members={"type": "array", "items": _ref("Member")},
        songs=_INT,
        under_replicated=_INT,
        under_replicated_songs={
            "type": "array",
            "maxItems": 100,
            "items": _object(
                ("id", "title", "copies", "wanted"),
                id=_STR,
                title=_STR,
                copies=_INT,
                wanted=_INT,
            ),
        },
    ),
    "Replicas": _object(
        ("song_id", "sha256", "wanted", "replicas"),
        song_id=_STR,
        sha256=_STR,
        wanted=_INT,
        replicas={
            "type": "array",
            "items": _object(
                ("node", "state", "has"),
                node=_STR,
                state={"type": "string", "enum": ["alive", "suspect", "dead", "left"]},
                has=_BOOL,
            ),
        },
    ),
}

_PROBLEM_CONTENT: Final = {"application/problem+json": {"schema": _ref("Problem")}}

RESPONSES: Final[dict[str, dict[str, Any]]] = {
    "BadRequest": {"description": "Malformed request", "content": _PROBLEM_CONTENT},
    "Unauthorized": {
        "description": "Missing, invalid or expired token",
        "content": _PROBLEM_CONTENT,
    },
    "Forbidden": {"description": "Not the creator/owner or an admin", "content": _PROBLEM_CONTENT},
    "NotFound": {"description": "Unknown id", "content": _PROBLEM_CONTENT},
    "Conflict": {"description": "Conflicts with the catalog's state", "content": _PROBLEM_CONTENT},
    "Invalid": {
        "description": "A field or parameter is invalid (the problem names it)",
        "content": _PROBLEM_CONTENT,
    },
    "Unavailable": {
        "description": "No quorum (`read-only: no quorum`), or the replica has not reached "
        "the requested log position yet; retry later",
        "content": _PROBLEM_CONTENT,
    },
}

_LOG_POSITION_HEADER: Final = {
    "X-Log-Position": {
        "description": "Log position of the write: send it back on reads to see it",
        "schema": _POSITION,
    }
}


@attrs.frozen(kw_only=True)
class Operation:
    """One documented ``(method, path)``: what the table says about it."""

    summary: str
    tag: str
    auth: bool = True
    """Whether a bearer token is required."""
    query_token: bool = False
    """Whether ``?token=`` is accepted instead of the header."""
    query: tuple[tuple[str, Schema, str], ...] = ()
    """Query parameters: name, schema, description."""
    body: Mapping[str, Any] | None = None
    """The request body's ``content`` map."""
    body_required: bool = True
    ok: str = "200"
    """The main success status."""
    ok_description: str = "OK"
    ok_content: Mapping[str, Any] | None = None
    write: bool = False
    """A catalog write: answers ``X-Log-Position`` and may be 503 on a minority side."""
    errors: tuple[str, ...] = ()
    """Further documented error responses (names in ``components/responses``)."""


def _json(name: str) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(name)}}


_PAGING: Final = (
    ("page", {"type": "integer", "minimum": 1, "default": 1}, "1-based page number"),
    ("limit", {"type": "integer", "minimum": 1, "default": 50}, "items per page"),
)
_Q = ("q", _STR, "full-text search")
_GENRE = ("genre", _STR, "only this genre")

OPERATIONS: Final[dict[tuple[str, str], Operation]] = {
    ("POST", "/api/auth/register"): Operation(
        summary="Register a user (the cluster's first user becomes its admin)",
        tag="auth",
        auth=False,
        body=_json("Credentials"),
        ok="201",
        ok_description="Registered; a token for the new user",
        ok_content=_json("Session"),
        write=True,
        errors=("BadRequest", "Conflict", "Invalid"),
    ),
    ("POST", "/api/auth/login"): Operation(
        summary="Log in with username and password",
        tag="auth",
        auth=False,
        body=_json("Credentials"),
        ok_description="A token",
        ok_content=_json("Session"),
        errors=("BadRequest", "Unauthorized", "Invalid"),
    ),
    ("GET", "/api/me"): Operation(
        summary="Who the token belongs to", tag="auth", ok_content=_json("Me")
    ),
    ("POST", "/api/songs"): Operation(
        summary="Upload a song (raw audio body, or multipart field `file`); "
        "the same bytes again answer 200 with the existing song",
        tag="songs",
        query=(("filename", _STR, "file name of a raw-body upload (or X-Filename)"),),
        body={
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "audio/*": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {
                "schema": _object(("file",), file={"type": "string", "format": "binary"})
            },
        },
        ok="201",
        ok_description="Created (200 with `duplicate: true` when the audio already existed)",
        ok_content=_json("Song"),
        write=True,
        errors=("BadRequest", "Invalid"),
    ),
    ("GET", "/api/songs"): Operation(
        summary="List and search songs",
        tag="songs",
        query=(
            _Q,
            ("artist", _STR, "artist id"),
            ("album", _STR, "album id"),
            _GENRE,
            ("sort", {"type": "string", "enum": ["title", "recent", "plays", "likes"]}, "order"),
            *_PAGING,
        ),
        ok_content=_json("SongPage"),
        errors=("Invalid",),
    ),
    ("GET", "/api/songs/{song_id}"): Operation(
        summary="One song", tag="songs", ok_content=_json("Song"), errors=("NotFound",)
    ),
    ("PATCH", "/api/songs/{song_id}"): Operation(
        summary="Edit a song's tags (creator or admin)",
        tag="songs",
        body=_json("SongPatch"),
        ok_content=_json("Song"),
        write=True,
        errors=("BadRequest", "Forbidden", "NotFound", "Invalid"),
    ),
    ("DELETE", "/api/songs/{song_id}"): Operation(
        summary="Delete a song (creator or admin); unused blobs go too",
        tag="songs",
        ok="204",
        ok_description="Deleted",
        write=True,
        errors=("Forbidden", "NotFound"),
    ),
    ("GET", "/api/songs/{song_id}/stream"): Operation(
        summary="The audio, with Range (206), ETag and conditional requests",
        tag="songs",
        query_token=True,
        ok_description="The audio (206 for a range)",
        ok_content={"audio/*": {"schema": {"type": "string", "format": "binary"}}},
        errors=("NotFound", "Unavailable"),
    ),
    ("GET", "/api/songs/{song_id}/cover"): Operation(
        summary="The song's cover image (its own, else its album's)",
        tag="songs",
        query_token=True,
        ok_description="The image",
        ok_content={"image/*": {"schema": {"type": "string", "format": "binary"}}},
        errors=("NotFound", "Unavailable"),
    ),
    ("GET", "/api/songs/{song_id}/replicas"): Operation(
        summary="Which voters should or do hold the song's audio",
        tag="cluster",
        ok_content=_json("Replicas"),
        errors=("NotFound",),
    ),
    ("PUT", "/api/songs/{song_id}/like"): Operation(
        summary="Like a song",
        tag="songs",
        ok_content=_json("Song"),
        write=True,
        errors=("NotFound",),
    ),
    ("DELETE", "/api/songs/{song_id}/like"): Operation(
        summary="Unlike a song",
        tag="songs",
        ok_content=_json("Song"),
        write=True,
        errors=("NotFound",),
    ),
    ("POST", "/api/songs/{song_id}/plays"): Operation(
        summary="Record one play of a song",
        tag="songs",
        ok_description="The song with its updated `plays`",
        ok_content=_json("Song"),
        write=True,
        errors=("NotFound",),
    ),
    ("GET", "/api/me/subsonic"): Operation(
        summary="My Subsonic client credentials (created on first use)",
        tag="subsonic",
        ok_content=_json("SubsonicCredentials"),
        errors=("Unavailable",),  # stored in the log, without X-Log-Position
    ),
    ("POST", "/api/me/subsonic/rotate"): Operation(
        summary="New Subsonic password and API key (the old ones stop working)",
        tag="subsonic",
        ok_content=_json("SubsonicCredentials"),
        errors=("Unavailable",),  # stored in the log, without X-Log-Position
    ),
    ("GET", "/api/me/likes"): Operation(
        summary="The songs I like",
        tag="songs",
        query=_PAGING,
        ok_content=_json("SongPage"),
        errors=("Invalid",),
    ),
    ("GET", "/api/me/likes/albums"): Operation(
        summary="The albums I like, most recently liked first",
        tag="albums",
        query=_PAGING,
        ok_content=_json("AlbumPage"),
        errors=("Invalid",),
    ),
    ("GET", "/api/me/likes/artists"): Operation(
        summary="The artists I like, most recently liked first",
        tag="artists",
        query=_PAGING,
        ok_content=_json("ArtistPage"),
        errors=("Invalid",),
    ),
    ("GET", "/api/genres"): Operation(
        summary="Every genre with its song count, most songs first, then by name",
        tag="songs",
        ok_content=_json("GenreList"),
    ),
    ("GET", "/api/artists"): Operation(
        summary="List and search artists",
        tag="artists",
        query=(_Q, _GENRE, *_PAGING),
        ok_content=_json("ArtistPage"),
        errors=("Invalid",),
    ),
    ("GET", "/api/artists/{artist_id}"): Operation(
        summary="An artist with albums and singles",
        tag="artists",
        ok_content=_json("ArtistDetail"),
        errors=("NotFound",),
    ),
    ("PATCH", "/api/artists/{artist_id}"): Operation(
        summary="Rename an artist (creator or admin)",
        tag="artists",
        body=_json("ArtistPatch"),
        ok_content=_json("ArtistDetail"),
        write=True,
        errors=("BadRequest", "Forbidden", "NotFound", "Invalid"),
    ),
    ("DELETE", "/api/artists/{artist_id}"): Operation(
        summary="Delete an artist without albums or songs (creator or admin)",
        tag="artists",
        ok="204",
        ok_description="Deleted",
        write=True,
        errors=("Forbidden", "NotFound", "Conflict"),
    ),
    ("PUT", "/api/artists/{artist_id}/like"): Operation(
        summary="Like an artist",
        tag="artists",
        ok_content=_json("ArtistDetail"),
        write=True,
        errors=("NotFound",),
    ),
    ("DELETE", "/api/artists/{artist_id}/like"): Operation(
        summary="Unlike an artist",
        tag="artists",
        ok_content=_json("ArtistDetail"),
        write=True,
        errors=("NotFound",),
    ),
    ("GET", "/api/albums"): Operation(
        summary="List and search albums",
        tag="albums",
        query=(_Q, ("artist", _STR, "artist id"), _GENRE, *_PAGING),
        ok_content=_json("AlbumPage"),
        errors=("Invalid",),
    ),
    ("GET", "/api/albums/{album_id}"): Operation(
        summary="An album with its tracks",
        tag="albums",
        ok_content=_json("AlbumDetail"),
        errors=("NotFound",),
    ),
    ("PATCH", "/api/albums/{album_id}"): Operation(
        summary="Edit an album (creator or admin)",
        tag="albums",
        body=_json("AlbumPatch"),
        ok_content=_json("AlbumDetail"),
        write=True,
        errors=("BadRequest", "Forbidden", "NotFound", "Invalid"),
    ),
    ("DELETE", "/api/albums/{album_id}"): Operation(
        summary="Delete an album without songs (creator or admin)",
        tag="albums",
        ok="204",
        ok_description="Deleted",
        write=True,
        errors=("Forbidden", "NotFound", "Conflict"),
    ),
    ("PUT", "/api/albums/{album_id}/like"): Operation(
        summary="Like an album",
        tag="albums",
        ok_content=_json("AlbumDetail"),
        write=True,
        errors=("NotFound",),
    ),
    ("DELETE", "/api/albums/{album_id}/like"): Operation(
        summary="Unlike an album",
        tag="albums",
        ok_content=_json("AlbumDetail"),
        write=True,
        errors=("NotFound",),
    ),
    ("GET", "/api/playlists"): Operation(
        summary="My playlists", tag="playlists", ok_content=_json("PlaylistList")
    ),
    ("POST", "/api/playlists"): Operation(
        summary="Create a playlist",
        tag="playlists",
        body=_json("PlaylistName"),
        ok="201",
        ok_description="Created",
        ok_content=_json("PlaylistDetail"),
        write=True,
        errors=("BadRequest", "Invalid"),
    ),
    ("GET", "/api/playlists/{playlist_id}"): Operation(
        summary="A playlist with its items",
        tag="playlists",
        ok_content=_json("PlaylistDetail"),
        errors=("NotFound",),
    ),
    ("PATCH", "/api/playlists/{playlist_id}"): Operation(
        summary="Rename a playlist (owner)",
        tag="playlists",
        body=_json("PlaylistName"),
        ok_content=_json("PlaylistDetail"),
        write=True,
        errors=("BadRequest", "Forbidden", "NotFound", "Invalid"),
    ),
    ("DELETE", "/api/playlists/{playlist_id}"): Operation(
        summary="Delete a playlist (owner or admin)",
        tag="playlists",
        ok="204",
        ok_description="Deleted",
        write=True,
        errors=("Forbidden", "NotFound"),
    ),
    ("POST", "/api/playlists/{playlist_id}/songs"): Operation(
        summary="Add a song to a playlist (owner)",
        tag="playlists",
        body=_json("PlaylistSong"),
        ok="201",
        ok_description="The new item",
        ok_content=_json("PlaylistItem"),
        write=True,
        errors=("BadRequest", "Forbidden", "NotFound", "Invalid"),
    ),
    ("DELETE", "/api/playlists/{playlist_id}/songs/{item_id}"): Operation(
        summary="Remove an item from a playlist (owner)",
        tag="playlists",
        ok_content=_json("PlaylistDetail"),
        write=True,
        errors=("Forbidden", "NotFound"),
    ),
    ("POST", "/api/playlists/{playlist_id}/move"): Operation(
        summary="Move an item to a 0-based position (owner)",
        tag="playlists",
        body=_json("PlaylistMove"),
        ok_content=_json("PlaylistDetail"),
        write=True,
        errors=("BadRequest", "Forbidden", "NotFound", "Invalid"),
    ),
    ("GET", "/api/cluster"): Operation(
        summary="The cluster as the answering node sees it",
        tag="cluster",
        ok_content=_json("Cluster"),
    ),
    ("GET", "/api/events"): Operation(
        summary="WebSocket of cluster events (hello, membership, token, catalog, quorum); "
        "JSON text messages from the server, client messages ignored",
        tag="cluster",
        query_token=True,
        ok="101",
        ok_description="Switching to the WebSocket protocol",
        errors=("BadRequest",),
    ),
    ("GET", "/api/openapi.json"): Operation(
        summary="This document",
        tag="meta",
        auth=False,
        ok_content={"application/json": {"schema": {"type": "object"}}},
    ),
    ("GET", "/healthz"): Operation(
        summary="Liveness, and whether this node sees a quorum",
        tag="meta",
        auth=False,
        ok_content=_json("Health"),
    ),
    ("GET", "/metrics"): Operation(
        summary="Prometheus metrics of this node",
        tag="meta",
        auth=False,
        ok_content={"text/plain": {"schema": _STR}},
    ),
}

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def documented_routes() -> set[tuple[str, str]]:
    """The ``(METHOD, path template)`` pairs the document describes."""
    return set(OPERATIONS)


def _operation(method: str, path: str, op: Operation) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": _STR}
        for name in _PARAM.findall(path)
    ]
    params += [
        {"name": name, "in": "query", "required": False, "schema": schema, "description": text}
        for name, schema, text in op.query
    ]
    if op.query_token:
        params.append(
            {
                "name": "token",
                "in": "query",
                "required": False,
                "schema": _STR,
                "description": "the bearer token, for clients that cannot send headers",
            }
        )
    if op.write or op.auth:
        params.append(
            {
                "name": "X-Log-Position",
                "in": "header",
                "required": False,
                "schema": _POSITION,
                "description": "read your writes: wait until this node applied the position",
            }
        )
    ok: dict[str, Any] = {"description": op.ok_description}
    if op.ok_content is not None:
        ok["content"] = dict(op.ok_content)
    if op.write:
        ok["headers"] = dict(_LOG_POSITION_HEADER)
    responses: dict[str, Any] = {op.ok: ok}
    names = list(op.errors)
    if op.auth:
        names.append("Unauthorized")
    if op.write:
        names.append("Unavailable")
    status = {
        "BadRequest": "400",
        "Unauthorized": "401",
        "Forbidden": "403",
        "NotFound": "404",
        "Conflict": "409",
        "Invalid": "422",
        "Unavailable": "503",
    }
    for name in names:
        responses[status[name]] = {"$ref": f"#/components/responses/{name}"}
    out: dict[str, Any] = {
        "operationId": _operation_id(method, path),
        "summary": op.summary,
        "tags": [op.tag],
        "responses": dict(sorted(responses.items())),
    }
    if params:
        out["parameters"] = params
    if op.body is not None:
        out["requestBody"] = {"required": op.body_required, "content": dict(op.body)}
    out["security"] = [{"bearer": []}] if op.auth else []
    return out


def _operation_id(method: str, path: str) -> str:
    words = [w for w in re.split(r"[^A-Za-z0-9]+", path.replace("{", "by_")) if w]
    return method.lower() + "".join(w[:1].upper() + w[1:] for w in words)


def document(*, server_url: str | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document (a fresh JSON-able dict)."""
    paths: dict[str, dict[str, Any]] = {}
    for (method, path), op in OPERATIONS.items():
        paths.setdefault(path, {})[method.lower()] = _operation(method, path, op)
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "dspot music service",
            "version": "0.1.0",
            "description": "The HTTP API of a dspot-spotify node (relayed by the gateway). "
            "Errors are RFC 9457 problem documents; writes answer `X-Log-Position`.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": SCHEMAS,
            "responses": RESPONSES,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
    if server_url is not None:
        doc["servers"] = [{"url": server_url}]
    return copy.deepcopy(doc)  # the tables stay untouched whatever the caller does
