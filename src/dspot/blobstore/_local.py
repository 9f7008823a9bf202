"""A node's own blob copies: files on its disk plus their checksums in its database.

Each copy is one immutable file (``blobs/<xx>/<id>``, named when its upload starts, before
its hash is known) and one row in ``blob_copy`` mapping the content address to that file,
its size and its block digests. The file is committed (synced) before the row, and the row
before anything is acknowledged, so after a crash a file without a row is an unacknowledged
upload and is deleted by :meth:`LocalBlobs.open`. Tombstones (``blob_tombstone``) remember
deletions so repair does not bring a deleted blob back.
"""

from __future__ import annotations

import bisect
import contextlib
from collections.abc import Iterable

import attrs

from dspot.blobstore._config import BlobStoreMechanism
from dspot.blobstore._errors import CorruptCopy, IntegrityError, Tombstoned
from dspot.blobstore._hashing import BLOCK_DIGEST, BlockHasher, block_digest, digest_width
from dspot.disk import Disk, FileWriter
from dspot.env import Mechanism, Offload, run_inline

__all__ = ["Copy", "CorruptCopy", "Ingest", "IntegrityError", "LocalBlobs", "Tombstoned"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS blob_copy (
    sha256 TEXT PRIMARY KEY,
    file TEXT NOT NULL,
    size INTEGER NOT NULL,
    block_size INTEGER NOT NULL,
    blocks BLOB NOT NULL,
    stored_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS blob_tombstone (
    sha256 TEXT PRIMARY KEY,
    deleted_at REAL NOT NULL
);
"""

PREFIX = "blobs/"


@attrs.frozen
class Copy:
    """The metadata of one local copy."""

    sha256: str
    file: str
    size: int
    block_size: int
    blocks: bytes
    stored_at: float


_Row = tuple[str, str, int, int, bytes, float]
"""A :class:`Copy` as the index keeps it: a plain tuple of its fields. A tuple of strings,
numbers and bytes is one the garbage collector stops tracking, so a full collection does not
walk the index: at 100,000 copies it took 35 ms with the index held as :class:`Copy` objects
and 0.3 ms as tuples (a node on a busy 2-core machine stalled its loop 130-290 ms)."""


def _row(copy: Copy) -> _Row:
    return (copy.sha256, copy.file, copy.size, copy.block_size, copy.blocks, copy.stored_at)


class Ingest:
    """A copy being written: bytes go to a new file and through the checksums.

    Two ways to check it, chosen when it starts:

    - ``vouched=False`` (a repair fetch): the whole-blob sha256 is computed here, off the
      event loop, and must equal the content address at :meth:`commit`.
    - ``vouched=True`` (a replica of an upload): the upload's coordinator hashes the blob, once
      for the whole chain, and sends the content address with its block digests at commit.
      Here only the block digests are computed (XXH3: about 20 µs a MiB, on the loop) and
      they must equal the coordinator's, which proves this copy holds the very bytes the
      coordinator hashed. Digests of another kind or block size (a coordinator of an older
      version or another configuration) are checked by hashing the written file again.
    """

    def __init__(
        self, owner: LocalBlobs, writer: FileWriter, block_size: int, *, vouched: bool = False
    ) -> None:
        self._owner = owner
        self.writer = writer
        self.vouched = vouched
        self.hasher = BlockHasher(block_size, whole=not vouched)

    @property
    def size(self) -> int:
        return self.hasher.size

    async def write(self, data: bytes) -> None:
        if self.vouched:
            self.hasher.update(data)  # block digests only: cheaper than a thread hand-off
        else:
            # Hashed off the event loop (a worker thread in production), so a replica keeps
            # receiving and forwarding chunks while it hashes this one.
            await self._owner.offload(self.hasher.update, data, kind="sha256", size=len(data))
        await self.writer.write(data)

    async def commit(
        self,
        expected: str | None,
        *,
        stored_at: float,
        sync: bool = True,
        blocks: bytes | None = None,
        block_size: int | None = None,
    ) -> Copy:
        """Verify against ``expected`` (when given), publish the file, record the copy.

        ``blocks``/``block_size`` are block digests computed elsewhere over the same bytes
        (the upload's coordinator; required for a vouched copy, with ``expected``); without
        them the ones computed here are stored. ``stored_at`` is when the upload began (wall
        clock): a tombstone at least as recent wins and :class:`Tombstoned` is raised. If this
        node already holds a copy of the same content the new file is dropped. Raises
        :class:`IntegrityError` (the file is discarded) when the bytes do not match.
        """
        digest, own_blocks = self.hasher.finish()
        if self.vouched:
            if expected is None or blocks is None or block_size is None:
                raise ValueError("a vouched copy commits with its content address and digests")
            mismatch = await self._vouched_mismatch(expected, blocks, block_size, own_blocks)
            if mismatch is not None:
                await self.writer.abort()
                raise IntegrityError(mismatch)
            digest = expected
        elif expected is not None and digest != expected:
            await self.writer.abort()
            raise IntegrityError(f"content hashes to {digest}, expected {expected}")
        if blocks is None:
            blocks, block_size = own_blocks, self.hasher.block_size
        elif block_size is None:
            raise ValueError("block digests given without their block size")
        return await self._owner._publish(
            self, digest, blocks, block_size, stored_at=stored_at, sync=sync
        )

    async def _vouched_mismatch(
        self, expected: str, blocks: bytes, block_size: int, own: bytes
    ) -> str | None:
        """Why the written bytes are not the ones the coordinator hashed, or ``None``."""
        width = digest_width(self.size, block_size, blocks)
        if width is None:
            return f"{len(blocks)} bytes of block digests do not fit {self.size} bytes"
        if width == BLOCK_DIGEST and block_size == self.hasher.block_size:
            if own != blocks:
                return "the bytes written here do not match the coordinator's block digests"
            return None
        again = BlockHasher(block_size, width=width)
        offset = 0
        while offset < self.size:
            piece = await self.writer.read_written(offset, min(REHASH_PIECE, self.size - offset))
            if not piece:
                return f"the file written here ends at {offset} of {self.size} bytes"
            await self._owner.offload(again.update, piece, kind="sha256", size=len(piece))
            offset += len(piece)
        digest, theirs = again.finish()
        if digest != expected:
            return f"content hashes to {digest}, expected {expected}"
        if theirs != blocks:
            return "the bytes written here do not match the coordinator's block digests"
        return None

    async def abort(self) -> None:
        await self.writer.abort()


REHASH_PIECE = 1024 * 1024
"""Bytes read back at a time when a vouched copy has to be hashed again from its file."""


def _bad_blocks(
    data: bytes, digests: bytes, first: int, last: int, bs: int, width: int
) -> list[int]:
    """Indexes of the blocks ``first..last`` (laid out from ``data[0]``) whose checksum (of
    ``width`` bytes) does not match. Pure: safe to run in a worker thread."""
    view = memoryview(data)
    bad = []
    for index in range(first, last + 1):
        lo = (index - first) * bs
        want = digests[index * width : (index + 1) * width]
        if block_digest(view[lo : lo + bs], width) != want:
            bad.append(index)
    return bad


def _width(copy: Copy) -> int:
    width = digest_width(copy.size, copy.block_size, copy.blocks)
    if width is None:
        raise CorruptCopy(f"the block digests of {copy.sha256} do not fit its size")
    return width


class LocalBlobs:
    """The copies this node holds. Call :meth:`open` once before use."""

    def __init__(
        self,
        disk: Disk,
        *,
        block_size: int,
        offload: Offload = run_inline,
        disabled: frozenset[Mechanism] = frozenset(),
        cache_writes: bool = True,
    ) -> None:
        self.disk = disk
        self._cache_writes = cache_writes
        self._verify_reads = BlobStoreMechanism.READ_VERIFY not in disabled
        self._tombstoning = BlobStoreMechanism.TOMBSTONES not in disabled
        self.block_size = block_size
        self.offload = offload
        """Where block checksums are verified (a worker thread in production)."""
        self.bytes = 0
        self.count = 0
        self._copies: dict[str, _Row] = {}
        self._sorted: list[str] = []
        """The held hashes in order, kept in order as copies come and go (sorting a store
        of 100,000 copies anew took tens of milliseconds, on the event loop, each time)."""
        self._tombstones: dict[str, float] = {}
        self.changes = 0
        """Bumped whenever a copy is added, replaced or dropped (repair backs off while it
        stays put)."""

    async def open(self) -> None:
        """Create the schema, reconcile files with rows after a crash, load the index.

        Rows are mirrored in memory (:meth:`get` never touches the database); the database
        stays the durable record and is written before the mirror changes.
        """
        db = self.disk.db
        await db.executescript(_SCHEMA)
        rows = await db.query(
            "SELECT sha256, file, size, block_size, blocks, stored_at FROM blob_copy"
        )
        copies = [
            Copy(str(r[0]), str(r[1]), int(r[2]), int(r[3]), bytes(r[4]), float(r[5])) for r in rows
        ]
        present = set(await self.disk.list_files(PREFIX))
        wanted = {c.file for c in copies}
        for name in sorted(present - wanted):
            await self.disk.delete(name, sync=True)  # an upload that was never recorded
        missing = sorted(c.file for c in copies if c.file not in present)
        if missing:
            async with db.transaction(sync=True) as tx:
                for name in missing:
                    tx.execute("DELETE FROM blob_copy WHERE file = ?", (name,))
        self._copies = {
            c.sha256: _row(c) for c in sorted(copies, key=lambda c: c.sha256) if c.file in present
        }
        self._sorted = list(self._copies)  # inserted in hash order above
        tombs = await db.query("SELECT sha256, deleted_at FROM blob_tombstone")
        self._tombstones = {str(r[0]): float(r[1]) for r in tombs}
        self.count = len(self._copies)
        self.bytes = sum(r[2] for r in self._copies.values())

    # -- queries -----------------------------------------------------------------------------

    def get(self, sha256: str) -> Copy | None:
        row = self._copies.get(sha256)
        return None if row is None else Copy(*row)

    def held(self) -> list[str]:
        """The hash of every held copy, sorted (a new list: the caller may keep it)."""
        return list(self._sorted)

    def hashes(self) -> list[tuple[str, float]]:
        """Every held copy as ``(sha256, stored_at)``, sorted by hash."""
        return self.stamped(self._sorted)

    def stamped(self, hashes: Iterable[str]) -> list[tuple[str, float]]:
        """``(sha256, stored_at)`` of each of ``hashes`` that is still held, in their order
        (a repair round takes :meth:`held` once, then stamps one window at a time)."""
        copies = self._copies
        return [(sha, row[5]) for sha in hashes if (row := copies.get(sha)) is not None]

    def tombstone(self, sha256: str) -> float | None:
        return self._tombstones.get(sha256)

    def oldest_tombstone(self) -> float | None:
        return min(self._tombstones.values(), default=None)

    # -- writing -----------------------------------------------------------------------------

    def ingest(self, file_id: str, *, vouched: bool = False) -> Ingest:
        """Start writing a new copy into a fresh file named after ``file_id``;
        ``vouched=True`` when the content address and block digests come with the commit
        from whoever hashed the bytes (see :class:`Ingest`)."""
        name = f"{PREFIX}{file_id[:2]}/{file_id}"
        writer = self.disk.create(name, cache=self._cache_writes)
        return Ingest(self, writer, self.block_size, vouched=vouched)

    async def _publish(
        self,
        ingest: Ingest,
        digest: str,
        blocks: bytes,
        block_size: int,
        *,
        stored_at: float,
        sync: bool,
    ) -> Copy:
        writer = ingest.writer
        size = ingest.size
        await writer.commit(sync=sync)
        # The tombstone test is delete_wins (``_core.py``), inside the transaction.
        # Two writers of the same content (an upload and a repair fetch) may get here at
        # once: the check and the insert share one transaction, so exactly one row wins.
        async with self.disk.db.transaction(sync=sync) as tx:
            tomb = tx.execute(
                "SELECT deleted_at FROM blob_tombstone WHERE sha256 = ? AND deleted_at >= ?",
                (digest, stored_at),
            )
            if tomb:
                rows = []
            else:
                tx.execute("DELETE FROM blob_tombstone WHERE sha256 = ?", (digest,))
                rows = tx.execute(
                    "SELECT sha256, file, size, block_size, blocks, stored_at FROM blob_copy "
                    "WHERE sha256 = ?",
                    (digest,),
                )
                if rows:
                    tx.execute(
                        "UPDATE blob_copy SET stored_at = max(stored_at, ?) WHERE sha256 = ?",
                        (stored_at, digest),
                    )
                else:
                    tx.execute(
                        "INSERT INTO blob_copy (sha256, file, size, block_size, blocks, "
                        "stored_at) VALUES (?, ?, ?, ?, ?, ?)",
                        (digest, writer.name, size, block_size, blocks, stored_at),
                    )
        if tomb:
            await self._delete_file(writer.name)
            raise Tombstoned(f"{digest} was deleted at {tomb[0][0]}, after this upload began")
        self._tombstones.pop(digest, None)
        if rows:
            r = rows[0]
            copy = Copy(str(r[0]), str(r[1]), int(r[2]), int(r[3]), bytes(r[4]), float(r[5]))
            copy = attrs.evolve(copy, stored_at=max(copy.stored_at, stored_at))
            if digest not in self._copies:
                bisect.insort(self._sorted, digest)
            self._copies[digest] = _row(copy)
            await self._delete_file(writer.name)  # a copy was already there (or won a race)
            return copy
        copy = Copy(digest, writer.name, size, block_size, blocks, stored_at)
        self._copies[digest] = _row(copy)
        bisect.insort(self._sorted, digest)
        self.changes += 1
        self.count += 1
        self.bytes += size
        return copy

    async def replace(self, ingest: Ingest, sha256: str) -> Copy:
        """Swap a (corrupt) copy for the freshly fetched one in ``ingest``."""
        digest, blocks = ingest.hasher.finish()
        if digest != sha256:
            await ingest.abort()
            raise IntegrityError(f"fetched bytes hash to {digest}, expected {sha256}")
        old = self.get(sha256)
        if old is None:
            return await self._publish(
                ingest, digest, blocks, self.block_size, stored_at=0.0, sync=True
            )
        await ingest.writer.commit(sync=True)
        async with self.disk.db.transaction(sync=True) as tx:
            tx.execute(
                "UPDATE blob_copy SET file = ?, block_size = ?, blocks = ? WHERE sha256 = ?",
                (ingest.writer.name, self.block_size, blocks, sha256),
            )
        new = attrs.evolve(old, file=ingest.writer.name, block_size=self.block_size, blocks=blocks)
        self._copies[sha256] = _row(new)
        self.changes += 1
        await self._delete_file(old.file)
        return new

    async def drop(self, sha256: str, *, deleted_at: float | None = None) -> bool:
        """Remove the copy (and record a tombstone when ``deleted_at`` is given)."""
        copy = self.get(sha256)
        if not self._tombstoning:
            deleted_at = None
        async with self.disk.db.transaction(sync=True) as tx:
            tx.execute("DELETE FROM blob_copy WHERE sha256 = ?", (sha256,))
            if deleted_at is not None:
                tx.execute(
                    "INSERT INTO blob_tombstone (sha256, deleted_at) VALUES (?, ?) "
                    "ON CONFLICT(sha256) DO UPDATE SET deleted_at = "
                    "max(deleted_at, excluded.deleted_at)",
                    (sha256, deleted_at),
                )
        if deleted_at is not None:
            self._tombstones[sha256] = max(deleted_at, self._tombstones.get(sha256, deleted_at))
        if copy is None or self._copies.pop(sha256, None) is None:
            return False
        del self._sorted[bisect.bisect_left(self._sorted, sha256)]
        self.changes += 1
        self.count -= 1
        self.bytes -= copy.size
        await self._delete_file(copy.file)
        return True

    async def expire_tombstones(self, before: float) -> int:
        async with self.disk.db.transaction(sync=True) as tx:
            gone = tx.execute(
                "DELETE FROM blob_tombstone WHERE deleted_at < ? RETURNING sha256", (before,)
            )
        for row in gone:
            self._tombstones.pop(str(row[0]), None)
        return len(gone)

    async def _delete_file(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            await self.disk.delete(name, sync=True)

    # -- reading -----------------------------------------------------------------------------

    async def read(self, copy: Copy, offset: int, length: int) -> bytes:
        """Bytes ``[offset, offset + length)`` of ``copy``, each covering block verified.

        A block that fails its check is read once more (a transient read error); if it
        fails again the copy is corrupt and :class:`CorruptCopy` is raised.
        """
        end = min(copy.size, offset + length)
        if offset >= end:
            return b""
        bs = copy.block_size
        first, last = offset // bs, (end - 1) // bs
        start = first * bs
        width = _width(copy)
        data = await self.disk.read(copy.file, start, min((last + 1) * bs, copy.size) - start)
        if not self._verify_reads:
            bad = []
        elif width == BLOCK_DIGEST:
            # XXH3 checks a MiB in about 20 us: less than a hop to a worker thread costs.
            bad = _bad_blocks(data, copy.blocks, first, last, bs, width)
        else:
            bad = await self.offload(
                _bad_blocks,
                data,
                copy.blocks,
                first,
                last,
                bs,
                width,
                kind="sha256",
                size=len(data),
            )
        if bad:
            # Read each failed block once more (a transient read error) before giving up.
            fixed = bytearray(data)
            for index in bad:
                lo = (index - first) * bs
                block = await self.disk.read(copy.file, index * bs, len(data[lo : lo + bs]) or bs)
                want = copy.blocks[index * width : (index + 1) * width]
                if block_digest(block, width) != want:
                    raise CorruptCopy(f"block {index} of {copy.sha256} is corrupt")
                fixed[lo : lo + len(block)] = block
            data = bytes(fixed)
        if offset == start and end - start == len(data):
            return data
        return data[offset - start : end - start]

    async def verify(self, copy: Copy) -> bool:
        """Re-read the whole copy and check every block and the whole-blob hash."""
        # read() checks every block against its digest already (unless that check is
        # switched off): then hashing the blocks again here would be a third pass.
        try:
            width = _width(copy)
        except CorruptCopy:
            return False
        hasher = BlockHasher(copy.block_size, blocks=not self._verify_reads, width=width)
        step = copy.block_size * max(1, (1 << 20) // copy.block_size)
        pos = 0
        try:
            while pos < copy.size:
                chunk = await self.read(copy, pos, step)
                hasher.update(chunk)
                pos += len(chunk)
        except (CorruptCopy, FileNotFoundError):
            return False
        digest, blocks = hasher.finish()
        return digest == copy.sha256 and (self._verify_reads or blocks == copy.blocks)
