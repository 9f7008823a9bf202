"""Snapshot transfer between members: chunked RPC with a checksum over the whole file.

The sender (:func:`send_snapshot`) reads its snapshot file a chunk at a time and sends
:class:`InstallSnapshot` requests; the receiver (:class:`SnapshotReceiver`) appends each
chunk that follows what it has, tells the sender where to continue, and publishes the
file (synced) only once it is complete and its sha256 matches. A crash discards a
half-received file: nothing of it is visible under its name.

Only the token holder sends, and each member offers its own latest snapshot (members take
theirs at different indexes), so a large transfer spans several holders' turns. The
receiver therefore keeps a few half-received snapshots side by side and answers a sender
that starts over with where its snapshot stopped: each holder's turn adds to its own file
instead of discarding the last holder's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio

from dspot.env import NodeEnv
from dspot.errors import RpcError
from dspot.rpc import RetryPolicy, RpcNode
from dspot.tokenring._messages import InstallSnapshot, InstallSnapshotReply, SnapshotMeta
from dspot.tokenring._output import SnapshotOffer
from dspot.tokenring._snapshot import IncomingSnapshot, SnapshotWriter

InstallStep = Callable[[str], Awaitable[None]]


async def send_snapshot(
    env: NodeEnv,
    rpc: RpcNode,
    address: str,
    offer: SnapshotOffer,
    *,
    chunk: int,
    timeout: float,
    current: Callable[[], bool],
) -> InstallSnapshotReply | None:
    """Send ``offer``'s snapshot to ``address``; the final reply, or ``None`` if the
    transfer failed or stopped being ``current`` (the core moved on)."""
    meta = offer.meta
    retry = RetryPolicy(attempts=1, attempt_timeout=timeout)
    offset = 0
    # Every chunk at most twice (a restart after a bad checksum), and a little slack.
    for _ in range(2 * (meta.size // chunk + 1) + 2):
        if not current():
            return None
        try:
            data = await env.disk.read(meta.name, offset, chunk)
        except FileNotFoundError:
            return None  # replaced by a newer snapshot; the core offers that one next
        msg = InstallSnapshot(
            offer.epoch, offer.hop, offer.holder, meta.index, meta.epoch, meta.size,
            meta.sha256, meta.data_offset, offset, data,
        )  # fmt: skip
        try:
            reply: InstallSnapshotReply = await rpc.call(address, msg, timeout=timeout, retry=retry)
        except RpcError:
            return None
        if not reply.ok or reply.installed:
            return reply
        if not 0 <= reply.next_offset < meta.size:
            return None
        offset = reply.next_offset
    return None


class SnapshotReceiver:
    """One member's incoming snapshot transfers.

    Keeps up to ``keep`` half-received snapshots (one per snapshot, the least recently
    extended dropped first), so senders taking turns each resume where they stopped."""

    def __init__(self, env: NodeEnv, folder: str, *, keep: int = 4) -> None:
        if keep < 1:
            raise ValueError("keep must be at least 1")
        self._env = env
        self._folder = folder
        self._keep = keep
        self._lock = anyio.Lock()
        self._partial: dict[str, IncomingSnapshot] = {}
        """Half-received snapshots by file name, least recently extended first."""

    @property
    def partial(self) -> dict[str, int]:
        """Bytes received so far of each half-received snapshot, by file name."""
        return {name: inc.received for name, inc in self._partial.items()}

    async def receive(
        self, msg: InstallSnapshot, step: InstallStep
    ) -> tuple[SnapshotMeta | None, int]:
        """Take one chunk. Returns the snapshot once it is whole, durable and verified,
        else ``(None, offset the sender should continue at)``."""
        async with self._lock:
            name = f"{self._folder}{msg.index:012d}-{msg.sha256[:16]}"
            inc = self._partial.pop(name, None)
            if inc is not None and not inc.matches(
                msg.index, msg.index_epoch, msg.size, msg.sha256
            ):
                await inc.writer.abort()
                inc = None
            if inc is None:
                if msg.offset != 0:
                    return None, 0
                while len(self._partial) >= self._keep:
                    await self._drop(next(iter(self._partial)))
                writer = self._env.disk.create(name)
                inc = IncomingSnapshot(
                    msg.index, msg.index_epoch, msg.size, msg.sha256,
                    SnapshotWriter(writer, self._env.offload), writer,
                )  # fmt: skip
            self._partial[name] = inc  # now the most recently extended
            if msg.offset != inc.received:
                return None, inc.received  # a resumed sender continues where it stopped
            if msg.offset + len(msg.payload) > msg.size or not msg.payload:
                await self._drop(name)
                return None, 0
            await inc.out.write(msg.payload)
            await step("chunk")
            if inc.received < inc.size:
                return None, inc.received
            del self._partial[name]
            if not await inc.finish():
                self._env.log(30, "tokenring.snapshot.bad_checksum", index=msg.index)
                return None, 0
            await step("file")
            for other in [n for n, i in self._partial.items() if i.index <= msg.index]:
                await self._drop(other)  # superseded: this one covers as much
            meta = SnapshotMeta(
                msg.index, msg.index_epoch, name, msg.size, msg.sha256, msg.data_offset
            )
            return meta, msg.size

    async def _drop(self, name: str) -> None:
        inc = self._partial.pop(name, None)
        if inc is not None:
            await inc.writer.abort()

    async def abort(self) -> None:
        """Discard every half-received snapshot."""
        while self._partial:
            await self._drop(next(iter(self._partial)))
