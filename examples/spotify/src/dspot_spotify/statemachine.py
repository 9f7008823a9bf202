"""The catalog as the token ring's state machine: committed entries applied to the node's
:class:`~dspot_spotify.replica.CatalogReplica`, and snapshots of it, so that the ring can
compact its log and bring a member that fell behind its start (or starts empty) up to date.

A snapshot's bytes are a SQLite database holding exactly the catalog's tables
(:mod:`dspot_spotify.catalog.snapshot`).

* **Taking one**, on a database file (the production disk): ``VACUUM INTO`` a scratch file
  next to the database, on a connection of its own in a worker thread (``env.offload``),
  then streamed to the ring from there. The node's writer — the ring's log, the blob index —
  carries on meanwhile (a WAL reader blocks no writer); only this node's applying waits,
  since the ring applies nothing while it snapshots. On a database in memory (the
  simulated disk) the copy is built from one read transaction and serialized.
* **Restoring one**: the bytes go to a scratch file (or stay in memory), are opened
  read-only, and are copied into the node's database in **one** write transaction
  (:meth:`CatalogReplica.replace`), a batch at a time with the event loop free between
  batches. A crash before its commit leaves the old catalog; the ring restores again after
  the restart. Reads wait for the transaction meanwhile.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import IO, Final

from dspot.disk import Transaction
from dspot.env import Offload, run_inline
from dspot.tokenring import CommittedEntry, SnapshotReader, SnapshotWriter

from dspot_spotify import catalog
from dspot_spotify.catalog import snapshot
from dspot_spotify.replica import CatalogReplica, Effects

__all__ = ["CHUNK", "SCRATCH", "CatalogMachine"]

SCRATCH: Final = "catalog-snapshots"
"""Directory next to the database file for the copies being taken or restored."""
CHUNK: Final = 1024 * 1024
"""Bytes per write to the ring's snapshot file, and per read back from it."""

Applied = Callable[[catalog.LogPosition, bytes], None]
Restored = Callable[[catalog.LogPosition], None]
EffectsFor = Callable[[CommittedEntry], Effects | None]


