"""LocalDisk on a real filesystem: reopening, crash debris, pragmas and the fsync rules."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from dspot.disk import DiskStats, LocalDisk

pytestmark = pytest.mark.anyio


async def test_reopen_keeps_committed_data(tmp_path: Path) -> None:
    root = tmp_path / "deep" / "node"
    disk = await LocalDisk.open(root)
    await disk.db.executescript("CREATE TABLE t (x INTEGER)")
    await disk.db.execute("INSERT INTO t VALUES (1)")
    await disk.db.execute("INSERT INTO t VALUES (2)", sync=False)
    async with disk.create("blobs/ab/abc") as writer:
        await writer.write(b"hello ")
        await writer.write(b"world")
        await writer.commit()
    async with disk.create("blobs/cd/cde") as writer:
        await writer.write(b"unsynced")
        await writer.commit(sync=False)
    uncommitted = disk.create("blobs/ef/never")
    await uncommitted.write(b"lost")
    await disk.aclose()

    disk = await LocalDisk.open(root)
    try:
        assert await disk.db.execute("SELECT x FROM t ORDER BY x") == [(1,), (2,)]
        assert await disk.list_files() == ["blobs/ab/abc", "blobs/cd/cde"]
        assert await disk.read("blobs/ab/abc", 6) == b"world"
        assert disk.stats() == DiskStats(files=2, bytes=19)
    finally:
        await disk.aclose()


async def test_open_removes_temp_files_left_by_a_crash(tmp_path: Path) -> None:
    debris = tmp_path / "files" / "blobs" / ".123.4.tmp"
    debris.parent.mkdir(parents=True)
    debris.write_bytes(b"half a file")
    (tmp_path / "files" / "blobs" / "real").write_bytes(b"12")
    disk = await LocalDisk.open(tmp_path)
    try:
        assert not debris.exists()
        assert await disk.list_files() == ["blobs/real"]
        assert disk.stats() == DiskStats(files=1, bytes=2)
    finally:
        await disk.aclose()


async def test_writer_streams_to_a_hidden_temp_file(local_disk: LocalDisk) -> None:
    directory = local_disk.root / "files" / "a"
    async with local_disk.create("a/b") as writer:
        await writer.write(b"x" * 10)
        temps = os.listdir(directory)
        assert len(temps) == 1 and temps[0].startswith(".")
        assert await local_disk.list_files() == []
        await writer.commit()
    assert os.listdir(directory) == ["b"]


async def test_close_aborts_open_writers(tmp_path: Path) -> None:
    disk = await LocalDisk.open(tmp_path)
    writer = disk.create("w/1")
    await writer.write(b"data")
    await disk.aclose()
    assert os.listdir(tmp_path / "files" / "w") == []


async def test_sqlite_is_wal_with_full_sync(local_disk: LocalDisk) -> None:
    assert await local_disk.db.execute("PRAGMA journal_mode") == [("wal",)]
    assert await local_disk.db.execute("PRAGMA synchronous") == [(2,)]  # FULL
    assert (local_disk.root / "meta.sqlite3").exists()
    await local_disk.db.executescript("CREATE TABLE t (x)")
    await local_disk.db.execute("INSERT INTO t VALUES (1)", sync=False)
    assert await local_disk.db.execute("PRAGMA synchronous", sync=False) == [(1,)]  # NORMAL
    assert await local_disk.db.execute("PRAGMA synchronous") == [(2,)]


class FsyncLog:
    """Records which paths os.fsync was called on."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.paths: list[str] = []
        real = os.fsync

        def fsync(fd: int) -> None:
            self.paths.append(os.readlink(f"/proc/self/fd/{fd}"))
            real(fd)

        monkeypatch.setattr(os, "fsync", fsync)

    def take(self) -> list[str]:
        paths, self.paths = self.paths, []
        return paths


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs Linux /proc")
async def test_fsync_rules(local_disk: LocalDisk, monkeypatch: pytest.MonkeyPatch) -> None:
    files = str(local_disk.root / "files")
    log = FsyncLog(monkeypatch)

    # Synced commit into new directories: parents of new dirs, the data, the directory.
    async with local_disk.create("blobs/ab/abc") as writer:
        await writer.write(b"data")
        await writer.commit()
    fsynced = log.take()
    assert fsynced[:2] == [files, f"{files}/blobs"]  # rule 3: new dirs' parents
    assert fsynced[2].startswith(f"{files}/blobs/ab/.")  # rule 1: the temp file's data
    assert fsynced[3:] == [f"{files}/blobs/ab"]  # rule 2: the directory after rename

    # Unsynced commit and delete: no fsync now, both caught up by sync().
    async with local_disk.create("blobs/ab/abd") as writer:
        await writer.write(b"data")
        await writer.commit(sync=False)
    await local_disk.delete("blobs/ab/abc", sync=False)
    assert log.take() == []
    await local_disk.sync()
    assert sorted(log.take()) == [f"{files}/blobs/ab", f"{files}/blobs/ab/abd"]

    await local_disk.delete("blobs/ab/abd")
    assert log.take() == [f"{files}/blobs/ab"]  # rule 4


