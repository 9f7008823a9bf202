"""The catalog as the token ring's state machine: a snapshot taken on one replica and
restored on another gives the same catalog, row for row and answer for answer, on the
simulated and the real disk; a crash during a restore leaves the old catalog."""

from __future__ import annotations

import json
import random
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from dspot_spotify import catalog as c
from dspot_spotify.api.wire import API_JSON
from dspot_spotify.catalog import snapshot
from dspot_spotify.replica import CatalogReplica
from dspot_spotify.statemachine import CatalogMachine

from dspot.disk import Disk, DiskFault, LocalDisk, SimDisk
from dspot.env import run_in_thread
from dspot.tokenring import SnapshotMeta, SnapshotReader, SnapshotWriter

from .conftest import Db
from .test_spotify_catalog import Log, seed_music

Entries = list[tuple[c.LogPosition, bytes]]


def history() -> Entries:
    """A log that leaves something in every catalog table: users (one with Subsonic
    credentials, one revoked token), music with genres, an edited and a deleted song (a gap
    in the rowids), playlists with items, likes of all three kinds, plays, rejections."""
    log = Log(Db())
    seed_music(log)
    a = log.at
    key = "k" * 43
    creds = c.SetSubsonicCredentials(actor="ana", user_id="ana", password="p" * 24, api_key=key)
    log.ok(creds)
    log.ok(c.RevokeToken(actor="bob", token_id="t1", user_id="bob", expires_at=a() + 10**6))
    log.ok(
        c.UpdateSong(
            actor="ana", song_id="s6", title="Idioteque (Live)", artist_id="radio", album_id="kida"
        )
    )
    log.ok(c.DeleteSong(actor="ana", song_id="s3"))
    log.ok(c.CreatePlaylist(actor="ana", at=a(), playlist_id="p", name="Road Trip"))
    for item, song in (("i1", "s1"), ("i2", "s4"), ("i3", "s6")):
        log.ok(c.AddToPlaylist(actor="ana", at=a(), playlist_id="p", item_id=item, song_id=song))
    log.ok(c.MovePlaylistItem(actor="ana", playlist_id="p", item_id="i3", before_item_id="i1"))
    log.ok(c.Like(actor="bob", at=a(), target_id="s1", target="song"))
    log.ok(c.Like(actor="bob", at=a(), target_id="okc", target="album"))
    log.ok(c.Like(actor="ana", at=a(), target_id="radio", target="artist"))
    log.ok(c.RecordPlay(actor="bob", at=a(), song_id="s2", count=3))
    log.rejected(c.Like(actor="bob", target_id="nope", target="song"), "unknown song")
    # More songs, so a restore copies several batches of some tables.
    for n in range(snapshot.BATCH + 50):
        log.ok(
            c.CreateSong(
                actor="ana",
                at=a(),
                song_id=f"x{n}",
                title=f"Extra {n}",
                artist_id="radio",
                genres=("Filler",),
                duration=1.0,
                blob_sha256=f"{n:064x}",
                mime="audio/mpeg",
                size=1,
            )
        )
    log.ok(c.CreatePlaylist(actor="bob", at=a(), playlist_id="q", name="Later"))
    log.ok(c.AddToPlaylist(actor="bob", at=a(), playlist_id="q", item_id="j1", song_id="x7"))
    log.ok(c.Like(actor="ana", at=a(), target_id="x9", target="song"))
    return log.entries


HISTORY = history()
CUT = len(HISTORY) - 3
"""The snapshot is taken here; the rest of the log is its tail."""


