"""The API's remaining writes: multipart uploads, ``?token=`` for media, editing and deleting
songs/albums/artists with permissions, play counts and ``/api/me``."""

from __future__ import annotations

import hashlib
import io
import math
import struct
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio
from dspot_spotify import catalog
from dspot_spotify.api import LOG_POSITION_HEADER
from dspot_spotify.upload import (
    FormFile,
    MalformedForm,
    MissingFormFile,
    form_boundary,
    spool_upload,
)

from dspot.testing import run_with_mock_clock, wait_until
from tests.examples.simcluster import CONFIG, Cluster, Session, cluster, solo_over_tcp, url

BOUNDARY = "----dspotFormBoundary7MA4YWxkTrZu0gW"
FORM_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def make_wav(seconds: float = 1.5, rate: int = 22050) -> bytes:
    """An untagged mono 16-bit WAV of a 440 Hz tone (stdlib only)."""
    frames = int(seconds * rate)
    pcm = struct.pack(
        f"<{frames}h",
        *(int(12000 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(frames)),
    )
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return out.getvalue()


def form(*parts: tuple[str, str | None, bytes], boundary: str = BOUNDARY) -> bytes:
    """A multipart/form-data body as a browser sends it: ``(name, filename, content)``."""
    out = bytearray()
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        if filename is not None:
            out += b"Content-Type: application/octet-stream\r\n"
        out += b"\r\n" + data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out)


async def pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]
        await trio.lowlevel.checkpoint()


# -- the form parser on its own ----------------------------------------------------------------


def test_form_file_streams_the_file_field_fed_one_byte_at_a_time() -> None:
    audio = bytes(range(256)) * 3 + b"\r\n--" + BOUNDARY[:-1].encode() + b"\r\n--x"  # near-miss
    body = form(
        ("title", None, b"ignored"),
        ("file", "01 - A - B.wav", audio),
        ("file", "second.wav", b"a second file field is ignored"),
        ("comment", None, b"also ignored"),
    )

    async def main() -> None:
        f = FormFile(pieces(body, 1), BOUNDARY)
        got = b"".join([c async for c in f.chunks()])
        assert got == audio
        assert f.filename == "01 - A - B.wav"

    trio.run(main)


def test_form_file_yields_before_the_body_has_arrived() -> None:
    """The file comes out while the body is still arriving: nothing buffers the whole form."""
    audio = b"\x01\x02" * 200_000
    body = form(("file", "x.flac", audio))
    consumed = 0

    async def counted() -> AsyncIterator[bytes]:
        nonlocal consumed
        async for chunk in pieces(body, 4096):
            consumed += len(chunk)
            yield chunk

    async def main() -> None:
        f = FormFile(counted(), BOUNDARY)
        seen_at_first_chunk = None
        async for chunk in f.chunks():
            assert chunk
            if seen_at_first_chunk is None:
                seen_at_first_chunk = consumed
        assert seen_at_first_chunk is not None and seen_at_first_chunk <= 2 * 4096
        spool = await spool_upload(FormFile(pieces(body, 4096), BOUNDARY).chunks())
        assert spool.sha256 == hashlib.sha256(audio).hexdigest() and spool.size == len(audio)
        spool.close()

    trio.run(main)


def test_form_errors() -> None:
    assert form_boundary("audio/flac") is None
    assert form_boundary(None) is None
    assert form_boundary(FORM_TYPE) == BOUNDARY
    assert form_boundary('multipart/form-data; boundary="a b"') == "a b"
    with pytest.raises(MalformedForm):
        form_boundary("multipart/form-data")

    async def drain(body: bytes) -> bytes:
        f = FormFile(pieces(body, 7), BOUNDARY)
        return b"".join([c async for c in f.chunks()])

    async def main() -> None:
        whole = form(("file", "a.wav", b"RIFF...."))
        for bad in [
            whole[:-10],  # no closing boundary
            b"no multipart here at all, just text " * 10,
            whole.replace(b"\r\n\r\n", b"\r\n", 1),  # part headers never end
            b"",
        ]:
            with pytest.raises(MalformedForm):
                await drain(bad)
        with pytest.raises(MissingFormFile) as info:
            await drain(form(("upload", "a.wav", b"RIFF....")))
        assert info.value.status == 422 and "'file'" in info.value.message

    trio.run(main)


# -- over real TCP -----------------------------------------------------------------------------


