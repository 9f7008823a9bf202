"""Upload planning: tags → artist/album/song entries, with name-derived ids."""

from __future__ import annotations

from dspot_spotify import catalog as c
from dspot_spotify.ingest import UNKNOWN_ARTIST, album_id_for, artist_id_for, entries_for_upload
from dspot_spotify.tags import TrackTags

from .catalog_log import Log, seed_users
from .conftest import Db


def tags(
    title: str,
    artist: str | None,
    album: str | None,
    track: int | None = None,
    album_artist: str | None = None,
) -> TrackTags:
    return TrackTags(
        title=title,
        artist=artist,
        album=album,
        track=track,
        album_artist=album_artist,
        year=2020,
        genres=("Pop",),
        duration=12.5,
        format="mp3",
        mime="audio/mpeg",
    )


def upload(log: Log, t: TrackTags, song_id: str, cover: str | None = "c" * 64) -> None:
    entries = entries_for_upload(
        log.db.q,
        t,
        actor="ana",
        at=log.at(),
        song_id=song_id,
        blob_sha256=f"{len(song_id):064x}",
        size=100,
        cover_sha256=cover,
    )
    for e in entries:
        log.ok(e)


def test_first_upload_creates_artist_album_song(db: Db) -> None:
    log = Log(db)
    seed_users(log)
    t = tags("One", "  The  Band ", "First Album", 1)
    entries = entries_for_upload(
        db.q,
        t,
        actor="ana",
        at=5,
        song_id="s1",
        blob_sha256="a" * 64,
        size=10,
        cover_sha256="c" * 64,
    )
    assert [type(e) for e in entries] == [c.CreateArtist, c.CreateAlbum, c.CreateSong]
    for e in entries:
        log.ok(e)
    song = c.get_song(db.q, "s1")
    assert song is not None
    assert (song.artist_name, song.album_title, song.track, song.duration, song.mime) == (
        "The Band",
        "First Album",
        1,
        12.5,
        "audio/mpeg",
    )
    assert song.artist_id == artist_id_for("the band")
    assert song.album_id == album_id_for(song.artist_id, "FIRST  album")
    assert song.cover_sha256 == "c" * 64  # from the album
    # the second track reuses both, found by name whatever the case
    upload(log, tags("Two", "THE BAND", "first album", 2), "s2")
    album = c.get_album(db.q, song.album_id or "")
    assert album is not None and [s.title for s in album.tracks] == ["One", "Two"]
    assert album.tracks[1].cover_sha256 == "c" * 64
    assert c.list_artists(db.q).total == 1


def test_concurrent_first_uploads_converge_on_one_artist(db: Db) -> None:
    log = Log(db)
    seed_users(log)
    # two gateways plan from the same (stale) state, then both lists reach the log
    a, b = (
        entries_for_upload(
            db.q,
            tags(title, artist, album),
            actor="ana",
            at=at,
            song_id=f"s{title.lower()}",
            blob_sha256=title.lower() * 64,
            size=1,
        )
        for at, title, artist, album in (
            (1, "A", "New Artist", "Debut"),
            (2, "B", "new artist", "DEBUT"),
        )
    )
    results = [log(e) for e in [*a, *b]]
    assert [r.status for r in results] == [
        "applied",
        "applied",
        "applied",
        "rejected",
        "rejected",
        "applied",
    ]
    assert c.rejection_at(db.q, c.LogPosition(1, log.seq - 1)) is not None
    assert c.rejection_at(db.q, c.LogPosition(1, log.seq)) is None
    assert c.list_artists(db.q).total == 1
    assert c.list_albums(db.q).items[0].song_count == 2


def test_untagged_and_compilation_uploads(db: Db) -> None:
    log = Log(db)
    seed_users(log)
    upload(log, tags("Loose", None, None), "s1", cover=None)
    song = c.get_song(db.q, "s1")
    assert song is not None and (song.artist_name, song.album_id) == (UNKNOWN_ARTIST, None)
    upload(log, tags("Hit", "Singer", "Now 99", 3, album_artist="Various Artists"), "s2")
    song = c.get_song(db.q, "s2")
    assert song is not None and song.artist_name == "Singer"
    album = c.get_album(db.q, song.album_id or "")
    assert album is not None and album.album.artist_name == "Various Artists"
    # a different cover than the album's stays on the song
    upload(
        log,
        tags("Hit 2", "Other", "Now 99", 4, album_artist="Various Artists"),
        "s3",
        cover="d" * 64,
    )
    assert c.get_song(db.q, "s3").cover_sha256 == "d" * 64  # type: ignore[union-attr]
