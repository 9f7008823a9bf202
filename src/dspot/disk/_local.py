"""The production disk: SQLite (WAL) for metadata, one real file per blob.

Layout under the root directory: ``meta.sqlite3`` (plus its ``-wal``/``-shm``) and
``files/<name>``, where a name's ``/`` separators become subdirectories.

Fsync rules, and why each one exists
------------------------------------
1. **File data before rename.** A file is written to a temporary file in its final
   directory, fsynced, then ``os.replace``-d over its name. Without the fsync the rename
   can reach the disk before the data (delayed allocation), and after a power loss the name
   points at an empty or partly written file that we already acknowledged.
2. **Directory after rename.** The rename changes the directory, not the file; fsyncing the
   directory makes the new name durable. Without it a crash can bring back the old file or
   no file at all.
3. **Parent after mkdir.** A new subdirectory (``blobs/ab/``) is an entry in its parent;
   we fsync the parent right after creating it, else a crash can lose the whole
   subdirectory with every file in it. Directories are created rarely, so this is always
   done, even for unsynced writes.
4. **Directory after unlink** (``delete(sync=True)``), so a deleted file cannot come back
   after a crash (a garbage-collected blob reappearing would confuse repair).
5. **SQLite** runs ``journal_mode=WAL`` with ``synchronous=FULL``: every commit fsyncs the
   WAL, so a commit is durable when it returns. The price is one fsync per write
   transaction (a few ms on SSD, more on spinning disks); batch writes into one transaction
   when that matters. A ``sync=False`` transaction commits with ``synchronous=NORMAL`` (no
   fsync: it may be lost by a power failure, never corrupted) until the next synced commit
   or :meth:`LocalDisk.sync`, which fsyncs the WAL.
6. **sync=False files** skip rules 1, 2 and 4; :meth:`LocalDisk.sync` later fsyncs each such
   file and its directory.

Permissions: everything is private to the owner from the moment it exists. Directories are
created with mode 0700, the database and every file with 0600 (the SQLite file is created
empty by us, and SQLite gives its ``-wal``/``-shm`` the database's mode). The modes are
passed to ``mkdir``/``open``, never set with ``chmod`` afterwards, so there is no window in
which another user could open them; a umask can only take more bits away.

Caveats: on macOS ``fsync`` does not flush the drive's cache (``F_FULLFSYNC`` would);
Linux is the production target. Windows cannot fsync a directory; that step is skipped.

Threads and connections
-----------------------
File I/O runs in worker threads through :func:`anyio.open_file` and
:func:`anyio.to_thread.run_sync` (``aiofiles`` would tie us to asyncio; this runs on trio
too). SQLite has one **writer** connection guarded by one lock: commits, scripts and WAL
syncs run in a worker thread; statements of :meth:`~dspot.disk.Database.transaction` run on
the event loop thread while the lock is held (keep them quick), those of
:meth:`~dspot.disk.Database.write` in a worker thread. **Reads**
(:meth:`~dspot.disk.Database.read`) use a pool of ``query_only`` reader connections, one
worker thread each: WAL gives each read a snapshot of committed state while the writer goes
on, so a long search never holds the lock the token ring's log and the catalog's apply
path write under, and never runs on the event loop. All connections use
``check_same_thread=False``; each is used by one thread at a time.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sqlite3
import stat
from collections.abc import Callable
from pathlib import Path
from typing import IO, Concatenate, ParamSpec, TypeVar

import anyio
import anyio.to_thread

from dspot.disk._base import (
    Disk,
    DiskStats,
    FileWriter,
    ReadTransaction,
    SqliteDatabase,
    Transaction,
    check_range,
    validate_name,
)

__all__ = ["LocalDisk"]

_DB_NAME = "meta.sqlite3"
_FILES_DIR = "files"
_TMP_SUFFIX = ".tmp"
_tmp_counter = itertools.count()
DEFAULT_READERS = 4
"""Reader connections (and worker threads) a LocalDisk serves reads with."""

READER_CACHE_KIB = 8192
"""Page cache of each reader connection (SQLite's default is 2 MiB). A full-text search over
10,000 songs in a 23 MB catalog read its pages from the operating system again and again
with 2 MiB: 369 searches/s on one thread against 572 with 8 MiB (more gained little)."""

P = ParamSpec("P")
T = TypeVar("T")
_DIR_MODE = 0o700
_FILE_MODE = 0o600


def _private_opener(path: str, flags: int) -> int:
    """``open(..., opener=)`` that creates files readable by their owner only."""
    return os.open(path, flags, _FILE_MODE)


def _sync(fd: int, cache: bool) -> None:
    """Make a file's bytes durable (rule 1); ``cache=False`` then drops its now clean pages
    from the page cache. On a 2-core VM here, writing 64 MiB files one after another cost
    0.15 s of system time each once the cache had grown by about 600 MiB (fresh pages are
    expensive to hand out), against 0.018 s each when every file dropped its pages."""
    os.fsync(fd)
    if not cache and hasattr(os, "posix_fadvise"):
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


WRITE_BEHIND = 4 * 1024 * 1024
"""Bytes a file created with ``cache=False`` collects before they are handed to the kernel's
writeback (and their pages dropped), instead of all at the final fsync. Measured on a 2-core
VM writing 64 MiB paced like an upload: the fsync at commit took 33-42 ms alone and 85-110 ms
with three such files at once; handing over every 4 MiB left it 3-10 ms."""


def _write_behind(file: IO[bytes], data: bytes, handed: int, written: int) -> int:
    """Write ``data`` (which ends the file at ``written`` bytes). Once ``WRITE_BEHIND`` bytes
    past ``handed`` are written, start their writeback now and drop their pages (Linux
    starts writeback of dirty pages on ``POSIX_FADV_DONTNEED``); returns the new ``handed``."""
    file.write(data)
    if written - handed < WRITE_BEHIND or not hasattr(os, "posix_fadvise"):
        return handed
    file.flush()
    os.posix_fadvise(file.fileno(), handed, written - handed, os.POSIX_FADV_DONTNEED)
    return written


def _fsync_dir(path: Path) -> None:
    if os.name == "nt":  # Windows cannot open a directory for fsync
        return
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_if_present(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        _fsync_file(path)


def _makedirs_durable(path: Path) -> None:
    """Create ``path`` and missing parents, fsyncing each new directory's parent (rule 3)."""
    missing: list[Path] = []
    probe = path
    while not probe.is_dir():
        missing.append(probe)
        probe = probe.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=_DIR_MODE)
        except FileExistsError:
            if not directory.is_dir():
                raise
            continue  # someone else created it (and fsynced its parent)
        _fsync_dir(directory.parent)