def test_multipart_upload_over_tcp(tmp_path: Path, song_file: bytes) -> None:
    """A browser-style form upload to a node over TCP: stored, streamable byte-identical
    with the token in the query; bad forms get 400/422/413 and the server keeps serving."""
    wav = make_wav()

    async def main() -> None:
        async with solo_over_tcp(tmp_path) as (base, client, token):
            auth = {"authorization": f"Bearer {token}", "content-type": FORM_TYPE}

            # The untagged WAV's title and artist come from the part's file name.
            body = form(
                ("note", None, b"other fields are ignored"),
                ("file", "07 - Form Artist - Form Title.wav", wav),
            )
            resp = await client.post(f"{base}/api/songs", body=pieces(body, 8192), headers=auth)
            assert resp.status == 201, await resp.text()
            song = await resp.json(dict)
            assert (song["title"], song["artist_name"], song["track"]) == (
                "Form Title",
                "Form Artist",
                7,
            )
            assert song["size"] == len(wav) and song["mime"] == "audio/wav"
            assert song["blob_sha256"] == hashlib.sha256(wav).hexdigest()
            assert song["plays"] == 0

            # Streamed back whole, the token in the query (as <audio src> sends it).
            resp = await client.get(f"{base}/api/songs/{song['id']}/stream?token={token}")
            assert resp.status == 200
            assert await resp.read() == wav

            # The same bytes again, in a form: the existing song, flagged duplicate.
            resp = await client.post(
                f"{base}/api/songs", body=form(("file", "again.wav", wav)), headers=auth
            )
            assert resp.status == 200, await resp.text()
            again = await resp.json(dict)
            assert again["id"] == song["id"] and again["duplicate"] is True

            # A tagged FLAC in a form keeps its own tags.
            resp = await client.post(
                f"{base}/api/songs", body=form(("file", "x.flac", song_file)), headers=auth
            )
            assert resp.status == 201, await resp.text()
            assert (await resp.json(dict))["title"] == "Quorum Blues"

            too_big = b"\0" * (CONFIG.max_upload + 1)
            for bad, status in [
                (form(("file", "a.wav", wav))[:-40], 400),  # cut short
                (b"--not-the-boundary\r\n\r\n", 400),
                (form(("upload", "a.wav", wav)), 422),  # no "file" field
                (form(("file", "a.txt", b"plain text, not audio " * 20)), 415),
                (form(("file", "a.flac", song_file[:2000])), 422),  # corrupt
                (form(("file", "big.wav", too_big)), 413),
                (form(("file", "empty.wav", b"")), 415),
            ]:
                resp = await client.post(f"{base}/api/songs", body=bad, headers=auth)
                assert resp.status == status, (status, await resp.text())
                assert resp.headers.get("content-type") == "application/problem+json"
                await resp.read()
                # ... and the next request is served normally.
                resp = await client.get(
                    f"{base}/api/songs/{song['id']}",
                    headers={"authorization": f"Bearer {token}"},
                )
                assert resp.status == 200
                await resp.read()
            resp = await client.get(
                f"{base}/api/songs", headers={"authorization": f"Bearer {token}"}
            )
            assert (await resp.json(dict))["total"] == 2

    trio.run(main)


# -- on the simulated 3-node cluster ------------------------------------------------------------


async def register(c: Cluster, name: str, pos: str | None) -> Session:
    headers = {LOG_POSITION_HEADER: pos} if pos else {}
    body = {"username": name, "password": f"{name}'s good password"}
    resp = await c.client.post(url("n2", "/api/auth/register"), json=body, headers=headers)
    assert resp.status == 201, await resp.text()
    doc = await resp.json(dict)
    return Session(
        c, {"authorization": f"Bearer {doc['token']}"}, resp.headers.get(LOG_POSITION_HEADER)
    )


async def upload(session: Session, node: str, data: bytes) -> dict[str, Any]:
    resp = await session.c.client.post(url(node, "/api/songs"), body=data, headers=session.auth)
    assert resp.status == 201, await resp.text()
    session.pos = resp.headers.get(LOG_POSITION_HEADER)
    song: dict[str, Any] = await resp.json(dict)
    return song


async def users(c: Cluster) -> tuple[Session, Session, Session]:
    """alice (the first user: admin), bob and carol (plain users)."""
    alice = await register(c, "alice", None)
    bob = await register(c, "bob", alice.pos)
    carol = await register(c, "carol", bob.pos)
    return alice, bob, carol


