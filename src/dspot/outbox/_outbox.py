"""The transactional outbox and its relay.

A message is a row in the ``outbox`` table, written by :meth:`Outbox.add` inside the
caller's own transaction, so it commits or vanishes with the state change that caused it.
The relay (:meth:`Outbox.run`) keeps one worker per destination with pending rows: it sends
them in ``seq`` order, in batches, and deletes them once the receiver's inbox acknowledged.
On failure the worker waits (:class:`~dspot.outbox.Backoff`, jitter from the node's rng) and
sends the same batch again. Everything it needs is in the table, so after a crash it simply
resumes from what is on disk.

Before sending, the relay syncs the database: a message must never reach its receiver while
a crash could still undo the transaction that wrote it (the caller may have committed with
``sync=False``).

Redelivery horizon: a message is retried until acknowledged, but never once it is older
than ``max_age``; then it moves to ``outbox_dead`` and is counted in :meth:`Outbox.stats`.
The receiver's inbox must remember ids for longer than that (see
:class:`~dspot.outbox.InboxConfig`).
"""

from __future__ import annotations

import logging
import math
import threading

import anyio
import anyio.abc
import anyio.from_thread
import attrs

from dspot.disk import DiskFault, ReadTransaction, Row, Transaction
from dspot.env import NodeEnv
from dspot.errors import DspotError
from dspot.membership._view import RingView
from dspot.outbox._backoff import Backoff
from dspot.outbox._mechanism import OutboxMechanism
from dspot.outbox._messages import Deliver, Delivered, Envelope
from dspot.rpc import NO_RETRY, RpcNode

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    destination TEXT NOT NULL,
    kind TEXT NOT NULL,
    body BLOB NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_destination ON outbox (destination, seq);
