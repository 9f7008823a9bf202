"""The blob collector: deletes the copies of blobs that no catalog entry owns any more.

Theory of operation
-------------------
*Who owns a blob* is the catalog's business (:mod:`dspot_spotify.catalog._blobs`): a song or
album that refers to it, or an upload's lease. Every replica knows it at every position, by
the log's clock (the largest ``at`` applied).

*Driven by the log, through the outbox.* When a node applies an entry **it wrote** (its
id says so, :func:`~dspot_spotify.writer.entry_origin`) and the entry left blobs unowned
(a song deleted, an album cover replaced) or leased them (an upload that may never refer to
them), it adds, in the same transaction as the entry, one outbox message per voter naming
those blobs (:class:`~dspot.outbox.Outbox`: delivered with retries until acknowledged, also
to a voter that is down now). A voter's inbox records each blob in its ``blob_watch`` table
in the transaction that acknowledges the message, so the announcement survives crashes on
both sides and is handled once. A periodic sweep also watches every local copy the catalog
does not own (copies from before reference counting, or whatever the messages missed).

*Collecting.* Every ``collect_interval`` (sooner when a message arrives) the collector looks
at the watched blobs. One still owned is forgotten; one under a live lease waits; one that
has been unowned for ``blob_grace`` **by this replica's log clock** has its local copy
dropped with a tombstone dated ``log clock - grace`` (the blob store's rule: copies stored
before a tombstone lose to it, later ones win; repair spreads it to the other holders). A
node that does not see a quorum collects nothing.

Why it never deletes what a pending upload is about to refer to: the upload commits its lease
before storing anything, and the catalog accepts the upload's song only while that lease
lasts by the log's clock (:class:`~dspot_spotify.catalog.Batch`). The collector drops a
copy only once its own log clock is past the lease (and the grace); any entry applied after
that sees a later clock, so a late song commit is rejected rather than left pointing at a
deleted blob. A new upload of the same bytes leases them again after the collector's
position, so its puts began after the tombstone's date and win over it (clocks must agree
within ``blob_grace``; tombstones already assume roughly synchronised clocks).

If the log is idle, its clock stands still: a collector with blobs whose grace is over by
the wall clock but not by the log's commits a :class:`~dspot_spotify.catalog.LogClock`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Final

import anyio
import anyio.abc
import anyio.lowlevel
from dspot.disk import Transaction
from dspot.membership import VoterView
from dspot.outbox import Inbox, InboxMessage, Outbox

from dspot_spotify import catalog
from dspot_spotify.config import Sabotage
from dspot_spotify.parts import NodeParts
from dspot_spotify.replica import Effects
from dspot_spotify.writer import CatalogWriter

__all__ = ["UNOWNED", "BlobCollector"]

UNOWNED: Final = "spotify.blobs_unowned"
"""The outbox message kind: ``{"blobs": [sha256, ...]}`` to look at after the grace period."""
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS blob_watch (
    sha256 TEXT PRIMARY KEY, epoch INTEGER NOT NULL, seq INTEGER NOT NULL);
"""
_BATCH: Final = 500  # hashes per catalog query
_SLICE: Final = 4096
"""Copies counted between two turns of the event loop (a store of 100,000 copies counted
in one turn stalled the loop for over 100 ms)."""