async def everywhere(c: Cluster, pos: str | None, query: Any, *args: Any) -> list[Any]:
    """``query`` on every node's replica once it has applied ``pos``."""
    assert pos is not None
    epoch, seq = (int(x) for x in pos.split("."))
    out = []
    for node in c.nodes.values():
        await node.replica.wait_applied(catalog.LogPosition(epoch, seq))
        out.append(await node.replica.read(query, *args))
    return out


def test_token_in_the_query_only_for_stream_and_cover(song_file: bytes) -> None:
    async def main() -> None:
        async with cluster() as c:
            alice, _, _ = await users(c)
            song = await upload(alice, "n1", song_file)
            token = alice.auth["authorization"].removeprefix("Bearer ")
            sid = song["id"]
            pos = {LOG_POSITION_HEADER: alice.pos or ""}
            for method, path, status in [
                ("GET", f"/api/songs/{sid}/stream", 200),
                ("HEAD", f"/api/songs/{sid}/stream", 200),
                ("GET", f"/api/songs/{sid}/cover", 200),
                ("GET", "/api/me/likes", 401),
                ("GET", "/api/me", 401),
                ("GET", f"/api/songs/{sid}", 401),
                ("GET", "/api/songs", 401),
                ("PUT", f"/api/songs/{sid}/like", 401),
            ]:
                resp = await c.client.request(
                    method, url("n2", f"{path}?token={token}"), headers=pos
                )
                assert resp.status == status, (method, path, await resp.text())
                data = await resp.read()
                if path.endswith("/stream") and method == "GET":
                    assert data == song_file
            resp = await c.client.get(url("n3", f"/api/songs/{sid}/stream?token={token}x"))
            assert resp.status == 401
            await resp.read()
            resp = await c.client.get(url("n3", f"/api/songs/{sid}/cover?token="))
            assert resp.status == 401
            await resp.read()
            # The header still works, and wins over the query.
            resp = await c.client.get(
                url("n3", f"/api/songs/{sid}/stream?token=junk"),
                headers={**alice.auth, **pos, "range": "bytes=0-9"},
            )
            assert resp.status == 206 and await resp.read() == song_file[:10]

    run_with_mock_clock(main)


def test_edit_songs_creator_or_admin(song_file: bytes) -> None:
    async def main() -> None:
        async with cluster() as c:
            alice, bob, carol = await users(c)
            song = await upload(bob, "n1", song_file)
            sid = song["id"]
            carol.pos = bob.pos

            # carol is neither creator nor admin: 403, and no replica changes.
            for method, body in [("PATCH", {"title": "Mine"}), ("DELETE", None)]:
                status, problem = await carol.call(method, "n3", f"/api/songs/{sid}", body)
                assert status == 403, problem
                assert problem["code"] == "forbidden"
            status, _ = await carol.call("PUT", "n3", f"/api/songs/{sid}/like")  # a later write
            assert status == 200
            for seen in await everywhere(c, carol.pos, catalog.get_song, sid):
                assert seen is not None and seen.title == "Quorum Blues"

            # bob (creator) edits some fields; the others stay.
            edit = {"title": "Quorum Blues (Live)", "track": None, "genres": ["Jazz", "Live"]}
            status, edited = await bob.call("PATCH", "n2", f"/api/songs/{sid}", edit)
            assert status == 200, edited
            assert edited["title"] == "Quorum Blues (Live)" and edited["track"] is None
            assert edited["genres"] == ["Jazz", "Live"] and edited["year"] == 2026
            assert edited["album_id"] == song["album_id"]
            for seen in await everywhere(c, bob.pos, catalog.get_song, sid):
                assert (seen.title, seen.track, seen.genres) == (
                    "Quorum Blues (Live)",
                    None,
                    ("Jazz", "Live"),
                )
            status, page = await bob.call("GET", "n3", "/api/songs?q=live")
            assert [s["id"] for s in page["items"]] == [sid]

            # alice (admin) may edit anyone's song.
            alice.pos = bob.pos
            status, edited = await alice.call("PATCH", "n3", f"/api/songs/{sid}", {"year": 1999})
            assert status == 200 and edited["year"] == 1999, edited
            status, edited = await alice.call(
                "PATCH", "n1", f"/api/songs/{sid}", {"album_id": None}
            )
            assert status == 200 and edited["album_id"] is None

            # Bad bodies name the problem.
            bad: list[tuple[Any, int, str]] = [
                ({"titel": "x"}, 422, "titel"),
                ({"id": "other"}, 422, "id"),
                ({"blob_sha256": "0" * 64}, 422, "blob_sha256"),
                ({"track": "3"}, 422, "track"),
                ({"year": True}, 422, "year"),
                ({"genres": "Jazz"}, 422, "genres"),
                ({"title": None}, 422, "title"),
                (["title"], 422, "object"),
                ({"title": " "}, 422, "title"),  # the log's own check
                ({"artist_id": "nope"}, 404, "artist"),
            ]
            for body, status, words in bad:
                code, problem = await alice.call("PATCH", "n2", f"/api/songs/{sid}", body)
                assert code == status, (body, problem)
                assert words in problem["detail"], (body, problem)
            resp = await c.client.request(
                "PATCH", url("n2", f"/api/songs/{sid}"), body=b"{not json", headers=alice.auth
            )
            assert resp.status == 400
            await resp.read()
            for method in ["PATCH", "DELETE"]:
                status, _ = await alice.call(method, "n1", "/api/songs/nope", {"title": "x"})
                assert status == 404, method
                status, _ = await Session(c, {}).call(method, "n1", f"/api/songs/{sid}", {})
                assert status == 401, method

    run_with_mock_clock(main)


