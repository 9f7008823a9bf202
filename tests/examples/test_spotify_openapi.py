"""The OpenAPI document: valid OpenAPI 3.1, exactly the routes the router serves, the shapes
the API really answers, and the source of the web frontend's committed TypeScript types."""

from __future__ import annotations

import json
import random
import re
import subprocess
from pathlib import Path
from typing import Any

import attrs
import jsonschema
import trio
from dspot_spotify.api import library, openapi
from dspot_spotify.config import NodeConfig
from dspot_spotify.node import SpotifyNode
from dspot_spotify.router import build_router
from openapi_spec_validator import validate

from dspot.disk import SimDisk
from dspot.env import NodeEnv
from dspot.http import Request, Router
from dspot.testing import run_with_mock_clock
from dspot.transport import SimNetwork
from tests.examples.simcluster import Cluster, cluster, url
from tests.helpers.prerequisites import FRONTEND, require

COMMITTED_DOCUMENT = FRONTEND / "src" / "api" / "openapi.json"
COMMITTED_TYPES = FRONTEND / "src" / "api" / "schema.ts"
GENERATOR = FRONTEND / "node_modules" / ".bin" / "openapi-typescript"


def router() -> Router:
    """The router of a node that is built but not started (handlers are only listed)."""
    net = SimNetwork(random.Random(1))
    env = NodeEnv(
        node_id="n1",
        transport=net.transport("n1"),
        disk=SimDisk(random.Random(2)),
        rng=random.Random(3),
    )
    node = SpotifyNode(
        env, rpc_address="n1:7100", http_address="n1:8080", secret=b"x" * 32, config=NodeConfig()
    )
    return build_router(node)


def served() -> set[tuple[str, str]]:
    """What the OpenAPI document must cover: every /api route, /healthz and /metrics."""
    return {
        (method, path)
        for method, path in router().routes()
        if path.startswith("/api/") or path in ("/healthz", "/metrics")
    }


def test_document_matches_the_router_both_ways() -> None:
    routes = served()
    documented = openapi.documented_routes()
    assert routes - documented == set(), "served but not documented"
    assert documented - routes == set(), "documented but not served"
    doc = openapi.document()
    in_doc = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert in_doc == routes


