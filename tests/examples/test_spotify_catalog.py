"""The catalog state machine: apply, idempotence, rejections, search, pagination, playlists."""

from __future__ import annotations

import json
from typing import Any

import pytest
from dspot_spotify import catalog as c

from .catalog_log import HASH, SHA, Log, new_song, seed_music, seed_users, sha
from .conftest import Db

# --------------------------------------------------------------------------- entries


def test_every_entry_type_round_trips() -> None:
    samples: list[c.Entry] = [
        c.RegisterUser(user_id="u", username="u1x", password_hash=HASH, role="admin"),
        c.SetUserRole(actor="a", user_id="u", role="user"),
        c.ChangePassword(actor="a", user_id="u", password_hash=HASH),
        c.RevokeToken(actor="a", token_id="t", user_id="u", expires_at=5),
        c.SetSubsonicCredentials(actor="a", user_id="u", password="p" * 24, api_key="k" * 43),
        c.CreateArtist(actor="a", at=3, artist_id="x", name="N"),
        c.UpdateArtist(actor="a", artist_id="x", name="N2"),
        c.DeleteArtist(actor="a", artist_id="x"),
        c.CreateAlbum(actor="a", album_id="al", title="T", artist_id="x", year=1999),
        c.UpdateAlbum(actor="a", album_id="al", title="T", artist_id="x", cover_sha256=SHA),
        c.DeleteAlbum(actor="a", album_id="al"),
        c.CreateSong(
            actor="a",
            song_id="s",
            title="é ✓",
            artist_id="x",
            genres=("a", "b"),
            duration=1.5,
            blob_sha256=SHA,
            mime="audio/flac",
            size=3,
        ),
        c.UpdateSong(actor="a", song_id="s", title="t", artist_id="x", album_id="al", track=1),
        c.DeleteSong(actor="a", song_id="s"),
        c.CreatePlaylist(actor="a", playlist_id="p", name="P"),
        c.RenamePlaylist(actor="a", playlist_id="p", name="Q"),
        c.DeletePlaylist(actor="a", playlist_id="p"),
        c.AddToPlaylist(actor="a", playlist_id="p", item_id="i", song_id="s", before_item_id="j"),
        c.RemoveFromPlaylist(actor="a", playlist_id="p", item_id="i"),
        c.MovePlaylistItem(actor="a", playlist_id="p", item_id="i"),
        c.Like(actor="a", target_id="s", target="song"),
        c.Like(actor="a", target_id="s", target="song", liked=False),
        c.Like(actor="a", at=4, target_id="al", target="album"),
        c.Like(actor="a", target_id="al", target="album", liked=False),
        c.Like(actor="a", at=5, target_id="x", target="artist"),
        c.Like(actor="a", target_id="x", target="artist", liked=False),
        c.RecordPlay(actor="a", song_id="s", count=3),
        c.LeaseBlobs(actor="a", at=1, blobs=(SHA,), until=10),
        c.LogClock(at=7),
        c.Batch.of(
            [
                c.Like(target_id="s", target="song"),
                c.Like(target_id="x", target="artist", liked=False),
                c.AddToPlaylist(playlist_id="p", item_id="i", song_id="s"),
            ],
            actor="a",
            at=9,
        ),
        c.UpdateUser(actor="a", user_id="u", role="admin", disabled=True),
        c.SealPassword(actor="u", user_id="u", generation=2, sealed_password="s" * 40),
        c.SetSubsonicAccountPassword(actor="a", allowed=False),
        c.Rate(actor="a", target="album", target_id="al", rating=4),
        c.SetBookmark(actor="a", song_id="s", position=1500, comment="here"),
        c.DeleteBookmark(actor="a", song_id="s"),
        c.SavePlayQueue(actor="a", song_ids=("s", "t"), current="t", position=9, client="c"),
        c.NowPlaying(actor="a", song_id="s", client="c"),
    ]
    assert {type(e) for e in samples} == set(c.ENTRY_TYPES.values())
    for e in samples:
        data = c.encode_entry(e)
        assert c.decode_entry(data) == e
        assert c.encode_entry(c.decode_entry(data)) == data  # canonical bytes


