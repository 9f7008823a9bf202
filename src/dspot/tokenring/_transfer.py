"""Snapshot transfer between members: chunked RPC with a checksum over the whole file.

The sender (:func:`send_snapshot`) reads its snapshot file a chunk at a time and sends
:class:`InstallSnapshot` requests; the receiver (:class:`SnapshotReceiver`) appends each
chunk that follows what it has, tells the sender where to continue, and publishes the
file (synced) only once it is complete and its sha256 matches. A crash or a new transfer
discards a half-received file: nothing of it is visible under its name.
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
    """One member's incoming snapshot transfer (one at a time; a new one replaces it)."""

    def __init__(self, env: NodeEnv, folder: str) -> None:
        self._env = env
        self._folder = folder
        self._lock = anyio.Lock()
        self._incoming: IncomingSnapshot | None = None
        self._name = ""

    async def receive(
        self, msg: InstallSnapshot, step: InstallStep
    ) -> tuple[SnapshotMeta | None, int]:
        """Take one chunk. Returns the snapshot once it is whole, durable and verified,
        else ``(None, offset the sender should continue at)``."""
        async with self._lock:
            inc = self._incoming
            same = inc is not None and inc.matches(msg.index, msg.index_epoch, msg.size, msg.sha256)
            if msg.offset == 0 and (not same or (inc is not None and inc.received > 0)):
                await self.abort()
                self._name = f"{self._folder}{msg.index:012d}-{msg.sha256[:16]}"
                writer = self._env.disk.create(self._name)
                inc = IncomingSnapshot(
                    msg.index, msg.index_epoch, msg.size, msg.sha256,
                    SnapshotWriter(writer, self._env.offload), writer,
                )  # fmt: skip
                self._incoming = inc
            elif not same:
                return None, 0
            assert inc is not None
            if msg.offset != inc.received:
                return None, inc.received
            if msg.offset + len(msg.payload) > msg.size or not msg.payload:
                await self.abort()
                return None, 0
            await inc.out.write(msg.payload)
            await step("chunk")
            if inc.received < inc.size:
                return None, inc.received
            self._incoming = None
            if not await inc.finish():
                self._env.log(30, "tokenring.snapshot.bad_checksum", index=msg.index)
                return None, 0
            await step("file")
            meta = SnapshotMeta(
                msg.index, msg.index_epoch, self._name, msg.size, msg.sha256, msg.data_offset
            )
            return meta, msg.size

    async def abort(self) -> None:
        """Discard a half-received snapshot."""
        inc, self._incoming = self._incoming, None
        if inc is not None:
            await inc.writer.abort()
