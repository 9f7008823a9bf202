"""A node's catalog replica on a ``dspot.disk`` database.

:class:`CatalogReplica` is the glue between the ordered log (the token ring delivers
``(position, bytes)`` in order) and the SQLite state machine of :mod:`dspot_spotify.catalog`:
it applies entries in durable transactions, serves reads, and lets a writer wait until the
position it was given is applied here (read-your-writes on any replica) and learn whether
its entry was applied or rejected.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Concatenate, ParamSpec, TypeVar

import anyio
from dspot.disk import Database, Transaction

from dspot_spotify import catalog
from dspot_spotify.catalog import snapshot

__all__ = ["CatalogReplica", "Effects"]

P = ParamSpec("P")
T = TypeVar("T")
Effects = Callable[[Transaction, catalog.LogPosition, catalog.ApplyResult], None]
"""What a node does in the transaction that applied an entry (its outbox messages)."""


class CatalogReplica:
    """Applies the catalog log to ``db`` and answers reads from it.

    Call :meth:`open` once (and again after the disk crashed and restarted: it reloads the
    durable position). Applying is idempotent by position, so redelivery after a crash is
    harmless: the log resumes from :attr:`position`.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._position: catalog.LogPosition | None = None
        self._waiters: list[tuple[catalog.LogPosition, anyio.Event]] = []

    async def open(self) -> None:
        """Create the schema if needed and load the last durably applied position."""
        async with self._db.transaction() as tx:
            catalog.create_schema(tx)
            self._position = catalog.applied_position(tx)
        self._wake()

    @property
    def position(self) -> catalog.LogPosition | None:
        """The last position applied and committed here (None before the first)."""
        return self._position

    async def apply(
        self,
        position: catalog.LogPosition,
        data: bytes,
        *,
        sync: bool = True,
        effects: Effects | None = None,
    ) -> catalog.ApplyResult:
        """Apply one encoded entry in its own transaction (durable when ``sync``);
        ``effects`` runs in that transaction once the entry is applied (not skipped)."""
        [result] = await self.apply_many([(position, data)], sync=sync, effects=effects)
        return result

    async def apply_many(
        self,
        items: Sequence[tuple[catalog.LogPosition, bytes]],
        *,
        sync: bool = True,
        effects: Effects | None = None,
    ) -> list[catalog.ApplyResult]:
        """Apply consecutive encoded entries in one transaction (one fsync for the batch).

        The statements run on the database's writer connection off the event loop, so a
        large batch does not hold up the node's probes and token passing; `effects` runs
        for each applied entry inside that same transaction."""

        def apply(tx: Transaction) -> tuple[list[catalog.ApplyResult], catalog.LogPosition | None]:
            results = []
            for pos, data in items:
                result = catalog.apply_encoded(tx, pos, data)
                if effects is not None and result.status == "applied":
                    effects(tx, pos, result)
                results.append(result)
            return results, catalog.applied_position(tx)

        results, after = await self._db.write(apply, sync=sync)
        self._position = after  # only once committed
        self._wake()
        return results

    async def replace(
        self, position: catalog.LogPosition, fill: Callable[[Transaction], Awaitable[None]]
    ) -> None:
        """Replace the whole catalog in one durable write transaction: ``fill`` drops and
        fills the tables (:mod:`dspot_spotify.catalog.snapshot`), then ``position`` becomes
        the last one applied. A crash before the commit leaves the old catalog and position;
        readers wait for the transaction, and see the old catalog or the new one."""
        async with self._db.transaction() as tx:
            await fill(tx)
            snapshot.finish_restore(tx, position)
        self._position = position  # only once committed
        self._wake()

    async def read(
        self, fn: Callable[Concatenate[catalog.Tx, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run a query function (``catalog.list_songs`` ...) on a snapshot of committed state.

        It runs on one of the database's reader connections, in a worker thread in
        production, and never waits for (nor holds up) the log being applied. ``fn`` must
        only query: keep CPU-heavy work that needs no database (password hashes) out of it.
        """
        return await self._db.read(fn, *args, **kwargs)

    async def check(
        self, entry: catalog.Entry, *, leased: Sequence[str] = ()
    ) -> catalog.ApplyResult:
        """What applying ``entry`` now would answer (:func:`catalog.check
        <dspot_spotify.catalog.check>`), with nothing changed. The dry run writes inside a
        savepoint it rolls back, which a reader connection refuses: it runs on the writer
        connection, off the event loop."""

        def dry_run(tx: Transaction) -> catalog.ApplyResult:
            return catalog.check(tx, entry, leased=leased)

        return await self._db.write(dry_run, sync=False)

    @property
    def waiting(self) -> int:
        """How many :meth:`wait_applied` calls are waiting now."""
        return len(self._waiters)

    async def wait_applied(self, position: catalog.LogPosition) -> None:
        """Return once ``position`` is applied here (wrap in ``anyio.fail_after``); a wait
        that is cancelled (timed out) leaves nothing behind. ``0.0`` (what an answer says
        before the first entry) is reached at once, even by a replica that applied nothing."""
        if position <= catalog.LogPosition(0, 0):
            return
        if self._position is not None and position <= self._position:
            return
        waiter = (position, anyio.Event())
        self._waiters.append(waiter)
        try:
            await waiter[1].wait()
        finally:
            if waiter in self._waiters:  # not woken: cancelled, or timed out
                self._waiters.remove(waiter)

    async def outcome(self, position: catalog.LogPosition) -> catalog.ApplyResult:
        """Wait for ``position``, then say whether its entry was applied or rejected."""
        await self.wait_applied(position)
        rejection = await self.read(catalog.rejection_at, position)
        if rejection is None:
            return catalog.ApplyResult("applied")
        return catalog.ApplyResult("rejected", rejection.reason, rejection.code)

    def _wake(self) -> None:
        current = self._position
        if current is None:
            return
        keep: list[tuple[catalog.LogPosition, anyio.Event]] = []
        for pos, event in self._waiters:
            if pos <= current:
                event.set()
            else:
                keep.append((pos, event))
        self._waiters = keep
