"""A simulated disk for the deterministic simulation: in memory, with crash semantics.

The disk keeps two states. The *live* state is what reads see; the *durable* state is what
survives :meth:`SimDisk.crash`. A synced operation copies its effect into the durable state
before it returns; an unsynced one only changes the live state until :meth:`SimDisk.sync`.
The database is an in-memory ``sqlite3`` connection whose durable state is a
``Connection.serialize()`` image, taken only when something changed since the last one.

No threads, no real files, no ``to_thread``: a worker thread would let ``MockClock`` jump
virtual time while it runs and break replay. Every random choice (latency jitter, which
byte a corrupt read flips) comes from the ``rng`` passed in.

Work has a price once the simulation gives the disk its node's :class:`~dspot.cpu.SimCpu`
(:attr:`SimDisk.cpu`): a statement by the SQLite virtual-machine steps it ran, a file
operation by its bytes. Reads (:meth:`~dspot.disk.Database.read`) and
:meth:`~dspot.disk.Database.write` bodies are charged to a worker, as LocalDisk runs them in
worker threads; statements of :meth:`~dspot.disk.Database.transaction` are charged to the
node's event loop, where LocalDisk runs them. A read runs at once on the one in-memory
connection, between write transactions (it waits for the write lock, holds it for no virtual
time, then pays its cost outside it), so it sees committed state as a reader connection
would.
"""

from __future__ import annotations

import errno
import random
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Concatenate, ParamSpec, TypeVar

import anyio
import anyio.lowlevel

from dspot.disk._base import (
    Disk,
    DiskFault,
    DiskStats,
    FileWriter,
    ReadTransaction,
    SqliteDatabase,
    Transaction,
    check_range,
    validate_name,
)

if TYPE_CHECKING:
    from dspot.cpu import SimCpu

__all__ = ["SimDisk"]

P = ParamSpec("P")
T = TypeVar("T")
_STEPS_PER_TICK = 1000  # SQLite VM instructions between two progress-handler calls


def _serialize(conn: sqlite3.Connection) -> bytes | None:
    """The database image, or ``None`` for a database that has no pages yet."""
    try:
        return conn.serialize()
    except sqlite3.OperationalError:  # "unable to serialize": nothing was ever written
        return None


