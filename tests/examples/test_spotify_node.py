"""SpotifyNode: a 3-node cluster on the simulated network, driven through its HTTP API."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import trio
from dspot_spotify.api import LOG_POSITION_HEADER, NO_QUORUM

from dspot.testing import run_with_mock_clock, wait_until
from tests.examples.simcluster import CONFIG, cluster, login, solo_over_tcp, url


def test_register_login_and_bearer_auth() -> None:
    async def main() -> None:
        async with cluster() as c:
            resp = await c.register("n1", "alice", "correct horse battery")
            assert resp.status == 201
            doc = json.loads(await resp.read())
            assert doc["username"] == "alice" and doc["token"]
            assert doc["role"] == "admin"  # the first user
            pos = resp.headers.get(LOG_POSITION_HEADER)
            assert pos is not None
            # Log in on another node, passing the position: it waits for the registration.
            resp = await c.client.post(
                url("n3", "/api/auth/login"),
                json={"username": "alice", "password": "correct horse battery"},
                headers={LOG_POSITION_HEADER: pos},
            )
            assert resp.status == 200, await resp.text()
            token = (await resp.json(dict))["token"]
            # Wrong password, duplicate username, bad token, no token.
            resp = await c.client.post(
                url("n2", "/api/auth/login"), json={"username": "alice", "password": "nope nope"}
            )
            assert resp.status == 401
            await resp.read()
            resp = await c.register("n2", "Alice", "another good password")
            assert resp.status == 409
            resp = await c.register("n2", "bob", "bob's good password")
            assert resp.status == 201
            assert json.loads(await resp.read())["role"] == "user"
            resp = await c.client.get(url("n2", "/api/songs"))
            assert resp.status == 401
            assert resp.headers.get("content-type") == "application/problem+json"
            await resp.read()
            resp = await c.client.get(
                url("n2", "/api/songs"), headers={"authorization": f"Bearer {token}x"}
            )
            assert resp.status == 401
            await resp.read()
            resp = await c.client.get(
                url("n2", "/api/songs"), headers={"authorization": f"Bearer {token}"}
            )
            assert resp.status == 200, await resp.text()
            assert (await resp.json(dict))["total"] == 0

    run_with_mock_clock(main)


def test_upload_search_elsewhere_stream_range(song_file: bytes) -> None:
    async def main() -> None:
        async with cluster() as c:
            auth = await login(c, "n1")
            resp = await c.client.post(
                url("n1", "/api/songs?filename=song.flac"),
                body=song_file,
                headers={**auth, "content-type": "audio/flac"},
            )
            assert resp.status == 201, await resp.text()
            song = await resp.json(dict)
            pos = resp.headers.get(LOG_POSITION_HEADER)
            assert pos is not None
            assert song["title"] == "Quorum Blues"
            assert song["artist_name"] == "The Replicas"
            assert song["album_title"] == "Token Ring"
            assert song["size"] == len(song_file)
            assert song["cover_sha256"]
            song_id = song["id"]

            # Search from another node, reading our own write through the log position.
            resp = await c.client.get(
                url("n2", "/api/songs?q=quorum"), headers={**auth, LOG_POSITION_HEADER: pos}
            )
            assert resp.status == 200, await resp.text()
            page = await resp.json(dict)
            assert [s["id"] for s in page["items"]] == [song_id]
            resp = await c.client.get(
                url("n3", f"/api/songs?genre=jazz&artist={song['artist_id']}"),
                headers={**auth, LOG_POSITION_HEADER: pos},
            )
            assert [s["id"] for s in (await resp.json(dict))["items"]] == [song_id]
            resp = await c.client.get(url("n3", "/api/songs?q=nomatch"), headers=auth)
            assert (await resp.json(dict))["total"] == 0
            resp = await c.client.get(url("n3", f"/api/songs/{song_id}"), headers=auth)
            assert (await resp.json(dict))["id"] == song_id
            resp = await c.client.get(url("n3", "/api/songs/nope"), headers=auth)
            assert resp.status == 404
            await resp.read()

            # Stream with a Range request from a third node: 206 and the exact bytes.
            start, end = 1000, 70_000
            resp = await c.client.get(
                url("n3", f"/api/songs/{song_id}/stream"),
                headers={**auth, "range": f"bytes={start}-{end}"},
            )
            assert resp.status == 206, await resp.text()
            assert resp.headers.get("accept-ranges") == "bytes"
            assert resp.headers.get("content-range") == f"bytes {start}-{end}/{len(song_file)}"
            assert await resp.read() == song_file[start : end + 1]
            etag = resp.headers.get("etag")
            assert etag == f'"{song["blob_sha256"]}"'
            resp = await c.client.get(url("n2", f"/api/songs/{song_id}/stream"), headers=auth)
            assert resp.status == 200
            assert await resp.read() == song_file
            resp = await c.client.get(
                url("n2", f"/api/songs/{song_id}/stream"),
                headers={**auth, "if-none-match": etag},
            )
            assert resp.status == 304
            resp = await c.client.get(url("n1", f"/api/songs/{song_id}/cover"), headers=auth)
            assert resp.status == 200
            assert resp.headers.get("content-type") == "image/png"
            await resp.read()

            # The same bytes again: 200 with the existing song, marked as a duplicate.
            resp = await c.client.post(
                url("n2", "/api/songs"), body=song_file, headers={**auth, LOG_POSITION_HEADER: pos}
            )
            assert resp.status == 200, await resp.text()
            again = await resp.json(dict)
            assert again["id"] == song_id and again["duplicate"] is True

    run_with_mock_clock(main)


def test_bad_uploads(song_file: bytes) -> None:
    async def main() -> None:
        async with cluster() as c:
            auth = await login(c, "n2")
            for body, status in [
                (b"this is not audio at all, just some text" * 10, 415),
                (b"", 415),
                (song_file[:2000], 422),
                (b"\0" * (CONFIG.max_upload + 1), 413),
            ]:
                resp = await c.client.post(
                    url("n2", "/api/songs?filename=x.mp3"),
                    body=body,
                    headers={**auth, "content-type": "audio/mpeg"},
                )
                assert resp.status == status, (status, await resp.text())
                assert resp.headers.get("content-type") == "application/problem+json"
                await resp.read()
            resp = await c.client.post(url("n2", "/api/songs"), body=song_file)
            assert resp.status == 401
            await resp.read()
            resp = await c.client.get(url("n2", "/api/songs?page=x"), headers=auth)
            assert resp.status == 422
            await resp.read()

    run_with_mock_clock(main)


def test_minority_side_is_read_only(song_file: bytes) -> None:
    async def main() -> None:
        async with cluster() as c:
            auth = await login(c, "n1")
            c.net.partition([["n1"], ["n2", "n3", "client"]])
            await anyio.sleep(10.0)
            c.net.unblock([("client", "n1"), ("n1", "client")])
            for path, body in [
                ("/api/auth/register", json.dumps({"username": "bob", "password": "pw of bob!"})),
                ("/api/songs", song_file),
            ]:
                raw = body.encode() if isinstance(body, str) else body
                resp = await c.client.post(url("n1", path), body=raw, headers=auth)
                assert resp.status == 503, await resp.text()
                problem = json.loads(await resp.read())
                assert problem["detail"] == NO_QUORUM
            # Reads still work on the minority side ...
            resp = await c.client.get(url("n1", "/api/songs"), headers=auth)
            assert resp.status == 200
            await resp.read()
            # ... and the majority side still writes.
            resp = await c.register("n2", "carol", "pw of carol!")
            assert resp.status == 201, await resp.text()
            # After the heal, the former minority writes again.
            c.net.heal()
            await wait_until(c.nodes["n1"].has_quorum, timeout=20.0, step=0.1)
            resp = await c.register("n1", "dave", "pw of dave!")
            assert resp.status == 201, await resp.text()

    run_with_mock_clock(main)


def test_read_your_writes_waits_for_the_log_position() -> None:
    async def main() -> None:
        async with cluster() as c:
            # n3 is cut off from the other nodes (not from the client): it falls behind.
            c.net.partition([["n1", "n2", "client"], ["n3"]])
            c.net.unblock([("client", "n3"), ("n3", "client")])
            resp = await c.register("n1", "erin", "erin's password")
            assert resp.status == 201, await resp.text()
            pos = resp.headers.get(LOG_POSITION_HEADER)
            assert pos is not None
            creds = {"username": "erin", "password": "erin's password"}
            # Without the position, the lagging replica does not know erin yet.
            resp = await c.client.post(url("n3", "/api/auth/login"), json=creds)
            assert resp.status == 401
            await resp.read()

            async def heal_later() -> None:
                await anyio.sleep(3.0)
                c.net.heal()

            async with anyio.create_task_group() as tg:
                tg.start_soon(heal_later)
                started = trio.current_time()
                resp = await c.client.post(
                    url("n3", "/api/auth/login"), json=creds, headers={LOG_POSITION_HEADER: pos}
                )
                assert resp.status == 200, await resp.text()
                assert trio.current_time() - started >= 3.0
                await resp.read()
            resp = await c.client.post(
                url("n3", "/api/auth/login"), json=creds, headers={LOG_POSITION_HEADER: "x"}
            )
            assert resp.status == 400
            await resp.read()

    run_with_mock_clock(main)


def test_stream_survives_a_crashed_node(song_file: bytes) -> None:
    async def main() -> None:
        async with cluster() as c:
            auth = await login(c, "n1")
            resp = await c.client.post(url("n1", "/api/songs"), body=song_file, headers=auth)
            assert resp.status == 201, await resp.text()
            song = await resp.json(dict)
            pos = resp.headers.get(LOG_POSITION_HEADER) or ""
            c.net.crash("n1")  # the uploading node, which holds a copy
            resp = await c.client.get(
                url("n2", f"/api/songs/{song['id']}/stream"),
                headers={**auth, LOG_POSITION_HEADER: pos, "range": "bytes=-5000"},
            )
            assert resp.status == 206, await resp.text()
            assert await resp.read() == song_file[-5000:]

    run_with_mock_clock(main)


def test_one_node_over_tcp(tmp_path: Path, song_file: bytes) -> None:
    """The same node code over real TCP and a local disk (a one-node cluster)."""

    async def main() -> None:
        async with solo_over_tcp(tmp_path) as (base, client, token):
            auth = {"authorization": f"Bearer {token}"}
            resp = await client.post(f"{base}/api/songs", body=song_file, headers=auth)
            assert resp.status == 201, await resp.text()
            song_id = (await resp.json(dict))["id"]
            resp = await client.get(
                f"{base}/api/songs/{song_id}/stream", headers={**auth, "range": "bytes=10-99"}
            )
            assert resp.status == 206
            assert await resp.read() == song_file[10:100]

    trio.run(main)