CREATE TABLE IF NOT EXISTS outbox_dead (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    destination TEXT NOT NULL,
    kind TEXT NOT NULL,
    body BLOB NOT NULL,
    created REAL NOT NULL
);
"""


@attrs.frozen
class OutboxConfig:
    batch: int = 64
    """Messages per delivery request."""
    batch_bytes: int = 4 * 1024 * 1024
    poll_interval: float = 1.0
    """How often the relay looks for work it was not woken for."""
    call_timeout: float = 5.0
    backoff_base: float = 0.05
    backoff_cap: float = 5.0
    max_age: float = 7 * 86400.0
    """Redelivery horizon: older undelivered messages are dead-lettered, not retried."""


@attrs.frozen
class OutboxStats:
    pending: int
    oldest_age: float | None
    """Seconds since the oldest pending message was added (``None`` when empty)."""
    retries: int
    """Failed delivery attempts since this relay started."""
    delivered: int
    dead: int
    by_destination: dict[str, int]


class Outbox:
    """A node's outbox. ``await outbox.open()`` once, then ``add`` inside transactions and
    run the relay with ``await tg.start(outbox.run)``."""

    def __init__(
        self,
        env: NodeEnv,
        rpc: RpcNode,
        view: RingView | None = None,
        config: OutboxConfig | None = None,
    ) -> None:
        self.env = env
        self.rpc = rpc
        self.view = view
        self.config = config or OutboxConfig()
        self._rng = env.child_rng("outbox")
        self._wake = anyio.Event()
        self._workers: dict[str, None] = {}  # destinations with a running worker
        self._retries = 0
        self._delivered = 0
        self._opened = False
        self._loop_thread = threading.get_ident()

    async def open(self) -> None:
        """Create the tables (idempotent). Must run before the first :meth:`add`."""
        self._loop_thread = threading.get_ident()
        await self.env.disk.db.executescript(_SCHEMA)
        self._opened = True

    def add(self, tx: Transaction, destination: str, kind: str, body: bytes) -> str:
        """Queue a message in the caller's open transaction; returns its id.

        ``destination`` is a member's node id (resolved through the view when sending) or
        an RPC address. The message exists only if ``tx`` commits. ``tx`` may be the
        transaction of a :meth:`~dspot.disk.Database.write`, running in a worker thread.
        """
        if not self._opened:
            raise RuntimeError("Outbox.open() must run before add()")
        # The id, the clock and the relay's wake-up belong to the event loop: from a
        # write()'s worker thread, ask the loop for them.
        if threading.get_ident() == self._loop_thread:
            msg_id, created = self._stamp()
        else:
            msg_id, created = anyio.from_thread.run_sync(self._stamp)
        tx.execute(
            "INSERT INTO outbox (id, destination, kind, body, created) VALUES (?, ?, ?, ?, ?)",
            (msg_id, destination, kind, bytes(body), created),
        )
        return msg_id

    def _stamp(self) -> tuple[str, float]:
        """A new message's id and creation time; wakes the relay (its read waits for the
        adding transaction to finish, so it finds the message)."""
        self._wake.set()
        return self.env.ids(), self.env.clock.wall()

    async def stats(self) -> OutboxStats:
        rows, dead = await self.env.disk.db.read(_stats_rows)
        oldest = min((float(r[2]) for r in rows), default=None)
        return OutboxStats(
            pending=sum(int(r[1]) for r in rows),
            oldest_age=None if oldest is None else self.env.clock.wall() - oldest,
            retries=self._retries,
            delivered=self._delivered,
            dead=int(dead),
            by_destination={str(r[0]): int(r[1]) for r in rows},
        )

    # -- relay -------------------------------------------------------------------------------

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        if not self._opened:
            await self.open()
        async with anyio.create_task_group() as tg:
            task_status.started()
            while True:
                self._wake = anyio.Event()
                # On the writer, not a reader: a transaction that sets _wake above has not
                # committed yet, and this read must wait for it to see its message.
                rows = await self.env.disk.db.execute(
                    "SELECT DISTINCT destination FROM outbox ORDER BY destination", sync=False
                )
                for (destination,) in rows:
                    if destination not in self._workers:
                        self._workers[destination] = None
                        tg.start_soon(self._worker, str(destination))
                with anyio.move_on_after(self.config.poll_interval):
                    await self._wake.wait()

    def _resolve(self, destination: str) -> tuple[str, str]:
        """The address to send ``destination``'s batches to, and the member they are for
        ("" when ``destination`` is an address of its own)."""
        if self.view is not None:
            member = self.view.get(destination)
            if member is not None:
                return member.address, member.node_id
        return destination, ""

    async def _worker(self, destination: str) -> None:
        cfg = self.config
        db = self.env.disk.db
        capped = self.env.enabled(OutboxMechanism.BACKOFF_CAP)
        backoff = Backoff(
            self._rng, base=cfg.backoff_base, cap=cfg.backoff_cap if capped else math.inf
        )
        try:
            while True:
                horizon = self.env.clock.wall() - cfg.max_age
                async with db.transaction(sync=True) as tx:
                    expired = tx.execute(
                        "SELECT seq FROM outbox WHERE destination = ? AND created < ?",
                        (destination, horizon),
                    )
                    if expired:
                        tx.execute(
                            "INSERT INTO outbox_dead SELECT * FROM outbox "
                            "WHERE destination = ? AND created < ?",
                            (destination, horizon),
                        )
                        tx.execute(
                            "DELETE FROM outbox WHERE destination = ? AND created < ?",
                            (destination, horizon),
                        )
                    rows = tx.execute(
                        "SELECT seq, id, kind, body, created FROM outbox WHERE destination = ? "
                        "ORDER BY seq LIMIT ?",
                        (destination, cfg.batch),
                    )
                if not rows:
                    return
                envelopes: list[Envelope] = []
                bodies: list[bytes] = []
                total = 0
                for seq, msg_id, kind, body, created in rows:
                    if envelopes and total + len(body) > cfg.batch_bytes:
                        break
                    envelopes.append(
                        Envelope(str(msg_id), int(seq), str(kind), len(body), float(created))
                    )
                    bodies.append(bytes(body))
                    total += len(body)
                if self.env.enabled(OutboxMechanism.SYNC_BEFORE_SEND):
                    await self.env.disk.sync()
                address, member = self._resolve(destination)
                if not self.env.enabled(OutboxMechanism.RECEIVER_CHECK):
                    member = ""
                try:
                    reply: Delivered = await self.rpc.call(
                        address,
                        Deliver(self.env.node_id, envelopes, b"".join(bodies), member),
                        timeout=cfg.call_timeout,
                        retry=NO_RETRY,
                    )
                except (DspotError, OSError) as exc:  # unreachable, refused, bad address
                    self._retries += 1
                    delay = backoff.failed()
                    self.env.trace("outbox.retry", dst=destination, error=type(exc).__name__)
                    self.env.log(logging.DEBUG, "outbox.retry", dst=destination, error=repr(exc))
                    await anyio.sleep(delay)
                    continue
                backoff.succeeded()
                last = envelopes[-1].seq
                # Unsynced: if a crash undoes this delete, the batch is sent again and the
                # receiver's inbox drops the duplicates.
                async with db.transaction(sync=False) as tx:
                    tx.execute(
                        "DELETE FROM outbox WHERE destination = ? AND seq <= ?", (destination, last)
                    )
                self._delivered += len(envelopes)
                self.env.trace(
                    "outbox.delivered", dst=destination, n=len(envelopes), dup=reply.duplicates
                )
        except DiskFault:
            raise
        finally:
            self._workers.pop(destination, None)


def _stats_rows(tx: ReadTransaction) -> tuple[list[Row], int]:
    rows = tx.execute(
        "SELECT destination, COUNT(*), MIN(created) FROM outbox "
        "GROUP BY destination ORDER BY destination"
    )
    return rows, int(tx.execute("SELECT COUNT(*) FROM outbox_dead")[0][0])
