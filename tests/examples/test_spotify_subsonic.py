"""The Subsonic / OpenSubsonic API, driven by Subsonic client libraries from PyPI (py-sonic's
``libsonic`` and py-opensonic's ``libopensonic``) and by hand-made requests, against one
node served over real TCP."""

from __future__ import annotations

import hashlib
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import attrs
import libsonic
import pytest
from dspot_spotify.api import LOG_POSITION_HEADER
from dspot_spotify.subsonic import XMLNS

from dspot.testing import run_with_mock_clock
from tests.examples.simcluster import cluster, url
from tests.examples.subsonic_node import (
    ADMIN,
    ALICE,
    BOB,
    COVER,
    Server,
    api_json,
    http,
    make_song,
    opensonic,
    register,
    running_node,
    upload,
    with_subsonic,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("subsonic")
    with running_node(data) as node:
        base = node.base
        admin = with_subsonic(base, register(base, *ADMIN))
        alice = with_subsonic(base, register(base, *ALICE))
        bob = register(base, *BOB)
        songs: dict[str, bytes] = {}
        ids: dict[str, str] = {}
        specs = [
            ("Quorum Blues", "Token Ring", 1, 2026, "Jazz"),
            ("Gossip Waltz", "Token Ring", 2, 2026, "Jazz"),
            ("Split Brain", None, 1, 2019, "Rock"),
        ]
        for title, album, track, year, genre in specs:
            cover = COVER if album else None
            audio = make_song(data / f"{title}.flac", title, album, track, year, genre, cover=cover)
            song = upload(base, alice.token, audio, f"{title}.flac")
            songs[song["id"]] = audio
            ids[title] = song["id"]
        yield Server(base, *node.address, admin, alice, bob, songs, ids, data)


# -- authentication ---------------------------------------------------------------------------


def test_ping_with_every_password_mode(server: Server) -> None:
    alice = server.alice
    # py-sonic's default: token auth (t = md5(password + s)) with the Subsonic password.
    assert server.sonic(alice).ping() is True
    # legacy p=enc:HEX, with the Subsonic password and with the web password; GET and POST.
    assert server.sonic(alice, legacy=True).ping() is True
    assert server.sonic(alice, legacy=True, web=True).ping() is True
    # py-opensonic with GET requests, without the .view suffix, both password modes.
    for legacy in (False, True):
        with opensonic(
            server,
            username="alice",
            password=alice.subsonic_password,
            legacy_auth=legacy,
            use_get=True,
            use_views=False,
        ) as conn:
            assert conn.ping() is True
    # Plain p= (not hex-encoded) works too.
    reply = http(server.rest("ping", u="alice", p=ALICE[1], f="json"))
    assert reply.subsonic["status"] == "ok"


def test_wrong_credentials_are_code_40(server: Server) -> None:
    wrong = attrs.evolve(server.alice, subsonic_password="not the password at all")
    with pytest.raises(libsonic.errors.CredentialError):
        server.sonic(wrong).ping()
    with pytest.raises(libsonic.errors.CredentialError):
        server.sonic(wrong, legacy=True).ping()
    reply = http(server.rest("ping", u="nobody", p="whatever", f="json"))
    assert reply.status == 200
    assert reply.subsonic["status"] == "failed"
    assert reply.subsonic["error"]["code"] == 40


def test_token_auth_takes_the_account_password_too(server: Server) -> None:
    # t/s with the account (web) password: the catalog keeps it sealed, so it can be checked.
    web = attrs.evolve(server.alice, subsonic_password=ALICE[1])
    assert server.sonic(web).ping() is True
    # A user who never asked for Subsonic credentials signs in with their account password.
    salt = "abcdef"
    token = hashlib.md5((BOB[1] + salt).encode()).hexdigest()
    reply = http(server.rest("ping", u="bob", t=token, s=salt, f="json"))
    assert reply.subsonic["status"] == "ok"
    token = hashlib.md5((BOB[1] + "x" + salt).encode()).hexdigest()
    reply = http(server.rest("ping", u="bob", t=token, s=salt, f="json"))
    assert reply.subsonic["error"]["code"] == 40
    # ...and with p= as before.
    assert server.sonic(attrs.evolve(server.bob), legacy=True, web=True).ping() is True


def test_api_key_with_py_opensonic(server: Server) -> None:
    with opensonic(server, api_key=server.alice.api_key) as conn:
        assert conn.ping() is True
        assert conn.token_info().username == "alice"
        artists = conn.get_artists()
        names = [a.name for index in artists.index or [] for a in index.artist or []]
        assert names == ["The Replicas"]
        album = conn.get_album(server_album_id(server))
        assert [s.title for s in album.song or []] == ["Quorum Blues", "Gossip Waltz"]
        extensions = {e.name for e in conn.get_open_subsonic_extensions()}
        assert {"apiKeyAuthentication", "formPost"} <= extensions
    bad = http(server.rest("ping", apiKey="not-a-key", f="json"))
    assert bad.subsonic["error"]["code"] == 44
    both = http(server.rest("ping", apiKey=server.alice.api_key, u="alice", f="json"))
    assert both.subsonic["error"]["code"] == 43
    mixed = http(server.rest("ping", u="alice", p="x", t="y", s="z", f="json"))
    assert mixed.subsonic["error"]["code"] == 43


def test_extensions_need_no_credentials(server: Server) -> None:
    reply = http(server.rest("getOpenSubsonicExtensions", f="json"))
    doc = reply.subsonic
    assert doc["status"] == "ok" and doc["openSubsonic"] is True
    assert {"name": "formPost", "versions": [1]} in doc["openSubsonicExtensions"]
    assert http(server.rest("ping", f="json")).subsonic["error"]["code"] == 10


def test_rotating_credentials(server: Server) -> None:
    carol = with_subsonic(server.base, register(server.base, "carol", "carol web password"))
    assert server.sonic(carol).ping() is True
    again = api_json(f"{server.base}/api/me/subsonic", token=carol.token)
    assert again["password"] == carol.subsonic_password  # shown, not regenerated
    new = api_json(f"{server.base}/api/me/subsonic/rotate", method="POST", token=carol.token)
    assert new["password"] != carol.subsonic_password and new["api_key"] != carol.api_key
    with pytest.raises(libsonic.errors.CredentialError):
        server.sonic(carol).ping()
    assert http(server.rest("ping", apiKey=carol.api_key, f="json")).subsonic["error"]["code"] == 44
    assert server.sonic(attrs.evolve(carol, subsonic_password=new["password"])).ping() is True
    assert http(f"{server.base}/api/me/subsonic").status == 401


def test_protocol_versions(server: Server) -> None:
    params = server.token_params(server.alice, f="json")
    assert http(server.rest("ping", **{**params, "v": "1.2.0"})).subsonic["status"] == "ok"
    assert http(server.rest("ping", **{**params, "v": "1.17.0"})).subsonic["error"]["code"] == 30
    assert http(server.rest("ping", **{**params, "v": "0.9.0"})).subsonic["error"]["code"] == 20


# -- browsing ---------------------------------------------------------------------------------


def server_album_id(server: Server) -> str:
    song = server.sonic(server.alice).getSong(server.ids["Quorum Blues"])["song"]
    album_id: str = song["albumId"]
    return album_id


def test_browse_artists_albums_songs(server: Server) -> None:
    conn = server.sonic(server.alice)
    assert conn.getLicense()["license"]["valid"] is True
    assert conn.getMusicFolders()["musicFolders"]["musicFolder"][0]["id"] == 1
    index = conn.getArtists()["artists"]["index"]
    assert [i["name"] for i in index] == ["R"]  # "The" is an ignored article
    [artist] = index[0]["artist"]
    assert artist["name"] == "The Replicas" and artist["albumCount"] == 1
    indexes = conn.getIndexes()["indexes"]
    assert indexes["index"][0]["artist"][0]["id"] == artist["id"]
    assert indexes["lastModified"] > 0
    detail = conn.getArtist(artist["id"])["artist"]
    [album] = detail["album"]
    assert album["name"] == "Token Ring" and album["songCount"] == 2
    assert album["year"] == 2026 and album["genre"] == "Jazz" and album["coverArt"] == album["id"]
    full = conn.getAlbum(album["id"])["album"]
    songs = full["song"]
    assert [s["title"] for s in songs] == ["Quorum Blues", "Gossip Waltz"]
    assert [s["track"] for s in songs] == [1, 2]
    song = conn.getSong(server.ids["Split Brain"])["song"]
    assert song["title"] == "Split Brain" and song["artistId"] == artist["id"]
    assert song["contentType"] == "audio/flac" and song["suffix"] == "flac"
    assert song["size"] == len(server.songs[song["id"]]) and song["duration"] >= 1
    assert song["genres"] == [{"name": "Rock"}] and song["isDir"] is False
    assert "albumId" not in song


def test_search_and_lists(server: Server) -> None:
    conn = server.sonic(server.alice)
    found = conn.search3("quorum")["searchResult3"]
    assert [s["title"] for s in found["song"]] == ["Quorum Blues"]
    everything = conn.search3("", songCount=2, songOffset=1)["searchResult3"]
    assert len(everything["song"]) == 2 and len(everything["artist"]) == 1
    titles = {s["title"] for s in conn.search3('""', songCount=10)["searchResult3"]["song"]}
    assert titles == {"Quorum Blues", "Gossip Waltz", "Split Brain"}
    for kind in ("newest", "alphabeticalByName", "alphabeticalByArtist", "frequent", "random"):
        albums = conn.getAlbumList2(kind)["albumList2"]["album"]
        assert [a["name"] for a in albums] == ["Token Ring"], kind
    assert conn.getAlbumList2("byYear", fromYear=2030, toYear=2020)["albumList2"]["album"]
    assert not conn.getAlbumList2("byYear", fromYear=1990, toYear=2000)["albumList2"].get("album")
    assert conn.getAlbumList2("byGenre", genre="jazz")["albumList2"]["album"]
    assert not conn.getAlbumList2("byGenre", genre="Polka")["albumList2"].get("album")
    random_songs = conn.getRandomSongs(size=10)["randomSongs"]["song"]
    assert sorted(s["id"] for s in random_songs) == sorted(server.ids.values())
    rock = conn.getRandomSongs(size=10, genre="Rock")["randomSongs"]["song"]
    assert [s["title"] for s in rock] == ["Split Brain"]
    old = conn.getRandomSongs(size=10, toYear=2020)["randomSongs"]["song"]
    assert [s["title"] for s in old] == ["Split Brain"]


# -- media ------------------------------------------------------------------------------------


def test_stream_download_and_cover(server: Server) -> None:
    conn = server.sonic(server.alice)
    song_id = server.ids["Gossip Waltz"]
    with conn.stream(song_id) as resp:
        assert resp.headers["content-type"] == "audio/flac"
        assert resp.read() == server.songs[song_id]
    with conn.download(song_id) as resp:
        assert resp.read() == server.songs[song_id]
        assert "attachment" in resp.headers["content-disposition"]
    with conn.getCoverArt(song_id) as resp:
        assert resp.headers["content-type"] == "image/png"
        assert resp.read() == COVER
    with conn.getCoverArt(server_album_id(server)) as resp:
        assert resp.read() == COVER
    # A Range request through raw HTTP, token auth in the query string, .view suffix.
    url = server.rest("stream.view", **server.token_params(server.alice, id=song_id))
    reply = http(url, headers={"range": "bytes=100-199"})
    assert reply.status == 206
    assert reply.headers["content-range"] == f"bytes 100-199/{len(server.songs[song_id])}"
    assert reply.body == server.songs[song_id][100:200]
    # No cover: code 70 (as JSON, since py-sonic asks for f=json).
    with pytest.raises(libsonic.errors.DataNotFoundError):
        conn.getCoverArt(server.ids["Split Brain"])


def test_star_and_scrobble(server: Server) -> None:
    conn = server.sonic(server.alice)
    a, b = server.ids["Quorum Blues"], server.ids["Split Brain"]
    conn.star([a, b])
    starred = conn.getStarred2()["starred2"]["song"]
    assert {s["id"] for s in starred} == {a, b}
    assert all(s["starred"].endswith("Z") for s in starred)
    assert conn.getSong(a)["song"]["starred"]
    # Starring a song does not star its album (getAlbumList2 "starred" lists starred albums).
    assert not conn.getAlbumList2("starred")["albumList2"].get("album")
    conn.unstar(b)
    assert [s["id"] for s in conn.getStarred2()["starred2"]["song"]] == [a]
    assert "starred" not in conn.getSong(b)["song"]
    # Other users have their own stars.
    assert not server.sonic(server.admin).getStarred2()["starred2"].get("song")

    before = conn.getSong(b)["song"]["playCount"]
    conn.scrobble(b)
    conn.scrobble(b, submission=False)  # "now playing": not counted
    assert conn.getSong(b)["song"]["playCount"] == before + 1
    recent = conn.getAlbumList2("recent")["albumList2"]
    assert not recent.get("album")  # the played song has no album
    with pytest.raises(libsonic.errors.DataNotFoundError):
        conn.scrobble("no-such-song")
    with pytest.raises(libsonic.errors.DataNotFoundError):
        conn.star("no-such-song")


def starred_ids(conn: Any) -> dict[str, set[str]]:
    """The ids in a py-sonic connection's getStarred2, per kind."""
    doc = conn.getStarred2()["starred2"]
    return {kind: {x["id"] for x in doc.get(kind, [])} for kind in ("artist", "album", "song")}


def test_star_albums_and_artists(server: Server) -> None:
    conn = server.sonic(server.alice)
    song_id = server.ids["Gossip Waltz"]
    song = conn.getSong(song_id)["song"]
    album_id, artist_id = song["albumId"], song["artistId"]
    before = starred_ids(conn)
    assert album_id not in before["album"] and artist_id not in before["artist"]
    # py-sonic: albumId and artistId.
    conn.star(albumIds=[album_id], artistIds=[artist_id])
    doc = conn.getStarred2()["starred2"]
    [album] = doc["album"]
    assert (album["id"], album["name"], album["songCount"]) == (album_id, "Token Ring", 2)
    [artist] = doc["artist"]
    assert (artist["id"], artist["name"], artist["albumCount"]) == (artist_id, "The Replicas", 1)
    assert album["starred"].endswith("Z") and artist["starred"].endswith("Z")
    assert song_id not in {s["id"] for s in doc.get("song", [])}  # the album, not its songs
    # Albums and artists elsewhere carry their star.
    assert conn.getAlbum(album_id)["album"]["starred"] == album["starred"]
    assert conn.getArtist(artist_id)["artist"]["starred"] == artist["starred"]
    assert conn.getArtist(artist_id)["artist"]["album"][0]["starred"] == album["starred"]
    [listed] = conn.getAlbumList2("starred")["albumList2"]["album"]
    assert listed["id"] == album_id and listed["starred"]
    index = conn.getArtists()["artists"]["index"]
    assert [a["starred"] for i in index for a in i["artist"]] == [artist["starred"]]
    found = conn.search3("Token")["searchResult3"]
    assert found["album"][0]["starred"] == album["starred"]
    # The REST API sees the same likes.
    token = server.alice.token
    likes = api_json(f"{server.base}/api/me/likes/albums", token=token)
    assert [a["id"] for a in likes["items"]] == [album_id]
    likes = api_json(f"{server.base}/api/me/likes/artists", token=token)
    assert [a["id"] for a in likes["items"]] == [artist_id]
    # Stars are per user: the admin has none, and stars with py-opensonic, by plain ``id``
    # (which names an album or an artist just as well as a song).
    admin = server.sonic(server.admin)
    assert not starred_ids(admin)["album"] and not starred_ids(admin)["artist"]
    assert "starred" not in admin.getAlbum(album_id)["album"]
    password = server.admin.subsonic_password
    with opensonic(server, username="admin", password=password) as osc:
        assert osc.star(sids=[album_id, artist_id]) is True
        starred = osc.get_starred2()
        assert [a.id for a in starred.album or []] == [album_id]
        assert [a.id for a in starred.artist or []] == [artist_id]
        assert all(a.starred for a in [*(starred.album or []), *(starred.artist or [])])
        assert osc.unstar(album_ids=[album_id], artist_ids=[artist_id]) is True
        starred = osc.get_starred2()
        assert not starred.album and not starred.artist
    # An unknown id anywhere in the call: error 70, and nothing of the call is starred.
    params = server.token_params(server.alice, f="json")
    split = server.ids["Split Brain"]
    for bad in (
        {"id": split, "albumId": "no-such-album"},
        {"id": split, "artistId": song_id},  # an artistId must name an artist
        {"id": [split, "no-such-id"]},
    ):
        assert http(server.rest("star", **params, **bad)).subsonic["error"]["code"] == 70
    assert split not in starred_ids(conn)["song"]
    # Unstarring removes them (twice is harmless); a mix of id, albumId, artistId in one call.
    conn.unstar(albumIds=[album_id], artistIds=[artist_id])
    conn.unstar(albumIds=[album_id], artistIds=[artist_id])
    after = starred_ids(conn)
    assert album_id not in after["album"] and artist_id not in after["artist"]
    assert "starred" not in conn.getAlbum(album_id)["album"]
    assert "starred" not in conn.getArtist(artist_id)["artist"]
    assert not conn.getAlbumList2("starred")["albumList2"].get("album")
    conn.star(sids=[song_id], albumIds=[album_id], artistIds=[artist_id])
    mixed = starred_ids(conn)
    assert song_id in mixed["song"] and mixed["album"] == {album_id}
    assert mixed["artist"] == {artist_id}
    conn.unstar(sids=[song_id, album_id, artist_id])
    assert starred_ids(conn) == before


def test_playlists(server: Server) -> None:
    conn = server.sonic(server.alice)
    a, b, c = (server.ids[t] for t in ("Quorum Blues", "Gossip Waltz", "Split Brain"))
    created = conn.createPlaylist(name="Road trip", songIds=[a, b])["playlist"]
    pid = created["id"]
    assert created["name"] == "Road trip" and created["owner"] == "alice"
    assert [e["id"] for e in created["entry"]] == [a, b] and created["songCount"] == 2
    conn.updatePlaylist(pid, name="Long road trip", songIdsToAdd=[c], songIndexesToRemove=[0])
    got = conn.getPlaylist(pid)["playlist"]
    assert got["name"] == "Long road trip"
    assert [e["id"] for e in got["entry"]] == [b, c]
    replaced = conn.createPlaylist(playlistId=pid, songIds=[c, a])["playlist"]
    assert [e["id"] for e in replaced["entry"]] == [c, a]
    mine = conn.getPlaylists()["playlists"]["playlist"]
    assert [p["id"] for p in mine] == [pid]
    # Someone else's playlist: readable, not editable (50); listing another user: admins only.
    other = server.sonic(server.admin)
    assert other.getPlaylist(pid)["playlist"]["songCount"] == 2
    with pytest.raises(libsonic.errors.AuthError):
        other.updatePlaylist(pid, name="mine now")
    assert [p["id"] for p in other.getPlaylists("alice")["playlists"]["playlist"]] == [pid]
    with pytest.raises(libsonic.errors.AuthError):
        conn.getPlaylists("admin")
    conn.deletePlaylist(pid)
    with pytest.raises(libsonic.errors.DataNotFoundError):
        conn.getPlaylist(pid)
    assert not conn.getPlaylists()["playlists"].get("playlist")


def test_get_user(server: Server) -> None:
    me = server.sonic(server.alice).getUser("alice")["user"]
    assert me["username"] == "alice" and me["adminRole"] is False and me["streamRole"] is True
    with pytest.raises(libsonic.errors.AuthError):
        server.sonic(server.alice).getUser("admin")
    admin = server.sonic(server.admin)
    assert admin.getUser("alice")["user"]["username"] == "alice"
    assert admin.getUser("admin")["user"]["adminRole"] is True
    with pytest.raises(libsonic.errors.DataNotFoundError):
        admin.getUser("nobody")


# -- errors and formats -----------------------------------------------------------------------


def test_error_codes(server: Server) -> None:
    params = server.token_params(server.alice, f="json")
    missing = http(server.rest("getSong", **params)).subsonic
    assert missing["status"] == "failed" and missing["error"]["code"] == 10
    assert "id" in missing["error"]["message"]
    unknown = http(server.rest("getAlbum", **params, id="nope")).subsonic
    assert unknown["error"]["code"] == 70
    with pytest.raises(libsonic.errors.DataNotFoundError):
        server.sonic(server.alice).getArtist("nope")
    todo = http(server.rest("getPodcasts.view", **params))
    assert todo.status == 200
    assert todo.subsonic["error"] == {"code": 0, "message": "not implemented: getPodcasts"}
    bad_type = http(server.rest("getAlbumList2", **params, type="sideways")).subsonic
    assert bad_type["error"]["code"] == 0
    stream_missing = http(server.rest("stream", **params, id="nope"))
    assert stream_missing.status == 200 and stream_missing.subsonic["error"]["code"] == 70


def test_xml_by_default_and_json_on_request(server: Server) -> None:
    params = server.token_params(server.alice)
    reply = http(server.rest("getAlbum.view", **params, id=server_album_id(server)))
    assert reply.headers["content-type"].startswith("text/xml")
    root = ET.fromstring(reply.body)
    ns = {"s": XMLNS}
    assert root.tag == f"{{{XMLNS}}}subsonic-response"
    assert root.attrib["status"] == "ok" and root.attrib["version"] == "1.16.1"
    assert root.attrib["openSubsonic"] == "true" and root.attrib["type"] == "dspot"
    album = root.find("s:album", ns)
    assert album is not None and album.attrib["name"] == "Token Ring"
    songs = album.findall("s:song", ns)
    assert [s.attrib["title"] for s in songs] == ["Quorum Blues", "Gossip Waltz"]
    assert songs[0].attrib["isDir"] == "false"
    assert [g.attrib["name"] for g in songs[0].findall("s:genres", ns)] == ["Jazz"]
    user = ET.fromstring(http(server.rest("getUser", **params, username="alice")).body)
    assert [f.text for f in user.findall("s:user/s:folder", ns)] == ["1"]
    failed = ET.fromstring(http(server.rest("getSong", **params, id="nope")).body)
    assert failed.attrib["status"] == "failed"
    error = failed.find("s:error", ns)
    assert error is not None and error.attrib["code"] == "70"

    doc = http(server.rest("getAlbum", **params, id=server_album_id(server), f="json")).json()
    body = doc["subsonic-response"]
    assert body["status"] == "ok" and body["openSubsonic"] is True
    assert body["serverVersion"] and [s["title"] for s in body["album"]["song"]] == [
        "Quorum Blues",
        "Gossip Waltz",
    ]
    jsonp = http(server.rest("ping", **params, f="jsonp", callback="cb"))
    assert jsonp.body.startswith(b"cb(") and jsonp.body.endswith(b");")


def test_form_post_and_suffixes(server: Server) -> None:
    form = urlencode(server.token_params(server.alice, f="json", query="gossip")).encode()
    headers = {"content-type": "application/x-www-form-urlencoded"}
    for name in ("search3", "search3.view"):
        reply = http(f"{server.base}/rest/{name}", method="POST", body=form, headers=headers)
        assert reply.status == 200
        songs = reply.subsonic["searchResult3"]["song"]
        assert [s["title"] for s in songs] == ["Gossip Waltz"]
    # Query and body merge; a repeated name keeps every value.
    a, c = server.ids["Quorum Blues"], server.ids["Split Brain"]
    body = urlencode([("id", a), ("id", c)]).encode()
    url = server.rest("star", **server.token_params(server.admin, f="json"))
    reply = http(url, method="POST", body=body, headers=headers)
    assert reply.subsonic["status"] == "ok"
    # Writes say their log position; a later read may send it back (read your writes).
    position = reply.headers["x-log-position"]
    assert re.fullmatch(r"\d+\.\d+", position)
    starred_url = server.rest("getStarred2", **server.token_params(server.admin, f="json"))
    after = http(starred_url, headers={"x-log-position": position}).subsonic
    assert {s["id"] for s in after["starred2"]["song"]} == {a, c}
    garbled = http(starred_url, headers={"x-log-position": "soon"}).subsonic
    assert garbled["error"]["code"] == 0 and "x-log-position" in garbled["error"]["message"]
    starred = server.sonic(server.admin).getStarred2()["starred2"]["song"]
    assert {s["id"] for s in starred} == {a, c}
    server.sonic(server.admin).unstar([a, c])
    # A POST body that is not a form is refused clearly.
    reply = http(
        f"{server.base}/rest/ping?f=json",
        method="POST",
        body=b'{"u": "alice"}',
        headers={"content-type": "application/json"},
    )
    assert reply.subsonic["error"]["code"] == 0
    # Other methods are not Subsonic calls.
    assert http(f"{server.base}/rest/ping", method="DELETE").status == 405


# -- replication ------------------------------------------------------------------------------


def test_credentials_and_stars_replicate(tmp_path: Path) -> None:
    """Three nodes on the simulated network: credentials made on one node check on another,
    and a star written through one node is read on a third (with ``X-Log-Position``)."""
    song = ("Quorum Blues", "Token Ring", 1, 2026, "Jazz")
    audio = make_song(tmp_path / "song.flac", *song, cover=COVER)

    async def main() -> None:
        async with cluster() as c:
            resp = await c.register("n1", "alice", "alice web password")
            token = (await resp.json(dict))["token"]
            auth = {"authorization": f"Bearer {token}"}
            resp = await c.client.post(url("n1", "/api/songs"), body=audio, headers=auth)
            assert resp.status == 201, await resp.text()
            song_id = (await resp.json(dict))["id"]
            resp = await c.client.get(url("n2", "/api/me/subsonic"), headers=auth)
            assert resp.status == 200, await resp.text()
            creds = await resp.json(dict)
            made_at = resp.headers.get(LOG_POSITION_HEADER)
            assert made_at is not None
            salt = "5a17"
            params = {
                "u": "alice",
                "t": hashlib.md5((creds["password"] + salt).encode()).hexdigest(),
                "s": salt,
                "f": "json",
            }

            async def call(node: str, name: str, position: str, **extra: str) -> Any:
                target = url(node, f"/rest/{name}?{urlencode({**params, **extra})}")
                resp = await c.client.get(target, headers={LOG_POSITION_HEADER: position})
                assert resp.status == 200
                return (await resp.json(dict))["subsonic-response"], resp.headers

            doc, _ = await call("n3", "ping", made_at)
            assert doc["status"] == "ok", doc
            doc, headers = await call("n3", "star", made_at, id=song_id)
            assert doc["status"] == "ok", doc
            starred_at = headers.get(LOG_POSITION_HEADER)
            assert starred_at is not None
            doc, _ = await call("n1", "getStarred2", starred_at)
            assert [s["id"] for s in doc["starred2"]["song"]] == [song_id]
            # The API key works on every node too.
            resp = await c.client.get(
                url("n1", f"/rest/tokenInfo?apiKey={creds['api_key']}&f=json"),
                headers={LOG_POSITION_HEADER: made_at},
            )
            assert (await resp.json(dict))["subsonic-response"]["tokenInfo"]["username"] == "alice"

    run_with_mock_clock(main)


def test_the_catalog_holds_subsonic_credentials_only_sealed(server: Server) -> None:
    """The log and the replica keep the Subsonic password sealed with a key derived from the
    cluster secret, and only a keyed hash of the API key: a copy of the node's disk
    without the secret reveals neither."""
    dave = with_subsonic(server.base, register(server.base, "dave", "dave web password"))
    assert dave.subsonic_password and dave.api_key
    disk = server.data / "disk"
    stored = b"".join(p.read_bytes() for p in sorted(disk.rglob("*")) if p.is_file())
    assert dave.subsonic_password.encode() not in stored
    assert dave.api_key.encode() not in stored
    # ... yet both work against the node (it opens the sealed password with its key).
    assert server.sonic(dave).ping() is True
    assert http(server.rest("ping", apiKey=dave.api_key, f="json")).subsonic["status"] == "ok"


def test_credential_box_binds_owner_and_key() -> None:
    from dspot_spotify.auth import CredentialBox, SealedValueError, derive_box_key

    box = CredentialBox(derive_box_key(b"cluster secret number one"))
    other = CredentialBox(derive_box_key(b"cluster secret number two"))
    sealed = box.seal("s3cret-subsonic-pw", owner="u1", nonce=b"\x01" * 12)
    assert "s3cret" not in sealed
    tampered = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    assert box.open(sealed, owner="u1") == "s3cret-subsonic-pw"
    for attempt in (
        lambda: box.open(sealed, owner="u2"),  # moved to another user
        lambda: other.open(sealed, owner="u1"),  # another cluster's key
        lambda: box.open(tampered, owner="u1"),  # one character changed
        lambda: box.open("not base64 !", owner="u1"),
    ):
        with pytest.raises(SealedValueError):
            attempt()
    assert box.tag("key") == box.tag("key") != other.tag("key")