def test_delete_song_album_artist_and_their_blobs(song_file: bytes) -> None:
    async def main() -> None:
        async with cluster() as c:
            alice, bob, carol = await users(c)
            song = await upload(bob, "n1", song_file)
            sid, album_id, artist_id = song["id"], song["album_id"], song["artist_id"]
            audio, cover = song["blob_sha256"], song["cover_sha256"]
            assert cover is not None  # the album's (the first song of a new album)
            assert await c.nodes["n2"].blobs.stat(audio) is not None
            carol.pos = bob.pos

            # Albums and artists: edits by their creator, 403 for others.
            path = f"/api/albums/{album_id}"
            status, problem = await carol.call("PATCH", "n2", path, {"title": "Stolen"})
            assert status == 403, problem
            status, album = await bob.call("PATCH", "n2", path, {"title": "Token Ring II"})
            assert status == 200, album
            assert album["title"] == "Token Ring II" and album["year"] == 2026
            assert [t["id"] for t in album["tracks"]] == [sid]
            assert album["cover_sha256"] == cover  # kept: not editable here
            status, problem = await bob.call("PATCH", "n2", path, {"cover_sha256": None})
            assert status == 422 and "cover_sha256" in problem["detail"]
            carol.pos = bob.pos
            status, seen = await carol.call("GET", "n3", f"/api/songs/{sid}")
            assert seen["album_title"] == "Token Ring II"
            apath = f"/api/artists/{artist_id}"
            status, problem = await carol.call("PATCH", "n3", apath, {"name": "Nope"})
            assert status == 403, problem
            status, artist = await bob.call("PATCH", "n3", apath, {"name": "The Quorum"})
            assert status == 200 and artist["name"] == "The Quorum", artist
            assert [a["id"] for a in artist["albums"]] == [album_id]
            status, problem = await bob.call("PATCH", "n3", apath, {"name": 5})
            assert status == 422 and "name" in problem["detail"]

            # Not while they have songs / albums.
            status, problem = await bob.call("DELETE", "n1", path)
            assert status == 409 and "songs" in problem["detail"], problem
            status, problem = await bob.call("DELETE", "n1", apath)
            assert status == 409, problem
            status, _ = await carol.call("DELETE", "n1", apath)
            assert status == 403

            # Deleting the song: gone everywhere, its audio blob too; the cover stays while
            # the album uses it.
            status, _ = await bob.call("DELETE", "n2", f"/api/songs/{sid}")
            assert status == 204
            for seen in await everywhere(c, bob.pos, catalog.get_song, sid):
                assert seen is None
            status, _ = await bob.call("GET", "n3", f"/api/songs/{sid}")
            assert status == 404
            await wait_until(
                lambda: all(n.blobs.local.get(audio) is None for n in c.nodes.values()),
                timeout=10.0,
                step=0.1,
            )
            assert await c.nodes["n3"].blobs.stat(audio) is None
            assert await c.nodes["n3"].blobs.stat(cover) is not None

            # Then the album (and with it the cover), then the artist.
            status, _ = await carol.call("DELETE", "n1", path)
            assert status == 403
            status, _ = await bob.call("DELETE", "n1", path)
            assert status == 204
            assert await c.nodes["n2"].blobs.stat(cover) is None
            status, _ = await bob.call("GET", "n2", path)
            assert status == 404
            alice.pos = bob.pos
            status, _ = await alice.call("DELETE", "n3", apath)  # admin
            assert status == 204
            for seen in await everywhere(c, alice.pos, catalog.get_artist, artist_id):
                assert seen is None
            for method, p in [("PATCH", apath), ("DELETE", apath), ("DELETE", path)]:
                status, _ = await alice.call(method, "n1", p, {"name": "x"})
                assert status == 404, (method, p)

    run_with_mock_clock(main)


