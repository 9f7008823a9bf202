"""The API's catalog browsing, playlist, like and health endpoints on a 3-node cluster."""

from __future__ import annotations

from typing import Any

from dspot_spotify.api import LOG_POSITION_HEADER

from dspot.testing import run_with_mock_clock, wait_until
from tests.examples.simcluster import Cluster, Session, cluster, login, url


def ids(playlist: dict[str, Any]) -> list[str]:
    return [i["item_id"] for i in playlist["items"]]


async def alice_with_song(c: Cluster, song: bytes) -> tuple[Session, dict[str, Any]]:
    auth = await login(c, "n1")
    resp = await c.client.post(url("n1", "/api/songs"), body=song, headers=auth)
    assert resp.status == 201, await resp.text()
    return Session(c, auth, resp.headers.get(LOG_POSITION_HEADER)), await resp.json(dict)


async def bob(c: Cluster, pos: str | None) -> Session:
    headers = {LOG_POSITION_HEADER: pos} if pos else {}
    body = {"username": "bob", "password": "bob's good password"}
    resp = await c.client.post(url("n2", "/api/auth/register"), json=body, headers=headers)
    assert resp.status == 201, await resp.text()
    doc = await resp.json(dict)
    return Session(
        c, {"authorization": f"Bearer {doc['token']}"}, resp.headers.get(LOG_POSITION_HEADER)
    )


def test_artists_and_albums(song_file: bytes) -> None:
    async def main() -> None:
        async with cluster() as c:
            alice, song = await alice_with_song(c, song_file)
            artist_id, album_id = song["artist_id"], song["album_id"]
            status, page = await alice.call("GET", "n2", "/api/artists")
            assert status == 200, page
            assert page["total"] == 1 and page["page"] == 1
            [artist] = page["items"]
            assert artist["id"] == artist_id and artist["name"] == "The Replicas"
            assert artist["album_count"] == 1 and artist["song_count"] == 1
            status, page = await alice.call("GET", "n3", "/api/artists?q=replicas&limit=5")
            assert [a["id"] for a in page["items"]] == [artist_id] and page["limit"] == 5
            status, page = await alice.call("GET", "n3", "/api/artists?q=nomatch")
            assert status == 200 and page["total"] == 0
            status, _ = await alice.call("GET", "n3", "/api/artists?page=0")
            assert status == 422
            status, page = await alice.call("GET", "n2", "/api/artists?page=2")
            assert status == 200 and page["items"] == []

            status, detail = await alice.call("GET", "n3", f"/api/artists/{artist_id}")
            assert status == 200, detail
            assert detail["name"] == "The Replicas"
            assert [a["id"] for a in detail["albums"]] == [album_id]
            assert detail["albums"][0]["title"] == "Token Ring"
            assert detail["singles"] == []
            status, _ = await alice.call("GET", "n3", "/api/artists/nope")
            assert status == 404

            status, page = await alice.call("GET", "n2", "/api/albums?q=token")
            assert status == 200, page
            assert [a["id"] for a in page["items"]] == [album_id]
            status, page = await alice.call("GET", "n2", f"/api/albums?artist={artist_id}")
            assert [a["id"] for a in page["items"]] == [album_id]
            status, page = await alice.call("GET", "n2", "/api/albums?artist=nope")
            assert page["total"] == 0
            status, _ = await alice.call("GET", "n2", "/api/albums?limit=x")
            assert status == 422
            status, album = await alice.call("GET", "n3", f"/api/albums/{album_id}")
            assert status == 200, album
            assert album["title"] == "Token Ring" and album["artist_name"] == "The Replicas"
            assert [t["id"] for t in album["tracks"]] == [song["id"]]
            status, _ = await alice.call("GET", "n1", "/api/albums/nope")
            assert status == 404

            anonymous = Session(c, {})
            for path in ["/api/artists", "/api/albums", f"/api/albums/{album_id}"]:
                status, _ = await anonymous.call("GET", "n2", path)
                assert status == 401, path

    run_with_mock_clock(main)