def answers(tx: c.Tx) -> str:
    """What the APIs answer from this catalog, as JSON text."""
    out: dict[str, Any] = {
        "songs": c.list_songs(tx, limit=200),
        "songs_by_title": c.list_songs(tx, q="idioteque"),
        "extra": c.list_songs(tx, q="extra 20", limit=20),
        "albums": c.list_albums(tx, limit=200),
        "artists": c.list_artists(tx, limit=200),
        "search": c.search(tx, "radio"),
        "playlists": [c.get_playlist(tx, "p"), c.get_playlist(tx, "q")],
        "user_playlists": c.user_playlists(tx, "ana"),
        "liked": [c.liked_songs(tx, "bob"), c.liked_albums(tx, "bob"), c.liked_artists(tx, "ana")],
        "users": c.list_users(tx),
        "revoked": c.is_token_revoked(tx, token_id="t1", user_id="bob", issued_at=2**40),
        "subsonic": c.subsonic_credentials(tx, "ana"),
        "rejections": c.rejections(tx),
        "genres": c.genres(tx),
    }
    return json.dumps(API_JSON.unstructure(out), sort_keys=True)


async def make_disk(kind: str, path: Path) -> Disk:
    if kind == "sim":
        return SimDisk(random.Random(0))
    return await LocalDisk.open(path)


def machine(replica: CatalogReplica, kind: str) -> CatalogMachine:
    return CatalogMachine(replica, offload=run_in_thread if kind == "local" else _inline)


async def _inline(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)


async def replica_with(disk: Disk, entries: Entries) -> CatalogReplica:
    replica = CatalogReplica(disk.db)
    await replica.open()
    for pos, data in entries:
        await replica.apply(pos, data, sync=False)
    return replica


async def take(m: CatalogMachine, disk: Disk, name: str = "snap/1") -> SnapshotMeta:
    """Take a snapshot of ``m`` into the file ``name`` of ``disk`` (state bytes only)."""
    pos = m.replica.position
    assert pos is not None
    async with disk.create(name) as writer:
        out = SnapshotWriter(writer)
        await m.save_snapshot(out)
        await writer.commit()
    return SnapshotMeta(pos.seq, pos.epoch, name, out.size, out.hexdigest(), 0)


def run(main: Callable[[], Awaitable[None]]) -> None:
    anyio.run(main, backend="trio")


@pytest.mark.parametrize(
    ("source", "target"), [("sim", "sim"), ("local", "local"), ("local", "sim"), ("sim", "local")]
)
def test_a_snapshot_restored_on_an_empty_replica_answers_byte_identically(
    tmp_path: Path, source: str, target: str
) -> None:
    async def main() -> None:
        src_disk = await make_disk(source, tmp_path / "src")
        dst_disk = await make_disk(target, tmp_path / "dst")
        async with src_disk, dst_disk:
            original = await replica_with(src_disk, HISTORY[:CUT])
            meta = await take(machine(original, source), src_disk)
            copy_name = "snap/copy"
            await dst_disk.write_file(copy_name, await src_disk.read(meta.name))
            restored = await replica_with(dst_disk, [])
            m = machine(restored, target)
            await m.restore_snapshot(SnapshotReader(dst_disk, attrs_evolve(meta, copy_name)))
            assert m.restored == 1
            assert restored.position == original.position
            assert await m.applied_index() == CUT
            assert await restored.read(answers) == await original.read(answers)
            assert await restored.read(snapshot.catalog_digest) == await original.read(
                snapshot.catalog_digest
            )
            # The tail applies on top of the restored catalog as on the original.
            for pos, data in HISTORY[CUT:]:
                await original.apply(pos, data)
                await restored.apply(pos, data)
            assert await restored.read(answers) == await original.read(answers)
            assert await restored.read(snapshot.catalog_digest) == await original.read(
                snapshot.catalog_digest
            )

    run(main)


def attrs_evolve(meta: SnapshotMeta, name: str) -> SnapshotMeta:
    return SnapshotMeta(meta.index, meta.epoch, name, meta.size, meta.sha256, meta.data_offset)


