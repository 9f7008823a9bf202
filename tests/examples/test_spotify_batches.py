"""One request, one entry (:class:`~dspot_spotify.catalog.Batch`), and who owns the blobs:
reference counts, upload leases, the log's clock, the dry run writers use before storing."""

from __future__ import annotations

import json
import random

import pytest
from dspot_spotify import catalog as c

from .catalog_log import SHA, Log, seed_music, seed_users, sha
from .conftest import Db


@pytest.fixture
def log(db: Db) -> Log:
    seed = Log(db)
    seed_users(seed)
    return seed


def _song(log: Log, song_id: str, blob: str, *, cover: str | None = None) -> c.CreateSong:
    return c.CreateSong(
        song_id=song_id,
        title=f"song {song_id}",
        artist_id="ar",
        duration=3.0,
        blob_sha256=blob,
        mime="audio/flac",
        size=10,
        cover_sha256=cover,
    )


def _upload(log: Log, song_id: str, blob: str, *, cover: str | None = None) -> c.Batch:
    """What an upload commits: the artist (derived id) and the song, as one entry."""
    return c.Batch.of(
        [c.CreateArtist(artist_id="ar", name="The Artist"), _song(log, song_id, blob, cover=cover)],
        actor="ana",
        at=log.at(),
    )


def _lease(log: Log, *blobs: str, seconds: int = 60) -> c.LeaseBlobs:
    at = log.at()
    return c.LeaseBlobs(actor="ana", at=at, blobs=blobs, until=at + seconds * 1000)


def test_a_batch_is_applied_whole(db: Db, log: Log) -> None:
    log.ok(_lease(log, sha(1)))
    log.ok(_upload(log, "s1", sha(1)))
    assert c.get_artist(db.q, "ar") is not None
    assert c.get_song(db.q, "s1") is not None
    # A second upload of the same artist: its CreateArtist finds the id taken and does
    # nothing (a plain CreateArtist would be rejected as a duplicate).
    log.ok(_lease(log, sha(2)))
    log.ok(_upload(log, "s2", sha(2)))
    assert c.list_artists(db.q).total == 1
    log.rejected(c.CreateArtist(actor="ana", at=log.at(), artist_id="ar", name="X"), "exists")


def test_a_batch_with_one_bad_part_changes_nothing(db: Db, log: Log) -> None:
    seed_music(log, users=False)
    before = db.dump()
    stars = c.Batch.of(
        [
            c.Like(target="song", target_id="s1"),
            c.Like(target="album", target_id="okc"),
            c.Like(target="artist", target_id="nobody"),  # unknown: the whole batch goes
        ],
        actor="bob",
        at=log.at(),
    )
    log.rejected(stars, "unknown artist", "not_found")
    after = [t for t in db.dump() if t[0] not in ("catalog_meta", "rejections")]
    assert after == [t for t in before if t[0] not in ("catalog_meta", "rejections")]
    assert c.liked_songs(db.q, "bob").total == 0


def test_batches_hold_plain_entries_with_the_batch_actor_and_time() -> None:
    like = c.Like(actor="a", at=1, target="song", target_id="s")
    with pytest.raises(c.InvalidEntry, match="take the batch's actor"):
        c.encode_entry(c.Batch(actor="b", at=1, entries=(like,)))
    with pytest.raises(c.InvalidEntry, match="cannot hold"):
        c.encode_entry(c.Batch.of([c.Batch.of([like], actor="a", at=1)], actor="a", at=1))
    with pytest.raises(c.InvalidEntry, match="cannot hold"):
        c.encode_entry(c.Batch.of([c.LogClock()], actor="a", at=1))
    for bad in (
        {"type": "batch", "actor": "a", "at": 1, "entries": [{"type": "log.clock"}]},
        {"type": "batch", "at": 1, "entries": [{"type": "song.like", "song_id": "s", "at": 1}]},
        {"type": "batch", "entries": "no"},
        {"type": "batch", "entries": [], "extra": 1},
        {"type": "batch", "entries": [{"type": "batch", "entries": []}]},
    ):
        with pytest.raises(c.InvalidEntry):
            c.decode_entry(json.dumps(bad).encode())


def test_an_empty_batch_is_rejected(log: Log) -> None:
    log.rejected(c.Batch(actor="ana", at=log.at(), entries=()), "1-")


