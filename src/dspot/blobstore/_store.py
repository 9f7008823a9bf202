"""The replicated blob store: one :class:`BlobStore` per node, all driven by RPC.

This is the thin anyio driver around the decisions in ``_core.py`` (which gives the theory
of operation and the safety argument): it serves the RPC handlers, calls other nodes, moves
bytes between the network and the local disk (``_local.py``), and runs the background
tasks — repair on a timer and on view changes, scrub, and a janitor for abandoned uploads.
What to send where, who must commit, which copy loses to a tombstone and what a repair round
does are asked of the core, never decided here.

Upload path, per chunk: the coordinator sends it to the chain's head and hashes it while it
travels; each replica forwards it to its successor as soon as it arrives, then hashes it
(one sha256 pass, in a worker thread in production) and writes it in sequence order. At the
end each full replica verifies, fsyncs the file, its directory and its row once, and
answers; the coordinator returns once ``write_quorum`` did.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterable

import anyio
import anyio.abc
import anyio.lowlevel

from dspot.blobstore._config import BlobInfo, BlobStats, BlobStoreConfig, PutResult
from dspot.blobstore._core import (
    MISMATCH,
    SUSPECT_FOR,
    ChunkTally,
    CommitQuorum,
    CommittedUploads,
    ReadCursor,
    RepairRound,
    delete_wins,
    heal_sources,
    plan_delete,
    read_order,
    upload_chain,
)
from dspot.blobstore._errors import (
    BlobStoreError,
    BlobUnavailable,
    CorruptCopy,
    DeleteIncomplete,
    IntegrityError,
    Tombstoned,
)
from dspot.blobstore._hashing import BlockHasher, is_content_address
from dspot.blobstore._local import Copy, Ingest, LocalBlobs
from dspot.blobstore._messages import (
    ChunkAck,
    Delete,
    Done,
    Fetch,
    Has,
    HasReply,
    Holding,
    Hop,
    PutAbort,
    PutChunk,
    PutCommit,
    RangeData,
    ReadRange,
)
from dspot.disk import DiskFault
from dspot.env import NodeEnv
from dspot.errors import DspotError, RemoteError
from dspot.membership._view import EventKind, Member, RingView
from dspot.rpc import Peer, RetryPolicy, RpcNode

MiB = 1024 * 1024

# What a call to another node may raise when that node cannot help (DspotError covers
# RpcError, transport errors and a malformed address).
_FAIL = (DspotError, OSError, anyio.BrokenResourceError, anyio.EndOfStream)
_DISK = (DiskFault, OSError, anyio.ClosedResourceError)


class _Upload:
    """A replica's side of one upload in progress."""

    def __init__(self, ingest: Ingest, downstream: list[Hop], now: float) -> None:
        self.ingest = ingest
        self.downstream = downstream
        self.next_seq = 0
        self.acks: dict[int, list[str]] = {}
        self.cut = False
        self.failed: str | None = None
        self.last_active = now
        self.changed = anyio.Event()
        self.lock = anyio.Lock()

    def notify(self) -> None:
        self.changed.set()
        self.changed = anyio.Event()


async def _rechunk(source: AsyncIterable[bytes], size: int) -> AsyncGenerator[bytes, None]:
    """Re-cut ``source`` into ``size``-byte chunks (the last may be short; at least one)."""
    buf = bytearray()
    emitted = False
    async for piece in source:
        if not buf and len(piece) == size:
            emitted = True
            yield bytes(piece)
            continue
        buf += piece
        while len(buf) >= size:
            emitted = True
            yield bytes(buf[:size])
            del buf[:size]
    if buf or not emitted:
        yield bytes(buf)