class BlobCollector:
    """One node's collector. :meth:`attach` it to the node's outbox and inbox, pass
    :meth:`announcer` to the replica for the entries this node wrote, then run it with
    ``await tg.start(collector.run)``."""

    def __init__(self, node: NodeParts, writer: CatalogWriter) -> None:
        self.node = node
        self.writer = writer
        self.outbox: Outbox | None = None
        self.orphaned_bytes = 0
        """Bytes of local copies that nothing owns now (awaiting collection)."""
        self.collected = 0
        """Copies this node dropped since it started."""
        self._wake = anyio.Event()
        self._last_tick = -float("inf")

    @property
    def enabled(self) -> bool:
        return Sabotage.COLLECTOR_OFF not in self.node.config.sabotage

    def attach(self, outbox: Outbox, inbox: Inbox) -> None:
        """Send announcements through ``outbox``; receive them through ``inbox``."""
        self.outbox = outbox
        inbox.handle(UNOWNED, self._receive)

    async def open(self) -> None:
        """Create the watch table (once, before the first announcement arrives)."""
        await self.node.env.disk.db.executescript(_SCHEMA)

    # -- announcements --------------------------------------------------------------------

    def announcer(self) -> Effects:
        """The replica's effects for an entry this node wrote: in the transaction that
        applied it (at ``position``), tell every voter about the blobs it left unowned or
        leased. The voters are read now, on the event loop: the replica may run the effects
        in a worker thread (:meth:`~dspot.disk.Database.write`)."""
        outbox = self.outbox
        voters = [m.node_id for m in VoterView(self.node.membership).configured()]

        def announce(
            tx: Transaction, position: catalog.LogPosition, result: catalog.ApplyResult
        ) -> None:
            if not result.unowned or outbox is None:
                return
            at = [position.epoch, position.seq]
            body = json.dumps({"blobs": list(result.unowned), "position": at}).encode()
            for voter in voters:
                outbox.add(tx, voter, UNOWNED, body)

        return announce

    def _receive(self, tx: Transaction, message: InboxMessage) -> None:
        doc = json.loads(message.body)
        epoch, seq = (int(x) for x in doc["position"])
        for sha in doc["blobs"]:
            if isinstance(sha, str) and catalog.SHA256_RE.match(sha):
                _watch(tx, sha, catalog.LogPosition(epoch, seq))
        self._wake.set()

    # -- collecting -----------------------------------------------------------------------

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Collect every ``collect_interval`` (or when woken), sweep now and then."""
        config = self.node.config
        task_status.started()
        if not self.enabled:
            self.node.env.log(logging.ERROR, "spotify.SABOTAGE.collector_off")
        rounds = 0
        while True:
            with anyio.move_on_after(config.collect_interval) as waited:
                await self._wake.wait()
            self._wake = anyio.Event()
            # The sweep and the orphaned-bytes count look at every local copy: only on the
            # periodic rounds, not on each wake-up (every upload wakes every voter; counting
            # all copies each time made uploads slow down as the catalog grew).
            periodic = waited.cancelled_caught or rounds == 0
            try:
                if periodic:
                    if rounds % 10 == 0:
                        await self.sweep()
                    rounds += 1
                await self.collect_once(measure=periodic)
            except anyio.get_cancelled_exc_class():
                raise
            except Exception as e:  # a disk or ring hiccup: try again next round
                self.node.env.log(logging.WARNING, "spotify.collector.error", error=repr(e))

    def wake(self) -> None:
        """Look again now (tests, and new announcements)."""
        self._wake.set()

    async def sweep(self) -> int:
        """Watch every local copy that the catalog does not own; returns how many."""
        held = self.node.blobs.local.held()
        owned = await self._owned(held)
        added = 0
        async with self.node.env.disk.db.transaction(sync=False) as tx:
            for sha in held:
                if sha not in owned:
                    added += _watch(tx, sha, catalog.LogPosition(0, 0))
        return added

    async def _owned(self, hashes: Sequence[str]) -> set[str]:
        """Those of ``hashes`` that something owns now (by the replica's log clock)."""
        owned: set[str] = set()
        replica = self.node.replica
        for i in range(0, len(hashes), _BATCH):
            part = hashes[i : i + _BATCH]
            clock, rows = await replica.read(_ownership, part)
            owned |= {h for h, row in rows.items() if row.unowned_since(clock) is None}
        return owned

    async def collect_once(self, *, measure: bool = True) -> int:
        """Drop the local copies whose grace period is over; returns how many. ``measure``:
        also recount :attr:`orphaned_bytes` (a look at every local copy)."""
        node = self.node
        db = node.env.disk.db
        # An announcement may arrive before this replica applied its entry: wait for it.
        applied = node.replica.position or catalog.LogPosition(0, 0)
        watched = [
            str(r[0])
            for r in await db.execute("SELECT sha256, epoch, seq FROM blob_watch", sync=False)
            if catalog.LogPosition(int(r[1]), int(r[2])) <= applied
        ]
        if measure:
            await self._measure()
        if not watched or not node.has_quorum():
            return 0
        grace = int(node.config.blob_grace * 1000)
        pending = Sabotage.COLLECT_PENDING in node.config.sabotage
        forget: list[str] = []
        drop: list[tuple[str, float]] = []
        waiting_on_clock = False
        for i in range(0, len(watched), _BATCH):
            part = watched[i : i + _BATCH]
            clock, rows = await node.replica.read(_ownership, part)
            for sha in part:
                row = rows.get(sha)
                if row is not None and row.refs > 0:
                    forget.append(sha)  # owned again (or never lost): nothing to do
                    continue
                if pending:  # sabotage: a lease and a fresh copy protect nothing
                    drop.append((sha, node.env.clock.wall()))
                    continue
                # Unowned since its last reference went or its lease ended (a blob the
                # catalog never heard of: since ever); leased until then.
                since = 0 if row is None else max(row.released_at, row.lease_until)
                if clock < since + grace:
                    waiting_on_clock |= node.now_ms() >= since + grace
                    continue
                drop.append((sha, (clock - grace) / 1000))
        collected = 0
        if self.enabled:
            for sha, deleted_at in drop:
                copy = node.blobs.local.get(sha)
                if copy is None:
                    if not pending:  # (the sabotage waits for the upload's copy to arrive)
                        forget.append(sha)
                elif copy.stored_at <= deleted_at or pending:
                    await node.blobs.local.drop(sha, deleted_at=max(deleted_at, copy.stored_at))
                    node.env.log(logging.INFO, "spotify.blob_collected", sha256=sha)
                    node.env.trace("spotify.blob_collected", sha256=sha)
                    forget.append(sha)
                    collected += 1
        if forget:
            async with db.transaction(sync=False) as tx:
                tx.executemany("DELETE FROM blob_watch WHERE sha256 = ?", [(h,) for h in forget])
        if waiting_on_clock:
            await self._tick()
        self.collected += collected
        node.metrics.collected.inc(collected)
        if collected:
            await self._measure()
        return collected

    async def _tick(self) -> None:
        """Move the log's clock (at most once per grace period/4): the log is idle."""
        node = self.node
        now = node.env.clock.now()
        if now - self._last_tick < node.config.blob_grace / 4:
            return
        self._last_tick = now
        try:
            await self.writer.submit(catalog.LogClock(at=node.now_ms()))
        except Exception as e:  # no quorum, timeout: the next round tries again
            node.env.log(logging.INFO, "spotify.collector.tick_failed", error=repr(e))

    async def _measure(self) -> None:
        """Recount the bytes of local copies that nothing owns (awaiting collection)."""
        local = self.node.blobs.local
        held = local.held()
        owned = await self._owned(held)
        total = 0
        for i, sha in enumerate(held):
            if i and not i % _SLICE:
                await anyio.lowlevel.checkpoint()  # let the loop serve others meanwhile
            copy = local.get(sha)
            if sha not in owned and copy is not None:
                total += copy.size
        self.orphaned_bytes = total
        self.node.metrics.orphaned_bytes.set(total)


def _watch(tx: Transaction, sha: str, position: catalog.LogPosition) -> int:
    """Watch ``sha`` once this replica has applied ``position`` (the later of two); 1."""
    rows = tx.execute(
        "INSERT INTO blob_watch (sha256, epoch, seq) VALUES (?, ?, ?) "
        "ON CONFLICT (sha256) DO UPDATE SET epoch = max(epoch, excluded.epoch), "
        "seq = CASE WHEN excluded.epoch > epoch OR (excluded.epoch = epoch AND "
        "excluded.seq > seq) THEN excluded.seq ELSE seq END RETURNING sha256",
        (sha, position.epoch, position.seq),
    )
    return len(rows)


def _ownership(
    tx: catalog.Tx, hashes: Sequence[str]
) -> tuple[int, dict[str, catalog.BlobOwnership]]:
    return catalog.log_clock(tx), catalog.ownership(tx, hashes)