def test_like_albums_and_artists(song_file: bytes) -> None:
    async def main() -> None:
        async with cluster() as c:
            _, bob, carol = await users(c)
            song = await upload(bob, "n1", song_file)
            album_id, artist_id = song["album_id"], song["artist_id"]
            carol.pos = bob.pos
            album_like, artist_like = (
                f"/api/albums/{album_id}/like",
                f"/api/artists/{artist_id}/like",
            )

            # Any user may like; the answer is the album / artist as GET shows it.
            for _ in range(2):  # liking twice is harmless
                status, album = await carol.call("PUT", "n2", album_like)
                assert status == 200, album
                assert album["id"] == album_id and [t["id"] for t in album["tracks"]] == [
                    song["id"]
                ]
            status, artist = await carol.call("PUT", "n3", artist_like)
            assert status == 200 and artist["id"] == artist_id, artist
            assert [a["id"] for a in artist["albums"]] == [album_id]

            # My likes, read your writes on another node, paged; bob has none.
            status, page = await carol.call("GET", "n1", "/api/me/likes/albums")
            assert status == 200, page
            assert [a["id"] for a in page["items"]] == [album_id]
            assert (page["total"], page["page"]) == (1, 1)
            assert page["items"][0]["song_count"] == 1
            status, page = await carol.call("GET", "n1", "/api/me/likes/artists")
            assert [a["id"] for a in page["items"]] == [artist_id] and page["total"] == 1
            status, page = await carol.call("GET", "n2", "/api/me/likes/albums?page=2&limit=1")
            assert status == 200 and page["items"] == [] and page["total"] == 1
            status, problem = await carol.call("GET", "n2", "/api/me/likes/artists?page=0")
            assert status == 422, problem
            bob.pos = carol.pos
            status, page = await bob.call("GET", "n3", "/api/me/likes/albums")
            assert page["items"] == [] and page["total"] == 0
            status, page = await carol.call("GET", "n1", "/api/me/likes")  # songs: untouched
            assert page["items"] == []

            # Unknown ids: 404; no token: 401.
            for method, path in [
                ("PUT", "/api/albums/nope/like"),
                ("DELETE", "/api/albums/nope/like"),
                ("PUT", f"/api/artists/{album_id}/like"),
                ("DELETE", "/api/artists/nope/like"),
            ]:
                status, problem = await carol.call(method, "n2", path)
                assert status == 404, (method, path, problem)
            anonymous = Session(c, {})
            for method, path in [
                ("PUT", album_like),
                ("DELETE", artist_like),
                ("GET", "/api/me/likes/albums"),
                ("GET", "/api/me/likes/artists"),
            ]:
                status, _ = await anonymous.call(method, "n2", path)
                assert status == 401, (method, path)

            # Unlike (twice is harmless).
            for _ in range(2):
                status, album = await carol.call("DELETE", "n3", album_like)
                assert status == 200 and album["id"] == album_id, album
            status, page = await carol.call("GET", "n1", "/api/me/likes/albums")
            assert page["items"] == [] and page["total"] == 0
            status, page = await carol.call("GET", "n1", "/api/me/likes/artists")
            assert page["total"] == 1  # the artist is still liked

            # Deleting the album and artist removes them from the like lists.
            status, _ = await carol.call("PUT", "n2", album_like)
            assert status == 200
            bob.pos = carol.pos
            for path in (f"/api/songs/{song['id']}", f"/api/albums/{album_id}"):
                status, problem = await bob.call("DELETE", "n1", path)
                assert status == 204, problem
            status, problem = await bob.call("DELETE", "n1", f"/api/artists/{artist_id}")
            assert status == 204, problem
            carol.pos = bob.pos
            for kind in ("albums", "artists"):
                status, page = await carol.call("GET", "n3", f"/api/me/likes/{kind}")
                assert page["items"] == [] and page["total"] == 0, kind

    run_with_mock_clock(main)