def test_references_are_counted_and_releases_reported(db: Db, log: Log) -> None:
    log.ok(_lease(log, sha(1), sha(9)))
    log.ok(_upload(log, "s1", sha(1), cover=sha(9)))
    log.ok(_lease(log, sha(2)))
    log.ok(_upload(log, "s2", sha(2), cover=sha(9)))
    assert c.blob_refs(db.q) == {sha(1): 1, sha(2): 1, sha(9): 2}
    assert c.referenced_blobs(db.q) == sorted([sha(1), sha(2), sha(9)])
    deleted = log(c.DeleteSong(actor="ana", at=log.at(), song_id="s1"))
    assert deleted.unowned == (sha(1),)  # the shared cover is still used by s2
    row = c.ownership(db.q, [sha(1)])[sha(1)]
    assert row.refs == 0 and row.released_at == c.log_clock(db.q)
    assert row.unowned_since(c.log_clock(db.q) + 1) is None  # its upload lease still runs
    assert row.unowned_since(row.lease_until + 1) == row.lease_until
    deleted = log(c.DeleteSong(actor="ana", at=log.at(), song_id="s2"))
    assert deleted.unowned == tuple(sorted([sha(2), sha(9)]))
    # Album covers count too, and changing one moves the reference.
    log.ok(c.CreateAlbum(actor="ana", at=log.at(), album_id="al", title="A", artist_id="ar"))
    log.ok(_lease(log, sha(3)))
    log.ok(
        c.Batch.of(
            [c.UpdateAlbum(album_id="al", title="A", artist_id="ar", cover_sha256=sha(3))],
            actor="ana",
            at=log.at(),
        )
    )
    assert c.blob_refs(db.q)[sha(3)] == 1
    result = log(c.UpdateAlbum(actor="ana", at=log.at(), album_id="al", title="A", artist_id="ar"))
    assert result.unowned == (sha(3),)


def test_a_lease_is_reported_as_a_blob_to_look_at_later(log: Log) -> None:
    assert log(_lease(log, sha(4))).unowned == (sha(4),)
    log.rejected(c.LeaseBlobs(actor="ana", at=10, blobs=(sha(4),), until=5), "ends after")
    log.rejected(c.LeaseBlobs(actor="ana", at=10, blobs=(), until=50), "1-")
    log.rejected(c.LeaseBlobs(actor="ana", at=10, blobs=("x",), until=50), "64 lowercase")
    log.rejected(c.LeaseBlobs(at=10, blobs=(SHA,), until=50), "sign in", "unauthenticated")


def test_a_batch_may_refer_to_an_unowned_blob_only_under_a_live_lease(db: Db, log: Log) -> None:
    # No lease at all: refused.
    log.rejected(_upload(log, "s1", sha(1)), "lease is over", "conflict")
    # A lease, but the log's clock has passed it (the commit came late): refused as
    # "upload again" (503, as the API documents), not as a conflict with the catalog.
    log.ok(_lease(log, sha(1), seconds=5))
    log.ok(c.LogClock(at=log.at() + 10_000))
    log.rejected(_upload(log, "s1", sha(1)), "lease on blob", "expired")
    assert c.REJECT_STATUS["expired"] == 503
    assert c.get_song(db.q, "s1") is None
    # A live lease: accepted, and a blob already referenced needs none.
    log.ok(_lease(log, sha(1)))
    log.ok(_upload(log, "s1", sha(1)))
    log.ok(c.LogClock(at=log.at() + 10**7))
    log.ok(_upload(log, "s1b", sha(1)))
    assert c.blob_refs(db.q)[sha(1)] == 2


def test_old_entry_types_need_no_lease(db: Db, log: Log) -> None:
    """A log written before leases existed replays as it did: a plain CreateSong refers
    to its blob without one."""
    log.ok(c.CreateArtist(actor="ana", at=log.at(), artist_id="ar", name="A"))
    log.ok(attrs_evolve(_song(log, "s1", sha(1)), actor="ana", at=log.at()))
    assert c.blob_refs(db.q) == {sha(1): 1}


def attrs_evolve(entry: c.CreateSong, **changes: object) -> c.CreateSong:
    import attrs

    return attrs.evolve(entry, **changes)  # type: ignore[arg-type]


