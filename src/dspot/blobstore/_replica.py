"""A replica's side of uploads: the ``blob.chunk``, ``blob.commit`` and ``blob.abort``
handlers around :class:`~dspot.blobstore._core.ChainReplica`.

Per chunk: pass it to the successor at once (before hashing or writing it here), then take
its block checksums (XXH3, on the loop) and write it once every earlier chunk is written;
answer when both are done. Per blob, at commit: check the core's refusal rules, check the
block checksums against the coordinator's (which hashed the blob, once for the whole chain),
sync file, directory and row once, and answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
import anyio.abc

from dspot.blobstore._config import BlobStoreConfig, BlobStoreMechanism
from dspot.blobstore._core import MISMATCH, Arrival, ChainReplica, CommittedUploads
from dspot.blobstore._errors import IntegrityError, Tombstoned
from dspot.blobstore._local import Ingest, LocalBlobs
from dspot.blobstore._messages import ChunkAck, Done, Hop, PutAbort, PutChunk, PutCommit
from dspot.disk import DiskFault
from dspot.env import NodeEnv
from dspot.errors import RemoteError
from dspot.rpc import Peer

Forward = Callable[[Hop, PutChunk], Awaitable[list[str] | None]]
"""Sends a chunk to the successor: who below holds every chunk so far, ``None`` on failure."""

DISK_FAILURES = (DiskFault, OSError, anyio.ClosedResourceError)


class _Upload:
    """One upload in progress here: the core's state and the I/O around it."""

    def __init__(self, state: ChainReplica, ingest: Ingest) -> None:
        self.state = state
        self.ingest = ingest
        self.changed = anyio.Event()
        self.lock = anyio.Lock()

    def notify(self) -> None:
        self.changed.set()
        self.changed = anyio.Event()


class UploadReceiver:
    """The uploads this node takes part in as a replica."""

    def __init__(
        self,
        env: NodeEnv,
        me: str,
        local: LocalBlobs,
        config: BlobStoreConfig,
        forward: Forward,
    ) -> None:
        self.env = env
        self.me = me
        self.local = local
        self.config = config
        self._forward = forward
        self.uploads: dict[str, _Upload] = {}
        self._committed = CommittedUploads()

    async def on_chunk(self, req: PutChunk, peer: Peer) -> ChunkAck:
        now = self.env.clock.now()
        up = self.uploads.get(req.upload)
        if up is None:
            # Any chunk may come first: the previous hop forwards each as it arrives.
            if req.upload in self._committed:
                raise RemoteError("unknown_upload", f"upload {req.upload} already committed")
            state = ChainReplica(self.me, req.downstream, now)
            up = _Upload(state, self.local.ingest(self.env.ids(), vouched=True))
            self.uploads[req.upload] = up
        state = up.state
        if state.arrive(req.seq, now) is Arrival.REPEAT:
            return ChunkAck(await self._repeat(up, req.seq))
        below: list[str] | None = None

        async def forward(nxt: Hop, *, task_status: anyio.abc.TaskStatus[None]) -> None:
            nonlocal below
            chunk = PutChunk(req.upload, req.seq, state.beyond_next(), req.payload)
            task_status.started()  # runs on into the send before the caller goes on
            below = await self._forward(nxt, chunk)
            if below is None:
                state.forward_failed()  # the successor would hold a gap: stop feeding it

        error: str | None = None
        async with anyio.create_task_group() as tg:
            nxt = state.next_hop()
            if nxt is not None:
                await tg.start(forward, nxt)  # the chunk leaves before we hash it
            error = await self._write_in_turn(req, up)
            if error is not None:
                tg.cancel_scope.cancel()
        if error is not None:
            raise RemoteError("upload_failed", error)
        reached = state.finish(req.seq, below, self.env.clock.now())
        up.notify()
        return ChunkAck(reached)

    async def _repeat(self, up: _Upload, seq: int) -> list[str]:
        """A retried chunk: wait for the first arrival's answer and give the same."""
        state = up.state
        with anyio.move_on_after(self.config.call_timeout):
            while state.answer(seq) is None and state.failed is None:
                await up.changed.wait()
        reached = state.answer(seq)
        if reached is None:
            raise RemoteError("upload_failed", state.failed or "chunk still in flight")
        return reached

    async def _write_in_turn(self, req: PutChunk, up: _Upload) -> str | None:
        """Write chunk ``req.seq`` once every earlier one is written; the failure, if any."""
        state = up.state
        with anyio.move_on_after(self.config.call_timeout):
            while state.waiting(req.seq):
                await up.changed.wait()
        if not state.my_turn(req.seq):
            state.gave_up(req.seq)
            return state.failed or f"chunk {state.next_seq} never came"
        try:
            await up.ingest.write(req.payload)
        except DISK_FAILURES as exc:
            self._fail(req.upload, up, f"disk: {exc!r}")
            return state.failed
        state.written(req.seq, len(req.payload))
        up.notify()
        return state.failed

    def _fail(self, upload: str, up: _Upload, reason: str) -> None:
        up.state.fail(reason)
        up.notify()
        if self.uploads.get(upload) is up:
            del self.uploads[upload]

    async def on_commit(self, req: PutCommit, peer: Peer) -> Done:
        if self._committed.get(req.upload) == req.sha256:
            return Done(True)
        up = self.uploads.get(req.upload)
        if up is None:
            return Done(False, "unknown upload")
        async with up.lock:
            if self._committed.get(req.upload) == req.sha256:
                return Done(True)
            refusal = up.state.commit_refusal(
                req.chunks, req.size, req.block_size, len(req.payload)
            )
            if refusal is not None:
                return Done(False, refusal)
            try:
                await up.ingest.commit(
                    req.sha256,
                    stored_at=req.stored_at,
                    sync=self.env.enabled(BlobStoreMechanism.SYNC_BEFORE_ACK),
                    blocks=req.payload,
                    block_size=req.block_size,
                )
            except Tombstoned as exc:
                self._fail(req.upload, up, str(exc))
                return Done(False, "deleted")
            except IntegrityError as exc:
                self._fail(req.upload, up, str(exc))
                return Done(False, f"{MISMATCH}: {exc}")
            except DISK_FAILURES as exc:
                self._fail(req.upload, up, f"disk: {exc!r}")
                return Done(False, "disk failure")
            self.uploads.pop(req.upload, None)
            self._committed.add(req.upload, req.sha256)
        self.env.trace("blob.commit", sha256=req.sha256, size=req.size)
        return Done(True)

    async def on_abort(self, req: PutAbort, peer: Peer) -> Done:
        up = self.uploads.get(req.upload)
        if up is not None:
            self._fail(req.upload, up, "aborted")
            await up.ingest.abort()
        return Done(True)

    async def janitor(self) -> None:
        """Abort uploads whose coordinator went quiet for ``upload_idle_timeout``."""
        while True:
            await anyio.sleep(max(1.0, self.config.upload_idle_timeout / 4))
            now = self.env.clock.now()
            for upload in sorted(self.uploads):
                up = self.uploads[upload]
                if up.state.idle(now, self.config.upload_idle_timeout):
                    self._fail(upload, up, "idle")
                    await up.ingest.abort()