class _SimDatabase(SqliteDatabase):
    """The database half of a :class:`SimDisk`; the same object survives crashes."""

    def __init__(self, disk: SimDisk) -> None:
        super().__init__()
        self._disk = disk
        self._ticks_at_begin = 0

    def _connection(self) -> tuple[sqlite3.Connection, Callable[[], None]]:
        disk = self._disk
        return disk._live_connection(), disk._epoch_check()

    def transaction(self, *, sync: bool = True) -> AbstractAsyncContextManager[Transaction]:
        return self._requested(sync)

    async def write(self, fn: Callable[[Transaction], T], *, sync: bool = True) -> T:
        async with self._requested(sync, on_loop=False) as tx:
            return await self._run_write(fn, tx)

    @asynccontextmanager
    async def _requested(self, sync: bool, *, on_loop: bool = True) -> AsyncIterator[Transaction]:
        # A transaction asked for before a crash and let in after it belongs to the dead
        # process: it must not run against the disk the restarted node now uses.
        check = self._disk._epoch_check()
        async with self._transaction(sync=sync, on_loop=on_loop) as tx:
            check()
            yield tx

    def _begin(self, conn: sqlite3.Connection, *, sync: bool) -> None:
        self._ticks_at_begin = self._disk._ticks
        conn.execute("BEGIN")

    async def _body_done(self, tx: Transaction, *, on_loop: bool) -> None:
        cpu = self._disk.cpu
        if cpu is None:
            return
        cost = cpu.costs.sql(tx.statements, self._disk._ticks - self._ticks_at_begin, tx.rows)
        if on_loop:
            await cpu.on_loop(cost, "sql")
        else:
            await cpu.in_worker(cost)

    async def read(
        self,
        fn: Callable[Concatenate[ReadTransaction, P], T],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        self._refuse_nested("Database.read")
        disk = self._disk
        disk._check_open()
        check = disk._epoch_check()
        cpu = disk.cpu
        async with self._lock:
            check()
            conn = disk._live_connection()
            ticks = disk._ticks
            conn.execute("PRAGMA query_only=ON")
            tx = ReadTransaction(conn)
            try:
                result = fn(tx, *args, **kwargs)
            finally:
                tx._finish()
                conn.execute("PRAGMA query_only=OFF")
            cost = 0.0
            if cpu is not None:
                cost = cpu.costs.sql(tx.statements, disk._ticks - ticks, tx.rows)
                if cpu.inline:
                    # The sabotage: the read, and the write lock, on the event loop.
                    await cpu.on_loop(cost, "sql")
        await disk._io()
        if cpu is not None and not cpu.inline:
            await cpu.in_worker(cost)
        check()
        return result

    async def _commit(self, conn: sqlite3.Connection, *, sync: bool, wrote: bool) -> None:
        disk = self._disk
        check = disk._epoch_check()
        await disk._io()
        check()
        # From here to the end nothing awaits: the commit and its snapshot are one step,
        # so a crash sees either both or neither.
        conn.execute("COMMIT")
        if wrote:
            # Like an fsync of SQLite's journal: a synced write makes earlier unsynced
            # commits durable too; a read-only transaction makes nothing durable.
            disk._db_dirty = True
            if sync:
                disk._snapshot_db()

    async def executescript(self, script: str) -> None:
        disk = self._disk
        async with self._lock:
            conn = disk._live_connection()
            check = disk._epoch_check()
            await disk._io()
            check()
            try:
                conn.executescript(f"BEGIN;\n{script}\n;COMMIT;")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            disk._db_dirty = True
            disk._snapshot_db()


class _SimFileWriter(FileWriter):
    def __init__(self, disk: SimDisk, name: str) -> None:
        super().__init__(name)
        self._disk = disk
        self._check_epoch = disk._epoch_check()
        self._buffer = bytearray()

    def _check(self) -> None:
        self._check_writable()
        self._check_epoch()

    async def write(self, data: bytes) -> None:
        self._check()
        await self._disk._io()
        await self._disk._charge_file(len(data))
        self._check()
        if data and self._disk.files_full:
            raise OSError(errno.ENOSPC, "No space left on device (simulated)")
        self._buffer += data
        self.bytes_written += len(data)

    async def read_written(self, offset: int, length: int) -> bytes:
        self._check()
        check_range(offset, length)
        await self._disk._io()
        self._check()
        return bytes(self._buffer[offset : offset + length])

    async def commit(self, *, sync: bool = True) -> None:
        self._check()
        await self._disk._io()
        self._check()
        self._done = True
        data = bytes(self._buffer)
        self._buffer = bytearray()
        self._disk._publish(self.name, data, sync=sync)

    async def abort(self) -> None:
        if not self._done:
            self._done = True
            self._buffer = bytearray()
        await anyio.lowlevel.checkpoint()


class SimDisk(Disk):
    """A deterministic in-memory disk that can crash, be wiped, run slow and rot.

    * :meth:`crash` drops every write not yet synced and resets in-flight writers and
      transactions (they raise :class:`DiskFault`). The disk is usable again at once: the
      simulation restarts the node on the same object.
    * :meth:`wipe` loses everything, durable state included (permanent disk loss).
    * :attr:`latency` and :attr:`latency_jitter` (seconds, settable at any time) make every
      operation sleep ``latency + rng.uniform(0, latency_jitter)``; with both zero an
      operation is still a checkpoint but takes no time.
    * :attr:`corrupt_read_rate` is the probability that one :meth:`read` returns data with
      one bit flipped (transient); :meth:`corrupt_file` flips one permanently (bit rot).
    * :attr:`files_full` (settable at any time) makes every file write fail with ``ENOSPC``,
      as on a full volume; the database keeps working (a node whose database is full cannot
      go on: the service stops it, see ``dspot_spotify.process.setup.NodeStopped``).
    * :meth:`aclose` keeps the contents; :meth:`restart` reopens a closed disk as it was.
    """

    def __init__(
        self,
        rng: random.Random,
        *,
        latency: float = 0.0,
        latency_jitter: float = 0.0,
        corrupt_read_rate: float = 0.0,
    ) -> None:
        self.rng = rng
        self.latency = latency
        self.latency_jitter = latency_jitter
        self.corrupt_read_rate = corrupt_read_rate
        self.files_full = False
        self.cpu: SimCpu | None = None
        """The processor that pays for this disk's work (set by the simulation); ``None``
        makes work free (every operation is still a checkpoint)."""
        self.db: _SimDatabase = _SimDatabase(self)
        self._epoch = 0
        self._closed = False
        self._ticks = 0  # thousands of SQLite VM steps run, ever
        self._conn: sqlite3.Connection | None = self._new_connection(None)
        self._db_image: bytes | None = None  # durable database
        self._closed_image: bytes | None = None  # live database while closed
        self._db_dirty = False  # live database differs from _db_image
        self._files: dict[str, bytes] = {}  # live
        self._durable_files: dict[str, bytes] = {}
        self._unsynced: set[str] = set()  # names whose live and durable versions may differ
        self._bytes = 0

    # -- fault injection (synchronous: called by the simulation between steps) -------------

    def crash(self) -> None:
        """Lose every unsynced write and reset in-flight operations; usable again at once."""
        self._reset(self._db_image, dict(self._durable_files))

    def wipe(self) -> None:
        """Lose everything, durable state included, as if the disk were replaced."""
        self._db_image = None
        self._durable_files = {}
        self._reset(None, {})

    def restart(self) -> None:
        """Reopen after :meth:`aclose`, keeping everything (synced or not)."""
        if self._closed:
            self._closed = False
            self._conn = self._new_connection(self._closed_image)
            self._closed_image = None
            self.db._lock = anyio.Lock()

    def corrupt_file(self, name: str, offset: int | None = None) -> int:
        """Flip one bit of a file, in both live and durable copies; return the byte offset.

        The offset is drawn from the disk's rng unless given.
        """
        data = self._files.get(validate_name(name))
        if data is None:
            raise FileNotFoundError(name)
        if not data:
            raise ValueError(f"cannot corrupt empty file {name!r}")
        if offset is None:
            offset = self.rng.randrange(len(data))
        mask = 1 << self.rng.randrange(8)
        self._files[name] = _flip(data, offset, mask)
        durable = self._durable_files.get(name)
        if durable is not None and offset < len(durable):
            self._durable_files[name] = _flip(durable, offset, mask)
        return offset

    def _reset(self, image: bytes | None, files: dict[str, bytes]) -> None:
        self._epoch += 1
        if self._conn is not None:
            self._conn.close()
        self._closed = False
        self._closed_image = None
        self._conn = self._new_connection(image)
        self._db_dirty = False
        self._files = files
        self._unsynced = set()
        self._bytes = sum(len(data) for data in files.values())
        # A transaction cut short by the crash still holds the old lock; give new ones a
        # fresh lock so they don't wait for it.
        self.db._lock = anyio.Lock()

    # -- internals ------------------------------------------------------------------------

    def _new_connection(self, image: bytes | None) -> sqlite3.Connection:
        conn = sqlite3.connect(":memory:", isolation_level=None)
        if image:
            conn.deserialize(image)
        conn.execute("PRAGMA foreign_keys=ON")
        conn.set_progress_handler(self._tick, _STEPS_PER_TICK)
        return conn

    def _tick(self) -> int:
        self._ticks += 1
        return 0  # non-zero would abort the statement

    async def _charge_file(self, nbytes: int) -> None:
        """Pay for moving ``nbytes`` of a file (a worker thread's work in production)."""
        cpu = self.cpu
        if cpu is not None:
            await cpu.in_worker(cpu.costs.file(nbytes))

    def _epoch_check(self) -> Callable[[], None]:
        epoch = self._epoch

        def check() -> None:
            if self._closed:
                raise anyio.ClosedResourceError("disk is closed")
            if self._epoch != epoch:
                raise DiskFault("the disk crashed or was wiped during this operation")

        return check

    def _live_connection(self) -> sqlite3.Connection:
        if self._closed or self._conn is None:
            raise anyio.ClosedResourceError("disk is closed")
        return self._conn

    def _check_open(self) -> None:
        if self._closed:
            raise anyio.ClosedResourceError("disk is closed")

    async def _io(self) -> None:
        """Take the simulated time of one disk operation (a checkpoint at least)."""
        delay = self.latency
        if self.latency_jitter > 0:
            delay += self.rng.uniform(0, self.latency_jitter)
        if delay > 0:
            await anyio.sleep(delay)
        else:
            await anyio.lowlevel.checkpoint()

    async def _op(self) -> None:
        """Start an operation: check the disk is open, take its time, check again."""
        self._check_open()
        check = self._epoch_check()
        await self._io()
        check()

    def _snapshot_db(self) -> None:
        if self._db_dirty and self._conn is not None:
            self._db_image = _serialize(self._conn)
            self._db_dirty = False

    def _publish(self, name: str, data: bytes, *, sync: bool) -> None:
        old = self._files.get(name)
        self._bytes += len(data) - (len(old) if old is not None else 0)
        self._files[name] = data
        if sync:
            self._durable_files[name] = data
            self._unsynced.discard(name)
        else:
            self._unsynced.add(name)

    # -- Disk -----------------------------------------------------------------------------

    def create(self, name: str, *, cache: bool = True) -> FileWriter:
        validate_name(name)
        self._check_open()
        return _SimFileWriter(self, name)

    async def read(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        validate_name(name)
        check_range(offset, length)
        await self._op()
        data = self._files.get(name)
        if data is None:
            raise FileNotFoundError(name)
        end = len(data) if length is None else offset + length
        chunk = data[offset:end]
        if self.cpu is not None:
            check = self._epoch_check()
            await self._charge_file(len(chunk))
            check()
        if chunk and self.corrupt_read_rate > 0 and self.rng.random() < self.corrupt_read_rate:
            chunk = _flip(chunk, self.rng.randrange(len(chunk)), 1 << self.rng.randrange(8))
        return chunk

    async def size(self, name: str) -> int:
        validate_name(name)
        await self._op()
        data = self._files.get(name)
        if data is None:
            raise FileNotFoundError(name)
        return len(data)

    async def exists(self, name: str) -> bool:
        validate_name(name)
        await self._op()
        return name in self._files

    async def delete(self, name: str, *, sync: bool = True) -> None:
        validate_name(name)
        await self._op()
        data = self._files.pop(name, None)
        if data is None:
            raise FileNotFoundError(name)
        self._bytes -= len(data)
        if sync:
            self._durable_files.pop(name, None)
            self._unsynced.discard(name)
        else:
            self._unsynced.add(name)

    async def list_files(self, prefix: str = "") -> list[str]:
        await self._op()
        return sorted(name for name in self._files if name.startswith(prefix))

    async def sync(self) -> None:
        await self._op()
        for name in self._unsynced:
            data = self._files.get(name)
            if data is None:
                self._durable_files.pop(name, None)
            else:
                self._durable_files[name] = data
        self._unsynced.clear()
        self._snapshot_db()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._epoch += 1  # open writers and transactions become unusable
        conn = self._conn
        self._closed = True
        self._conn = None
        if conn is not None:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._closed_image = _serialize(conn) if self._db_dirty else self._db_image
            conn.close()
        await anyio.lowlevel.checkpoint()

    def stats(self) -> DiskStats:
        return DiskStats(files=len(self._files), bytes=self._bytes)


def _flip(data: bytes, offset: int, mask: int) -> bytes:
    buf = bytearray(data)
    buf[offset] ^= mask
    return bytes(buf)