@pytest.mark.parametrize("target", ["song", "album", "artist"])
@pytest.mark.parametrize("verb", ["like", "unlike"])
def test_likes_keep_the_wire_form_they_always_had(target: str, verb: str) -> None:
    """One ``Like`` entry type reads and writes the six kinds of existing logs, byte for
    byte, so a data directory written before still loads."""
    fields = {"actor": "a", "at": 4, f"{target}_id": "x", "type": f"{target}.{verb}"}
    data = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
    entry = c.decode_entry(data)
    liked = verb == "like"
    assert entry == c.Like(actor="a", at=4, target=target, target_id="x", liked=liked)  # type: ignore[arg-type]
    assert c.encode_entry(entry) == data
    assert c.entry_type(entry) == f"{target}.{verb}"
    other = "album" if target == "song" else "song"
    for bad in (
        f'{{"type":"{target}.{verb}","{other}_id":"x"}}',
        f'{{"type":"{target}.{verb}","{target}_id":"x","target":"{other}"}}',
        f'{{"type":"{target}.{verb}","{target}_id":"x","liked":true}}',
        f'{{"type":"{target}.{verb}","{target}_id":7}}',
    ):
        with pytest.raises(c.InvalidEntry):
            c.decode_entry(bad.encode())


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"[]",
        b'{"no": "type"}',
        b'{"type": "song.explode"}',
        b'{"type": "artist.create", "artist_id": "x"}',  # name missing
        b'{"type": "artist.create", "artist_id": "x", "name": "n", "extra": 1}',
        b'{"type": "user.set_role", "user_id": "u", "role": "root"}',
        b'{"type": "artist.create", "artist_id": 7, "name": "n"}',
        b'{"type": "artist.delete", "artist_id": "x", "at": "12"}',
        b'{"type": "artist.delete", "artist_id": "x", "at": 1.5}',
        b'{"type": "artist.delete", "artist_id": "x", "at": true}',
        b'{"type": "song.create", "song_id": "s", "title": "t", "artist_id": "a", '
        b'"genres": "Pop", "duration": 1, "blob_sha256": "x", "mime": "m", "size": 1}',
        b"\xff\xfe",
    ],
)
def test_decode_rejects_garbage(data: bytes) -> None:
    with pytest.raises(c.InvalidEntry):
        c.decode_entry(data)


def test_encode_refuses_nan() -> None:
    e = c.CreateSong(
        song_id="s",
        title="t",
        artist_id="x",
        duration=float("nan"),
        blob_sha256=SHA,
        mime="audio/mpeg",
        size=1,
    )
    with pytest.raises(c.InvalidEntry):
        c.encode_entry(e)


# --------------------------------------------------------------------------- apply


def test_apply_is_idempotent_by_position(db: Db, log: Log) -> None:
    seed_music(log)
    before = db.dump()
    assert c.applied_position(db.q) == c.LogPosition(1, log.seq)
    with db.tx() as tx:  # redelivery of every entry: all skipped, nothing changes
        for pos, data in log.entries:
            assert c.apply_encoded(tx, pos, data).status == "skipped"
    assert db.dump() == before
    # a position below the applied one is skipped even if the entry is new
    with db.tx() as tx:
        result = c.apply(
            tx, c.LogPosition(1, 1), c.CreateArtist(actor="ana", artist_id="z", name="Z")
        )
    assert result.status == "skipped" and result.ok
    assert c.get_artist(db.q, "z") is None


def test_replicas_converge_and_epochs_order_positions(log: Log) -> None:
    seed_music(log)
    log.epoch, log.seq = 2, 0  # a regenerated token: higher epoch, seq restarts
    log.ok(c.Like(actor="bob", target_id="s1", at=log.at(), target="song"))
    log.rejected(c.DeleteSong(actor="bob", song_id="s1", at=log.at()), "creator or an admin")
    replica = Db()
    with replica.tx() as tx:
        for pos, data in log.entries:
            c.apply_encoded(tx, pos, data)
    assert replica.dump() == log.db.dump()
    assert c.applied_position(replica.q) == c.LogPosition(2, 2)


def test_undecodable_entry_is_recorded_as_rejection(db: Db) -> None:
    with db.tx() as tx:
        result = c.apply_encoded(tx, c.LogPosition(1, 1), b'{"type": "nope"}')
    assert result.status == "rejected"
    [rej] = c.rejections(db.q)
    assert (rej.position, rej.kind) == (c.LogPosition(1, 1), "invalid")
    assert c.applied_position(db.q) == c.LogPosition(1, 1)


def test_rejection_changes_nothing_but_the_rejection_log(db: Db, log: Log) -> None:
    seed_music(log)
    before = {name: rows for name, rows in db.dump() if name not in ("rejections", "catalog_meta")}
    log.rejected(new_song("s9", "x", "nobody", at=log.at()), "unknown artist")
    after = {name: rows for name, rows in db.dump() if name not in ("rejections", "catalog_meta")}
    assert after == before
    [rej] = c.rejections(db.q)
    assert (rej.kind, rej.actor, rej.reason, rej.code) == (
        "song.create",
        "ana",
        "unknown artist",
        "not_found",
    )
    assert c.rejection_at(db.q, rej.position) == rej


