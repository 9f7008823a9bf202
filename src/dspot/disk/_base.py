"""The disk interface: node-local durable state, one SQLite database plus named blob files.

A node keeps its metadata in :attr:`Disk.db` (SQL, transactional) and its large immutable
values in files written through :meth:`Disk.create`. Two implementations share this module:
:class:`~dspot.disk.SimDisk` (in memory, deterministic, loses unsynced writes on
:meth:`~dspot.disk.SimDisk.crash`) and :class:`~dspot.disk.LocalDisk` (SQLite WAL + files,
fsync before acknowledging).

Durability contract, common to both: an operation called with ``sync=True`` is durable when
it returns; one called with ``sync=False`` is visible at once but may be lost by a crash
until the next :meth:`Disk.sync` (or, for the database, the next synced commit).
"""

from __future__ import annotations

import abc
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, Self, TypeVar

import anyio
import attrs

from dspot.errors import DspotError

SqlParams = Sequence[Any] | Mapping[str, Any]
Row = tuple[Any, ...]
P = ParamSpec("P")
T = TypeVar("T")


class DiskFault(DspotError, OSError):
    """The disk was reset under an operation (a simulated crash or wipe).

    Raised by writers and transactions started before the reset; new operations work.
    """


@attrs.frozen
class DiskStats:
    """How much a disk holds: committed files and their total size in bytes."""

    files: int
    bytes: int


def validate_name(name: str) -> str:
    """Check a file name and return it unchanged; raise ``ValueError`` if it is unsafe.

    Names are relative ``/``-separated paths (``"blobs/ab/abcdef"``). Rejected: empty names,
    absolute paths, empty components, ``.`` and ``..``, components starting with ``.``
    (reserved for temporary files), backslashes and NUL bytes. A name should not also be
    a directory prefix of another (``"a"`` and ``"a/b"``): LocalDisk stores names as paths
    and refuses that, SimDisk does not check it.
    """
    if not isinstance(name, str):
        raise TypeError(f"file name must be str, not {type(name).__name__}")
    if not name or "\0" in name or "\\" in name or name.startswith("/"):
        raise ValueError(f"invalid file name {name!r}")
    for part in name.split("/"):
        if not part or part.startswith("."):
            raise ValueError(f"invalid file name {name!r}")
    return name


def check_range(offset: int, length: int | None) -> None:
    """Reject negative read offsets and lengths."""
    if offset < 0:
        raise ValueError(f"negative offset {offset}")
    if length is not None and length < 0:
        raise ValueError(f"negative length {length}")


_READ_ONLY_VERBS = frozenset({"SELECT", "VALUES", "EXPLAIN"})


def _may_write(sql: str) -> bool:
    """Whether a statement might change the database (conservative: unknown means yes)."""
    verb = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else ""
    return verb not in _READ_ONLY_VERBS


class Transaction:
    """Runs SQL inside one open transaction of a :class:`Database`.

    Methods are synchronous: they run while the database lock is held, so keep the work
    between statements short. Unusable once the ``async with`` block has exited.
    """

    def __init__(self, conn: sqlite3.Connection, check: Callable[[], None]) -> None:
        self._conn: sqlite3.Connection | None = conn
        self._check = check
        self._changes_at_start = conn.total_changes
        self._wrote = False
        self.statements = 0
        """Statements run so far (the simulation prices them)."""
        self.rows = 0
        """Rows returned so far."""

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise anyio.ClosedResourceError("transaction already finished")
        self._check()
        return self._conn

    def execute(self, sql: str, params: SqlParams = ()) -> list[tuple[Any, ...]]:
        """Run one statement and return every row it produced (empty for most writes)."""
        conn = self._connection()
        self._wrote = self._wrote or _may_write(sql)
        rows = _fetch(conn, sql, params)
        self.statements += 1
        self.rows += len(rows)
        return rows

    def executemany(self, sql: str, seq: Iterable[Sequence[Any]]) -> None:
        """Run one statement once per parameter tuple in ``seq``."""
        conn = self._connection()
        self._wrote = True
        params = list(seq)
        conn.executemany(sql, params).close()
        self.statements += len(params)

    @property
    def wrote(self) -> bool:
        """Whether anything this transaction ran may have changed the database."""
        conn = self._conn
        changed = conn is not None and conn.total_changes != self._changes_at_start
        return self._wrote or changed

    def _finish(self) -> None:
        self._conn = None


def _fetch(conn: sqlite3.Connection, sql: str, params: SqlParams) -> list[Row]:
    cursor = conn.execute(sql, params)
    try:
        return cursor.fetchall()
    finally:
        cursor.close()


