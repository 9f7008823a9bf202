"""One conformance suite for every disk: SimDisk and LocalDisk must behave the same."""

from __future__ import annotations

import sqlite3
from typing import Any

import anyio
import pytest
import trio.testing

from dspot.disk import Disk, DiskStats, FileWriter

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["trio", "asyncio"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    """Library code is anyio: the suite runs on trio (virtual time) and on asyncio."""
    if request.param == "trio":
        return "trio", {"clock": trio.testing.MockClock(autojump_threshold=0)}
    return "asyncio", {}


SCHEMA = """
CREATE TABLE artist (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE song (
    id INTEGER PRIMARY KEY,
    artist_id INTEGER NOT NULL REFERENCES artist(id),
    title TEXT NOT NULL
);
"""


async def _write(disk: Disk, name: str, data: bytes, *, sync: bool = True) -> None:
    async with disk.create(name) as writer:
        await writer.write(data)
        await writer.commit(sync=sync)


# -- database ------------------------------------------------------------------------------


async def test_execute_returns_rows(disk: Disk) -> None:
    await disk.db.executescript(SCHEMA)
    assert await disk.db.execute("INSERT INTO artist (name) VALUES (?)", ("Björk",)) == []
    await disk.db.execute("INSERT INTO artist (name) VALUES (:n)", {"n": "Can"})
    rows = await disk.db.execute("SELECT id, name FROM artist ORDER BY name")
    assert rows == [(1, "Björk"), (2, "Can")]
    returned = await disk.db.execute(
        "INSERT INTO artist (name) VALUES (?) RETURNING id", ("Nico",), sync=False
    )
    assert returned == [(3,)]


async def test_transaction_commits_on_normal_exit(disk: Disk) -> None:
    await disk.db.executescript(SCHEMA)
    async with disk.db.transaction() as tx:
        tx.execute("INSERT INTO artist (id, name) VALUES (1, 'Can')")
        tx.executemany(
            "INSERT INTO song (artist_id, title) VALUES (?, ?)",
            [(1, "Vitamin C"), (1, "Halleluhwah")],
        )
        assert tx.execute("SELECT count(*) FROM song") == [(2,)]
    assert await disk.db.execute("SELECT title FROM song ORDER BY id") == [
        ("Vitamin C",),
        ("Halleluhwah",),
    ]


async def test_transaction_rolls_back_on_exception(disk: Disk) -> None:
    await disk.db.executescript(SCHEMA)
    await disk.db.execute("INSERT INTO artist (name) VALUES ('kept')")
    with pytest.raises(RuntimeError, match="boom"):
        async with disk.db.transaction() as tx:
            tx.execute("INSERT INTO artist (name) VALUES ('lost')")
            tx.execute("DELETE FROM artist WHERE name = 'kept'")
            raise RuntimeError("boom")
    assert await disk.db.execute("SELECT name FROM artist") == [("kept",)]


async def test_failed_statement_rolls_back_whole_transaction(disk: Disk) -> None:
    await disk.db.executescript(SCHEMA)
    with pytest.raises(sqlite3.IntegrityError):
        async with disk.db.transaction() as tx:
            tx.execute("INSERT INTO artist (name) VALUES ('a')")
            tx.execute("INSERT INTO artist (name) VALUES ('a')")  # UNIQUE violation
    assert await disk.db.execute("SELECT count(*) FROM artist") == [(0,)]
    # and the database is usable afterwards
    await disk.db.execute("INSERT INTO artist (name) VALUES ('a')")


async def test_foreign_keys_are_enforced(disk: Disk) -> None:
    await disk.db.executescript(SCHEMA)
    with pytest.raises(sqlite3.IntegrityError):
        await disk.db.execute("INSERT INTO song (artist_id, title) VALUES (42, 'orphan')")


async def test_executescript_is_atomic(disk: Disk) -> None:
    with pytest.raises(sqlite3.OperationalError):
        await disk.db.executescript("CREATE TABLE a (x); CREATE TABLE a (x);")
    assert await disk.db.execute("SELECT name FROM sqlite_master") == []


async def test_transaction_is_unusable_after_exit(disk: Disk) -> None:
    await disk.db.executescript(SCHEMA)
    async with disk.db.transaction() as tx:
        pass
    with pytest.raises(anyio.ClosedResourceError):
        tx.execute("SELECT 1")


async def test_concurrent_transactions_are_serialized(disk: Disk) -> None:
    await disk.db.executescript("CREATE TABLE counter (n INTEGER); INSERT INTO counter VALUES (0);")
    inside = 0
    overlap = False

    async def bump() -> None:
        nonlocal inside, overlap
        async with disk.db.transaction(sync=False) as tx:
            inside += 1
            overlap = overlap or inside > 1
            [(n,)] = tx.execute("SELECT n FROM counter")
            await anyio.sleep(0.01)  # let the other tasks try to get in
            tx.execute("UPDATE counter SET n = ?", (n + 1,))
            inside -= 1

    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(bump)
    assert not overlap
    assert await disk.db.execute("SELECT n FROM counter") == [(10,)]


# -- files ---------------------------------------------------------------------------------


async def test_file_roundtrip_and_ranges(disk: Disk) -> None:
    data = bytes(range(256)) * 40
    async with disk.create("blobs/ab/abcdef") as writer:
        for i in range(0, len(data), 1000):  # streamed in chunks
            await writer.write(data[i : i + 1000])
        assert writer.bytes_written == len(data)
        await writer.commit()
    assert await disk.exists("blobs/ab/abcdef")
    assert await disk.size("blobs/ab/abcdef") == len(data)
    assert await disk.read("blobs/ab/abcdef") == data
    assert await disk.read("blobs/ab/abcdef", 100) == data[100:]
    assert await disk.read("blobs/ab/abcdef", 100, 50) == data[100:150]
    assert await disk.read("blobs/ab/abcdef", len(data) - 3, 50) == data[-3:]
    assert await disk.read("blobs/ab/abcdef", len(data) + 10) == b""
    assert await disk.read("blobs/ab/abcdef", 0, 0) == b""
    with pytest.raises(ValueError):
        await disk.read("blobs/ab/abcdef", -1)
    with pytest.raises(ValueError):
        await disk.read("blobs/ab/abcdef", 0, -1)


async def test_file_invisible_until_commit(disk: Disk) -> None:
    async with disk.create("f") as writer:
        await writer.write(b"partial")
        assert not await disk.exists("f")
        assert await disk.list_files() == []
        await writer.commit()
    assert await disk.read("f") == b"partial"


async def test_write_file(disk: Disk) -> None:
    await disk.write_file("small/one", b"payload")
    await disk.write_file("small/two", b"payload", sync=False)
    assert await disk.read("small/one") == await disk.read("small/two") == b"payload"


async def test_empty_file(disk: Disk) -> None:
    async with disk.create("empty") as writer:
        await writer.commit()
    assert await disk.read("empty") == b""
    assert await disk.size("empty") == 0
    assert disk.stats() == DiskStats(files=1, bytes=0)


async def test_commit_replaces_existing_file(disk: Disk) -> None:
    await _write(disk, "x", b"old contents")
    await _write(disk, "x", b"new")
    assert await disk.read("x") == b"new"
    assert disk.stats() == DiskStats(files=1, bytes=3)


async def test_missing_file(disk: Disk) -> None:
    assert not await disk.exists("nope")
    with pytest.raises(FileNotFoundError):
        await disk.read("nope")
    with pytest.raises(FileNotFoundError):
        await disk.size("nope")
    with pytest.raises(FileNotFoundError):
        await disk.delete("nope")


async def test_delete(disk: Disk) -> None:
    await _write(disk, "a/1", b"one")
    await _write(disk, "a/2", b"two", sync=False)
    await disk.delete("a/1")
    await disk.delete("a/2", sync=False)
    assert not await disk.exists("a/1")
    assert await disk.list_files() == []
    assert disk.stats() == DiskStats(files=0, bytes=0)


async def test_list_files_sorted_by_prefix(disk: Disk) -> None:
    names = ["blobs/cd/cd01", "blobs/ab/ab02", "blobs/ab/ab01", "meta/x", "blobsy"]
    for name in names:
        await _write(disk, name, name.encode(), sync=False)
    assert await disk.list_files() == sorted(names)
    assert await disk.list_files("blobs/") == ["blobs/ab/ab01", "blobs/ab/ab02", "blobs/cd/cd01"]
    assert await disk.list_files("blobs/ab/ab0") == ["blobs/ab/ab01", "blobs/ab/ab02"]
    assert await disk.list_files("blobs") == [*sorted(names[:3]), "blobsy"]
    assert await disk.list_files("zzz/") == []
    assert await disk.list_files("../") == []


async def test_abort_leaves_nothing(disk: Disk) -> None:
    writer = disk.create("gone/1")
    await writer.write(b"data")
    await writer.abort()
    await writer.abort()  # idempotent
    with pytest.raises(anyio.ClosedResourceError):
        await writer.write(b"more")
    with pytest.raises(anyio.ClosedResourceError):
        await writer.commit()

    with pytest.raises(RuntimeError):
        async with disk.create("gone/2") as w:
            await w.write(b"data")
            raise RuntimeError

    async with disk.create("gone/3") as w:
        await w.write(b"data")  # leaving without commit aborts

    assert await disk.list_files() == []
    assert disk.stats() == DiskStats(files=0, bytes=0)


async def test_writer_is_closed_after_commit(disk: Disk) -> None:
    writer: FileWriter
    async with disk.create("done") as writer:
        await writer.commit()
    with pytest.raises(anyio.ClosedResourceError):
        await writer.write(b"x")
    await writer.abort()  # no effect on a committed file
    assert await disk.exists("done")


async def test_stats_count_committed_files(disk: Disk) -> None:
    assert disk.stats() == DiskStats(files=0, bytes=0)
    await _write(disk, "a", b"12345")
    await _write(disk, "b/c", b"678", sync=False)
    assert disk.stats() == DiskStats(files=2, bytes=8)


async def test_sync_after_unsynced_writes(disk: Disk) -> None:
    await disk.db.executescript("CREATE TABLE t (x)")
    await disk.db.execute("INSERT INTO t VALUES (1)", sync=False)
    await _write(disk, "u/1", b"unsynced", sync=False)
    await disk.delete("u/1", sync=False)
    await _write(disk, "u/2", b"unsynced", sync=False)
    await disk.sync()
    await disk.sync()  # nothing left to do
    assert await disk.db.execute("SELECT x FROM t") == [(1,)]
    assert await disk.list_files() == ["u/2"]


BAD_NAMES = [
    "",
    "/etc/passwd",
    "../escape",
    "a/../../b",
    "a/./b",
    "a//b",
    "a/",
    ".hidden",
    "a/.tmp",
    "back\\slash",
    "nul\0byte",
]


@pytest.mark.parametrize("name", BAD_NAMES)
async def test_invalid_names_rejected(disk: Disk, name: str) -> None:
    with pytest.raises(ValueError):
        disk.create(name)
    with pytest.raises(ValueError):
        await disk.read(name)
    with pytest.raises(ValueError):
        await disk.exists(name)
    with pytest.raises(ValueError):
        await disk.size(name)
    with pytest.raises(ValueError):
        await disk.delete(name)


async def test_closed_disk_refuses_work(disk: Disk) -> None:
    writer = disk.create("open")
    await writer.write(b"x")
    await disk.aclose()
    await disk.aclose()  # idempotent
    with pytest.raises(anyio.ClosedResourceError):
        await writer.commit()
    with pytest.raises(anyio.ClosedResourceError):
        await disk.db.execute("SELECT 1")
    with pytest.raises(anyio.ClosedResourceError):
        await disk.read("open")