class CatalogMachine:
    """A :class:`~dspot.tokenring.StateMachine` over ``replica``.

    ``on_applied(position, data)`` is called after each entry applied for the first time
    (not again after a restart), ``on_restored(position)`` after a snapshot replaced the
    catalog, ``on_taken()`` after a snapshot was taken: the node publishes events and counts
    them. ``effects_for(entry)`` names what else to do in the transaction that applies
    ``entry`` (the node's blob collector hears of blobs its own entries leave unowned).
    ``restore_search=False`` installs snapshots without the full-text tables (sabotage).
    """

    def __init__(
        self,
        replica: CatalogReplica,
        *,
        offload: Offload = run_inline,
        on_applied: Applied | None = None,
        on_restored: Restored | None = None,
        on_taken: Callable[[], None] | None = None,
        effects_for: EffectsFor | None = None,
        restore_search: bool = True,
    ) -> None:
        self.replica = replica
        self._restore_search = restore_search
        self._effects_for = effects_for
        self._offload = offload
        self._on_applied = on_applied
        self._on_restored = on_restored
        self._on_taken = on_taken
        self._source: Path | None = None
        self._scratch: Path | None = None
        self._located = False
        self.taken = 0
        """Snapshots taken by this process."""
        self.restored = 0
        """Snapshots restored by this process."""
        self.on_restore_batch: Callable[[], Awaitable[None]] | None = None
        """Fault injection (simulation): awaited after each batch of rows a restore copies,
        inside its transaction."""

    # -- the StateMachine protocol ---------------------------------------------------------

    async def apply(self, entry: CommittedEntry) -> None:
        await self.apply_batch([entry])

    async def apply_batch(self, entries: Sequence[CommittedEntry]) -> None:
        """Apply a run of entries in one transaction (one fsync: a member catching up on
        thousands of entries pays one commit per run, not one per entry)."""
        positions = [catalog.LogPosition(e.position.epoch, e.position.seq) for e in entries]
        before = self.replica.position
        effects: dict[catalog.LogPosition, Effects] = {}
        if self._effects_for is not None:
            for position, entry in zip(positions, entries, strict=True):
                if (found := self._effects_for(entry)) is not None:
                    effects[position] = found

        def run(
            tx: Transaction, position: catalog.LogPosition, result: catalog.ApplyResult
        ) -> None:
            if (effect := effects.get(position)) is not None:
                effect(tx, position, result)

        items = [(p, e.data) for p, e in zip(positions, entries, strict=True)]
        await self.replica.apply_many(items, effects=run if effects else None)
        if self._on_applied is not None:
            for position, entry in zip(positions, entries, strict=True):
                if before is None or position > before:  # not news after a restart
                    self._on_applied(position, entry.data)

    async def applied_index(self) -> int:
        """The ``seq`` of the position stored with the catalog (0 before any)."""
        position = self.replica.position
        return 0 if position is None else position.seq

    async def save_snapshot(self, out: SnapshotWriter) -> None:
        scratch = await self._scratch_dir()
        if scratch is None:
            image = await self.replica.read(snapshot.export_rows)
            for start in range(0, len(image), CHUNK):
                await out.write(image[start : start + CHUNK])
        else:
            assert self._source is not None
            path = scratch / "take.sqlite3"
            try:
                await self._offload(_unlink, path)
                await self._offload(snapshot.export_file, self._source, path)
                f = await self._offload(_open, path, "rb")
                try:
                    while data := await self._offload(f.read, CHUNK):
                        await out.write(data)
                finally:
                    f.close()  # here, not offloaded: a cancelled await would leak it
            finally:
                await self._offload(_unlink, path)
        self.taken += 1
        if self._on_taken is not None:
            self._on_taken()

    async def restore_snapshot(self, snap: SnapshotReader) -> None:
        position = catalog.LogPosition(snap.epoch, snap.index)
        scratch = await self._scratch_dir()
        path = None if scratch is None else scratch / "restore.sqlite3"
        copy = await self._open_copy(snap, path)
        try:
            plans = await self._offload(snapshot.read_plans, copy)
            if not self._restore_search:  # Sabotage.SNAPSHOT_WITHOUT_SEARCH
                plans = [p for p in plans if not p.table.virtual]

            async def fill(tx: Transaction) -> None:
                snapshot.drop_and_create(tx)
                for plan in plans:
                    cursor = await self._offload(copy.execute, plan.select)
                    try:
                        while rows := await self._offload(cursor.fetchmany, snapshot.BATCH):
                            snapshot.insert_rows(tx, plan, rows)
                            if self.on_restore_batch is not None:
                                await self.on_restore_batch()
                    finally:
                        cursor.close()

            await self.replica.replace(position, fill)
        finally:
            copy.close()
            if path is not None:
                await self._offload(_unlink, path)
        self.restored += 1
        if self._on_restored is not None:
            self._on_restored(position)

    # -- plumbing --------------------------------------------------------------------------

    async def _scratch_dir(self) -> Path | None:
        """The scratch directory (emptied of what a crash left), or None for a database in
        memory."""
        if not self._located:
            name = await self.replica.read(snapshot.database_file)
            if name:
                self._source = Path(name)
                self._scratch = self._source.parent / SCRATCH
                await self._offload(_fresh_dir, self._scratch)
            self._located = True
        return self._scratch

    async def _open_copy(self, snap: SnapshotReader, path: Path | None) -> sqlite3.Connection:
        if path is None:
            return snapshot.open_copy(image=await snap.read())
        await self._offload(_unlink, path)
        f = await self._offload(_open, path, "wb")
        try:
            async for chunk in snap.chunks(CHUNK):
                await self._offload(f.write, chunk)
        finally:
            f.close()
        return await self._offload(snapshot.open_copy, path)


def _open(path: Path, mode: str) -> IO[bytes]:
    return open(path, mode)


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)


def _fresh_dir(path: Path) -> None:
    path.mkdir(exist_ok=True)
    for leftover in path.iterdir():
        with contextlib.suppress(OSError):
            leftover.unlink()