class ReadTransaction:
    """Runs queries on one consistent snapshot of committed state (see :meth:`Database.read`).

    Writing raises ``sqlite3.OperationalError`` (the connection is ``query_only``).
    Unusable once the read function has returned.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn: sqlite3.Connection | None = conn
        self.statements = 0
        """Statements run so far (the simulation prices them)."""
        self.rows = 0
        """Rows returned so far."""

    def execute(self, sql: str, params: SqlParams = ()) -> list[Row]:
        """Run one query and return every row it produced."""
        if self._conn is None:
            raise anyio.ClosedResourceError("read already finished")
        rows = _fetch(self._conn, sql, params)
        self.statements += 1
        self.rows += len(rows)
        return rows

    def _finish(self) -> None:
        self._conn = None


def _query(tx: ReadTransaction, sql: str, params: SqlParams) -> list[Row]:
    return tx.execute(sql, params)


class Database(abc.ABC):
    """A node's SQLite database.

    Writes are serialized: one write transaction (:meth:`transaction`, :meth:`write`) runs
    at a time, on the writer connection. Reads (:meth:`read`, :meth:`query`) never wait for
    them: they run on a snapshot of committed state, off the event loop (a pool of reader
    connections in worker threads in production; priced in virtual time in the simulation).
    """

    async def execute(
        self, sql: str, params: SqlParams = (), *, sync: bool = True
    ) -> list[tuple[Any, ...]]:
        """Run one statement in its own write transaction and return the fetched rows."""
        async with self.transaction(sync=sync) as tx:
            return tx.execute(sql, params)

    async def query(self, sql: str, params: SqlParams = ()) -> list[Row]:
        """Run one read-only statement through :meth:`read` and return its rows."""
        return await self.read(_query, sql, params)

    @abc.abstractmethod
    async def read(
        self,
        fn: Callable[Concatenate[ReadTransaction, P], T],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Return ``fn(tx, *args, **kwargs)`` run on a snapshot of committed state.

        ``fn`` runs in a worker thread in production, so it must not touch the event loop;
        keep CPU-heavy work that needs no database (password hashes) out of it, it would hold
        a reader connection. Every commit that returned before this call is visible. Calling
        it while the same task holds a write transaction raises ``RuntimeError`` (the
        snapshot could not see that transaction's writes).
        """

    @abc.abstractmethod
    async def write(self, fn: Callable[[Transaction], T], *, sync: bool = True) -> T:
        """Run ``fn(tx)`` in a write transaction off the event loop and commit; its result.

        Like :meth:`transaction`, but the statements run in a worker thread in production:
        for write paths that do real work per transaction (applying a batch of log entries).
        ``fn`` must not touch the event loop. Rolls back if ``fn`` raises.
        """

    @abc.abstractmethod
    def transaction(self, *, sync: bool = True) -> AbstractAsyncContextManager[Transaction]:
        """Open a transaction: commit on normal exit, roll back on exception.

        Waits for any other write transaction to finish first. With ``sync=True`` the
        commit is durable when the ``async with`` block exits. Its statements run on the
        event loop: keep them few and quick, or use :meth:`write`.
        """

    @abc.abstractmethod
    async def executescript(self, script: str) -> None:
        """Run a schema script atomically and durably (it must not BEGIN or COMMIT itself)."""


class SqliteDatabase(Database):
    """Shared transaction logic over one ``sqlite3`` connection in autocommit mode.

    Subclasses say where the connection is (:meth:`_connection`) and how a commit becomes
    durable (:meth:`_commit`).
    """

    def __init__(self) -> None:
        self._lock = anyio.Lock()

    @abc.abstractmethod
    def _connection(self) -> tuple[sqlite3.Connection, Callable[[], None]]:
        """The live connection and a check that raises once it is no longer current."""

    def _begin(self, conn: sqlite3.Connection, *, sync: bool) -> None:
        """Open a transaction on ``conn`` (a hook: LocalDisk picks the sync level first)."""
        conn.execute("BEGIN")

    @abc.abstractmethod
    async def _commit(self, conn: sqlite3.Connection, *, sync: bool, wrote: bool) -> None:
        """Commit the open transaction on ``conn`` (durably if ``sync``)."""

    async def _run_write(self, fn: Callable[[Transaction], T], tx: Transaction) -> T:
        """Run the body of :meth:`write` (a hook: LocalDisk runs it in a worker thread)."""
        return fn(tx)

    async def _body_done(self, tx: Transaction, *, on_loop: bool) -> None:
        """Called after a transaction's statements, before its commit (a hook: the
        simulation charges their cost to the loop or to a worker)."""

    def _held_by_current_task(self) -> bool:
        owner = self._lock.statistics().owner
        return owner is not None and owner == anyio.get_current_task()

    def _refuse_nested(self, what: str) -> None:
        if self._held_by_current_task():
            raise RuntimeError(f"{what} inside a write transaction of the same task")

    @asynccontextmanager
    async def _transaction(self, *, sync: bool, on_loop: bool = True) -> AsyncIterator[Transaction]:
        self._refuse_nested("a write transaction")  # the lock is not reentrant: a deadlock
        async with self._lock:
            conn, check = self._connection()
            self._begin(conn, sync=sync)
            tx = Transaction(conn, check)
            try:
                yield tx
                await self._body_done(tx, on_loop=on_loop)
                check()  # before touching the connection: a crash may have closed it
                wrote = tx.wrote
                tx._finish()
                await self._commit(conn, sync=sync, wrote=wrote)
            except BaseException:
                tx._finish()
                _rollback_quietly(conn, check)
                raise

    def transaction(self, *, sync: bool = True) -> AbstractAsyncContextManager[Transaction]:
        return self._transaction(sync=sync)

    async def write(self, fn: Callable[[Transaction], T], *, sync: bool = True) -> T:
        async with self._transaction(sync=sync, on_loop=False) as tx:
            return await self._run_write(fn, tx)