def test_a_rejection_after_partial_writes_is_rolled_back(db: Db, log: Log) -> None:
    """The savepoint undoes writes a handler made before it rejected."""
    seed_music(log)
    log.ok(c.CreatePlaylist(actor="ana", at=log.at(), playlist_id="p", name="Mix"))
    log.rejected(
        c.CreatePlaylist(actor="ana", at=log.at(), playlist_id="p2", name=" "), "must not be empty"
    )
    assert [p.id for p in c.user_playlists(db.q, "ana")] == ["p"]


def test_users_registration_rules(db: Db, log: Log) -> None:
    log.rejected(
        c.RegisterUser(
            actor="ghost", user_id="u0", username="first", password_hash=HASH, role="admin"
        ),
        "unknown actor",
    )
    log.ok(c.RegisterUser(user_id="root", username="Root", password_hash=HASH, role="admin"))
    # after the first user, admins are made by admins only
    log.rejected(
        c.RegisterUser(user_id="u2", username="second", password_hash=HASH, role="admin"),
        "only an admin",
    )
    log.ok(c.RegisterUser(user_id="u2", username="second", password_hash=HASH))
    log.rejected(
        c.RegisterUser(user_id="u3", username="ROOT", password_hash=HASH), "username is taken"
    )
    log.rejected(
        c.RegisterUser(user_id="u2", username="third", password_hash=HASH), "user id already exists"
    )
    log.rejected(c.RegisterUser(user_id="u4", username="x", password_hash=HASH), "at least 3")
    log.rejected(c.RegisterUser(user_id="u4", username="fourth", password_hash="plain"), "scrypt")
    log.ok(
        c.RegisterUser(
            actor="root", user_id="u5", username="fifth", password_hash=HASH, role="admin"
        )
    )
    user = c.get_user_by_username(db.q, "  ROOT ")
    assert user is not None and (user.id, user.username, user.role) == ("root", "root", "admin")
    assert c.get_user_by_username(db.q, "nobody") is None
    assert c.get_user_by_username(db.q, "!") is None


def test_roles_and_last_admin(db: Db, log: Log) -> None:
    seed_users(log)
    log.rejected(c.SetUserRole(actor="ana", user_id="ana", role="admin"), "only an admin")
    log.rejected(c.SetUserRole(actor="admin", user_id="admin", role="user"), "last admin")
    log.ok(c.SetUserRole(actor="admin", user_id="bob", role="admin"))
    log.ok(c.SetUserRole(actor="bob", user_id="admin", role="user"))
    log.rejected(c.SetUserRole(actor="bob", user_id="nobody", role="user"), "unknown user")
    assert c.get_user(db.q, "admin") is not None
    assert c.get_user(db.q, "admin").role == "user"  # type: ignore[union-attr]


def test_password_change_and_token_revocation(db: Db, log: Log) -> None:
    seed_users(log)
    t0 = log.at()
    assert not c.is_token_revoked(db.q, token_id="t1", user_id="ana", issued_at=t0)
    log.ok(
        c.RevokeToken(actor="ana", at=log.at(), token_id="t1", user_id="ana", expires_at=t0 + 10**9)
    )
    assert c.is_token_revoked(db.q, token_id="t1", user_id="ana", issued_at=t0)
    log.rejected(
        c.RevokeToken(
            actor="bob", at=log.at(), token_id="t2", user_id="ana", expires_at=t0 + 10**9
        ),
        "only the token's user",
    )
    log.rejected(
        c.ChangePassword(actor="bob", at=log.at(), user_id="ana", password_hash=HASH),
        "only the user",
    )
    changed = log.at()
    log.ok(c.ChangePassword(actor="ana", at=changed, user_id="ana", password_hash=HASH))
    # Tokens of the generation before the change are revoked, whatever their issue time
    # (clocks of the issuing nodes may disagree); a token of the new generation is not.
    for issued_at in (changed - 1, changed + 1):
        assert c.is_token_revoked(db.q, token_id="t3", user_id="ana", issued_at=issued_at)
    assert not c.is_token_revoked(
        db.q, token_id="t3", user_id="ana", issued_at=changed - 1, generation=1
    )
    assert c.is_token_revoked(db.q, token_id="t3", user_id="ghost", issued_at=changed)
    # ... which token_revoked tells apart: no such user here (not applied yet), not revoked
    assert c.token_revoked(db.q, token_id="t3", user_id="ghost", issued_at=changed) is None
    assert c.token_revoked(db.q, token_id="t1", user_id="ana", issued_at=changed) is True
    # expired revocations are pruned by later revocations
    log.ok(
        c.RevokeToken(
            actor="ana", at=t0 + 10**9 + 1, token_id="t4", user_id="ana", expires_at=t0 + 10**10
        )
    )
    assert not c.is_token_revoked(
        db.q, token_id="t1", user_id="ana", issued_at=changed, generation=1
    )


