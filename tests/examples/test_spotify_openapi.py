"""The OpenAPI document: valid OpenAPI 3.1, and exactly the routes the router serves."""

from __future__ import annotations

import json
import random

import trio
from dspot_spotify import openapi
from dspot_spotify.api import build_router
from dspot_spotify.node import NodeConfig, SpotifyNode
from openapi_spec_validator import validate

from dspot.disk import SimDisk
from dspot.env import NodeEnv
from dspot.http import Request, Router
from dspot.transport import SimNetwork


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