def _rollback_quietly(conn: sqlite3.Connection, check: Callable[[], None]) -> None:
    """Roll back if the connection is still current and in a transaction.

    Called while another exception propagates, so it must not replace it.
    """
    try:
        check()
    except (DiskFault, anyio.ClosedResourceError):
        return  # the connection was replaced or closed; nothing to undo
    if conn.in_transaction:
        conn.execute("ROLLBACK")


class FileWriter(abc.ABC):
    """Streams one new file; nothing is visible under its name until :meth:`commit`.

    Use as an async context manager: leaving the block without committing (or by an
    exception) aborts, discarding everything written.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.bytes_written = 0
        self._done = False

    def _check_writable(self) -> None:
        if self._done:
            raise anyio.ClosedResourceError(f"writer for {self.name!r} already finished")

    @abc.abstractmethod
    async def write(self, data: bytes) -> None:
        """Append ``data`` to the file being written."""

    @abc.abstractmethod
    async def read_written(self, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes from ``offset`` of what was written so far, before the
        commit: to check a file before publishing it."""

    @abc.abstractmethod
    async def commit(self, *, sync: bool = True) -> None:
        """Atomically publish the file under its name, replacing any old one.

        With ``sync=True`` the file is durable when this returns.
        """

    @abc.abstractmethod
    async def abort(self) -> None:
        """Discard the file. Does nothing if already committed or aborted."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._done:
            with anyio.CancelScope(shield=True):
                await self.abort()


class Disk(abc.ABC):
    """Node-local durable storage: a SQL database (:attr:`db`) and named immutable files."""

    db: Database

    @abc.abstractmethod
    def create(self, name: str, *, cache: bool = True) -> FileWriter:
        """Start writing a file; it appears under ``name`` only when committed.

        ``cache=False`` is for files written once and read later, if at all (audio): once a
        synced commit has made the bytes durable, their pages leave the operating system's
        page cache, so a steady stream of uploads does not keep claiming fresh memory for
        pages nobody reads (HDFS datanodes' "drop cache behind writes"). A disk without a
        page cache ignores it."""

    async def write_file(self, name: str, data: bytes, *, sync: bool = True) -> None:
        """Create, write and commit a whole file in one call (for small files)."""
        async with self.create(name) as writer:
            await writer.write(data)
            await writer.commit(sync=sync)

    @abc.abstractmethod
    async def read(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        """Read up to ``length`` bytes (all by default) from ``offset``.

        Raises ``FileNotFoundError`` if the file does not exist. Reading past the end
        returns fewer bytes (possibly none).
        """

    @abc.abstractmethod
    async def size(self, name: str) -> int:
        """The file's size in bytes; ``FileNotFoundError`` if missing."""

    @abc.abstractmethod
    async def exists(self, name: str) -> bool:
        """Whether a committed file has this name."""

    @abc.abstractmethod
    async def delete(self, name: str, *, sync: bool = True) -> None:
        """Remove a file (``FileNotFoundError`` if missing); durable on return if ``sync``."""

    @abc.abstractmethod
    async def list_files(self, prefix: str = "") -> list[str]:
        """Names of committed files starting with ``prefix``, sorted."""

    @abc.abstractmethod
    async def sync(self) -> None:
        """Make everything committed so far (database and files) durable."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Abort open writers and release resources. Idempotent."""

    @abc.abstractmethod
    def stats(self) -> DiskStats:
        """Committed files and bytes right now."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
