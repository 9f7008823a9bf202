"""Every Subsonic endpoint the documentation lists as supported, driven by the PyPI client
libraries py-opensonic and knuckles with **token authentication and the account password**
(the password the user signed up with: ``t = md5(password + s)``, what both libraries send by
default), in JSON; and the same calls in XML, which must say what the JSON says.

One node over real TCP (``NodeThread`` of ``test_spotify_subsonic``), a small library:
"The Replicas" (album "Token Ring": two Jazz tracks, the first with LRC lyrics and no art,
the second with a cover; a Rock single) and "Other Band" (album "Consensus", Jazz).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
import time
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import attrs
import knuckles
import libopensonic
import pytest
from dspot_spotify.demo import make_cover_png
from dspot_spotify.subsonic import ENDPOINTS, XMLNS

from tests.examples.subsonic_node import (
    User,
    api_json,
    http,
    make_song,
    opensonic,
    register,
    running_node,
    upload,
)
from tests.helpers.prerequisites import REPO

ADMIN = ("admin", "admin account password")
CAROL = ("carol", "carol account password")
COVER = make_cover_png(random.Random(11), 24)
LYRICS = "[00:01.00]Two nodes agree\n[00:02.50]the third one sleeps"
DOCS = REPO / "docs" / "service" / "subsonic.md"


@attrs.frozen
class Library:
    base: str
    host: str
    port: int
    admin: User
    carol: User
    ids: dict[str, str]  # title -> song id
    albums: dict[str, str]  # title -> album id
    artists: dict[str, str]  # name -> artist id

    def token_params(self, user: User = ..., **extra: Any) -> dict[str, Any]:  # type: ignore[assignment]
        """Token auth with the account password, as the libraries send it."""
        who = self.carol if user is ... else user
        salt = f"{zlib.crc32(repr(extra).encode()):08x}"
        token = hashlib.md5((who.web_password + salt).encode()).hexdigest()
        return {"u": who.username, "t": token, "s": salt, "v": "1.16.1", "c": "xml-check", **extra}

    def rest(self, endpoint: str, /, **params: Any) -> str:
        return f"{self.base}/rest/{endpoint}?{urlencode(params, doseq=True)}"

    def knuckles(self, user: User | None = None) -> knuckles.Subsonic:
        who = user or self.carol
        return knuckles.Subsonic(
            f"{self.host}:{self.port}",
            who.username,
            who.web_password,
            "knuckles-test",
            use_https=False,
        )


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Library]:
    data = tmp_path_factory.mktemp("clients")
    with running_node(data) as node:
        base = node.base
        admin = register(base, *ADMIN)
        carol = register(base, *CAROL)
        ids: dict[str, str] = {}
        specs = [
            ("Quorum Blues", "The Replicas", "Token Ring", 1, "Jazz", False, LYRICS),
            ("Gossip Waltz", "The Replicas", "Token Ring", 2, "Jazz", True, None),
            ("Split Brain", "The Replicas", None, 1, "Rock", False, None),
            ("Paxos Swing", "Other Band", "Consensus", 1, "Jazz", True, None),
        ]
        for title, artist, album, track, genre, cover, lyrics in specs:
            audio = make_song(
                data / f"{title}.flac",
                title,
                album,
                track,
                2026,
                genre,
                artist=artist,
                cover=COVER if cover else None,
                lyrics=lyrics,
            )
            ids[title] = upload(base, carol.token, audio, "x.flac")["id"]
        songs = {t: api_json(f"{base}/api/songs/{i}", token=carol.token) for t, i in ids.items()}
        albums = {s["album_title"]: s["album_id"] for s in songs.values() if s["album_id"]}
        artists = {s["artist_name"]: s["artist_id"] for s in songs.values()}
        yield Library(base, *node.address, admin, carol, ids, albums, artists)


def body(conn: Any, response: Any) -> bytes:
    """The body of an aiohttp response py-opensonic hands back (read on its own loop)."""
    data: bytes = asyncio.run_coroutine_threadsafe(response.read(), conn._loop).result()
    response.release()
    return data


def osc(library: Library, user: User | None = None) -> Any:
    """py-opensonic, token auth (its default) with the account password."""
    who = user or library.carol
    return opensonic(library, username=who.username, password=who.web_password, legacy_auth=False)


# -- signing in -------------------------------------------------------------------------------


def test_both_libraries_sign_in_with_the_account_password(library: Library) -> None:
    with osc(library) as conn:
        assert conn.ping() is True
        assert conn.get_license()["license"]["valid"] is True  # it returns the whole body
        assert conn.token_info().username == "carol"
        assert {e.name for e in conn.get_open_subsonic_extensions()} >= {
            "apiKeyAuthentication",
            "formPost",
            "songLyrics",
        }
    kn = library.knuckles()
    assert kn.system.ping().status == "ok"
    assert kn.system.get_license().valid is True
    wrong = attrs.evolve(library.carol, web_password="not carol's password")
    with osc(library, wrong) as conn, pytest.raises(libopensonic.errors.CredentialError):
        conn.ping()
    with pytest.raises(knuckles.exceptions.ErrorCode40):
        library.knuckles(wrong).system.ping()


# -- browsing ---------------------------------------------------------------------------------


def test_browsing(library: Library) -> None:
    token_ring, replicas = library.albums["Token Ring"], library.artists["The Replicas"]
    with osc(library) as conn:
        index = conn.get_indexes()
        assert [a.name for i in index.index or [] for a in i.artist or []] == [
            "Other Band",
            "The Replicas",
        ]
        artists = conn.get_artists()
        assert [a.name for i in artists.index or [] for a in i.artist or []] == [
            "Other Band",
            "The Replicas",
        ]
        artist = conn.get_artist(replicas)
        assert [a.name for a in artist.album or []] == ["Token Ring"]
        album = conn.get_album(token_ring)
        assert [s.title for s in album.song or []] == ["Quorum Blues", "Gossip Waltz"]
        assert album.cover_art == token_ring  # from its second track
        assert conn.get_song(library.ids["Split Brain"]).genre == "Rock"
        # The folder form: artist directory (albums as directories, then singles), album
        # directory (its tracks).
        top = conn.get_music_directory(replicas)
        assert [(c.title, c.is_dir) for c in top.child or []] == [
            ("Token Ring", True),
            ("Split Brain", False),
        ]
        inner = conn.get_music_directory(token_ring)
        assert inner.parent == replicas
        assert [c.title for c in inner.child or []] == ["Quorum Blues", "Gossip Waltz"]
        genres = {g.value: (g.song_count, g.album_count) for g in conn.get_genres()}
        assert genres == {"Jazz": (3, 2), "Rock": (1, 0)}
        # Information from outside sources there is none of: empty, which is valid; similar
        # artists are those of the same genres.
        info = conn.get_artist_info2(replicas)
        assert [a.name for a in info.similar_artist or []] == ["Other Band"]
        assert conn.get_artist_info(replicas) is not None
        assert conn.get_album_info2(token_ring) is not None
        assert conn.get_album_info(token_ring) is not None
        with pytest.raises(libopensonic.errors.DataNotFoundError):
            conn.get_album_info2("no-such-album")
        top_songs = conn.get_top_songs("the replicas", count=2)
        assert len(top_songs) == 2 and {s.artist for s in top_songs} == {"The Replicas"}
        assert conn.get_top_songs("Nobody We Know") == []
        similar = {s.title for s in conn.get_similar_songs2(replicas, count=10)}
        assert similar == {"Quorum Blues", "Gossip Waltz", "Split Brain", "Paxos Swing"}
        by_song = {s.title for s in conn.get_similar_songs(library.ids["Split Brain"], count=10)}
        assert by_song == {"Quorum Blues", "Gossip Waltz"}  # same artist; no other Rock
        with pytest.raises(libopensonic.errors.DataNotFoundError):
            conn.get_similar_songs2(library.ids["Split Brain"])  # an artist id only
    kn = library.knuckles()
    # (py-opensonic 10.4.1 reads `musicFolders` as a list; the specification, and this server,
    # wrap the list in `musicFolder`.)
    assert [f.id for f in kn.browsing.get_music_folders()] == [1]
    assert [g.value for g in kn.browsing.get_genres()] == ["Jazz", "Rock"]
    assert kn.browsing.get_album(token_ring).name == "Token Ring"
    assert [s.title for s in kn.browsing.get_top_songs("The Replicas", 1)]
    assert {s.title for s in kn.browsing.get_similar_songs(replicas, 10)} >= {"Paxos Swing"}
    assert [a.name for a in kn.browsing.get_artist_info(replicas).similar_artists or []] == [
        "Other Band"
    ]
    assert kn.browsing.get_album_info(token_ring) is not None
    assert [c.title for c in kn.browsing.get_music_directory(token_ring).songs] == [
        "Quorum Blues",
        "Gossip Waltz",
    ]


# -- lists and search -------------------------------------------------------------------------


def test_lists_and_search(library: Library) -> None:
    a, b, split, paxos = (
        library.ids[t] for t in ("Quorum Blues", "Gossip Waltz", "Split Brain", "Paxos Swing")
    )
    token_ring, consensus = library.albums["Token Ring"], library.albums["Consensus"]
    with osc(library) as conn:
        for kind in ("newest", "alphabeticalByName", "alphabeticalByArtist", "random"):
            albums = conn.get_album_list(kind, size=10)
            assert {x.id for x in albums} == {token_ring, consensus}, kind
            assert {x.id for x in conn.get_album_list2(kind, size=10)} == {token_ring, consensus}
        by_name = conn.get_album_list("alphabeticalByName")
        assert [x.name for x in by_name] == ["Consensus", "Token Ring"]
        assert [x.id for x in conn.get_album_list("byGenre", genre="Jazz")] == [
            consensus,
            token_ring,
        ]
        assert conn.get_album_list("byYear", from_year=2020, to_year=2030)
        assert {s.id for s in conn.get_random_songs(size=10)} == {a, b, split, paxos}
        assert [s.id for s in conn.get_songs_by_genre("Rock")] == [split]
        assert {s.id for s in conn.get_songs_by_genre("jazz", count=10)} == {a, b, paxos}
        assert [s.id for s in conn.get_songs_by_genre("jazz", count=1, offset=2)]
        assert [s.title for s in conn.search3("paxos").song or []] == ["Paxos Swing"]
        found = conn.search2("token")
        assert [x.id for x in found.album or []] == [token_ring] and found.album[0].is_dir
        assert [x.name for x in conn.search2("other").artist or []] == ["Other Band"]
        # Starred, in both forms; "now playing" after a scrobble that is not a submission.
        assert conn.star(
            sids=[a], album_ids=[consensus], artist_ids=[library.artists["Other Band"]]
        )
        starred = conn.get_starred()
        assert [x.id for x in starred.song or []] == [a]
        assert [(x.id, x.is_dir) for x in starred.album or []] == [(consensus, True)]
        assert [x.name for x in starred.artist or []] == ["Other Band"]
        starred2 = conn.get_starred2()
        assert [x.id for x in starred2.album or []] == [consensus]
        assert conn.get_album_list("starred")[0].id == consensus
        assert conn.unstar(
            sids=[a], album_ids=[consensus], artist_ids=[library.artists["Other Band"]]
        )
        assert conn.scrobble(b, submission=False)
        playing = conn.get_now_playing()
        assert [(p.id, p.username, p.minutes_ago) for p in playing] == [(b, "carol", 0)]
        assert playing[0].player_name == "dspot-test"
    kn = library.knuckles()
    assert [x.name for x in kn.lists.get_album_list_alphabetical_by_name_non_id3()] == [
        "Consensus",
        "Token Ring",
    ]
    # The folder form lists albums as directories.
    params = library.token_params(f="json", type="alphabeticalByName")
    listed = http(library.rest("getAlbumList", **params)).subsonic["albumList"]["album"]
    assert [(x["title"], x["isDir"], x["parent"]) for x in listed] == [
        ("Consensus", True, library.artists["Other Band"]),
        ("Token Ring", True, library.artists["The Replicas"]),
    ]
    assert [x.title for x in kn.lists.get_songs_by_genre("Rock")] == ["Split Brain"]
    assert [e.song.id for e in kn.lists.get_now_playing()] == [b]
    assert [x.name for x in kn.searching.search_non_id3("token").albums or []] == ["Token Ring"]
    assert not kn.lists.get_starred_non_id3().songs


# -- media ------------------------------------------------------------------------------------


def test_cover_art_of_an_album_comes_from_any_track(library: Library) -> None:
    """ "Token Ring"'s first track had no art when it was uploaded; its second did: the album
    and its first track both show that art, through both APIs."""
    token_ring, first = library.albums["Token Ring"], library.ids["Quorum Blues"]
    with osc(library) as conn:
        assert conn.get_album(token_ring).cover_art == token_ring
        assert conn.get_song(first).cover_art == first
        for art in (token_ring, first):
            assert body(conn, conn.get_cover_art(art)) == COVER
    album = api_json(f"{library.base}/api/albums/{token_ring}", token=library.carol.token)
    assert album["cover_sha256"] == hashlib.sha256(COVER).hexdigest()
    cover = http(
        f"{library.base}/api/songs/{first}/cover",
        headers={"authorization": f"Bearer {library.carol.token}"},
    )
    assert cover.status == 200 and cover.body == COVER
    # A song without any art (no album) has none.
    with osc(library) as conn, pytest.raises(libopensonic.errors.DataNotFoundError):
        conn.get_cover_art(library.ids["Split Brain"])


def test_stream_download_and_lyrics(library: Library, caplog: pytest.LogCaptureFixture) -> None:
    song = library.ids["Quorum Blues"]
    with osc(library) as conn:
        streamed = body(conn, conn.stream(song))
        assert body(conn, conn.download(song)) == streamed and len(streamed) > 1000
        lyrics = conn.get_lyrics("the replicas", "QUORUM BLUES")
        assert (lyrics.artist, lyrics.title, lyrics.value) == (
            "The Replicas",
            "Quorum Blues",
            LYRICS,
        )
        [structured] = conn.get_lyrics_by_song_id(song)
        assert structured.synced is True
        assert [(line.start, line.value) for line in structured.line or []] == [
            (1000, "Two nodes agree"),
            (2500, "the third one sleeps"),
        ]
        assert conn.get_lyrics_by_song_id(library.ids["Split Brain"]) == []
        assert conn.get_lyrics("The Replicas", "Split Brain").value == ""
    kn = library.knuckles()
    assert kn.media_retrieval.get_lyrics("The Replicas", "Quorum Blues").lyrics == LYRICS
    with kn.api.raw_request("stream", {"id": song}) as resp:  # knuckles' own helper saves files
        assert resp.content == streamed
    # An unknown song: the specification's error document, with HTTP 200.
    missing = http(library.rest("stream", **library.token_params(id="nope", f="json")))
    assert missing.status == 200 and missing.subsonic["error"]["code"] == 70
    # ...which a player shows as silence: the node says it in its log too.
    assert "subsonic.stream_unknown_song song='nope'" in caplog.text


# -- annotation, bookmarks, the play queue ----------------------------------------------------


def test_ratings(library: Library) -> None:
    split, token_ring = library.ids["Split Brain"], library.albums["Token Ring"]
    with osc(library) as conn:
        assert conn.set_rating(split, 4)
        assert conn.set_rating(token_ring, 5)
        assert conn.get_song(split).user_rating == 4
        assert conn.get_album(token_ring).user_rating == 5
        assert conn.get_album_list("alphabeticalByName")[1].user_rating == 5
        with pytest.raises(libopensonic.errors.DataNotFoundError):
            conn.set_rating("no-such-thing", 3)
        with pytest.raises(libopensonic.errors.SonicError):
            conn.set_rating(split, 6)
        assert conn.set_rating(split, 0)  # 0 removes it
        assert conn.get_song(split).user_rating is None
    with osc(library, library.admin) as admin:  # ratings are per user
        assert admin.get_album(token_ring).user_rating is None
    kn = library.knuckles()
    kn.media_annotation.set_rating(split, 2)
    assert kn.browsing.get_song(split).user_rating == 2
    kn.media_annotation.remove_rating(split)
    assert kn.browsing.get_song(split).user_rating is None


def test_bookmarks(library: Library) -> None:
    split, paxos = library.ids["Split Brain"], library.ids["Paxos Swing"]
    with osc(library) as conn:
        assert conn.create_bookmark(split, 4200, "half way")
        assert conn.create_bookmark(split, 5000)  # one per song: it moves
        assert conn.create_bookmark(paxos, 10)
        marks = {m.entry.id: m for m in conn.get_bookmarks()}
        assert set(marks) == {split, paxos}
        assert (marks[split].position, marks[split].username) == (5000, "carol")
        assert conn.delete_bookmark(split)
        assert [m.entry.id for m in conn.get_bookmarks()] == [paxos]
        with pytest.raises(libopensonic.errors.DataNotFoundError):
            conn.create_bookmark("no-such-song", 1)
    with osc(library, library.admin) as admin:
        assert admin.get_bookmarks() == []
    kn = library.knuckles()
    assert [m.song.id for m in kn.bookmarks.get_bookmarks()] == [paxos]
    kn.bookmarks.delete_bookmark(paxos)
    assert kn.bookmarks.get_bookmarks() == []


def test_the_play_queue_follows_the_user_to_another_client(library: Library) -> None:
    a, b, split = (library.ids[t] for t in ("Quorum Blues", "Gossip Waltz", "Split Brain"))
    with osc(library) as phone:
        assert phone.save_play_queue([a, b, split], current=b, position=61_500)
    kn = library.knuckles()  # another app, signed in as the same user
    queue = kn.bookmarks.get_play_queue()
    assert [s.id for s in queue.songs] == [a, b, split]
    assert queue.current is not None and queue.current.id == b
    assert queue.position == 61_500 and queue.changed_by == "dspot-test"
    kn.bookmarks.save_play_queue([split, a], split, 1_000)
    with osc(library) as phone:
        back = phone.get_play_queue()
        assert [s.id for s in back.entry or []] == [split, a]
        assert (back.current, back.position, back.changed_by) == (split, 1000, "knuckles-test")
        assert back.changed.endswith("Z")
    with osc(library, library.admin) as admin:  # each user has their own
        assert not admin.get_play_queue().entry
    # A queue naming a song deleted since is saved without it; no ids clears it.
    params = library.token_params(f="json")
    reply = http(library.rest("savePlayQueue", **params, id=[a, "gone-song"], current=a))
    assert reply.subsonic["status"] == "ok"
    assert http(library.rest("getPlayQueue", **params)).subsonic["playQueue"]["entry"][0]["id"] == a
    bad = http(library.rest("savePlayQueue", **params, id=[a], current=b)).subsonic
    assert bad["error"]["code"] == 0
    assert http(library.rest("savePlayQueue", **params)).subsonic["status"] == "ok"
    assert "entry" not in http(library.rest("getPlayQueue", **params)).subsonic["playQueue"]


# -- playlists, users, scanning ---------------------------------------------------------------


def test_playlists(library: Library) -> None:
    a, b, split = (library.ids[t] for t in ("Quorum Blues", "Gossip Waltz", "Split Brain"))
    with osc(library) as conn:
        assert conn.create_playlist(name="Night drive", song_ids=[a, b])
        [created] = conn.get_playlists()
        assert [e.id for e in conn.get_playlist(created.id).entry or []] == [a, b]
        assert conn.update_playlist(created.id, name="Long night drive", song_ids_to_add=[split])
        assert [p.name for p in conn.get_playlists()] == ["Long night drive"]
        assert [e.id for e in conn.get_playlist(created.id).entry or []] == [a, b, split]
        assert conn.delete_playlist(created.id)
    kn = library.knuckles()
    made = kn.playlists.create_playlist("Morning", song_ids=[split])
    assert [s.id for s in kn.playlists.get_playlist(made.id).songs or []] == [split]
    kn.playlists.delete_playlist(made.id)
    assert kn.playlists.get_playlists() == []


def test_users_and_scanning(library: Library) -> None:
    with osc(library) as conn:
        me = conn.get_user("carol")
        assert (me.username, me.admin_role, me.stream_role, me.folder) == (
            "carol",
            False,
            True,
            [1],
        )
        with pytest.raises(libopensonic.errors.AuthError):
            conn.get_users()
        assert (conn.get_scan_status().scanning, conn.get_scan_status().count) == (False, 4)
        assert conn.start_scan().count == 4
    with osc(library, library.admin) as admin:
        assert [u.username for u in admin.get_users()] == ["admin", "carol"]
        assert admin.get_user("admin").admin_role is True
    # The fields clients read, present in the answer. (knuckles 1.2.0's get_user reads
    # `password`, `ldapAuthenticated` and `musicFolderId`, which the specification's User
    # does not have and no server sends: it cannot read any server's answer.)
    user = http(library.rest("getUser", **library.token_params(f="json", username="carol")))
    fields = user.subsonic["user"]
    for name in (
        "email",
        "scrobblingEnabled",
        "maxBitRate",
        "adminRole",
        "settingsRole",
        "downloadRole",
        "uploadRole",
        "streamRole",
        "playlistRole",
        "coverArtRole",
        "commentRole",
        "podcastRole",
        "jukeboxRole",
        "shareRole",
        "videoConversionRole",
        "folder",
    ):
        assert name in fields, name
    kn = library.knuckles()
    assert kn.media_library_scanning.get_scan_status().count == 4
    assert kn.media_library_scanning.start_scan().scanning is False


# -- XML says what JSON says, for every supported endpoint ------------------------------------


def documented() -> dict[str, bool]:
    """Every endpoint in the documentation's table, and whether it says it is supported."""
    out: dict[str, bool] = {}
    text = DOCS.read_text(encoding="utf-8")
    table = text.split("## Endpoints", 1)[1].split("\n## ", 1)[0]
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[1] in ("yes", "no"):
            for name in re.findall(r"`([A-Za-z0-9]+)`", cells[0]):
                assert name not in out, f"{name} is listed twice"
                out[name] = cells[1] == "yes"
    return out


