"""Replica behaviour: random logs converge under redelivery; the real dspot disk works."""

from __future__ import annotations

import random

from dspot_spotify import catalog as c

from dspot.disk import SimDisk
from dspot.testing import run_with_mock_clock

from .catalog_log import HASH
from .conftest import Db


def random_log(rng: random.Random, n: int) -> list[c.Entry]:
    """A random mix of valid and invalid entries over a small id space."""
    users = ["u0", "u1", "u2", "ghost"]
    artists = ["a0", "a1", "a2"]
    albums = ["al0", "al1"]
    songs = ["s0", "s1", "s2", "s3"]
    playlists = ["p0", "p1"]
    items = [f"i{k}" for k in range(6)]
    out: list[c.Entry] = [
        c.RegisterUser(user_id="u0", username="root", password_hash=HASH, role="admin")
    ]
    for k in range(n):
        actor = rng.choice(users)
        at = 1000 + k
        pick = rng.randrange(14)
        entry: c.Entry
        if pick == 0:
            entry = c.RegisterUser(
                user_id=rng.choice(users), username=f"user{rng.randrange(4)}", password_hash=HASH
            )
        elif pick == 1:
            entry = c.CreateArtist(
                actor=actor,
                at=at,
                artist_id=rng.choice(artists),
                name=rng.choice(["Alpha", "Beta", "Gamma Ray", ""]),
            )
        elif pick == 2:
            entry = c.CreateAlbum(
                actor=actor,
                at=at,
                album_id=rng.choice(albums),
                title=rng.choice(["One", "Two"]),
                artist_id=rng.choice(artists),
            )
        elif pick in (3, 4):
            entry = c.CreateSong(
                actor=actor,
                at=at,
                song_id=rng.choice(songs),
                title=rng.choice(["Song", "Tune", "Air"]),
                artist_id=rng.choice(artists),
                album_id=rng.choice([*albums, None]),
                genres=tuple(rng.sample(["Pop", "Rock", "Jazz"], 2)),
                duration=rng.uniform(1, 300),
                blob_sha256="e" * 64,
                mime="audio/ogg",
                size=rng.randrange(10**6),
            )
        elif pick == 5:
            entry = c.UpdateArtist(
                actor=actor,
                at=at,
                artist_id=rng.choice(artists),
                name=rng.choice(["Renamed", "Alpha"]),
            )
        elif pick == 6:
            entry = c.DeleteSong(actor=actor, at=at, song_id=rng.choice(songs))
        elif pick == 7:
            entry = c.CreatePlaylist(
                actor=actor, at=at, playlist_id=rng.choice(playlists), name="Mix"
            )
        elif pick in (8, 9):
            entry = c.AddToPlaylist(
                actor=actor,
                at=at,
                playlist_id=rng.choice(playlists),
                item_id=rng.choice(items),
                song_id=rng.choice(songs),
                before_item_id=rng.choice([None, *items]),
            )
        elif pick == 10:
            entry = c.MovePlaylistItem(
                actor=actor,
                at=at,
                playlist_id=rng.choice(playlists),
                item_id=rng.choice(items),
                before_item_id=rng.choice([None, *items]),
            )
        elif pick == 11:
            entry = c.RemoveFromPlaylist(
                actor=actor, at=at, playlist_id=rng.choice(playlists), item_id=rng.choice(items)
            )
        elif pick == 12:
            entry = c.Like(actor=actor, at=at, target="song", target_id=rng.choice(songs))
        else:
            entry = c.RecordPlay(actor=actor, at=at, song_id=rng.choice(songs))
        out.append(entry)
    return out


def test_random_logs_converge_under_redelivery() -> None:
    for seed in range(6):
        rng = random.Random(seed)
        log = [
            (c.LogPosition(1 + k // 50, k % 50), c.encode_entry(e))
            for k, e in enumerate(random_log(rng, 150))
        ]
        a, b = Db(), Db()
        statuses = []
        with a.tx() as tx:
            for pos, data in log:
                statuses.append(c.apply_encoded(tx, pos, data).status)
        # replica b: every entry delivered 1-3 times, plus stale redeliveries, many txs
        k = 0
        while k < len(log):
            with b.tx() as tx:
                for _ in range(rng.randint(1, 3)):
                    c.apply_encoded(tx, *log[k])
                if rng.random() < 0.3:
                    c.apply_encoded(tx, *log[rng.randrange(k + 1)])
            k += 1
        assert a.dump() == b.dump(), seed
        assert "applied" in statuses and "rejected" in statuses
        # the full-text index agrees with the songs table
        rows = a.conn.execute(
            "SELECT s.title, ar.name FROM songs s JOIN artists ar ON ar.id = s.artist_id"
        ).fetchall()
        for title, artist in rows:
            hits = c.list_songs(a.q, q=f"{title} {artist}").items
            assert any(h.title == title and h.artist_name == artist for h in hits)
        assert c.list_songs(a.q, limit=200).total == len(rows)


def test_applies_through_a_dspot_simdisk_transaction_and_survives_a_crash() -> None:
    entries = [
        c.RegisterUser(user_id="u", username="solo", password_hash=HASH, role="admin"),
        c.CreateArtist(actor="u", at=1, artist_id="a", name="Durable"),
        c.CreateArtist(actor="u", at=2, artist_id="b", name="Volatile"),
    ]

    async def main() -> None:
        disk = SimDisk(random.Random(0))
        async with disk.db.transaction() as tx:
            c.create_schema(tx)
        for seq, entry in enumerate(entries[:2], start=1):
            async with disk.db.transaction() as tx:
                assert c.apply(tx, c.LogPosition(1, seq), entry).status == "applied"
        async with disk.db.transaction(sync=False) as tx:  # not yet durable
            c.apply(tx, c.LogPosition(1, 3), entries[2])
        disk.crash()
        async with disk.db.transaction() as tx:
            assert c.applied_position(tx) == c.LogPosition(1, 2)
            assert c.get_artist(tx, "b") is None
            # the log is replayed from the start: only the lost entry takes effect
            results = [
                c.apply(tx, c.LogPosition(1, s), e).status for s, e in enumerate(entries, start=1)
            ]
            assert results == ["skipped", "skipped", "applied"]
            assert [a.name for a in c.list_artists(tx, q="volatile").items] == ["Volatile"]

    run_with_mock_clock(main)