def _regular_size(path: Path) -> int | None:
    """Size of a regular file, ``None`` if there is none at ``path``."""
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


def _read_range(path: Path, offset: int, length: int | None) -> bytes:
    if _regular_size(path) is None:
        raise FileNotFoundError(str(path))
    with path.open("rb") as f:
        f.seek(offset)
        return f.read(-1 if length is None else length)


def _is_temp(filename: str) -> bool:
    return filename.startswith(".")


def _scan(files_root: Path, *, remove_temps: bool) -> tuple[int, int]:
    """Count committed files and bytes; optionally delete temp files left by a crash."""
    count = total = 0
    for dirpath, dirnames, filenames in os.walk(files_root):
        dirnames[:] = [d for d in dirnames if not _is_temp(d)]
        for filename in filenames:
            full = Path(dirpath, filename)
            if _is_temp(filename):
                if remove_temps and filename.endswith(_TMP_SUFFIX):
                    full.unlink(missing_ok=True)
                continue
            count += 1
            total += full.stat().st_size
    return count, total


def _list(files_root: Path, prefix: str) -> list[str]:
    directory, _, _ = prefix.rpartition("/")
    if directory:
        try:
            validate_name(directory)
        except ValueError:
            return []  # no valid name can start with this prefix
    base = files_root / directory if directory else files_root
    names: list[str] = []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = [d for d in dirnames if not _is_temp(d)]
        rel = Path(dirpath).relative_to(files_root).as_posix()
        for filename in filenames:
            if _is_temp(filename):
                continue
            name = filename if rel == "." else f"{rel}/{filename}"
            if name.startswith(prefix):
                names.append(name)
    names.sort()
    return names


def _read_snapshot(conn: sqlite3.Connection, call: Callable[[ReadTransaction], T]) -> T:
    """Run ``call`` in one read transaction on ``conn`` (in a worker thread)."""
    conn.execute("BEGIN")  # deferred: the first query takes the snapshot every later one sees
    tx = ReadTransaction(conn)
    try:
        return call(tx)
    finally:
        tx._finish()
        if conn.in_transaction:
            conn.execute("ROLLBACK")


