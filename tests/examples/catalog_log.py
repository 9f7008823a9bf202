"""A hand-fed catalog log for the catalog's tests: :class:`Log` applies entries to a
replica at increasing positions; ``seed_*`` fill it with users and music."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from dspot_spotify import catalog as c
from dspot_spotify.auth import ScryptParams, hash_password

if TYPE_CHECKING:
    from tests.examples.conftest import Db

__all__ = ["FAST", "HASH", "SHA", "Log", "new_song", "seed_music", "seed_users", "sha"]

FAST = ScryptParams(n=2**4, r=1, p=1)
HASH = hash_password("correct horse", token_bytes=random.Random(0).randbytes, params=FAST)
SHA = "a" * 64


def sha(n: int) -> str:
    return f"{n:064x}"


def new_song(song_id: str, title: str, artist_id: str, **more: Any) -> c.CreateSong:
    """A one-second song of one byte uploaded by ana (``more``: other fields)."""
    fields: dict[str, Any] = {
        "actor": "ana",
        "duration": 1.0,
        "blob_sha256": SHA,
        "mime": "audio/mpeg",
        "size": 1,
    }
    return c.CreateSong(song_id=song_id, title=title, artist_id=artist_id, **(fields | more))


class Log:
    """Feeds entries to a replica at increasing positions, remembering them for replay."""

    def __init__(self, db: Db, epoch: int = 1) -> None:
        self.db = db
        self.epoch = epoch
        self.seq = 0
        self.entries: list[tuple[c.LogPosition, bytes]] = []
        self.clock = 1_700_000_000_000

    def __call__(self, entry: c.Entry) -> c.ApplyResult:
        self.seq += 1
        pos = c.LogPosition(self.epoch, self.seq)
        data = c.encode_entry(entry)
        self.entries.append((pos, data))
        with self.db.tx() as tx:
            return c.apply(tx, pos, c.decode_entry(data))

    def at(self) -> int:
        self.clock += 1000
        return self.clock

    def ok(self, entry: c.Entry) -> None:
        result = self(entry)
        assert result.status == "applied", result.reason

    def rejected(self, entry: c.Entry, reason: str, code: c.RejectCode | None = None) -> None:
        result = self(entry)
        assert result.status == "rejected"
        assert result.reason is not None and reason in result.reason, result.reason
        assert result.code is not None and result.code in c.REJECT_STATUS
        if code is not None:
            assert result.code == code


def seed_users(log: Log) -> None:
    log.ok(
        c.RegisterUser(
            user_id="admin", username="Admin", password_hash=HASH, role="admin", at=log.at()
        )
    )
    log.ok(c.RegisterUser(user_id="ana", username="ana", password_hash=HASH, at=log.at()))
    log.ok(c.RegisterUser(user_id="bob", username="bob", password_hash=HASH, at=log.at()))


def seed_music(log: Log, *, users: bool = True) -> None:
    """Two artists, three albums, seven songs; ana uploads everything (``users``: register
    the users first)."""
    if users:
        seed_users(log)
    a = log.at

    def artist(i: str, name: str) -> None:
        log.ok(c.CreateArtist(actor="ana", at=a(), artist_id=i, name=name))

    def album(i: str, title: str, artist_id: str, year: int) -> None:
        log.ok(
            c.CreateAlbum(
                actor="ana",
                at=a(),
                album_id=i,
                title=title,
                artist_id=artist_id,
                year=year,
                cover_sha256=sha(100 + year),
            )
        )

    def song(
        i: str,
        title: str,
        artist_id: str,
        album_id: str | None,
        track: int | None,
        genres: tuple[str, ...],
        n: int,
    ) -> None:
        log.ok(
            c.CreateSong(
                actor="ana",
                at=a(),
                song_id=i,
                title=title,
                artist_id=artist_id,
                album_id=album_id,
                track=track,
                year=2001,
                genres=genres,
                duration=100.0 + n,
                blob_sha256=sha(n),
                mime="audio/mpeg",
                size=1000 * n,
            )
        )

    artist("beyonce", "Beyoncé")
    artist("radio", "Radiohead")
    album("lemonade", "Lemonade", "beyonce", 2016)
    album("okc", "OK Computer", "radio", 1997)
    album("kida", "Kid A", "radio", 2000)
    song("s1", "Formation", "beyonce", "lemonade", 12, ("R&B", "Pop"), 1)
    song("s2", "Hold Up", "beyonce", "lemonade", 2, ("Pop",), 2)
    song("s3", "Sorry", "beyonce", "lemonade", 5, ("R&B",), 3)
    song("s4", "Airbag", "radio", "okc", 1, ("Alternative Rock",), 4)
    song("s5", "Paranoid Android", "radio", "okc", 2, ("Alternative Rock", "Art Rock"), 5)
    song("s6", "Idioteque", "radio", "kida", 8, ("Electronic",), 6)
    song("s7", "Creep", "radio", None, None, ("Alternative Rock",), 7)