def test_deleting_a_song_succeeds_when_its_blob_cannot_be_deleted(song_file: bytes) -> None:
    async def main() -> None:
        async with cluster() as c:
            alice, _, _ = await users(c)
            song = await upload(alice, "n1", song_file)
            c.net.crash("n3")  # an owner of every blob (R = 3) that cannot record the delete
            status, problem = await alice.call("DELETE", "n1", f"/api/songs/{song['id']}")
            assert status == 204, problem
            status, _ = await alice.call("GET", "n2", f"/api/songs/{song['id']}")
            assert status == 404

    run_with_mock_clock(main)


def test_plays_and_me(song_file: bytes, tmp_path: Path) -> None:
    async def main() -> None:
        async with cluster() as c:
            alice, bob, _ = await users(c)
            first = await upload(alice, "n1", song_file)
            second = await upload(alice, "n1", make_wav())
            assert first["plays"] == 0
            bob.pos = alice.pos
            for session, node in [(alice, "n2"), (bob, "n3"), (bob, "n1")]:
                status, played = await session.call(
                    "POST", node, f"/api/songs/{second['id']}/plays"
                )
                assert status == 200, played
            assert played["id"] == second["id"] and played["plays"] == 3
            alice.pos = bob.pos
            status, one = await alice.call("GET", "n2", f"/api/songs/{second['id']}")
            assert one["plays"] == 3
            status, page = await alice.call("GET", "n3", "/api/songs?sort=plays")
            assert [(s["id"], s["plays"]) for s in page["items"]] == [
                (second["id"], 3),
                (first["id"], 0),
            ]
            status, page = await alice.call("GET", "n3", "/api/songs?sort=title")
            assert page["items"][0]["id"] == first["id"]  # "Quorum Blues" < "Untitled"
            status, _ = await alice.call("POST", "n3", "/api/songs/nope/plays")
            assert status == 404
            status, _ = await Session(c, {}).call("POST", "n3", f"/api/songs/{first['id']}/plays")
            assert status == 401

            status, me = await alice.call("GET", "n3", "/api/me")
            assert status == 200
            assert set(me) == {"user_id", "username", "role", "roles"}
            assert (me["username"], me["role"], me["roles"]) == (
                "alice",
                "admin",
                ["user", "admin"],
            )
            status, me_bob = await bob.call("GET", "n2", "/api/me")
            assert (me_bob["username"], me_bob["role"]) == ("bob", "user")
            assert me_bob["user_id"] != me["user_id"]
            status, _ = await Session(c, {}).call("GET", "n2", "/api/me")
            assert status == 401

    run_with_mock_clock(main)


def test_genres_with_song_counts(song_file: bytes) -> None:
    """``GET /api/genres``: each genre once (case ignored, as the filters do), with its song
    count, most songs first then by name; edits and deletes show on any node."""

    async def main() -> None:
        async with cluster() as c:
            alice, _, _ = await users(c)
            status, doc = await alice.call("GET", "n1", "/api/genres")
            assert (status, doc) == (200, {"items": []})
            jazz = await upload(alice, "n1", song_file)  # tagged Jazz
            first = await upload(alice, "n1", make_wav())  # untagged: no genres
            second = await upload(alice, "n1", make_wav(seconds=1.0))
            status, doc = await alice.call("GET", "n2", "/api/genres")
            assert doc == {"items": [{"genre": "Jazz", "songs": 1}]}

            for song, genres in [(first, ["Rock", "jazz"]), (second, ["Pop", "Ambient"])]:
                status, edited = await alice.call(
                    "PATCH", "n1", f"/api/songs/{song['id']}", {"genres": genres}
                )
                assert status == 200, edited
            status, doc = await alice.call("GET", "n3", "/api/genres")
            assert status == 200, doc
            rows = [(g["genre"].casefold(), g["songs"]) for g in doc["items"]]
            assert rows == [("jazz", 2), ("ambient", 1), ("pop", 1), ("rock", 1)]
            # Each name is one the songs carry, and filters by it find those songs.
            status, page = await alice.call(
                "GET", "n2", f"/api/songs?genre={doc['items'][0]['genre']}"
            )
            assert {s["id"] for s in page["items"]} == {jazz["id"], first["id"]}

            status, _ = await alice.call("DELETE", "n2", f"/api/songs/{jazz['id']}")
            assert status == 204
            status, doc = await alice.call("GET", "n1", "/api/genres")
            assert [(g["genre"], g["songs"]) for g in doc["items"]] == [
                ("Ambient", 1),
                ("jazz", 1),
                ("Pop", 1),
                ("Rock", 1),
            ]
            status, problem = await Session(c, {}).call("GET", "n1", "/api/genres")
            assert status == 401, problem

    run_with_mock_clock(main)