def test_a_restore_replaces_a_replica_that_was_behind(tmp_path: Path) -> None:
    async def main() -> None:
        async with (
            await LocalDisk.open(tmp_path / "a") as a,
            await LocalDisk.open(tmp_path / "b") as b,
        ):
            ahead = await replica_with(a, HISTORY)
            behind = await replica_with(b, HISTORY[:20])
            before = await behind.read(answers)
            meta = await take(machine(ahead, "local"), a)
            await b.write_file(meta.name, await a.read(meta.name))
            await machine(behind, "local").restore_snapshot(SnapshotReader(b, meta))
            assert await behind.read(answers) == await ahead.read(answers) != before
            # What a crash leaves: the restored catalog is durable, the scratch files gone.
            assert list((tmp_path / "b" / "catalog-snapshots").iterdir()) == []
        async with await LocalDisk.open(tmp_path / "b") as b:
            again = await replica_with(b, [])
            assert again.position == HISTORY[-1][0]
            async with await LocalDisk.open(tmp_path / "a") as a:
                assert await again.read(answers) == await (await replica_with(a, [])).read(answers)

    run(main)


def test_a_crash_during_a_restore_leaves_the_old_catalog() -> None:
    async def main() -> None:
        source = SimDisk(random.Random(1))
        disk = SimDisk(random.Random(2))
        original = await replica_with(source, HISTORY)
        meta = await take(machine(original, "sim"), source)
        await disk.write_file(meta.name, await source.read(meta.name))
        old = await replica_with(disk, HISTORY[:40])
        await disk.sync()
        old_answers = await old.read(answers)
        old_position = old.position
        m = machine(old, "sim")
        batches = 0

        async def crash_on_the_third_batch() -> None:
            nonlocal batches
            batches += 1
            if batches == 3:
                disk.crash()

        m.on_restore_batch = crash_on_the_third_batch
        with pytest.raises(DiskFault):
            await m.restore_snapshot(SnapshotReader(disk, meta))
        assert batches == 3
        after = await replica_with(disk, [])  # the node restarts on the crashed disk
        assert after.position == old_position
        assert await after.read(answers) == old_answers
        # And the restore, done again after the restart, completes.
        await machine(after, "sim").restore_snapshot(SnapshotReader(disk, meta))
        assert await after.read(answers) == await original.read(answers)

    run(main)


def test_the_copy_holds_the_catalog_tables_and_nothing_else(tmp_path: Path) -> None:
    async def main() -> None:
        async with await LocalDisk.open(tmp_path / "n") as disk:
            replica = await replica_with(disk, HISTORY)
            async with disk.db.transaction() as tx:  # what else a node keeps in its database
                tx.execute("CREATE TABLE tokenring_log (seq INTEGER PRIMARY KEY, data BLOB)")
                tx.executemany(
                    "INSERT INTO tokenring_log (data) VALUES (?)",
                    [(b"x" * 1000,) for _ in range(5000)],
                )
            copy = tmp_path / "copy.sqlite3"
            path = Path(await replica.read(snapshot.database_file))
            await anyio.to_thread.run_sync(snapshot.export_file, path, copy)
            conn = sqlite3.connect(copy)
            try:
                tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
                assert "tokenring_log" not in tables
                assert {t.name for t in snapshot.layout().tables} <= tables
                assert snapshot.catalog_digest(conn) == await replica.read(snapshot.catalog_digest)
            finally:
                conn.close()
            assert copy.stat().st_size < 2_000_000  # the dropped table's pages are gone

    run(main)


def test_every_schema_table_is_in_the_layout() -> None:
    """The layout is the schema's own: every table it makes is copied (full-text tables by
    their content), and every index is rebuilt."""
    db = Db()
    names = {
        r[1]: r[2]
        for r in db.conn.execute("PRAGMA table_list")
        if not str(r[1]).startswith("sqlite_")
    }
    plan = snapshot.layout()
    assert {t.name for t in plan.tables} == {n for n, kind in names.items() if kind != "shadow"}
    assert {t.name for t in plan.tables if t.virtual} == {"songs_fts", "albums_fts", "artists_fts"}
    indexes = {r[0] for r in db.conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    made = Db()
    made.conn.execute("BEGIN")
    snapshot.drop_and_create(made.q)
    for stmt in plan.indexes:
        made.conn.execute(stmt)
    made.conn.execute("COMMIT")
    again = {r[0] for r in made.conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert again == indexes
