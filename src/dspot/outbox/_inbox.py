"""The receiving side: apply each message's effect exactly once.

:meth:`Inbox.handle` registers an effect per message kind. A delivered batch is applied in
one SQLite transaction: for each message not yet in the ``inbox`` table, the effect runs and
the id is recorded, both in that transaction, which is synced before the sender hears back.
A redelivered message (lost acknowledgement, sender crash, duplicated request) finds its id
and is skipped.

Ids expire after ``InboxConfig.window``. The window must exceed the sender's redelivery
horizon (``OutboxConfig.max_age``, the longest a sender keeps retrying one message) plus
clock skew between the two nodes: once an id is forgotten, a late redelivery of that message
would run its effect a second time.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio
import anyio.abc
import attrs

from dspot.disk import Transaction
from dspot.env import NodeEnv
from dspot.errors import RemoteError
from dspot.outbox._mechanism import OutboxMechanism
from dspot.outbox._messages import Deliver, Delivered
from dspot.rpc import Peer, RpcNode

_SCHEMA = """
CREATE TABLE IF NOT EXISTS inbox (
    id TEXT PRIMARY KEY,
    sender TEXT NOT NULL,
    received REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS inbox_received ON inbox (received);
"""


@attrs.frozen
class InboxMessage:
    id: str
    sender: str
    kind: str
    body: bytes
    created: float
    """Sender's wall-clock time when the message was added."""


Effect = Callable[[Transaction, InboxMessage], None]


@attrs.frozen
class InboxConfig:
    window: float = 8 * 86400.0
    """How long a message id is remembered; must exceed the senders' ``max_age``."""
    expire_interval: float = 3600.0


class Inbox:
    """A node's inbox: ``handle`` effects, then ``await tg.start(inbox.run)``."""

    def __init__(self, env: NodeEnv, rpc: RpcNode, config: InboxConfig | None = None) -> None:
        self.env = env
        self.rpc = rpc
        self.config = config or InboxConfig()
        self._effects: dict[str, Effect] = {}
        self._ready = False

    def handle(self, kind: str, effect: Effect) -> None:
        """Run ``effect(tx, message)`` for each new message of ``kind``, inside the inbox's
        transaction (synchronous: no awaits; raise to reject the whole batch)."""
        self._effects[kind] = effect

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        await self.env.disk.db.executescript(_SCHEMA)
        self.rpc.handle(Deliver, self._on_deliver)
        self._ready = True
        task_status.started()
        while True:
            await self.expire()
            await anyio.sleep(self.config.expire_interval)

    async def expire(self) -> int:
        """Forget ids older than the window; returns how many."""
        cutoff = self.env.clock.wall() - self.config.window
        async with self.env.disk.db.transaction(sync=False) as tx:
            gone = tx.execute("DELETE FROM inbox WHERE received < ? RETURNING id", (cutoff,))
        return len(gone)

    async def _on_deliver(self, req: Deliver, peer: Peer) -> Delivered:
        if not self._ready:
            raise RemoteError("unavailable", "inbox starting")
        if req.to and req.to != self.env.node_id:
            # The sender's view gave it an address that another member answers now: refuse,
            # so it retries once its view is right, instead of applying someone else's mail.
            raise RemoteError("wrong_receiver", f"batch for {req.to} reached {self.env.node_id}")
        unknown = sorted({e.kind for e in req.envelopes} - set(self._effects))
        if unknown:
            raise RemoteError("unknown_kind", f"no effect for {unknown}")
        now = self.env.clock.wall()
        applied = duplicates = 0
        offset = 0
        async with self.env.disk.db.transaction(sync=True) as tx:
            for env in req.envelopes:
                body = req.payload[offset : offset + env.size]
                offset += env.size
                if self.env.enabled(OutboxMechanism.INBOX_DEDUPE) and tx.execute(
                    "SELECT 1 FROM inbox WHERE id = ?", (env.id,)
                ):
                    duplicates += 1
                    continue
                message = InboxMessage(env.id, req.sender, env.kind, body, env.created)
                try:
                    self._effects[env.kind](tx, message)
                except Exception as exc:
                    # The whole batch rolls back; the sender retries it later.
                    raise RemoteError("effect_failed", f"{env.kind} {env.id}: {exc!r}") from exc
                tx.execute(
                    "INSERT OR REPLACE INTO inbox (id, sender, received) VALUES (?, ?, ?)",
                    (env.id, req.sender, now),
                )
                applied += 1
        self.env.trace("inbox.applied", sender=req.sender, n=applied, dup=duplicates)
        return Delivered(applied, duplicates)