def test_music_permissions_and_validation(db: Db, log: Log) -> None:
    seed_music(log)
    log.rejected(c.CreateArtist(artist_id="x", name="Anon"), "sign in required", "unauthenticated")
    log.rejected(
        c.CreateArtist(actor="ghost", artist_id="x", name="Ghost"),
        "unknown actor",
        "unauthenticated",
    )
    log.rejected(
        c.CreateArtist(actor="bob", artist_id="radio", name="Dup"), "already exists", "conflict"
    )
    log.rejected(c.CreateArtist(actor="bob", artist_id="x" * 65, name="Long"), "1-64", "invalid")
    log.rejected(
        c.UpdateArtist(actor="bob", artist_id="radio", name="Mine"),
        "creator or an admin",
        "forbidden",
    )
    log.rejected(
        c.UpdateArtist(actor="bob", artist_id="zzz", name="Mine"), "unknown artist", "not_found"
    )
    assert c.REJECT_STATUS["forbidden"] == 403 and c.REJECT_STATUS["invalid"] == 422
    log.ok(c.UpdateArtist(actor="admin", artist_id="radio", name="Radiohead (UK)"))
    log.rejected(c.DeleteArtist(actor="ana", artist_id="radio"), "still has albums")
    log.rejected(c.DeleteAlbum(actor="ana", album_id="okc"), "still has songs")
    log.rejected(
        c.UpdateAlbum(actor="ana", album_id="okc", title="OK", artist_id="nobody"), "unknown artist"
    )
    log.rejected(
        c.CreateAlbum(actor="ana", album_id="al", title="T", artist_id="radio", cover_sha256="XYZ"),
        "64 lowercase hex",
    )
    log.rejected(
        c.CreateAlbum(actor="ana", album_id="al", title="T", artist_id="radio", year=0), "year"
    )
    base: dict[str, Any] = {
        "actor": "bob",
        "song_id": "n1",
        "title": "New",
        "artist_id": "radio",
        "duration": 3.0,
        "blob_sha256": SHA,
        "mime": "audio/mpeg",
        "size": 10,
    }
    log.rejected(c.CreateSong(**{**base, "album_id": "nope"}), "unknown album")
    # JSON cannot carry inf (encode refuses it) but json.loads accepts "Infinity": check apply
    inf = (
        b'{"type":"song.create","song_id":"n1","title":"t","artist_id":"radio",'
        b'"duration":Infinity,"blob_sha256":"' + SHA.encode() + b'","mime":"a/b","size":1,'
        b'"actor":"bob"}'
    )
    log.seq += 1
    with db.tx() as tx:
        result = c.apply_encoded(tx, c.LogPosition(1, log.seq), inf)
    assert result.status == "rejected" and "duration" in (result.reason or "")
    log.rejected(c.CreateSong(**{**base, "duration": -1.0}), "duration")
    log.rejected(c.CreateSong(**{**base, "mime": "mpeg"}), "MIME")
    log.rejected(c.CreateSong(**{**base, "size": -1}), "size")
    log.rejected(c.CreateSong(**{**base, "track": -2}), "track")
    log.rejected(c.CreateSong(**{**base, "genres": tuple(f"g{i}" for i in range(11))}), "genres")
    log.rejected(c.CreateSong(**{**base, "title": "x" * 201}), "at most 200")
    log.ok(c.CreateSong(**{**base, "title": "  Spaced \t Out ", "genres": ("Rock", "rock", "")}))
    song = c.get_song(db.q, "n1")
    assert song is not None and song.title == "Spaced Out" and song.genres == ("Rock",)
    log.rejected(c.DeleteSong(actor="ana", song_id="n1"), "creator or an admin")
    log.ok(c.DeleteSong(actor="bob", song_id="n1"))
    # emptying an album and an artist makes them deletable
    for s in ("s1", "s2", "s3"):
        log.ok(c.DeleteSong(actor="admin", song_id=s))
    log.ok(c.DeleteAlbum(actor="ana", album_id="lemonade"))
    log.ok(c.DeleteArtist(actor="ana", artist_id="beyonce"))
    assert c.get_artist(db.q, "beyonce") is None
    assert c.list_songs(db.q, q="formation").total == 0
    assert c.list_artists(db.q, q="beyonce").total == 0