def test_document_is_valid_openapi_3_1() -> None:
    doc = openapi.document(server_url="https://localhost:8443")
    validate(doc)  # raises OpenAPIValidationError with the failing part
    assert doc["openapi"] == "3.1.0"
    assert doc["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}
    song = doc["paths"]["/api/songs/{song_id}"]
    assert song["get"]["security"] == [{"bearer": []}]
    assert song["get"]["parameters"][0] == {
        "name": "song_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
    }
    assert set(song) == {"get", "patch", "delete"}
    upload = doc["paths"]["/api/songs"]["post"]
    assert "multipart/form-data" in upload["requestBody"]["content"]
    assert upload["responses"]["201"]["headers"]["X-Log-Position"]
    assert doc["paths"]["/healthz"]["get"]["security"] == []
    assert doc["paths"]["/metrics"]["get"]["security"] == []
    stream = doc["paths"]["/api/songs/{song_id}/stream"]["get"]
    assert any(p["name"] == "token" and p["in"] == "query" for p in stream["parameters"])
    # The shapes come from the attrs classes: a field of the class is a property.
    assert set(doc["components"]["schemas"]["Genre"]["properties"]) == {"genre", "songs"}
    # A caller changing its copy does not change the next document.
    doc["paths"].clear()
    assert openapi.document()["paths"]


def test_the_router_serves_the_document_without_auth() -> None:
    async def main() -> None:
        response = await router()(Request(method="GET", target="/api/openapi.json"))
        assert response.status == 200
        assert isinstance(response.body, bytes)
        assert json.loads(response.body) == openapi.document()

    trio.run(main)


# -- the shapes answered are the shapes documented --------------------------------------------


class Checked:
    """Checks every answer of an API session against the document: the JSON body against the
    schema of its operation and status. Remembers which ``(method, path, status)`` it saw."""

    def __init__(self, c: Cluster) -> None:
        self.c = c
        self.doc = openapi.document()
        self.seen: set[tuple[str, str, str]] = set()
        self.auth: dict[str, str] = {}
        self.templates = [
            (re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", p) + "$"), p) for p in self.doc["paths"]
        ]

    def template(self, path: str) -> str:
        bare = path.split("?", 1)[0]
        [found] = [t for pattern, t in self.templates if pattern.match(bare)]
        return found

    async def call(
        self, method: str, path: str, body: Any = None, *, raw: bytes | None = None, **h: str
    ) -> Any:
        headers = {**self.auth, **h}
        kwargs: dict[str, Any] = {"headers": headers}
        if raw is not None:
            kwargs["body"] = raw
        elif body is not None:
            kwargs["json"] = body
        resp = await self.c.client.request(method, url("n1", path), **kwargs)
        data = await resp.read()
        template = self.template(path)
        status = str(resp.status)
        operation = self.doc["paths"][template][method.lower()]
        assert status in operation["responses"], (method, path, status, data[:300])
        self.seen.add((method, template, status))
        answer = operation["responses"][status]
        if "$ref" in answer:
            name = answer["$ref"].rsplit("/", 1)[1]
            answer = self.doc["components"]["responses"][name]
        ctype = (resp.headers.get("content-type") or "").split(";")[0]
        content = answer.get("content", {})
        if ctype in ("application/json", "application/problem+json"):
            assert ctype in content, (method, path, status, ctype)
            schema = {**content[ctype]["schema"], "components": self.doc["components"]}
            doc = json.loads(data)
            jsonschema.Draft202012Validator(schema).validate(doc)
            return doc
        return data


def json_operations(doc: dict[str, Any]) -> set[tuple[str, str, str]]:
    """Every documented (method, path, success status) answered with a JSON body."""
    return {
        (method.upper(), path, status)
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
        for status, answer in op["responses"].items()
        if status < "300" and "application/json" in answer.get("content", {})
    }


def test_every_json_answer_fits_its_documented_schema(song_file: bytes) -> None:
    """A session over every JSON operation: each answer (errors too) validates against the
    schema its status documents, and every documented JSON success was seen."""

    async def main() -> None:
        async with cluster() as c:
            api = Checked(c)
            creds = {"username": "alice", "password": "correct horse battery"}
            await api.call("POST", "/api/auth/register", creds)
            session = await api.call("POST", "/api/auth/login", creds)
            api.auth = {"authorization": f"Bearer {session['token']}"}
            await api.call("GET", "/api/me")
            await api.call("GET", "/api/me/subsonic")
            await api.call("POST", "/api/me/subsonic/rotate")
            flac = {"content-type": "audio/flac"}
            song = await api.call("POST", "/api/songs?filename=s.flac", raw=song_file, **flac)
            await api.call("POST", "/api/songs?filename=s.flac", raw=song_file, **flac)
            sid, album, artist = song["id"], song["album_id"], song["artist_id"]
            for path in ("/api/songs", "/api/albums", "/api/artists", "/api/genres"):
                await api.call("GET", path)
            await api.call("GET", f"/api/songs/{sid}")
            await api.call("PATCH", f"/api/songs/{sid}", {"track": 2, "genres": ["Jazz"]})
            await api.call("POST", f"/api/songs/{sid}/plays")
            await api.call("GET", f"/api/songs/{sid}/replicas")
            for kind, item in (("songs", sid), ("albums", album), ("artists", artist)):
                await api.call("PUT", f"/api/{kind}/{item}/like")
                await api.call("GET", f"/api/{kind}/{item}")
                await api.call("DELETE", f"/api/{kind}/{item}/like")
            for path in ("/api/me/likes", "/api/me/likes/albums", "/api/me/likes/artists"):
                await api.call("GET", path)
            await api.call("PATCH", f"/api/albums/{album}", {"year": 1999})
            await api.call("PATCH", f"/api/artists/{artist}", {"name": "The Checked"})
            playlist = await api.call("POST", "/api/playlists", {"name": "Shapes"})
            pid = playlist["id"]
            item = await api.call("POST", f"/api/playlists/{pid}/songs", {"song_id": sid})
            move = {"item_id": item["item_id"], "position": 0}
            await api.call("POST", f"/api/playlists/{pid}/move", move)
            await api.call("PATCH", f"/api/playlists/{pid}", {"name": "Shapes II"})
            await api.call("GET", "/api/playlists")
            await api.call("GET", f"/api/playlists/{pid}")
            await api.call("DELETE", f"/api/playlists/{pid}/songs/{item['item_id']}")
            await api.call("GET", "/api/cluster")
            # Users and settings (alice, the first user, is the admin).
            users = await api.call("GET", "/api/users")
            await api.call(
                "POST", "/api/auth/register", {"username": "bob", "password": "pw of bob"}
            )
            bob = next(
                u for u in (await api.call("GET", "/api/users"))["users"] if u["username"] == "bob"
            )
            await api.call("PATCH", f"/api/users/{bob['id']}", {"roles": ["user", "admin"]})
            await api.call(
                "POST", f"/api/users/{bob['id']}/password", {"password": "new pw of bob"}
            )
            await api.call("GET", "/api/settings")
            await api.call("PATCH", "/api/settings", {"subsonic_account_password": True})
            await api.call("PATCH", f"/api/users/{users['users'][0]['id']}", {"disabled": True})
            await api.call("GET", "/healthz")
            await api.call("GET", "/api/openapi.json")
            # Errors are problem documents of their documented statuses.
            await api.call("GET", "/api/songs/nope")
            await api.call("PATCH", f"/api/songs/{sid}", {"titel": "x"})
            await api.call("GET", "/api/songs?page=0")
            await api.call("DELETE", f"/api/artists/{artist}")  # still has an album: 409
            # A password change, then a logout (after it, the token is no longer good).
            change = {"old": "correct horse battery", "new": "correct horse battery 2"}
            await api.call("POST", "/api/me/password", change)
            creds["password"] = change["new"]
            session = await api.call("POST", "/api/auth/login", creds)
            api.auth = {"authorization": f"Bearer {session['token']}"}
            await api.call("POST", "/api/auth/logout")
            await api.call("GET", "/api/me")  # 401
            missing = json_operations(api.doc) - api.seen
            assert missing == set(), "documented JSON answers never checked"

    run_with_mock_clock(main)


# -- the web frontend's types are generated from the document ---------------------------------


def generated_types(doc: dict[str, Any], tmp: Path) -> str:
    """What ``npm run api-types`` makes of ``doc``."""
    require(
        GENERATOR.is_file(),
        f"{GENERATOR} is missing: install the frontend's packages (cd frontend && npm ci)",
    )
    source, out = tmp / "openapi.json", tmp / "schema.ts"
    source.write_text(openapi.document_text(doc), encoding="utf-8")
    subprocess.run(
        [str(GENERATOR), str(source), "-o", str(out)],
        check=True,
        capture_output=True,
        cwd=FRONTEND,
        timeout=120,
    )
    return out.read_text(encoding="utf-8")


def test_the_committed_document_is_the_current_one() -> None:
    assert COMMITTED_DOCUMENT.read_text(encoding="utf-8") == openapi.document_text(), (
        "frontend/src/api/openapi.json is stale: run `dspot-spotify openapi --out "
        "frontend/src/api/openapi.json` and `npm run api-types` in frontend/"
    )


def test_the_committed_frontend_types_are_generated_from_the_document(tmp_path: Path) -> None:
    assert generated_types(openapi.document(), tmp_path) == COMMITTED_TYPES.read_text(
        encoding="utf-8"
    ), "frontend/src/api/schema.ts is stale: run `npm run api-types` in frontend/"


@attrs.frozen(kw_only=True)
class GenreList(library.GenreList):
    """The genre list with one more field: what a change to one class of the API does."""

    total: int


def changed_document() -> dict[str, Any]:
    routes = tuple(
        attrs.evolve(r, reply=GenreList) if r.reply is library.GenreList else r
        for r in openapi.ROUTES
    )
    return openapi.document(routes=routes)


def test_changing_one_class_changes_the_document_and_the_types_disagree(
    tmp_path: Path,
) -> None:
    doc = changed_document()
    assert doc["components"]["schemas"]["GenreList"]["properties"]["total"] == {"type": "integer"}
    assert openapi.document_text(doc) != COMMITTED_DOCUMENT.read_text(encoding="utf-8")
    types = generated_types(doc, tmp_path)
    assert types != COMMITTED_TYPES.read_text(encoding="utf-8")
    [block] = re.findall(r"GenreList: \{[^}]*\}", types)
    assert "total: number" in block