class _ReaderPool:
    """Reader connections handed out one per read, each used by one worker thread."""

    def __init__(self, conns: list[sqlite3.Connection]) -> None:
        self._idle = list(conns)
        self._size = len(conns)
        self._free = anyio.Semaphore(len(conns))
        self._threads = anyio.CapacityLimiter(len(conns))
        self._closed = False

    async def run(self, call: Callable[[ReadTransaction], T]) -> T:
        async with self._free:
            if self._closed:
                raise anyio.ClosedResourceError("disk is closed")
            conn = self._idle.pop()
            try:
                # Not abandoned on cancellation: the connection comes back only when done.
                return await anyio.to_thread.run_sync(
                    _read_snapshot, conn, call, limiter=self._threads
                )
            finally:
                self._idle.append(conn)

    async def close(self) -> None:
        """Wait for the reads under way, then close every connection. Idempotent."""
        self._closed = True
        for _ in range(self._size):
            await self._free.acquire()
        conns, self._idle = self._idle, []
        self._size = 0
        for conn in conns:
            await anyio.to_thread.run_sync(conn.close)


class _LocalDatabase(SqliteDatabase):
    """The SQLite half of a :class:`LocalDisk`: one writer connection, a pool of readers."""

    def __init__(
        self, conn: sqlite3.Connection, readers: list[sqlite3.Connection], wal: Path
    ) -> None:
        super().__init__()
        self._conn: sqlite3.Connection | None = conn
        self._readers = _ReaderPool(readers)
        self._wal = wal
        self._synchronous = "FULL"
        self._unsynced = False  # a sync=False commit may not be durable yet

    def _check(self) -> None:
        if self._conn is None:
            raise anyio.ClosedResourceError("disk is closed")

    def _connection(self) -> tuple[sqlite3.Connection, Callable[[], None]]:
        self._check()
        assert self._conn is not None
        return self._conn, self._check

    def _set_synchronous(self, conn: sqlite3.Connection, level: str) -> None:
        # Only allowed outside a transaction, hence here and not in _commit.
        if self._synchronous != level:
            conn.execute(f"PRAGMA synchronous={level}")
            self._synchronous = level

    def _begin(self, conn: sqlite3.Connection, *, sync: bool) -> None:
        self._set_synchronous(conn, "FULL" if sync else "NORMAL")
        conn.execute("BEGIN")

    async def _run_write(self, fn: Callable[[Transaction], T], tx: Transaction) -> T:
        return await anyio.to_thread.run_sync(fn, tx)

    async def _commit(self, conn: sqlite3.Connection, *, sync: bool, wrote: bool) -> None:
        if not wrote:
            conn.execute("COMMIT")  # nothing to write, nothing to wait for
            return
        # The commit writes (and with FULL fsyncs) the WAL: do it off the event loop.
        # to_thread is not cancellable, so a started commit always finishes.
        await anyio.to_thread.run_sync(conn.execute, "COMMIT")
        # A FULL commit's fsync of the WAL also covers frames of earlier NORMAL commits.
        self._unsynced = not sync

    async def read(
        self,
        fn: Callable[Concatenate[ReadTransaction, P], T],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        self._refuse_nested("Database.read")
        self._check()

        def call(tx: ReadTransaction) -> T:
            return fn(tx, *args, **kwargs)

        return await self._readers.run(call)

    async def executescript(self, script: str) -> None:
        async with self._lock:
            conn, _ = self._connection()
            self._set_synchronous(conn, "FULL")
            try:
                await anyio.to_thread.run_sync(conn.executescript, f"BEGIN;\n{script}\n;COMMIT;")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            self._unsynced = False

    async def _sync(self) -> None:
        async with self._lock:
            if self._unsynced and self._conn is not None:
                # Unsynced commits sit in the WAL (or, once checkpointed, in the database
                # file, which a checkpoint fsyncs): fsyncing the WAL makes them durable. A
                # checkpoint would do it too, but waits for readers to leave old snapshots.
                wal = self._wal
                await anyio.to_thread.run_sync(_fsync_if_present, wal)
                self._unsynced = False

    async def _close(self) -> None:
        await self._readers.close()
        async with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                await anyio.to_thread.run_sync(conn.close)


class _LocalFileWriter(FileWriter):
    def __init__(self, disk: LocalDisk, name: str, *, cache: bool) -> None:
        super().__init__(name)
        self._disk = disk
        self._cache = cache
        self._final = disk._path(name)
        self._tmp: Path | None = None
        self._file: anyio.AsyncFile[bytes] | None = None
        self._handed = 0  # bytes handed to writeback so far (cache=False)

    async def _open(self) -> anyio.AsyncFile[bytes]:
        if self._file is None:
            directory = self._final.parent
            await anyio.to_thread.run_sync(_makedirs_durable, directory)
            while True:
                tmp = directory / f".{os.getpid()}.{next(_tmp_counter)}{_TMP_SUFFIX}"
                try:
                    self._file = await anyio.open_file(tmp, "xb", opener=_private_opener)
                except FileExistsError:
                    continue
                self._tmp = tmp
                break
        return self._file

    async def write(self, data: bytes) -> None:
        self._check_writable()
        self._disk._check_open()
        f = await self._open()
        if self._cache:
            await f.write(data)
        else:  # written behind: the commit's fsync finds little left to write
            self._handed = await anyio.to_thread.run_sync(
                _write_behind, f.wrapped, data, self._handed, self.bytes_written + len(data)
            )
        self.bytes_written += len(data)

    async def read_written(self, offset: int, length: int) -> bytes:
        self._check_writable()
        self._disk._check_open()
        check_range(offset, length)
        f = await self._open()
        await f.flush()
        assert self._tmp is not None
        return await anyio.to_thread.run_sync(_read_range, self._tmp, offset, length)

    async def commit(self, *, sync: bool = True) -> None:
        self._check_writable()
        self._disk._check_open()
        self._done = True
        disk = self._disk
        # Shielded: like a started fsync, a started commit finishes (or fails) as a whole,
        # so a cancelled caller never leaves a published but untracked file behind.
        with anyio.CancelScope(shield=True):
            try:
                f = await self._open()
                await f.flush()
                if sync:
                    await anyio.to_thread.run_sync(_sync, f.wrapped.fileno(), self._cache)
                await f.aclose()
                assert self._tmp is not None
                async with disk._files_lock:
                    old = await anyio.to_thread.run_sync(self._publish, self._tmp, sync)
                    disk._account(old, self.bytes_written)
            except BaseException:
                await self._discard()
                raise
            self._file = self._tmp = None
            disk._writers.discard(self)
            if sync:
                disk._unsynced_files.discard(self._final)
            else:
                disk._unsynced_files.add(self._final)

    def _publish(self, tmp: Path, sync: bool) -> int | None:
        old = _regular_size(self._final)
        os.replace(tmp, self._final)
        if sync:
            _fsync_dir(self._final.parent)  # rule 2
        return old

    async def _discard(self) -> None:
        file, tmp = self._file, self._tmp
        self._file = self._tmp = None
        if file is not None:
            await file.aclose()
        if tmp is not None:
            await anyio.to_thread.run_sync(lambda: tmp.unlink(missing_ok=True))
        self._disk._writers.discard(self)

    async def abort(self) -> None:
        if self._done:
            return  # committed, aborted, or a commit is under way (it cleans up itself)
        self._done = True
        with anyio.CancelScope(shield=True):
            await self._discard()


class LocalDisk(Disk):
    """A disk on the local filesystem; open with :meth:`LocalDisk.open`.

    Synced operations are fsynced before they return (see the module docstring for the
    exact rules). Assumes one process owns the directory.
    """

    db: _LocalDatabase

    def __init__(
        self,
        root: Path,
        conn: sqlite3.Connection,
        files: int,
        nbytes: int,
        readers: list[sqlite3.Connection],
    ) -> None:
        """Use :meth:`open`; this only wires up already opened parts."""
        if not readers:
            raise ValueError("a disk needs at least one reader connection")
        self.root = root
        self.db = _LocalDatabase(conn, readers, root / f"{_DB_NAME}-wal")
        self._files_root = root / _FILES_DIR
        self._files_lock = anyio.Lock()  # keeps the stats counters exact
        self._files = files
        self._bytes = nbytes
        self._writers: set[_LocalFileWriter] = set()
        self._unsynced_files: set[Path] = set()
        self._unsynced_dirs: set[Path] = set()
        self._closed = False

    @classmethod
    async def open(
        cls, path: str | os.PathLike[str], *, readers: int = DEFAULT_READERS
    ) -> LocalDisk:
        """Open (creating if needed) the disk rooted at ``path``.

        ``readers`` is how many reads run at once (each on its own connection and worker
        thread). Leftover temporary files from a crash are removed.
        """
        if readers < 1:
            raise ValueError("a disk needs at least one reader connection")
        root = Path(path)
        conn, pool, files, nbytes = await anyio.to_thread.run_sync(_open_sync, root, readers)
        return cls(root, conn, files, nbytes, pool)

    def _check_open(self) -> None:
        if self._closed:
            raise anyio.ClosedResourceError("disk is closed")

    def _path(self, name: str) -> Path:
        return self._files_root.joinpath(*validate_name(name).split("/"))

    def _account(self, old_size: int | None, new_size: int) -> None:
        if old_size is None:
            self._files += 1
            old_size = 0
        self._bytes += new_size - old_size

    def create(self, name: str, *, cache: bool = True) -> FileWriter:
        self._check_open()
        writer = _LocalFileWriter(self, name, cache=cache)
        self._writers.add(writer)
        return writer

    async def read(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        path = self._path(name)
        check_range(offset, length)
        self._check_open()
        return await anyio.to_thread.run_sync(_read_range, path, offset, length)

    async def size(self, name: str) -> int:
        path = self._path(name)
        self._check_open()
        size = await anyio.to_thread.run_sync(_regular_size, path)
        if size is None:
            raise FileNotFoundError(name)
        return size

    async def exists(self, name: str) -> bool:
        path = self._path(name)
        self._check_open()
        return await anyio.to_thread.run_sync(_regular_size, path) is not None

    async def delete(self, name: str, *, sync: bool = True) -> None:
        path = self._path(name)
        self._check_open()

        def unlink() -> int:
            size = _regular_size(path)
            if size is None:
                raise FileNotFoundError(name)
            path.unlink()
            if sync:
                _fsync_dir(path.parent)  # rule 4
            return size

        async with self._files_lock:
            size = await anyio.to_thread.run_sync(unlink)
            self._files -= 1
            self._bytes -= size
        self._unsynced_files.discard(path)
        if not sync:
            self._unsynced_dirs.add(path.parent)

    async def list_files(self, prefix: str = "") -> list[str]:
        self._check_open()
        return await anyio.to_thread.run_sync(_list, self._files_root, prefix)

    async def sync(self) -> None:
        self._check_open()
        await self.db._sync()
        files, self._unsynced_files = self._unsynced_files, set()
        dirs, self._unsynced_dirs = self._unsynced_dirs, set()
        dirs.update(path.parent for path in files)

        def fsync_all() -> None:
            for path in files:
                # A file deleted since is gone; its deletion is tracked by its own entry.
                with contextlib.suppress(FileNotFoundError):
                    _fsync_file(path)  # rule 6
            for directory in dirs:
                _fsync_dir(directory)

        try:
            await anyio.to_thread.run_sync(fsync_all)
        except BaseException:
            self._unsynced_files |= files
            self._unsynced_dirs |= dirs
            raise

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):
            for writer in list(self._writers):
                await writer.abort()
            await self.db._close()

    def stats(self) -> DiskStats:
        return DiskStats(files=self._files, bytes=self._bytes)


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None, check_same_thread=False)


def _open_sync(
    root: Path, readers: int
) -> tuple[sqlite3.Connection, list[sqlite3.Connection], int, int]:
    _makedirs_durable(root / _FILES_DIR)
    db = root / _DB_NAME
    with contextlib.suppress(FileExistsError):
        # An empty file is an empty database: create it ourselves, private from the start
        # (SQLite would create it 0644 and its WAL and shared memory with the same mode).
        os.close(_private_opener(str(db), os.O_WRONLY | os.O_CREAT | os.O_EXCL))
    conn = _connect(db)
    pool: list[sqlite3.Connection] = []
    try:
        conn.execute("PRAGMA journal_mode=WAL").fetchall()
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        for _ in range(readers):
            reader = _connect(root / _DB_NAME)
            pool.append(reader)
            reader.execute("PRAGMA query_only=ON")
            reader.execute(f"PRAGMA cache_size=-{READER_CACHE_KIB}")
        files, nbytes = _scan(root / _FILES_DIR, remove_temps=True)
    except BaseException:
        for c in [conn, *pool]:
            c.close()
        raise
    return conn, pool, files, nbytes