def test_update_song_and_rename_reindex_search(db: Db, log: Log) -> None:
    seed_music(log)
    assert c.list_songs(db.q, q="computer").total == 2
    log.ok(
        c.UpdateAlbum(
            actor="ana", album_id="okc", title="OK Computer OKNOTOK", artist_id="radio", year=2017
        )
    )
    assert c.list_songs(db.q, q="oknotok").total == 2
    log.ok(c.UpdateArtist(actor="ana", artist_id="radio", name="Thom & Co"))
    assert c.list_songs(db.q, q="radiohead").total == 0
    assert c.list_songs(db.q, q="thom").total == 4
    assert c.list_albums(db.q, q="thom").total == 2
    log.ok(
        c.UpdateSong(
            actor="ana",
            song_id="s7",
            title="Creep (Acoustic)",
            artist_id="radio",
            album_id="kida",
            track=9,
            year=1993,
            genres=("Acoustic",),
        )
    )
    s7 = c.get_song(db.q, "s7")
    assert s7 is not None
    assert (s7.title, s7.album_title, s7.track, s7.year, s7.genres) == (
        "Creep (Acoustic)",
        "Kid A",
        9,
        1993,
        ("Acoustic",),
    )
    assert s7.blob_sha256 == sha(7)  # audio is immutable
    assert c.list_songs(db.q, q="acoustic kid").total == 1


# --------------------------------------------------------------------------- queries


def test_search_filters_and_pagination(db: Db, log: Log) -> None:
    seed_music(log)
    # diacritics-insensitive prefix search over title, artist and album
    assert {s.title for s in c.list_songs(db.q, q="beyon").items} == {
        "Formation",
        "Hold Up",
        "Sorry",
    }
    # best match first: a title hit outranks an album-name hit
    log.ok(new_song("s8", "Kid", "beyonce"))
    assert [s.id for s in c.list_songs(db.q, q="kid").items] == ["s8", "s6"]
    log.ok(c.DeleteSong(actor="ana", song_id="s8"))
    assert [s.id for s in c.list_songs(db.q, q="para andr").items] == ["s5"]
    assert [s.id for s in c.list_songs(db.q, q="lemonade sorry").items] == ["s3"]
    assert c.list_songs(db.q, q='"; DROP TABLE songs; --').total == 0
    assert c.list_songs(db.q, q="  ").total == 7  # no words: no text filter
    # filters combine
    assert {s.id for s in c.list_songs(db.q, genre="alternative rock").items} == {"s4", "s5", "s7"}
    assert [
        s.id
        for s in c.list_songs(
            db.q, artist_id="radio", genre="Alternative Rock", album_id="okc"
        ).items
    ] == ["s4", "s5"]
    assert c.list_songs(db.q, q="creep", genre="Electronic").total == 0
    # pagination: stable order, correct totals
    pages = [c.list_songs(db.q, page=p, limit=3) for p in (1, 2, 3, 4)]
    assert [len(p.items) for p in pages] == [3, 3, 1, 0]
    assert all(p.total == 7 and p.pages == 3 for p in pages)
    titles = [s.title for p in pages for s in p.items]
    assert titles == sorted(titles, key=str.casefold)
    assert c.list_songs(db.q, limit=10_000).limit == c.MAX_LIMIT
    with pytest.raises(ValueError):
        c.list_songs(db.q, page=0)
    with pytest.raises(ValueError):
        c.list_songs(db.q, limit=0)
    # albums and artists
    assert [a.title for a in c.list_albums(db.q).items] == ["Kid A", "Lemonade", "OK Computer"]
    assert [a.id for a in c.list_albums(db.q, q="radio").items] == ["kida", "okc"]
    assert [a.id for a in c.list_albums(db.q, genre="pop").items] == ["lemonade"]
    assert [a.id for a in c.list_albums(db.q, artist_id="radio", page=2, limit=1).items] == ["okc"]
    artists = c.list_artists(db.q)
    assert [(a.name, a.album_count, a.song_count) for a in artists.items] == [
        ("Beyoncé", 1, 3),
        ("Radiohead", 2, 4),
    ]
    assert [a.id for a in c.list_artists(db.q, q="BEYONCE").items] == ["beyonce"]
    assert [a.id for a in c.list_artists(db.q, genre="electronic").items] == ["radio"]
    assert c.genres(db.q)[0] == ("Alternative Rock", 3)