def test_playlists(song_file: bytes) -> None:
    async def main() -> None:
        async with cluster() as c:
            alice, song = await alice_with_song(c, song_file)
            status, created = await alice.call("POST", "n1", "/api/playlists", {"name": "Mix"})
            assert status == 201, created
            pid = created["id"]
            assert created["name"] == "Mix" and created["items"] == []
            status, mine = await alice.call("GET", "n2", "/api/playlists")
            assert status == 200 and [p["id"] for p in mine["items"]] == [pid]

            # Three items of the same song, added on other nodes.
            added: list[str] = []
            for node in ["n2", "n3", "n1"]:
                status, item = await alice.call(
                    "POST", node, f"/api/playlists/{pid}/songs", {"song_id": song["id"]}
                )
                assert status == 201, item
                assert item["song"]["id"] == song["id"] and item["position"] == len(added)
                added.append(item["item_id"])
            first, second, third = added
            status, detail = await alice.call("GET", "n3", f"/api/playlists/{pid}")
            assert status == 200 and ids(detail) == [first, second, third]
            assert detail["song_count"] == 3

            # Move items (position: the index in the resulting order), rename.
            for node, item_id, position, order in [
                ("n3", third, 0, [third, first, second]),
                ("n2", third, 1, [first, third, second]),
                ("n1", first, 9, [third, second, first]),
            ]:
                move = {"item_id": item_id, "position": position}
                status, detail = await alice.call("POST", node, f"/api/playlists/{pid}/move", move)
                assert status == 200, detail
                assert ids(detail) == order, (item_id, position)
            status, detail = await alice.call("PATCH", "n2", f"/api/playlists/{pid}", {"name": "B"})
            assert status == 200 and detail["name"] == "B"
            status, detail = await alice.call("GET", "n1", f"/api/playlists/{pid}")
            assert detail["name"] == "B" and ids(detail) == [third, second, first]

            # Someone else may read it but not edit it.
            other = await bob(c, alice.pos)
            status, mine = await other.call("GET", "n3", "/api/playlists")
            assert status == 200 and mine["items"] == []
            status, seen = await other.call("GET", "n3", f"/api/playlists/{pid}")
            assert status == 200 and seen["name"] == "B"
            item = first
            for method, path, body in [
                ("PATCH", f"/api/playlists/{pid}", {"name": "mine now"}),
                ("POST", f"/api/playlists/{pid}/songs", {"song_id": song["id"]}),
                ("POST", f"/api/playlists/{pid}/move", {"item_id": item, "position": 1}),
                ("DELETE", f"/api/playlists/{pid}/songs/{item}", None),
                ("DELETE", f"/api/playlists/{pid}", None),
            ]:
                status, problem = await other.call(method, "n2", path, body)
                assert status == 403, (method, path, status, problem)

            # Unknown ids, and a bad name.
            for method, path, body in [
                ("GET", "/api/playlists/nope", None),
                ("PATCH", "/api/playlists/nope", {"name": "x"}),
                ("DELETE", "/api/playlists/nope", None),
                ("POST", "/api/playlists/nope/songs", {"song_id": song["id"]}),
                ("POST", f"/api/playlists/{pid}/songs", {"song_id": "nope"}),
                ("DELETE", f"/api/playlists/{pid}/songs/nope", None),
                ("POST", f"/api/playlists/{pid}/move", {"item_id": "nope", "position": 0}),
                ("POST", "/api/playlists/nope/move", {"item_id": item, "position": 0}),
            ]:
                status, problem = await alice.call(method, "n1", path, body)
                assert status == 404, (method, path, status, problem)
            status, _ = await alice.call("POST", "n1", "/api/playlists", {"name": " "})
            assert status == 422
            status, _ = await alice.call("POST", "n1", "/api/playlists", {"title": "x"})
            assert status == 422
            move = {"item_id": item, "position": -1}
            status, _ = await alice.call("POST", "n1", f"/api/playlists/{pid}/move", move)
            assert status == 422

            # Remove an item, then the playlist; read both on another node.
            status, detail = await alice.call("DELETE", "n3", f"/api/playlists/{pid}/songs/{item}")
            assert status == 200 and ids(detail) == [third, second]
            status, detail = await alice.call("GET", "n2", f"/api/playlists/{pid}")
            assert ids(detail) == [third, second]
            status, _ = await alice.call("DELETE", "n3", f"/api/playlists/{pid}")
            assert status == 204
            status, _ = await alice.call("GET", "n2", f"/api/playlists/{pid}")
            assert status == 404
            status, mine = await alice.call("GET", "n1", "/api/playlists")
            assert mine["items"] == []

    run_with_mock_clock(main)


def test_likes(song_file: bytes) -> None:
    async def main() -> None:
        async with cluster() as c:
            alice, song = await alice_with_song(c, song_file)
            sid = song["id"]
            status, liked = await alice.call("PUT", "n2", f"/api/songs/{sid}/like")
            assert status == 200, liked
            assert liked["id"] == sid and liked["like_count"] == 1
            status, page = await alice.call("GET", "n3", "/api/me/likes")
            assert status == 200 and [s["id"] for s in page["items"]] == [sid]
            assert page["total"] == 1
            status, liked = await alice.call("PUT", "n3", f"/api/songs/{sid}/like")
            assert status == 200 and liked["like_count"] == 1  # liking twice is harmless

            other = await bob(c, alice.pos)
            status, page = await other.call("GET", "n1", "/api/me/likes")
            assert status == 200 and page["items"] == []
            status, liked = await other.call("PUT", "n1", f"/api/songs/{sid}/like")
            assert liked["like_count"] == 2
            status, _ = await other.call("GET", "n1", "/api/me/likes?limit=0")
            assert status == 422

            status, unliked = await alice.call("DELETE", "n1", f"/api/songs/{sid}/like")
            assert status == 200 and unliked["like_count"] == 1
            status, page = await alice.call("GET", "n2", "/api/me/likes")
            assert page["items"] == [] and page["total"] == 0
            status, page = await other.call("GET", "n2", "/api/me/likes")
            assert [s["id"] for s in page["items"]] == [sid]

            for method in ["PUT", "DELETE"]:
                status, _ = await alice.call(method, "n2", "/api/songs/nope/like")
                assert status == 404, method
            status, _ = await Session(c, {}).call("PUT", "n2", f"/api/songs/{sid}/like")
            assert status == 401

    run_with_mock_clock(main)


def test_healthz() -> None:
    async def main() -> None:
        async with cluster() as c:
            anonymous = Session(c, {})
            for node in ["n1", "n2", "n3"]:
                status, doc = await anonymous.call("GET", node, "/healthz")
                assert status == 200
                assert doc == {"status": "ok", "quorum": True}
            c.net.partition([["n1"], ["n2", "n3", "client"]])
            c.net.unblock([("client", "n1"), ("n1", "client")])
            await wait_until(lambda: not c.nodes["n1"].has_quorum(), timeout=20.0, step=0.1)
            status, doc = await anonymous.call("GET", "n1", "/healthz")
            assert status == 200 and doc == {"status": "ok", "quorum": False}
            status, doc = await anonymous.call("GET", "n2", "/healthz")
            assert doc["quorum"] is True

    run_with_mock_clock(main)