def test_the_log_clock_is_the_largest_at_applied(db: Db, log: Log) -> None:
    start = c.log_clock(db.q)
    log.rejected(c.CreateArtist(actor="nobody", at=start + 50, artist_id="x", name="X"), "actor")
    assert c.log_clock(db.q) == start + 50  # a rejected entry moves it too
    log.ok(c.LogClock(at=start + 10))
    assert c.log_clock(db.q) == start + 50  # never backwards


def test_check_says_what_the_log_would_say_and_changes_nothing(db: Db, log: Log) -> None:
    before = db.dump()
    too_long = attrs_evolve(_song(log, "s1", sha(1)), title="x" * 300)
    upload = c.Batch.of(
        [c.CreateArtist(artist_id="ar", name="A"), too_long], actor="ana", at=log.at()
    )
    with db.tx() as tx:
        result = c.check(tx, upload, leased=[sha(1)])
    assert (result.status, result.code) == ("rejected", "invalid")
    assert result.reason is not None and "at most 200" in result.reason
    good = _upload(log, "s1", sha(1))
    with db.tx() as tx:
        assert c.check(tx, good, leased=[sha(1)]).status == "applied"
        assert c.check(tx, good).status == "rejected"  # no lease assumed: refused
    assert db.dump() == before


def test_an_older_database_gets_its_reference_counts(db: Db, log: Log) -> None:
    """A catalog written before blobs were counted gets the counts from its songs and
    albums the first time the new code opens it."""
    seed_music(log, users=False)
    log.ok(
        c.UpdateAlbum(
            actor="ana",
            at=log.at(),
            album_id="okc",
            title="OK",
            artist_id="radio",
            cover_sha256=sha(99),
        )
    )
    counted = {k: v for k, v in c.blob_refs(db.q).items() if v}
    for trigger in (
        "songs_blobs_insert",
        "songs_blobs_delete",
        "songs_blobs_update",
        "albums_blobs_insert",
        "albums_blobs_delete",
        "albums_blobs_update",
    ):
        db.conn.execute(f"DROP TRIGGER {trigger}")
    db.conn.execute("DROP TABLE blobs")
    db.conn.execute("DROP TABLE blob_released")
    with db.tx() as tx:
        c.create_schema(tx)
    assert c.blob_refs(db.q) == counted
    assert counted[sha(99)] == 1 and all(n == 1 for n in counted.values())
    with db.tx() as tx:
        c.create_schema(tx)  # again: no second backfill
    assert c.blob_refs(db.q) == counted


def test_reference_counts_match_the_rows_after_any_history(db: Db, log: Log) -> None:
    """Random uploads, edits, album cover changes and deletes: the counts kept by the
    triggers always equal the references the rows hold."""
    rng = random.Random(7)
    log.ok(c.CreateArtist(actor="ana", at=log.at(), artist_id="ar", name="A"))
    log.ok(c.CreateAlbum(actor="ana", at=log.at(), album_id="al", title="T", artist_id="ar"))
    songs: list[str] = []
    for i in range(200):
        roll = rng.random()
        blob, cover = sha(rng.randrange(8)), rng.choice([None, sha(50 + rng.randrange(4))])
        if roll < 0.4:
            log.ok(_lease(log, *{blob, cover} - {None}))  # type: ignore[arg-type]
            result = log(_upload(log, f"s{i}", blob, cover=cover))
            if result.status == "applied":
                songs.append(f"s{i}")
        elif roll < 0.6 and songs:
            log.ok(
                c.DeleteSong(actor="ana", at=log.at(), song_id=songs.pop(rng.randrange(len(songs))))
            )
        elif roll < 0.8:
            log.ok(_lease(log, cover or blob))
            update = c.UpdateAlbum(album_id="al", title="T", artist_id="ar", cover_sha256=cover)
            log.ok(c.Batch.of([update], actor="ana", at=log.at()))
        else:
            log(
                c.Batch.of(
                    [_song(log, f"s{i}", blob), c.DeleteSong(song_id="nope")],
                    actor="ana",
                    at=log.at(),
                )
            )
        want: dict[str, int] = {}
        for row in db.q.execute(
            "SELECT blob_sha256 FROM songs UNION ALL SELECT cover_sha256 FROM songs "
            "UNION ALL SELECT cover_sha256 FROM albums"
        ):
            if row[0] is not None:
                want[row[0]] = want.get(row[0], 0) + 1
        have = {k: v for k, v in c.blob_refs(db.q).items() if v}
        assert have == want
