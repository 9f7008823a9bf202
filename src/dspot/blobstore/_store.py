"""The replicated blob store: one :class:`BlobStore` per node, all driven by RPC.

This is the thin anyio driver around the decisions in ``_core.py`` (which gives the theory
of operation and the safety argument). :class:`BlobStore` is the coordinator of its own
uploads, reads with failover, stats and deletes, and makes every call to other nodes; the
replica side of uploads is ``_replica.py`` and repair, fetch and scrub are ``_repair.py``.
What to send where, who must commit, which copy loses to a tombstone and what a repair round
does are asked of the core, never decided here.

Upload path, per chunk: the coordinator sends it to the chain's head and hashes it while it
travels (the whole-blob sha256 and the block checksums, one pass, in a worker thread in
production); each replica forwards it to its successor as soon as it arrives, then takes its
block checksums (XXH3, cheap) and writes it in sequence order. At the end each full replica
checks its block checksums against the coordinator's, syncs the file, its directory and its
row once, and answers; the coordinator returns once ``write_quorum`` did.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterable

import anyio
import anyio.abc

from dspot.blobstore._config import (
    BlobInfo,
    BlobStats,
    BlobStoreConfig,
    BlobStoreMechanism,
    PutResult,
)
from dspot.blobstore._core import (
    SUSPECT_FOR,
    ChunkTally,
    CommitQuorum,
    FetchOrder,
    ReadCursor,
    delete_wins,
    plan_delete,
    read_order,
    upload_chain,
)
from dspot.blobstore._errors import (
    BlobUnavailable,
    CorruptCopy,
    DeleteIncomplete,
    IntegrityError,
)
from dspot.blobstore._hashing import BlockHasher, is_content_address
from dspot.blobstore._local import Copy, LocalBlobs
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
from dspot.blobstore._repair import Repairer
from dspot.blobstore._replica import UploadReceiver
from dspot.env import NodeEnv
from dspot.errors import DspotError, RemoteError
from dspot.membership._view import Member, RingView
from dspot.rpc import Peer, RetryPolicy, RpcNode

MiB = 1024 * 1024


async def _rechunk(source: AsyncIterable[bytes], size: int) -> AsyncGenerator[bytes, None]:
    """Re-cut ``source`` into ``size``-byte chunks (the last may be short; at least one).

    Each byte is copied once at most: a piece that is exactly one chunk passes through, and
    a chunk made of several pieces is joined once (a ``bytes`` piece is referenced, not
    copied, while it waits; a mutable one is copied, as the source may reuse it).
    """
    parts: list[bytes | memoryview] = []
    have = 0
    emitted = False
    async for piece in source:
        if not parts and len(piece) == size and isinstance(piece, bytes):
            emitted = True
            yield piece
            continue
        view = memoryview(piece)
        while have + len(view) >= size:
            take = size - have
            parts.append(view[:take])
            view = view[take:]
            emitted = True
            yield b"".join(parts)
            parts, have = [], 0
        if view:
            parts.append(view if isinstance(piece, bytes) else bytes(view))
            have += len(view)
    if parts or not emitted:
        yield b"".join(parts)


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
        self.local = LocalBlobs(
            env.disk,
            block_size=self.config.block_size,
            offload=env.offload,
            disabled=env.disabled,
            cache_writes=not self.config.drop_behind_writes,
        )
        self._rng = env.child_rng("blobstore")
        self._suspect: dict[str, float] = {}
        self._failed_replicas: dict[str, float] = {}
        """Replica → until when it goes last in upload chains (``failed_replica_last``)."""
        self._peers = _PeerCalls(self)
        self._receiver = UploadReceiver(
            env, view.self_id, self.local, self.config, self._peers.forward
        )
        self._repair = Repairer(env, view, self.local, self.config, self._peers)
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
        self.rpc.handle(PutChunk, self._receiver.on_chunk)
        self.rpc.handle(PutCommit, self._receiver.on_commit)
        self.rpc.handle(PutAbort, self._receiver.on_abort)
        self.rpc.handle(ReadRange, self._on_read)
        self.rpc.handle(Has, self._on_has)
        self.rpc.handle(Fetch, self._repair.on_fetch)
        self.rpc.handle(Delete, self._on_delete)
        self._ready = True
        async with anyio.create_task_group() as tg:
            self._tg = tg
            tg.start_soon(self._receiver.janitor)
            if self.env.enabled(BlobStoreMechanism.REPAIR):
                tg.start_soon(self._repair.run)
            task_status.started()

    def stats(self) -> BlobStats:
        repair = self._repair
        return BlobStats(
            blobs=self.local.count,
            bytes=self.local.bytes,
            under_replicated=repair.under,
            uploads_in_progress=len(self._receiver.uploads),
            fetched=repair.fetched,
            handed_off=repair.handed_off,
            corrupt_found=repair.corrupt,
            healed=repair.healed,
        )

    async def repair_once(self) -> None:
        """One anti-entropy round over every copy this node holds (see ``_repair.py``)."""
        await self._repair.repair_once()

    async def scrub_once(self) -> int:
        """Verify every local copy; queue corrupt ones for healing. Returns how many."""
        return await self._repair.scrub_once()

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
        now = self.env.clock.now()
        last = [n for n, until in sorted(self._failed_replicas.items()) if until > now]
        chain = upload_chain(sha256 or upload, self.view.live(), self.placement, last=last)
        self.env.trace("blob.put.start", upload=upload, chain=[h.node for h in chain])
        tally = ChunkTally(upload, chain)
        # The one whole-blob hash of the upload: the replicas check their copies against the
        # block checksums computed here with it, so a given ``sha256`` is checked here too.
        hasher = BlockHasher(cfg.block_size)
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
            except DspotError as exc:
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
            self._replica_failed(tally.culprit(), tally.error or "a chunk did not reach it")
            digest, blocks = hasher.finish()
            if sha256 is not None and digest != sha256:
                raise IntegrityError(f"upload {upload}: content hashes to {digest}, not {sha256}")
            targets = tally.commit_targets(cfg.write_quorum)
            content = digest
            commit = PutCommit(
                upload, content, hasher.size, tally.sent, began, cfg.block_size, blocks
            )
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
            except DspotError as exc:
                reason = repr(exc)
            finally:
                quorum.answered(hop.node, ok, reason)
                if not ok and reason != "deleted":
                    self._replica_failed(hop.node, f"commit: {reason}")
                if quorum.settled:
                    settled.set()

        assert self._tg is not None, "BlobStore.run() is not running"
        for hop in hops:
            self._tg.start_soon(commit, hop)
        await settled.wait()
        return quorum.result()

    def _replica_failed(self, node: str | None, reason: str) -> None:
        """Put ``node`` last in this coordinator's upload chains for a while."""
        if node is None:
            return
        now = self.env.clock.now()
        if self._failed_replicas.get(node, 0.0) <= now:
            self.env.log(
                logging.WARNING,
                "blob.replica.last",
                replica=node,
                error=reason,
                seconds=self.config.failed_replica_last,
            )
        self._failed_replicas[node] = now + self.config.failed_replica_last

    async def _abort_everywhere(self, upload: str, chain: list[Hop]) -> None:
        async with anyio.create_task_group() as tg:
            for hop in chain:
                tg.start_soon(self._abort_one, hop, upload)

    async def _abort_one(self, hop: Hop, upload: str) -> None:
        # On failure the replica's janitor aborts it after upload_idle_timeout.
        with contextlib.suppress(DspotError):
            await self.rpc.call(hop.address, PutAbort(upload), timeout=2.0)

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
                    while not cursor.done:
                        want = cursor.want(step)
                        size, data = await self._read_from(source, sha256, cursor.pos, want)
                        piece = cursor.take(size, data)
                        if piece:
                            progressed = True
                            yield piece
                except (DspotError, OSError) as exc:  # OSError: the local copy is unreadable
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
            self._repair.found_corrupt(copy.sha256)
            raise

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

    async def stat(self, sha256: str) -> BlobInfo | None:
        """Size and current holders of a blob, asking every live member; ``None`` if none."""
        live = self.view.live()
        found: dict[str, Holding] = {}

        async def ask(m: Member) -> None:
            items = await self._peers.ask(m, [sha256])
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
        must not believe it deleted a blob the others still hold; for the same reason a node
        whose view has not yet :attr:`~dspot.membership.RingView.joined` (restarted or
        wiped, knowing only itself) refuses. Repair spreads the tombstone from the owners to
        every other holder.
        """
        if not self.view.joined:
            raise DeleteIncomplete(
                f"not deleting {sha256}: this node has not yet joined the cluster, so it does "
                "not know the blob's owners"
            )
        deleted_at = self.env.clock.wall()
        plan = plan_delete(sha256, self.view.live(), self.view.configured(), self.placement)
        acked: list[str] = []

        async def one(m: Member) -> None:
            try:
                await self.rpc.call(
                    m.address, Delete(sha256, deleted_at), timeout=self.config.call_timeout
                )
                acked.append(m.node_id)
            except DspotError:
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


class _PeerCalls:
    """The calls to other nodes that the upload receiver and repair make, with a node that
    cannot help (crashed, unreachable, refusing) reported as ``None`` instead of raised."""

    def __init__(self, store: BlobStore) -> None:
        self._store = store
        self._rpc = store.rpc
        self._env = store.env
        self._config = store.config

    @property
    def address(self) -> str | None:
        return self._rpc.address

    async def forward(self, successor: Hop, chunk: PutChunk) -> list[str] | None:
        """Pass a chunk down the chain; who below holds every chunk so far."""
        try:
            ack: ChunkAck = await self._rpc.call(
                successor.address,
                chunk,
                timeout=self._config.call_timeout,
                retry=self._store._chain_retry,
            )
        except DspotError as exc:
            self._env.log(logging.WARNING, "blob.chain.cut", to=successor.node, error=repr(exc))
            self._env.trace("blob.chain.cut", to=successor.node, error=type(exc).__name__)
            return None
        return ack.reached

    async def ask(self, member: Member | Hop, hashes: list[str]) -> list[Holding] | None:
        try:
            reply: HasReply = await self._rpc.call(
                member.address,
                Has(hashes),
                timeout=self._config.read_timeout,
                retry=self._store._read_retry,
            )
        except DspotError:
            return None
        return reply.items

    async def order_fetch(self, order: FetchOrder) -> None:
        with contextlib.suppress(DspotError):
            await self._rpc.call(
                order.target.address,
                Fetch(order.sha256, order.sources, order.stored_at),
                timeout=self._config.fetch_timeout,
                retry=self._store._chain_retry,
            )

    def stream(self, cursor: ReadCursor, sources: list[Hop]) -> AsyncGenerator[bytes, None]:
        return self._store._stream(cursor, sources)