def test_the_documentation_lists_every_endpoint_served_and_more() -> None:
    table = documented()
    assert {n for n, yes in table.items() if yes} == set(ENDPOINTS)
    # Every endpoint a client library knows is in the table, supported or not.
    known = set(re.findall(r"method(?:Name)? = '([A-Za-z0-9]+)'", LIBOPENSONIC.read_text()))
    assert known - set(table) == set()


LIBOPENSONIC = Path(libopensonic.__file__).parent / "_async" / "connection.py"


def xml_form(element: ET.Element) -> dict[str, Any]:
    """An XML element as nested dicts: attributes, text as ``value``, children as lists."""
    out: dict[str, Any] = dict(element.attrib)
    if element.text is not None and element.text.strip():
        out["value"] = element.text
    for child in element:
        out.setdefault(child.tag.removeprefix(f"{{{XMLNS}}}"), []).append(xml_form(child))
    return out


def json_form(value: Any) -> Any:
    """A JSON answer in :func:`xml_form`'s terms: scalars as their XML text, every object a
    one-element list, lists of scalars as elements with a ``value``."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if isinstance(item, dict):
                out[key] = [json_form(item)]
            elif isinstance(item, list):
                if item:
                    out[key] = [
                        json_form(i) if isinstance(i, dict) else {"value": json_form(i)}
                        for i in item
                    ]
            elif key == "value" and item == "":
                continue  # empty text: no text node in XML
            else:
                out[key] = json_form(item)
        return out
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def unordered(value: Any) -> Any:
    """Lists sorted, for answers whose order is random (``random``, similar songs)."""
    if isinstance(value, dict):
        return {k: unordered(v) for k, v in value.items()}
    if isinstance(value, list):
        return sorted((unordered(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    return value


def shape(value: Any) -> Any:
    """Only the names, for answers that differ call by call (a new playlist's id)."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return "*"


def both_forms(library: Library, endpoint: str, /, **params: Any) -> tuple[Any, Any]:
    """The answer of ``endpoint`` as XML and as JSON, each in :func:`xml_form`'s terms."""
    xml_reply = http(library.rest(endpoint, **library.token_params(**params)))
    assert xml_reply.headers["content-type"].startswith("text/xml"), endpoint
    root = ET.fromstring(xml_reply.body)
    assert root.tag == f"{{{XMLNS}}}subsonic-response"
    json_reply = http(library.rest(endpoint, **library.token_params(f="json", **params)))
    assert json_reply.headers["content-type"].startswith("application/json"), endpoint
    doc = json_reply.json()["subsonic-response"]
    assert root.attrib["status"] == doc["status"] == "ok", (endpoint, doc)
    return xml_form(root), json_form(doc)


def test_xml_and_json_say_the_same(library: Library) -> None:
    a, b, split = (library.ids[t] for t in ("Quorum Blues", "Gossip Waltz", "Split Brain"))
    token_ring, replicas = library.albums["Token Ring"], library.artists["The Replicas"]
    reads: list[tuple[str, dict[str, Any]]] = [
        ("ping", {}),
        ("getLicense", {}),
        ("getOpenSubsonicExtensions", {}),
        ("tokenInfo", {}),
        ("getMusicFolders", {}),
        ("getIndexes", {}),
        ("getMusicDirectory", {"id": replicas}),
        ("getMusicDirectory", {"id": token_ring}),
        ("getGenres", {}),
        ("getArtists", {}),
        ("getArtist", {"id": replicas}),
        ("getAlbum", {"id": token_ring}),
        ("getSong", {"id": a}),
        ("getArtistInfo", {"id": replicas}),
        ("getArtistInfo2", {"id": replicas}),
        ("getAlbumInfo", {"id": token_ring}),
        ("getAlbumInfo2", {"id": token_ring}),
        ("getTopSongs", {"artist": "The Replicas"}),
        ("getAlbumList", {"type": "newest"}),
        ("getAlbumList2", {"type": "byGenre", "genre": "Jazz"}),
        ("getSongsByGenre", {"genre": "Jazz"}),
        ("getNowPlaying", {}),
        ("getStarred", {}),
        ("getStarred2", {}),
        ("search2", {"query": "token"}),
        ("search3", {"query": ""}),
        ("getPlaylists", {}),
        ("getLyrics", {"artist": "The Replicas", "title": "Quorum Blues"}),
        ("getLyrics", {"artist": "Nobody", "title": "Nothing"}),
        ("getLyricsBySongId", {"id": a}),
        ("getBookmarks", {}),
        ("getPlayQueue", {}),
        ("getUser", {"username": "carol"}),
        ("getScanStatus", {}),
        ("startScan", {}),
    ]
    randoms: list[tuple[str, dict[str, Any]]] = [
        ("getRandomSongs", {"size": 50}),
        ("getAlbumList2", {"type": "random", "size": 50}),
        ("getSimilarSongs", {"id": a, "count": 50}),
        ("getSimilarSongs2", {"id": replicas}),
    ]
    # Writes: each done once per form, so the answers' names must agree (ids may not).
    writes: list[tuple[str, dict[str, Any]]] = [
        ("star", {"id": a}),
        ("unstar", {"id": a}),
        ("setRating", {"id": b, "rating": 3}),
        ("scrobble", {"id": split, "submission": "false"}),
        ("createBookmark", {"id": split, "position": 10}),
        ("deleteBookmark", {"id": split}),
        ("savePlayQueue", {"id": [a, b], "current": b, "position": 5}),
        ("createPlaylist", {"name": "Both forms", "songId": [a]}),
        ("scrobble", {"id": a}),
    ]
    seen: set[str] = set()
    for name, params in reads:
        as_xml, as_json = both_forms(library, name, **params)
        assert as_xml == as_json, name
        seen.add(name)
    for name, params in randoms:
        as_xml, as_json = both_forms(library, name, **params)
        assert unordered(as_xml) == unordered(as_json), name
        seen.add(name)
    made: list[str] = []
    for name, params in writes:
        as_xml, as_json = both_forms(library, name, **params)
        assert shape(as_xml) == shape(as_json), name
        if name == "createPlaylist":
            made += [as_xml["playlist"][0]["id"], as_json["playlist"][0]["id"]]
        seen.add(name)
    [first, second] = made
    for name, params in (
        ("getPlaylist", {"id": first}),
        ("updatePlaylist", {"playlistId": first, "songIdToAdd": b}),
        ("updatePlaylist", {"playlistId": second, "songIdToAdd": b}),
        ("getPlaylist", {"id": second}),
    ):
        as_xml, as_json = both_forms(library, name, **params)
        assert shape(as_xml) == shape(as_json), name
        seen.add(name)
    for playlist in made:
        both = [
            http(library.rest("deletePlaylist", **library.token_params(id=playlist, **fmt)))
            for fmt in ({}, {"f": "json"})
        ]
        assert ET.fromstring(both[0].body).attrib["status"] == "ok"
        assert both[1].subsonic["error"]["code"] == 70  # deleted by the XML call just before
    seen.add("deletePlaylist")
    # Admins only, so as the admin.
    xml_users = http(library.rest("getUsers", **library.token_params(library.admin)))
    json_users = http(library.rest("getUsers", **library.token_params(library.admin, f="json")))
    assert xml_form(ET.fromstring(xml_users.body)) == json_form(json_users.subsonic)
    seen.add("getUsers")
    # The binary endpoints answer the same bytes whatever `f` says, and errors in each form.
    for name, item in (("stream", a), ("download", a), ("getCoverArt", token_ring)):
        got = {
            http(library.rest(name, **library.token_params(id=item, **fmt))).body
            for fmt in ({}, {"f": "json"})
        }
        assert len(got) == 1 and len(got.pop()) > 100, name
        xml_error = ET.fromstring(http(library.rest(name, **library.token_params(id="x"))).body)
        json_error = http(library.rest(name, **library.token_params(id="x", f="json"))).subsonic
        assert xml_form(xml_error) == json_form(json_error), name
        seen.add(name)
    assert seen == set(ENDPOINTS)


def test_endpoints_not_served_answer_not_implemented(library: Library) -> None:
    for name, supported in documented().items():
        if not supported:
            reply = http(library.rest(name, **library.token_params(f="json")))
            assert reply.subsonic["error"] == {"code": 0, "message": f"not implemented: {name}"}


# -- who may sign in (these change the users: last in this module) ----------------------------


def ping_code(library: Library, user: User, password: str, *, legacy: bool = False) -> int:
    """The error code of a ``ping`` with ``password`` (0 when it succeeds)."""
    if legacy:
        params: dict[str, Any] = {"u": user.username, "p": password}
    else:
        salt = "5a1t"
        token = hashlib.md5((password + salt).encode()).hexdigest()
        params = {"u": user.username, "t": token, "s": salt}
    doc = http(library.rest("ping", f="json", **params)).subsonic
    return 0 if doc["status"] == "ok" else int(doc["error"]["code"])


def test_an_admin_can_require_app_passwords(library: Library) -> None:
    carol, admin = library.carol, library.admin
    creds = api_json(f"{library.base}/api/me/subsonic", token=carol.token)
    assert creds["account_password"] is True
    app = creds["password"]
    settings = f"{library.base}/api/settings"
    refused = http(
        settings,
        method="PATCH",
        body=b'{"subsonic_account_password": false}',
        headers={"authorization": f"Bearer {carol.token}", "content-type": "application/json"},
    )
    assert refused.status == 403
    off = api_json(
        settings, method="PATCH", obj={"subsonic_account_password": False}, token=admin.token
    )
    assert off == {"subsonic_account_password": False}
    try:
        assert ping_code(library, carol, carol.web_password) == 40
        assert ping_code(library, carol, carol.web_password, legacy=True) == 40
        assert ping_code(library, carol, app) == 0
        assert ping_code(library, carol, app, legacy=True) == 0
        assert ping_code(library, admin, admin.web_password) == 41  # no app password either
        again = api_json(f"{library.base}/api/me/subsonic", token=carol.token)
        assert again["account_password"] is False and again["password"] == app
        assert api_json(settings, token=carol.token) == {"subsonic_account_password": False}
    finally:
        on = {"subsonic_account_password": True}
        assert api_json(settings, method="PATCH", obj=on, token=admin.token) == on
    # The sealed copies were forgotten: token auth with the account password comes back for
    # each user at their next sign-in (here, the web one).
    assert ping_code(library, admin, admin.web_password) == 41
    login = {"username": admin.username, "password": admin.web_password}
    api_json(f"{library.base}/api/auth/login", method="POST", obj=login)
    for _ in range(100):
        if ping_code(library, admin, admin.web_password) == 0:
            break
        time.sleep(0.05)
    assert ping_code(library, admin, admin.web_password) == 0
    assert ping_code(library, carol, app) == 0


def test_a_disabled_user_cannot_use_any_credential(library: Library) -> None:
    carol, admin = library.carol, library.admin
    token = api_json(
        f"{library.base}/api/auth/login",
        method="POST",
        obj={"username": carol.username, "password": carol.web_password},
    )["token"]
    creds = api_json(f"{library.base}/api/me/subsonic", token=token)
    user_id = api_json(f"{library.base}/api/me", token=token)["user_id"]
    users = f"{library.base}/api/users/{user_id}"
    row = api_json(users, method="PATCH", obj={"disabled": True}, token=admin.token)
    assert row["disabled"] is True
    assert ping_code(library, carol, carol.web_password) == 50
    assert ping_code(library, carol, carol.web_password, legacy=True) == 50
    assert ping_code(library, carol, creds["password"]) == 40  # the app password ended
    by_key = http(library.rest("ping", apiKey=creds["api_key"], f="json")).subsonic
    assert by_key["error"]["code"] == 44
    with osc(library) as conn, pytest.raises(libopensonic.errors.AuthError):
        conn.ping()
    with pytest.raises(knuckles.exceptions.ErrorCode50):
        library.knuckles().system.ping()
    api_json(users, method="PATCH", obj={"disabled": False}, token=admin.token)
    assert ping_code(library, carol, carol.web_password) == 0
    assert ping_code(library, carol, creds["password"]) == 40  # still ended: ask for new ones