def test_sqlite_has_fts5() -> None:
    """The example service's search needs FTS5; this Python's sqlite3 has it."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("CREATE VIRTUAL TABLE song_search USING fts5(title, artist)")
        conn.execute("INSERT INTO song_search VALUES ('Vitamin C', 'Can')")
        hits = conn.execute("SELECT title FROM song_search WHERE song_search MATCH 'vitamin'")
        assert hits.fetchall() == [("Vitamin C",)]
    finally:
        conn.close()


async def test_directories_and_files_are_private_from_creation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_chmod(*args: object, **kwargs: object) -> None:
        raise AssertionError("modes are set at creation, never with chmod afterwards")

    monkeypatch.setattr(os, "chmod", no_chmod)
    monkeypatch.setattr(os, "fchmod", no_chmod)
    old_umask = os.umask(0)  # the most permissive umask: modes must not rely on it
    try:
        root = tmp_path / "data" / "node"
        disk = await LocalDisk.open(root)
        try:
            await disk.db.executescript("CREATE TABLE t (x INTEGER)")
            await disk.db.execute("INSERT INTO t VALUES (1)")
            writer = disk.create("blobs/ab/abc")
            await writer.write(b"secret audio")
            temp = [p for p in (root / "files" / "blobs" / "ab").iterdir()]
            assert [_mode(p) for p in temp] == [0o600], "the temporary file too"
            await writer.commit()
            for directory in (root.parent, root, root / "files", root / "files" / "blobs"):
                assert _mode(directory) == 0o700, directory
            assert _mode(root / "files" / "blobs" / "ab") == 0o700
            for name in ("meta.sqlite3", "meta.sqlite3-wal", "meta.sqlite3-shm"):
                assert _mode(root / name) == 0o600, name
            assert _mode(root / "files" / "blobs" / "ab" / "abc") == 0o600
        finally:
            await disk.aclose()
    finally:
        os.umask(old_umask)


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def _resident_pages(path: Path) -> int:
    """Pages of ``path`` in the OS page cache (``mincore`` over a mapping of the file)."""
    import ctypes
    import mmap

    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int]
    libc.mmap.argtypes += [ctypes.c_int, ctypes.c_long]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    size = path.stat().st_size
    pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    vec = (ctypes.c_ubyte * pages)()
    with open(path, "rb") as f:
        addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, f.fileno(), 0)
        if addr in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), "mmap")
        try:
            if libc.mincore(addr, size, vec) != 0:
                raise OSError(ctypes.get_errno(), "mincore")
        finally:
            libc.munmap(addr, size)
    return sum(v & 1 for v in vec)


@pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="no posix_fadvise here")
async def test_a_file_written_without_cache_leaves_the_page_cache(local_disk: LocalDisk) -> None:
    data = os.urandom(4 << 20)
    for name, cache in (("keep/a", True), ("drop/a", False)):
        async with local_disk.create(name, cache=cache) as writer:
            await writer.write(data)
            await writer.commit()
    kept = _resident_pages(local_disk.root / "files" / "keep" / "a")
    dropped = _resident_pages(local_disk.root / "files" / "drop" / "a")
    assert kept > 0.9 * (len(data) // 4096)  # just written: every page still cached
    assert dropped < 0.1 * (len(data) // 4096)
    assert await local_disk.read("drop/a") == data  # read back from the disk


@pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="no posix_fadvise here")
async def test_a_file_written_without_cache_is_written_behind_every_few_mib(
    local_disk: LocalDisk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each ``WRITE_BEHIND`` bytes of a ``cache=False`` file go to writeback as they are
    written (the commit's fsync then has little left); a cached file waits for its commit."""
    from dspot.disk import _local

    handed: list[tuple[int, int]] = []
    real = os.posix_fadvise

    def record(fd: int, offset: int, length: int, advice: int) -> None:
        handed.append((offset, length))
        real(fd, offset, length, advice)

    monkeypatch.setattr(_local.os, "posix_fadvise", record)
    step, data = _local.WRITE_BEHIND, os.urandom(10 << 20)
    for name, cache in (("keep/a", True), ("drop/a", False)):
        async with local_disk.create(name, cache=cache) as writer:
            for at in range(0, len(data), 1 << 20):
                await writer.write(data[at : at + (1 << 20)])
            before_commit = list(handed)
            await writer.commit()
        if cache:
            assert before_commit == []
    assert before_commit == [(0, step), (step, step)]  # 10 MiB: two whole steps
    assert handed[-1] == (0, 0)  # then the whole file's pages, after the fsync
    assert await local_disk.read("drop/a") == data