class BlobStore:
    """A node's part of the replicated blob store.

    Run it with ``await tg.start(store.run)``; it serves its RPC handlers on ``rpc`` and runs
    repair and scrub until cancelled. ``view`` is any :class:`~dspot.membership.RingView`
    whose members' addresses are their RPC addresses.
    """

    def __init__(
        self,
        env: NodeEnv,
        rpc: RpcNode,
        view: RingView,
        config: BlobStoreConfig | None = None,
    ) -> None:
        self.env = env
        self.rpc = rpc
        self.view = view
        self.config = config or BlobStoreConfig()
        self.placement = self.config.placement
        self.local = LocalBlobs(env.disk, block_size=self.config.block_size, offload=env.offload)
        self._rng = env.child_rng("blobstore")
        self._uploads: dict[str, _Upload] = {}
        self._committed = CommittedUploads()
        self._fetching: dict[str, anyio.Event] = {}
        self._suspect: dict[str, float] = {}
        self._heal_queue: list[str] = []
        self._wake_repair = anyio.Event()
        self._wake_scrub = anyio.Event()
        self._under = 0
        self._fetched = 0
        self._handed_off = 0
        self._corrupt = 0
        self._healed = 0
        self._ready = False
        self._tg: anyio.abc.TaskGroup | None = None
        cfg = self.config
        self._chain_retry = RetryPolicy(
            attempts=3, base_delay=0.05, max_delay=0.5, attempt_timeout=cfg.call_timeout
        )
        self._read_retry = RetryPolicy(
            attempts=2, base_delay=0.05, max_delay=0.2, attempt_timeout=cfg.read_timeout / 2
        )

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        await self.local.open()
        self.rpc.handle(PutChunk, self._on_chunk)
        self.rpc.handle(PutCommit, self._on_commit)
        self.rpc.handle(PutAbort, self._on_abort)
        self.rpc.handle(ReadRange, self._on_read)
        self.rpc.handle(Has, self._on_has)
        self.rpc.handle(Fetch, self._on_fetch)
        self.rpc.handle(Delete, self._on_delete)
        self._ready = True
        async with anyio.create_task_group() as tg:
            self._tg = tg
            tg.start_soon(self._watch_view)
            tg.start_soon(self._janitor)
            if self.config.repair_enabled:
                tg.start_soon(self._repair_loop)
                tg.start_soon(self._scrub_loop)
            task_status.started()

    def stats(self) -> BlobStats:
        return BlobStats(
            blobs=self.local.count,
            bytes=self.local.bytes,
            under_replicated=self._under,
            uploads_in_progress=len(self._uploads),
            fetched=self._fetched,
            handed_off=self._handed_off,
            corrupt_found=self._corrupt,
            healed=self._healed,
        )

    def _not_ready(self) -> None:
        if not self._ready:
            raise RemoteError("unavailable", "blob store starting")

    # -- upload (coordinator) ----------------------------------------------------------------

    async def put(self, chunks: AsyncIterable[bytes], *, sha256: str | None = None) -> str:
        """Store the bytes of ``chunks``; return their sha256 once enough copies are synced.

        ``sha256``, when known, places the upload directly on its final replicas and is
        checked against the content. Raises :class:`UploadFailed` (nothing acknowledged; the
        caller may retry) or :class:`IntegrityError`.
        """
        return (await self.put_detailed(chunks, sha256=sha256)).sha256

    async def put_detailed(
        self, chunks: AsyncIterable[bytes], *, sha256: str | None = None
    ) -> PutResult:
        """:meth:`put`, also saying which replicas committed."""
        cfg = self.config
        if sha256 is not None and not is_content_address(sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        upload = self.env.ids()
        began = self.env.clock.wall()
        chain = upload_chain(sha256 or upload, self.view.live(), self.placement)
        self.env.trace("blob.put.start", upload=upload, chain=[h.node for h in chain])
        tally = ChunkTally(upload, chain)
        # The replicas check the whole-blob hash themselves; compute it here only to name
        # the blob when the caller did not.
        hasher = BlockHasher(cfg.block_size, blocks=False)
        limiter = anyio.Semaphore(cfg.window)

        async def send(seq: int, data: bytes) -> None:
            try:
                ack = await self.rpc.call(
                    chain[0].address,
                    PutChunk(upload, seq, chain[1:], data),
                    timeout=cfg.call_timeout * 2,
                    retry=self._chain_retry,
                )
                tally.acked(ack.reached)
            except _FAIL as exc:
                tally.failed(repr(exc))
            finally:
                limiter.release()

        try:
            async with (
                contextlib.aclosing(_rechunk(chunks, cfg.chunk_size)) as pieces,
                anyio.create_task_group() as tg,
            ):
                async for data in pieces:
                    await limiter.acquire()
                    if tally.error is not None:
                        limiter.release()
                        break
                    tg.start_soon(send, tally.next_seq(), data)
                    await self.env.offload(hasher.update, data)  # while the chunk travels
            digest, _ = hasher.finish()
            if tally.error is None and sha256 is not None and digest != sha256:
                raise IntegrityError(f"content hashes to {digest}, expected {sha256}")
            targets = tally.commit_targets(cfg.write_quorum)
            content = digest
            commit = PutCommit(upload, content, hasher.size, tally.sent, began)
            committed = await self._commit_quorum(commit, targets)
        except BaseException:
            with anyio.CancelScope(shield=True), anyio.move_on_after(cfg.call_timeout):
                await self._abort_everywhere(upload, chain)
            raise
        self.env.trace("blob.put.ok", upload=upload, sha256=content, replicas=committed)
        return PutResult(content, hasher.size, committed)

    async def _commit_quorum(self, msg: PutCommit, hops: list[Hop]) -> list[str]:
        """Ask every hop to commit; return once ``write_quorum`` did (or all answered).

        The commits run in the store's own task group, so the ones still going when the
        quorum is reached finish in the background instead of being cut off.
        """
        quorum = CommitQuorum(msg.upload, hops, self.config.write_quorum)
        settled = anyio.Event()

        async def commit(hop: Hop) -> None:
            ok, reason = False, "cancelled"
            try:
                done = await self.rpc.call(
                    hop.address, msg, timeout=self.config.call_timeout, retry=self._chain_retry
                )
                ok, reason = done.ok, done.reason
            except _FAIL as exc:
                reason = repr(exc)
            finally:
                quorum.answered(hop.node, ok, reason)
                if quorum.settled:
                    settled.set()

        assert self._tg is not None, "BlobStore.run() is not running"
        for hop in hops:
            self._tg.start_soon(commit, hop)
        await settled.wait()
        return quorum.result()

    async def _abort_everywhere(self, upload: str, chain: list[Hop]) -> None:
        async with anyio.create_task_group() as tg:
            for hop in chain:
                tg.start_soon(self._abort_one, hop, upload)

    async def _abort_one(self, hop: Hop, upload: str) -> None:
        # On failure the replica's janitor aborts it after upload_idle_timeout.
        with contextlib.suppress(*_FAIL):
            await self.rpc.call(hop.address, PutAbort(upload), timeout=2.0)

    # -- upload (replica) --------------------------------------------------------------------

    async def _on_chunk(self, req: PutChunk, peer: Peer) -> ChunkAck:
        self._not_ready()
        now = self.env.clock.now()
        up = self._uploads.get(req.upload)
        if up is None:
            # Any chunk may come first: the previous hop forwards several at once.
            if req.upload in self._committed:
                raise RemoteError("unknown_upload", f"upload {req.upload} already committed")
            up = _Upload(self.local.ingest(self.env.ids()), list(req.downstream), now)
            self._uploads[req.upload] = up
        up.last_active = now
        if req.seq < up.next_seq:
            # A retry of a chunk already written: answer with the original's outcome.
            with anyio.move_on_after(self.config.call_timeout):
                while req.seq not in up.acks and up.failed is None:
                    await up.changed.wait()
            if req.seq not in up.acks:
                raise RemoteError("upload_failed", up.failed or "chunk still in flight")
            return ChunkAck(up.acks[req.seq])
        with anyio.move_on_after(self.config.call_timeout):
            while up.next_seq < req.seq and up.failed is None:
                await up.changed.wait()
        if up.failed is not None or up.next_seq != req.seq:
            raise RemoteError("upload_failed", up.failed or f"chunk {up.next_seq} never came")
        reached = [self.view.self_id]
        downstream: list[str] = []

        async def forward(nxt: Hop) -> None:
            try:
                ack = await self.rpc.call(
                    nxt.address,
                    PutChunk(req.upload, req.seq, up.downstream[1:], req.payload),
                    timeout=self.config.call_timeout,
                    retry=self._chain_retry,
                )
                downstream.extend(ack.reached)
            except _FAIL as exc:
                up.cut = True  # the tail would miss this chunk: stop feeding it
                self.env.log(logging.WARNING, "blob.chain.cut", to=nxt.node, error=repr(exc))
                self.env.trace("blob.chain.cut", to=nxt.node, error=type(exc).__name__)

        # Forward while writing: the next replica's disk works in parallel with ours.
        async with anyio.create_task_group() as tg:
            if up.downstream and not up.cut:
                tg.start_soon(forward, up.downstream[0])
            try:
                await up.ingest.write(req.payload)
            except (DiskFault, OSError, anyio.ClosedResourceError) as exc:
                self._fail_upload(req.upload, up, f"disk: {exc!r}")
                tg.cancel_scope.cancel()
            else:
                up.next_seq += 1
                up.notify()
        if up.failed is not None:
            raise RemoteError("upload_failed", up.failed)
        if not up.cut:
            reached += downstream
        up.acks[req.seq] = reached
        up.last_active = self.env.clock.now()
        up.notify()
        return ChunkAck(reached)

    def _fail_upload(self, upload: str, up: _Upload, reason: str) -> None:
        up.failed = reason
        up.notify()
        if self._uploads.get(upload) is up:
            del self._uploads[upload]

    async def _on_commit(self, req: PutCommit, peer: Peer) -> Done:
        self._not_ready()
        if self._committed.get(req.upload) == req.sha256:
            return Done(True)
        up = self._uploads.get(req.upload)
        if up is None:
            return Done(False, "unknown upload")
        async with up.lock:
            if self._committed.get(req.upload) == req.sha256:
                return Done(True)
            if up.next_seq != req.chunks or up.ingest.hasher.size != req.size:
                return Done(False, f"have {up.next_seq} chunks, {up.ingest.hasher.size} bytes")
            try:
                await up.ingest.commit(
                    req.sha256, stored_at=req.stored_at, sync=self.config.sync_before_ack
                )
            except Tombstoned as exc:
                self._fail_upload(req.upload, up, str(exc))
                return Done(False, "deleted")
            except IntegrityError as exc:
                self._fail_upload(req.upload, up, str(exc))
                return Done(False, f"{MISMATCH}: {exc}")
            except (DiskFault, OSError, anyio.ClosedResourceError) as exc:
                self._fail_upload(req.upload, up, f"disk: {exc!r}")
                return Done(False, "disk failure")
            self._uploads.pop(req.upload, None)
            self._committed.add(req.upload, req.sha256)
        self.env.trace("blob.commit", sha256=req.sha256, size=req.size)
        return Done(True)

    async def _on_abort(self, req: PutAbort, peer: Peer) -> Done:
        up = self._uploads.pop(req.upload, None)
        if up is not None:
            up.failed = "aborted"
            up.notify()
            await up.ingest.abort()
        return Done(True)

    async def _janitor(self) -> None:
        while True:
            await anyio.sleep(max(1.0, self.config.upload_idle_timeout / 4))
            now = self.env.clock.now()
            for upload in sorted(self._uploads):
                up = self._uploads[upload]
                if now - up.last_active > self.config.upload_idle_timeout:
                    self._fail_upload(upload, up, "idle")
                    await up.ingest.abort()

    # -- reads -------------------------------------------------------------------------------

    async def get(
        self, sha256: str, offset: int = 0, length: int | None = None
    ) -> AsyncGenerator[bytes, None]:
        """The blob's bytes ``[offset, offset + length)`` as chunks, failing over between
        replicas at the current offset. Raises :class:`BlobUnavailable`.

        An async generator: wrap it in ``contextlib.aclosing`` if you may stop early.
        """
        cursor = ReadCursor(sha256, offset, length, self.config.read_passes)
        async with contextlib.aclosing(self._stream(cursor, None)) as stream:
            async for data in stream:
                yield data

    async def read(self, sha256: str, offset: int = 0, length: int | None = None) -> bytes:
        """The whole range in memory (for small blobs and tests)."""
        async with contextlib.aclosing(self.get(sha256, offset, length)) as stream:
            return b"".join([d async for d in stream])

    def _sources(self, sha256: str, holds_here: bool) -> list[Hop | None]:
        """Where to read from, best first (``None`` is this node's own copy)."""
        return read_order(
            sha256,
            self.view.self_id,
            self.view.live(),
            self.placement,
            holds_here=holds_here,
            suspects=self._suspect,
            now=self.env.clock.now(),
        )

    async def _stream(
        self, cursor: ReadCursor, sources: list[Hop] | None
    ) -> AsyncGenerator[bytes, None]:
        cfg = self.config
        sha256 = cursor.sha256
        last_error = "no replica"
        while not cursor.done:
            if sources is None:
                order = self._sources(sha256, self.local.get(sha256) is not None)
            else:
                order = list(sources)
            progressed = False
            for source in order:
                # A local copy is read in bigger steps: no frame limit, fewer thread hops.
                step = cfg.read_size if source is not None else cfg.local_read_size
                try:
                    while True:
                        want = cursor.want(step)
                        size, data = await self._read_from(source, sha256, cursor.pos, want)
                        piece = cursor.take(size, data)
                        if not piece:
                            break
                        progressed = True
                        yield piece
                except (*_FAIL, CorruptCopy, FileNotFoundError, BlobUnavailable, DiskFault) as exc:
                    last_error = f"{source.node if source else 'local'}: {exc!r}"
                    if source is not None:
                        self._suspect[source.node] = self.env.clock.now() + SUSPECT_FOR
                    continue
                if cursor.done:
                    return
            if cursor.pass_over(progressed):
                raise BlobUnavailable(f"{sha256} at offset {cursor.pos}: {last_error}")
            await anyio.sleep(self._rng.uniform(0.05, 0.3) * cursor.idle_passes)

    async def _read_from(
        self, source: Hop | None, sha256: str, offset: int, length: int
    ) -> tuple[int, bytes]:
        if source is None:
            copy = self.local.get(sha256)
            if copy is None:
                raise FileNotFoundError(sha256)
            return copy.size, await self._read_local(copy, offset, length)
        reply: RangeData = await self.rpc.call(
            source.address,
            ReadRange(sha256, offset, length),
            timeout=self.config.read_timeout,
            retry=self._read_retry,
        )
        return reply.size, reply.payload

    async def _read_local(self, copy: Copy, offset: int, length: int) -> bytes:
        try:
            return await self.local.read(copy, offset, length)
        except CorruptCopy:
            self._found_corrupt(copy.sha256)
            self._wake_scrub.set()
            raise

    def _found_corrupt(self, sha256: str, **by: str) -> None:
        self._corrupt += 1
        self.env.trace("blob.corrupt", sha256=sha256, **by)
        if sha256 not in self._heal_queue:
            self._heal_queue.append(sha256)

    async def _on_read(self, req: ReadRange, peer: Peer) -> RangeData:
        self._not_ready()
        copy = self.local.get(req.sha256)
        if copy is None:
            raise RemoteError("not_found", req.sha256)
        try:
            data = await self._read_local(copy, req.offset, min(req.length, 8 * MiB))
        except CorruptCopy:
            raise RemoteError("corrupt", req.sha256) from None
        except FileNotFoundError:
            raise RemoteError("not_found", req.sha256) from None
        return RangeData(copy.size, data)

    # -- stat and delete ---------------------------------------------------------------------

    async def _ask(self, member: Member | Hop, hashes: list[str]) -> list[Holding] | None:
        address = member.address
        try:
            reply: HasReply = await self.rpc.call(
                address, Has(hashes), timeout=self.config.read_timeout, retry=self._read_retry
            )
        except _FAIL:
            return None
        return reply.items

    async def stat(self, sha256: str) -> BlobInfo | None:
        """Size and current holders of a blob, asking every live member; ``None`` if none."""
        live = self.view.live()
        found: dict[str, Holding] = {}

        async def ask(m: Member) -> None:
            items = await self._ask(m, [sha256])
            if items and items[0].present:
                found[m.node_id] = items[0]

        async with anyio.create_task_group() as tg:
            for m in live:
                tg.start_soon(ask, m)
        holders = [m.node_id for m in live if m.node_id in found]
        if not holders:
            return None
        return BlobInfo(sha256, found[holders[0]].size, holders)

    async def delete(self, sha256: str) -> int:
        """Delete a blob everywhere: a tombstone on every live member, copies removed.

        Returns how many members recorded the tombstone. Raises :class:`DeleteIncomplete`
        unless every owner recorded it, owners counted over the *configured* membership
        (dead members included): a node cut off from the others sees only itself alive and
        must not believe it deleted a blob the others still hold. Repair spreads the
        tombstone from the owners to every other holder.
        """
        deleted_at = self.env.clock.wall()
        plan = plan_delete(sha256, self.view.live(), self.view.configured(), self.placement)
        acked: list[str] = []

        async def one(m: Member) -> None:
            try:
                await self.rpc.call(
                    m.address, Delete(sha256, deleted_at), timeout=self.config.call_timeout
                )
                acked.append(m.node_id)
            except _FAIL:
                pass

        async with anyio.create_task_group() as tg:
            for m in plan.targets:
                tg.start_soon(one, m)
        missing = plan.missing(acked)
        if missing:
            raise DeleteIncomplete(f"owners {missing} did not record the delete of {sha256}")
        return len(acked)

    async def _on_delete(self, req: Delete, peer: Peer) -> Done:
        self._not_ready()
        copy = self.local.get(req.sha256)
        if copy is not None and not delete_wins(req.deleted_at, copy.stored_at):
            return Done(True, "stored again after the delete")  # a newer put wins
        await self.local.drop(req.sha256, deleted_at=req.deleted_at)
        self.env.trace("blob.deleted", sha256=req.sha256)
        return Done(True)

    async def _on_has(self, req: Has, peer: Peer) -> HasReply:
        self._not_ready()
        items: list[Holding] = []
        for h in req.hashes[: self.config.repair_batch]:
            copy = self.local.get(h)
            tomb = self.local.tombstone(h)
            if copy is None:
                items.append(Holding(h, False, deleted_at=tomb))
            else:
                items.append(Holding(h, True, copy.size, copy.stored_at, tomb))
        return HasReply(items)

    # -- copying between replicas ------------------------------------------------------------

    async def _on_fetch(self, req: Fetch, peer: Peer) -> Done:
        self._not_ready()
        if delete_wins(self.local.tombstone(req.sha256), req.stored_at):
            return Done(False, "deleted")
        ok = await self._fetch(req.sha256, req.sources, stored_at=req.stored_at, replace=False)
        return Done(ok, "" if ok else "no source could serve it")

    async def _fetch(
        self, sha256: str, sources: list[Hop], *, stored_at: float, replace: bool
    ) -> bool:
        """Copy ``sha256`` here from ``sources``; ``replace`` swaps out a corrupt copy."""
        while True:
            busy = self._fetching.get(sha256)
            if busy is None:
                break
            await busy.wait()
        if not replace and self.local.get(sha256) is not None:
            return True
        me = self.view.self_id
        sources = [s for s in sources if s.node != me]
        if not sources:
            return False
        done = anyio.Event()
        self._fetching[sha256] = done
        ingest = self.local.ingest(self.env.ids())
        cursor = ReadCursor(sha256, 0, None, self.config.read_passes)
        try:
            with anyio.fail_after(self.config.fetch_timeout):
                async with contextlib.aclosing(self._stream(cursor, sources)) as stream:
                    async for data in stream:
                        await ingest.write(data)
                if replace:
                    await self.local.replace(ingest, sha256)
                else:
                    await ingest.commit(sha256, stored_at=stored_at, sync=True)
        except (BlobStoreError, IntegrityError, Tombstoned, TimeoutError, *_DISK) as exc:
            await ingest.abort()
            self.env.trace("blob.fetch.fail", sha256=sha256, error=type(exc).__name__)
            return False
        finally:
            done.set()
            del self._fetching[sha256]
        self._fetched += 1
        self.env.trace("blob.fetched", sha256=sha256, replace=replace)
        return True

    # -- repair ------------------------------------------------------------------------------

    async def _watch_view(self) -> None:
        async with self.view.subscribe() as events:
            async for event in events:
                if event.kind in (
                    EventKind.DEAD,
                    EventKind.JOINED,
                    EventKind.LEFT,
                    EventKind.ALIVE,
                ):
                    self._wake_repair.set()

    async def _repair_loop(self) -> None:
        while True:
            with anyio.move_on_after(self.config.repair_interval):
                await self._wake_repair.wait()
            self._wake_repair = anyio.Event()
            await anyio.sleep(self._rng.uniform(0.0, 0.2))  # let a burst of events settle
            try:
                await self.repair_once()
            except (DiskFault, anyio.ClosedResourceError):
                raise
            except BlobStoreError as exc:
                self.env.log(30, "blob.repair.error", error=repr(exc))

    async def repair_once(self) -> None:
        """One anti-entropy round over every copy this node holds (see :class:`RepairRound`)."""
        cfg = self.config
        live = self.view.live()
        held = self.local.hashes()
        horizon = self.env.clock.wall() - cfg.tombstone_ttl
        oldest = self.local.oldest_tombstone()
        if oldest is not None and oldest < horizon:
            await self.local.expire_tombstones(horizon)
        if not live:
            return
        round_ = RepairRound(self.view.self_id, self.rpc.address, live, held, self.placement)

        async def query(node: str) -> None:
            for batch in round_.batches(node, cfg.repair_batch):
                items = await self._ask(round_.members[node], batch)
                if items is None:
                    round_.unreachable(node)
                    return
                round_.record(node, items)

        async with anyio.create_task_group() as tg:
            for node in sorted(round_.asks):
                tg.start_soon(query, node)
        plan = round_.plan()
        for drop in plan.drops:
            if drop.deleted_at is not None:
                await self.local.drop(drop.sha256, deleted_at=drop.deleted_at)
                self.env.trace("blob.tombstone.adopted", sha256=drop.sha256)
            elif await self.local.drop(drop.sha256):
                self._handed_off += 1
                self.env.trace("blob.handed_off", sha256=drop.sha256)
        self._under = plan.under_replicated
        if plan.fetches:
            limiter = anyio.Semaphore(cfg.repair_parallel)
            async with anyio.create_task_group() as tg:
                for order in plan.fetches:
                    await limiter.acquire()
                    tg.start_soon(self._ask_fetch, limiter, order.target, order.sha256,
                                  order.sources, order.stored_at)  # fmt: skip

    async def _ask_fetch(
        self,
        limiter: anyio.Semaphore,
        member: Member,
        sha: str,
        sources: list[Hop],
        stored_at: float,
    ) -> None:
        try:
            await self.rpc.call(
                member.address,
                Fetch(sha, sources, stored_at),
                timeout=self.config.fetch_timeout,
                retry=self._chain_retry,
            )
        except _FAIL:
            pass
        finally:
            limiter.release()

    # -- scrub -------------------------------------------------------------------------------

    async def _scrub_loop(self) -> None:
        next_full = self.env.clock.now() + self.config.scrub_interval
        while True:
            wait = max(0.0, next_full - self.env.clock.now())
            with anyio.move_on_after(wait):
                await self._wake_scrub.wait()
            self._wake_scrub = anyio.Event()
            if self.env.clock.now() >= next_full:
                await self.scrub_once()
                next_full = self.env.clock.now() + self.config.scrub_interval
            await self._heal_queued()

    async def scrub_once(self) -> int:
        """Verify every local copy; queue corrupt ones for healing. Returns how many."""
        bad = 0
        for sha, _ in self.local.hashes():
            copy = self.local.get(sha)
            if copy is None:
                continue
            if not await self.local.verify(copy):
                bad += 1
                self._found_corrupt(sha, by="scrub")
        await self._heal_queued()
        return bad

    async def _heal_queued(self) -> None:
        while self._heal_queue:
            sha = self._heal_queue.pop(0)
            copy = self.local.get(sha)
            if copy is None or await self.local.verify(copy):
                continue  # gone, or the failure was a transient read error
            sources = heal_sources(sha, self.view.self_id, self.view.live(), self.placement)
            if await self._fetch(sha, sources, stored_at=copy.stored_at, replace=True):
                self._healed += 1
            else:
                self.env.trace("blob.heal.fail", sha256=sha)