def test_search_by_relevance_pages_like_one_sql_order(db: Db, log: Log) -> None:
    """A text search scores its matches in the index alone and sorts only the best of
    them in full: every page must hold the rows one SQL ``ORDER BY`` of every match gives,
    ties in relevance (many here) ordered by title then id, as before."""
    import random

    seed_music(log)
    rng = random.Random(7)
    words = ["amber", "Basalt", "cedar", "Delta", "ember", "fjord", "grove", "harbor"]
    for i in range(40):  # titles of two words: the same score for "tide", ties galore
        log.ok(new_song(f"t{i:02}", f"Tide {rng.choice(words)}", "radio"))
    for i in range(6):  # three words: a lower score
        log.ok(new_song(f"u{i}", f"{rng.choice(words)} tide {rng.choice(words)}", "beyonce"))
    log.ok(new_song("v0", "Low", "radio", album_id="okc"))  # no hit
    statements: list[str] = []

    class Seen:
        def execute(self, sql: str, params: Any = ()) -> Any:
            statements.append(sql)
            return db.q.execute(sql, params)

    reference = [
        str(r[0])
        for r in db.q.execute(
            "SELECT s.id FROM songs s JOIN songs_fts f ON f.rowid = s.n WHERE songs_fts MATCH ? "
            "ORDER BY bm25(songs_fts, 10.0, 4.0, 2.0), s.title COLLATE NOCASE, s.id",
            ['"tide"*'],
        )
    ]
    assert len(reference) == 46
    for limit in (1, 3, 7, 20, 50):
        for page in range(1, 46 // limit + 3):
            found = c.list_songs(Seen(), q="tide", page=page, limit=limit)
            assert found.total == 46
            assert [s.id for s in found.items] == reference[(page - 1) * limit : page * limit]
    assert any(q.startswith("WITH m AS MATERIALIZED") for q in statements), "the ranked path"
    albums = c.list_albums(Seen(), q="radio")
    assert [a.id for a in albums.items] == ["kida", "okc"] and albums.total == 2


def test_sorting_search_box_and_users(db: Db, log: Log) -> None:
    seed_music(log)
    log.ok(c.RecordPlay(actor="bob", song_id="s6", count=9))
    log.ok(c.RecordPlay(actor="bob", song_id="s2", count=3))
    log.ok(c.Like(actor="bob", target_id="s3", target="song"))
    assert [s.id for s in c.list_songs(db.q, sort="plays", limit=2).items] == ["s6", "s2"]
    assert c.list_songs(db.q, sort="likes", limit=1).items[0].id == "s3"
    assert [s.id for s in c.list_songs(db.q, sort="recent", limit=2).items] == ["s7", "s6"]
    assert [s.id for s in c.list_songs(db.q, q="radiohead", sort="plays", limit=1).items] == ["s6"]
    with pytest.raises(ValueError, match="sort"):
        c.list_songs(db.q, sort="random")  # type: ignore[arg-type]
    found = c.search(db.q, "radio")
    assert [a.id for a in found.artists] == ["radio"]
    assert {a.id for a in found.albums} == {"okc", "kida"}
    assert len(found.songs) == 4
    assert c.search(db.q, "!!") == c.SearchResults(artists=(), albums=(), songs=())
    users = c.list_users(db.q, limit=2)
    assert [u.username for u in users.items] == ["admin", "ana"] and users.total == 3


def test_detail_views(db: Db, log: Log) -> None:
    seed_music(log)
    album = c.get_album(db.q, "lemonade")
    assert album is not None
    assert [(t.track, t.title) for t in album.tracks] == [
        (2, "Hold Up"),
        (5, "Sorry"),
        (12, "Formation"),
    ]
    assert album.album.song_count == 3
    assert album.album.duration == pytest.approx(306.0)
    assert album.tracks[0].cover_sha256 == sha(100 + 2016)  # inherited from the album
    assert album.tracks[2].genres == ("R&B", "Pop")
    artist = c.get_artist(db.q, "radio")
    assert artist is not None
    assert [a.title for a in artist.albums] == ["OK Computer", "Kid A"]  # by year
    assert [s.title for s in artist.singles] == ["Creep"]
    assert c.get_album(db.q, "nope") is None and c.get_artist(db.q, "nope") is None
    assert c.get_song(db.q, "nope") is None
    assert c.blob_references(db.q, sha(4)) == 1
    assert c.blob_references(db.q, sha(100 + 1997)) == 1
    assert c.blob_references(db.q, sha(999)) == 0


def test_playlists_ordering_and_ownership(db: Db, log: Log) -> None:
    seed_music(log)
    log.ok(c.CreatePlaylist(actor="ana", at=log.at(), playlist_id="p", name="Road Trip"))
    log.ok(c.CreatePlaylist(actor="ana", at=log.at(), playlist_id="q", name="Chill"))

    def order() -> list[str]:
        detail = c.get_playlist(db.q, "p")
        assert detail is not None
        assert [i.position for i in detail.items] == list(range(len(detail.items)))
        return [i.item_id for i in detail.items]

    for item, song in (("i1", "s1"), ("i2", "s4"), ("i3", "s6")):
        log.ok(
            c.AddToPlaylist(actor="ana", at=log.at(), playlist_id="p", item_id=item, song_id=song)
        )
    assert order() == ["i1", "i2", "i3"]
    log.ok(
        c.AddToPlaylist(
            actor="ana", playlist_id="p", item_id="i4", song_id="s1", before_item_id="i2"
        )
    )  # the same song twice is fine
    assert order() == ["i1", "i4", "i2", "i3"]
    log.ok(c.MovePlaylistItem(actor="ana", playlist_id="p", item_id="i3", before_item_id="i1"))
    assert order() == ["i3", "i1", "i4", "i2"]
    log.ok(c.MovePlaylistItem(actor="ana", playlist_id="p", item_id="i3"))  # to the end
    assert order() == ["i1", "i4", "i2", "i3"]
    log.ok(c.MovePlaylistItem(actor="ana", playlist_id="p", item_id="i4", before_item_id="i4"))
    assert order() == ["i1", "i4", "i2", "i3"]
    log.ok(c.RemoveFromPlaylist(actor="ana", playlist_id="p", item_id="i1"))
    assert order() == ["i4", "i2", "i3"]
    # errors
    log.rejected(c.AddToPlaylist(actor="bob", playlist_id="p", item_id="i9", song_id="s1"), "owner")
    log.rejected(
        c.AddToPlaylist(actor="ana", playlist_id="p", item_id="i2", song_id="s1"),
        "item id already exists",
    )
    log.rejected(
        c.AddToPlaylist(actor="ana", playlist_id="p", item_id="i9", song_id="zz"), "unknown song"
    )
    log.rejected(
        c.AddToPlaylist(
            actor="ana", playlist_id="p", item_id="i9", song_id="s1", before_item_id="i1"
        ),
        "unknown item",
    )
    log.rejected(
        c.AddToPlaylist(actor="ana", playlist_id="zz", item_id="i9", song_id="s1"),
        "unknown playlist",
    )
    log.rejected(
        c.MovePlaylistItem(actor="ana", playlist_id="q", item_id="i2"), "unknown playlist item"
    )
    log.rejected(
        c.RemoveFromPlaylist(actor="ana", playlist_id="p", item_id="i1"), "unknown playlist item"
    )
    log.rejected(c.RenamePlaylist(actor="bob", playlist_id="p", name="Mine"), "owner")
    log.ok(c.RenamePlaylist(actor="ana", playlist_id="p", name="Road Trip 2"))
    views = c.user_playlists(db.q, "ana")
    assert [(v.name, v.song_count) for v in views] == [("Chill", 0), ("Road Trip 2", 3)]
    assert views[1].duration == pytest.approx(101.0 + 104.0 + 106.0)
    # deleting a song removes it from playlists and keeps positions dense
    log.ok(c.DeleteSong(actor="ana", song_id="s4"))
    assert order() == ["i4", "i3"]
    log.rejected(c.DeletePlaylist(actor="bob", playlist_id="p"), "owner or an admin")
    log.ok(c.DeletePlaylist(actor="admin", playlist_id="p"))
    assert c.get_playlist(db.q, "p") is None
    assert [v.id for v in c.user_playlists(db.q, "ana")] == ["q"]


def test_likes_and_plays(db: Db, log: Log) -> None:
    seed_music(log)
    log.ok(c.Like(actor="bob", at=log.at(), target_id="s1", target="song"))
    log.ok(c.Like(actor="bob", at=log.at(), target_id="s5", target="song"))
    log.ok(c.Like(actor="bob", at=log.at(), target_id="s1", target="song"))  # twice: harmless
    log.ok(c.Like(actor="ana", at=log.at(), target_id="s1", target="song"))
    log.rejected(c.Like(actor="bob", target_id="nope", target="song"), "unknown song")
    liked = c.liked_songs(db.q, "bob")
    assert [s.id for s in liked.items] == ["s5", "s1"] and liked.total == 2
    assert c.get_song(db.q, "s1").like_count == 2  # type: ignore[union-attr]
    log.ok(c.Like(actor="bob", target_id="s1", target="song", liked=False))
    log.ok(c.Like(actor="bob", target_id="s1", target="song", liked=False))
    assert c.get_song(db.q, "s1").like_count == 1  # type: ignore[union-attr]
    log.ok(c.RecordPlay(actor="bob", at=log.at(), song_id="s2"))
    log.ok(c.RecordPlay(actor="ana", at=log.at(), song_id="s2", count=4))
    log.rejected(c.RecordPlay(actor="ana", song_id="s2", count=0), "play count")
    assert c.get_song(db.q, "s2").play_count == 5  # type: ignore[union-attr]
    log.ok(c.DeleteSong(actor="ana", song_id="s5"))
    assert [s.id for s in c.liked_songs(db.q, "bob").items] == []


def test_album_and_artist_likes(db: Db, log: Log) -> None:
    seed_music(log)
    log.ok(c.Like(actor="bob", at=log.at(), target_id="okc", target="album"))
    log.ok(c.Like(actor="bob", at=log.at(), target_id="lemonade", target="album"))
    log.ok(c.Like(actor="bob", at=log.at(), target_id="okc", target="album"))  # twice: harmless
    log.ok(c.Like(actor="ana", at=log.at(), target_id="kida", target="album"))
    log.ok(c.Like(actor="bob", at=log.at(), target_id="radio", target="artist"))
    log.ok(c.Like(actor="bob", at=log.at(), target_id="radio", target="artist"))
    log.rejected(
        c.Like(actor="bob", target_id="nope", target="album"), "unknown album", "not_found"
    )
    log.rejected(
        c.Like(actor="bob", target_id="nope", target="album", liked=False),
        "unknown album",
        "not_found",
    )
    log.rejected(
        c.Like(actor="bob", target_id="s1", target="artist"), "unknown artist", "not_found"
    )
    log.rejected(
        c.Like(actor="bob", target_id="nope", target="artist", liked=False),
        "unknown artist",
        "not_found",
    )
    log.rejected(c.Like(target_id="okc", target="album"), "", "unauthenticated")
    log.rejected(c.Like(actor="ghost", target_id="radio", target="artist"), "", "unauthenticated")
    albums = c.liked_albums(db.q, "bob")
    # The first like's time counts: liking again does not move okc to the front.
    assert [a.id for a in albums.items] == ["lemonade", "okc"] and albums.total == 2
    assert albums.items[1].song_count == 2 and albums.items[1].artist_name == "Radiohead"
    assert [a.id for a in c.liked_albums(db.q, "bob", page=2, limit=1).items] == ["okc"]
    assert [a.id for a in c.liked_albums(db.q, "ana").items] == ["kida"]
    artists = c.liked_artists(db.q, "bob")
    assert [(a.id, a.album_count) for a in artists.items] == [("radio", 2)]
    assert artists.total == 1 and c.liked_artists(db.q, "ana").total == 0
    with pytest.raises(ValueError):
        c.liked_artists(db.q, "bob", page=0)
    # Unliking is per user and idempotent.
    log.ok(c.Like(actor="bob", target_id="lemonade", target="album", liked=False))
    log.ok(c.Like(actor="bob", target_id="lemonade", target="album", liked=False))
    log.ok(c.Like(actor="ana", target_id="radio", target="artist", liked=False))
    assert [a.id for a in c.liked_albums(db.q, "bob").items] == ["okc"]
    assert c.liked_artists(db.q, "bob").total == 1
    # Deleting an album or artist removes it from every like list.
    log.ok(c.DeleteSong(actor="ana", song_id="s6"))
    log.ok(c.DeleteAlbum(actor="ana", album_id="kida"))
    assert c.liked_albums(db.q, "ana").total == 0
    log.ok(c.CreateArtist(actor="ana", at=log.at(), artist_id="solo", name="Solo"))
    log.ok(c.Like(actor="bob", at=log.at(), target_id="solo", target="artist"))
    assert [a.id for a in c.liked_artists(db.q, "bob").items] == ["solo", "radio"]
    log.ok(c.DeleteArtist(actor="ana", artist_id="solo"))
    assert [a.id for a in c.liked_artists(db.q, "bob").items] == ["radio"]
    assert db.conn.execute("SELECT COUNT(*) FROM album_likes").fetchone() == (1,)
    assert db.conn.execute("SELECT COUNT(*) FROM artist_likes").fetchone() == (1,)
    # A replica replaying the log ends in the same state, rejections included.
    replica = Db()
    with replica.tx() as tx:
        for pos, data in log.entries:
            c.apply_encoded(tx, pos, data)
    assert replica.dump() == db.dump()
    assert [a.id for a in c.liked_albums(replica.q, "bob").items] == ["okc"]


def test_create_schema_adds_like_tables_to_an_older_database(db: Db, log: Log) -> None:
    """A replica made before album and artist likes existed gets their tables on start."""
    seed_music(log)
    db.conn.execute("DROP TABLE album_likes")
    db.conn.execute("DROP TABLE artist_likes")
    with db.tx() as tx:
        c.create_schema(tx)
    log.ok(c.Like(actor="bob", at=log.at(), target_id="okc", target="album"))
    log.ok(c.Like(actor="bob", at=log.at(), target_id="radio", target="artist"))
    assert c.liked_albums(db.q, "bob").total == c.liked_artists(db.q, "bob").total == 1


def test_works_on_a_raw_sqlite3_connection() -> None:
    """The Tx protocol is sqlite3's own: a bare connection inside BEGIN works too."""
    import sqlite3

    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("BEGIN")
    c.create_schema(conn)
    c.apply(
        conn,
        c.LogPosition(0, 1),
        c.RegisterUser(user_id="u", username="solo", password_hash=HASH, role="admin"),
    )
    conn.execute("COMMIT")
    assert c.get_user(conn, "u") is not None
