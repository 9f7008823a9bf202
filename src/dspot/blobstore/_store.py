"""The replicated blob store: one :class:`BlobStore` per node, all driven by RPC.

Theory of operation
-------------------
*Placement.* A blob lives on the R successors of its content address on the ring of live
members (:class:`~dspot.blobstore.BlobPlacement`). When the caller of :meth:`BlobStore.put`
knows the hash up front the chain is placed there at once; otherwise the hash is only known
at the end, so the chain is placed by the upload id and repair later hands the copies over
to the hash's owners (the same mechanism that rebalances after a join).

*Upload.* The coordinator cuts the source into chunks and keeps ``window`` of them in flight
to the chain's head. Each replica writes chunk ``i`` (in order, whatever order the requests
arrive in) and forwards it to the next replica while chunk ``i + 1`` is already arriving, so
memory per hop is bounded by the window. A chunk's reply lists the replicas that hold every
chunk so far; a replica whose successor fails stops forwarding (it would leave a gap), which
cuts the chain's tail. Once every chunk is acknowledged the coordinator asks each replica that
holds the whole stream to commit: verify the sha256 it computed itself, sync the file and its
row, and answer. The upload is acknowledged when ``write_quorum`` replicas committed.

*Reads* go to a copy on this node if there is one, else to the hash's owners, else to any
live member (a copy may not have been handed over yet). Every block served is checked
against its stored digest; a failing replica (crash, partition, corruption) is skipped and
the read resumes at the same offset on the next one.

*Deletes* leave a tombstone (with the deleter's wall-clock time) on every live member and
must reach every owner of the configured membership. A copy whose upload began before a
tombstone loses to it, wherever the two meet (a late commit, a fetch, a repair round); an
upload that begins after it is a new fact and clears it. Tombstones are forgotten after
``tombstone_ttl``.

*Repair* runs every ``repair_interval`` and whenever the view changes. For each copy it holds
a node asks the hash's owners whether they hold it (in batches), asks missing owners to fetch
it, adopts tombstones it learns about, and drops a copy it does not own once every owner
confirmed one. *Scrub* re-verifies every local copy and replaces a corrupt one with a copy
fetched from another replica; a read that finds a corrupt block schedules the same repair.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterable

import anyio
import anyio.abc
import attrs

from dspot.blobstore._hashing import is_content_address
from dspot.blobstore._local import (
    Copy,
    CorruptCopy,
    Ingest,
    IntegrityError,
    LocalBlobs,
    Tombstoned,
)
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
from dspot.blobstore._placement import BlobPlacement, Replication
from dspot.disk import DiskFault
from dspot.env import NodeEnv
from dspot.errors import DspotError, RemoteError
from dspot.membership._view import EventKind, Member, RingView
from dspot.rpc import Peer, RetryPolicy, RpcNode

KiB = 1024
MiB = 1024 * KiB


class BlobStoreError(DspotError):
    """Base class of blob store failures."""


class UploadFailed(BlobStoreError):
    """Fewer than ``write_quorum`` replicas committed the upload; nothing was acknowledged."""


class BlobUnavailable(BlobStoreError):
    """No reachable replica could serve the blob (or the rest of it)."""


class DeleteIncomplete(BlobStoreError):
    """Some owner did not record the tombstone; retry the delete."""


@attrs.frozen
class BlobStoreConfig:
    """Tuning of a :class:`BlobStore`. Every node of a cluster should use the same values."""

    replicas: Replication = 3
    write_quorum: int = 2
    chunk_size: int = 256 * KiB
    """Bytes per upload chunk (one RPC frame; must stay well under the 16 MiB frame limit)."""
    window: int = 4
    """Upload chunks in flight per hop: bounds memory, keeps the pipeline full."""
    block_size: int = 64 * KiB
    """Granularity of stored checksums: the unit a replica verifies before serving bytes."""
    read_size: int = 256 * KiB
    """Bytes asked for per read request to another node."""
    local_read_size: int = 1024 * KiB
    """Bytes read at a time from this node's own copy."""
    call_timeout: float = 10.0
    read_timeout: float = 5.0
    upload_idle_timeout: float = 30.0
    """A partial upload with no traffic for this long is aborted (its coordinator is gone)."""
    repair_interval: float = 5.0
    repair_batch: int = 512
    repair_parallel: int = 4
    fetch_timeout: float = 120.0
    scrub_interval: float = 300.0
    read_passes: int = 3
    """How many times a read walks the replica list before giving up."""
    tombstone_ttl: float = 7 * 86400.0
    """Tombstones older than this are forgotten. Must exceed the longest time a node holding
    a copy can stay away and come back, or it would bring the blob back."""
    sync_before_ack: bool = True
    """Commit uploads durably before acknowledging. Switched off only by sabotage tests."""
    repair_enabled: bool = True
    """Switched off only by sabotage tests."""

    @property
    def placement(self) -> BlobPlacement:
        return BlobPlacement(self.replicas, self.write_quorum)


@attrs.frozen
class PutResult:
    sha256: str
    size: int
    replicas: list[str]
    """Nodes that committed a synced copy before the upload was acknowledged."""


@attrs.frozen
class BlobInfo:
    sha256: str
    size: int
    holders: list[str]


@attrs.frozen
class BlobStats:
    """One node's share: what it stores and what its last repair round found."""

    blobs: int
    bytes: int
    under_replicated: int
    """Copies held here whose owners (per the last repair round) hold fewer than min(R, live)."""
    uploads_in_progress: int
    fetched: int
    handed_off: int
    corrupt_found: int
    healed: int


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
        self._finished: OrderedDict[str, str] = OrderedDict()
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
        live = self.view.live()
        owners = self.placement.owners(sha256 or upload, live)
        if len(owners) < cfg.write_quorum:
            raise UploadFailed(f"{len(owners)} live members, write quorum is {cfg.write_quorum}")
        chain = [Hop(m.node_id, m.address) for m in owners]
        self.env.trace("blob.put.start", upload=upload, chain=[h.node for h in chain])
        hasher = hashlib.sha256()
        size = 0
        seq = 0
        counts: dict[str, int] = {}
        errors: list[str] = []
        limiter = anyio.Semaphore(cfg.window)

        async def send(index: int, data: bytes) -> None:
            try:
                msg = PutChunk(upload, index, chain[1:], data)
                ack = await self.rpc.call(
                    chain[0].address, msg, timeout=cfg.call_timeout * 2, retry=self._chain_retry
                )
                for node in ack.reached:
                    counts[node] = counts.get(node, 0) + 1
            except DspotError as exc:
                errors.append(repr(exc))
            finally:
                limiter.release()

        try:
            async with (
                contextlib.aclosing(_rechunk(chunks, cfg.chunk_size)) as pieces,
                anyio.create_task_group() as tg,
            ):
                async for data in pieces:
                    await limiter.acquire()
                    if errors:
                        limiter.release()
                        break
                    hasher.update(data)
                    size += len(data)
                    tg.start_soon(send, seq, data)
                    seq += 1
            digest = hasher.hexdigest()
            if errors:
                raise UploadFailed(f"upload {upload} to {chain[0].node} failed: {errors[0]}")
            if sha256 is not None and digest != sha256:
                raise IntegrityError(f"content hashes to {digest}, expected {sha256}")
            full = [hop for hop in chain if counts.get(hop.node, 0) == seq]
            if len(full) < cfg.write_quorum:
                raise UploadFailed(
                    f"upload {upload}: only {[h.node for h in full]} received every chunk"
                )
            committed = await self._commit_quorum(upload, full, digest, size, seq, began)
        except BaseException:
            with anyio.CancelScope(shield=True), anyio.move_on_after(cfg.call_timeout):
                await self._abort_everywhere(upload, chain)
            raise
        self.env.trace("blob.put.ok", upload=upload, sha256=digest, replicas=committed)
        return PutResult(digest, size, committed)

    async def _commit_quorum(
        self, upload: str, hops: list[Hop], digest: str, size: int, chunks: int, began: float
    ) -> list[str]:
        """Ask every hop to commit; return once ``write_quorum`` did (or all answered).

        The commits run in the store's own task group, so the ones still going when the
        quorum is reached finish in the background instead of being cut off.
        """
        cfg = self.config
        committed: list[str] = []
        reasons: list[str] = []
        settled = anyio.Event()
        answered = 0
        msg = PutCommit(upload, digest, size, chunks, began)

        async def commit(hop: Hop) -> None:
            nonlocal answered
            try:
                done = await self.rpc.call(
                    hop.address, msg, timeout=cfg.call_timeout, retry=self._chain_retry
                )
                if done.ok:
                    committed.append(hop.node)
                else:
                    reasons.append(f"{hop.node}: {done.reason}")
            except DspotError as exc:
                reasons.append(f"{hop.node}: {exc!r}")
            finally:
                answered += 1
                if len(committed) >= cfg.write_quorum or answered == len(hops):
                    settled.set()

        assert self._tg is not None, "BlobStore.run() is not running"
        for hop in hops:
            self._tg.start_soon(commit, hop)
        await settled.wait()
        if len(committed) < cfg.write_quorum:
            if any("mismatch" in r for r in reasons):
                raise IntegrityError(f"upload {upload}: {reasons}")
            raise UploadFailed(f"upload {upload}: {len(committed)} commits: {reasons}")
        return list(committed)

    async def _abort_everywhere(self, upload: str, chain: list[Hop]) -> None:
        async with anyio.create_task_group() as tg:
            for hop in chain:
                tg.start_soon(self._abort_one, hop, upload)

    async def _abort_one(self, hop: Hop, upload: str) -> None:
        # On failure the replica's janitor aborts it after upload_idle_timeout.
        with contextlib.suppress(DspotError):
            await self.rpc.call(hop.address, PutAbort(upload), timeout=2.0)

    # -- upload (replica) --------------------------------------------------------------------

    def _not_ready(self) -> None:
        if not self._ready:
            raise RemoteError("unavailable", "blob store starting")

    async def _on_chunk(self, req: PutChunk, peer: Peer) -> ChunkAck:
        self._not_ready()
        now = self.env.clock.now()
        up = self._uploads.get(req.upload)
        if up is None:
            # Any chunk may come first: the previous hop forwards several at once.
            if req.upload in self._finished:
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
            except DspotError as exc:
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
        if self._finished.get(req.upload) == req.sha256:
            return Done(True)
        up = self._uploads.get(req.upload)
        if up is None:
            return Done(False, "unknown upload")
        async with up.lock:
            if self._finished.get(req.upload) == req.sha256:
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
                return Done(False, f"hash mismatch: {exc}")
            except (DiskFault, OSError, anyio.ClosedResourceError) as exc:
                self._fail_upload(req.upload, up, f"disk: {exc!r}")
                return Done(False, "disk failure")
            self._uploads.pop(req.upload, None)
            self._finished[req.upload] = req.sha256
            while len(self._finished) > 4096:
                self._finished.popitem(last=False)
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
        if offset < 0 or (length is not None and length < 0):
            raise ValueError("negative offset or length")
        async with contextlib.aclosing(self._stream(sha256, offset, length, None)) as stream:
            async for data in stream:
                yield data

    async def read(self, sha256: str, offset: int = 0, length: int | None = None) -> bytes:
        """The whole range in memory (for small blobs and tests)."""
        async with contextlib.aclosing(self.get(sha256, offset, length)) as stream:
            return b"".join([d async for d in stream])

    def _sources(self, sha256: str, holds_here: bool) -> list[Hop | None]:
        """Where to read from, best first (``None`` is this node's own copy)."""
        me = self.view.self_id
        live = self.view.live()
        owners = self.placement.owners(sha256, live)
        order: list[Hop | None] = [None] if holds_here else []
        owner_ids = [m.node_id for m in owners]
        rest = [m for m in live if m.node_id not in owner_ids]
        now = self.env.clock.now()
        remote = [Hop(m.node_id, m.address) for m in owners + rest if m.node_id != me]
        healthy = [h for h in remote if self._suspect.get(h.node, 0.0) <= now]
        doubtful = [h for h in remote if self._suspect.get(h.node, 0.0) > now]
        return order + healthy + doubtful

    async def _stream(
        self, sha256: str, offset: int, length: int | None, sources: list[Hop] | None
    ) -> AsyncGenerator[bytes, None]:
        cfg = self.config
        pos = offset
        end: int | None = None if length is None else offset + length
        known_size = False
        passes = 0
        last_error = "no replica"
        while not known_size or end is None or pos < end:
            if sources is None:
                copy = self.local.get(sha256)
                order = self._sources(sha256, copy is not None)
            else:
                order = list(sources)
            progressed = False
            finished = False
            for source in order:
                # A local copy is read in bigger steps: no frame limit, fewer thread hops.
                step = cfg.read_size if source is not None else cfg.local_read_size
                try:
                    while True:
                        want = step if end is None else max(0, min(step, end - pos))
                        size, data = await self._read_from(source, sha256, pos, want)
                        limit = size if length is None else min(size, offset + length)
                        end = limit
                        known_size = True
                        if pos >= end:
                            finished = True
                            break
                        data = data[: end - pos]
                        if not data:
                            raise BlobUnavailable(f"{sha256}: empty read at {pos}")
                        pos += len(data)
                        progressed = True
                        yield data
                except (DspotError, OSError) as exc:  # the source failed: RPC, or our own disk
                    last_error = f"{source.node if source else 'local'}: {exc!r}"
                    if source is not None:
                        self._suspect[source.node] = self.env.clock.now() + 2.0
                    continue
                if finished:
                    break
            if finished:
                return
            passes = 0 if progressed else passes + 1
            if passes >= cfg.read_passes:
                raise BlobUnavailable(f"{sha256} at offset {pos}: {last_error}")
            await anyio.sleep(self._rng.uniform(0.05, 0.3) * passes)

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
            self._corrupt += 1
            self.env.trace("blob.corrupt", sha256=copy.sha256)
            if copy.sha256 not in self._heal_queue:
                self._heal_queue.append(copy.sha256)
            self._wake_scrub.set()
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

    async def _ask(self, member: Member | Hop, hashes: list[str]) -> list[Holding] | None:
        address = member.address
        try:
            reply: HasReply = await self.rpc.call(
                address, Has(hashes), timeout=self.config.read_timeout, retry=self._read_retry
            )
        except DspotError:
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
        live = self.view.live()
        configured = self.view.configured()
        owners = {m.node_id for m in self.placement.owners(sha256, live)}
        owners |= {m.node_id for m in self.placement.owners(sha256, configured)}
        live_ids = {m.node_id for m in live}
        targets = live + [m for m in configured if m.node_id in owners - live_ids]
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
            for m in targets:
                tg.start_soon(one, m)
        missing = sorted(owners - set(acked))
        if missing:
            raise DeleteIncomplete(f"owners {missing} did not record the delete of {sha256}")
        return len(acked)

    async def _on_delete(self, req: Delete, peer: Peer) -> Done:
        self._not_ready()
        copy = self.local.get(req.sha256)
        if copy is not None and copy.stored_at > req.deleted_at:
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
        tomb = self.local.tombstone(req.sha256)
        if tomb is not None and tomb >= req.stored_at:
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
        try:
            with anyio.fail_after(self.config.fetch_timeout):
                async with contextlib.aclosing(self._stream(sha256, 0, None, sources)) as stream:
                    async for data in stream:
                        await ingest.write(data)
                if replace:
                    await self.local.replace(ingest, sha256)
                else:
                    await ingest.commit(sha256, stored_at=stored_at, sync=True)
        except (
            BlobStoreError,
            IntegrityError,
            Tombstoned,
            TimeoutError,
            DiskFault,
            OSError,
        ) as exc:
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
        """One anti-entropy round over every copy this node holds."""
        cfg = self.config
        me = self.view.self_id
        live = self.view.live()
        held = self.local.hashes()
        horizon = self.env.clock.wall() - cfg.tombstone_ttl
        oldest = self.local.oldest_tombstone()
        if oldest is not None and oldest < horizon:
            await self.local.expire_tombstones(horizon)
        if not live:
            return
        owners_of: dict[str, list[Member]] = {}
        asks: dict[str, list[str]] = {}
        by_id = {m.node_id: m for m in live}
        for sha, _ in held:
            owners = self.placement.owners(sha, live)
            owners_of[sha] = owners
            for m in owners:
                if m.node_id != me:
                    asks.setdefault(m.node_id, []).append(sha)
        status: dict[tuple[str, str], Holding] = {}
        unreachable: list[str] = []

        async def query(node: str) -> None:
            hashes = asks[node]
            for i in range(0, len(hashes), cfg.repair_batch):
                items = await self._ask(by_id[node], hashes[i : i + cfg.repair_batch])
                if items is None:
                    unreachable.append(node)
                    return
                for item in items:
                    status[(node, item.sha256)] = item

        async with anyio.create_task_group() as tg:
            for node in sorted(asks):
                tg.start_soon(query, node)
        fetches: list[tuple[str, Member, list[Hop], float]] = []
        under = 0
        for sha, stored_at in held:
            owners = owners_of[sha]
            replies = [status[(m.node_id, sha)] for m in owners if (m.node_id, sha) in status]
            tombs = [r.deleted_at for r in replies if r.deleted_at is not None]
            if tombs and max(tombs) >= stored_at:
                await self.local.drop(sha, deleted_at=max(tombs))
                self.env.trace("blob.tombstone.adopted", sha256=sha)
                continue
            holders = [m for m in owners if m.node_id == me or _present(status, m, sha)]
            if len(holders) < self.placement.count(len(live)):
                under += 1
            me_hop = Hop(me, by_id[me].address) if me in by_id else None
            source_hops = ([me_hop] if me_hop else []) + [
                Hop(m.node_id, m.address) for m in holders if m.node_id != me
            ]
            if me_hop is None and self.rpc.address is not None:
                source_hops.insert(0, Hop(me, self.rpc.address))
            for m in owners:
                if m.node_id == me or m.node_id in unreachable:
                    continue
                if (m.node_id, sha) in status and not status[(m.node_id, sha)].present:
                    fetches.append((sha, m, source_hops, stored_at))
            handed_over = me not in [m.node_id for m in owners] and len(holders) == len(
                owners
            ) == self.placement.count(len(live))
            if handed_over and await self.local.drop(sha):
                self._handed_off += 1
                self.env.trace("blob.handed_off", sha256=sha)
        self._under = under
        if fetches:
            limiter = anyio.Semaphore(cfg.repair_parallel)
            async with anyio.create_task_group() as tg:
                for sha, member, sources, stored_at in fetches:
                    await limiter.acquire()
                    tg.start_soon(self._ask_fetch, limiter, sha, member, sources, stored_at)

    async def _ask_fetch(
        self,
        limiter: anyio.Semaphore,
        sha: str,
        member: Member,
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
        except DspotError:
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
                self._corrupt += 1
                self.env.trace("blob.corrupt", sha256=sha, by="scrub")
                if sha not in self._heal_queue:
                    self._heal_queue.append(sha)
        await self._heal_queued()
        return bad

    async def _heal_queued(self) -> None:
        while self._heal_queue:
            sha = self._heal_queue.pop(0)
            copy = self.local.get(sha)
            if copy is None or await self.local.verify(copy):
                continue  # gone, or the failure was a transient read error
            live = self.view.live()
            me = self.view.self_id
            owners = self.placement.owners(sha, live)
            owner_ids = [m.node_id for m in owners]
            ordered = owners + [m for m in live if m.node_id not in owner_ids]
            sources = [Hop(m.node_id, m.address) for m in ordered if m.node_id != me]
            if await self._fetch(sha, sources, stored_at=copy.stored_at, replace=True):
                self._healed += 1
            else:
                self.env.trace("blob.heal.fail", sha256=sha)


def _present(status: dict[tuple[str, str], Holding], member: Member, sha: str) -> bool:
    item = status.get((member.node_id, sha))
    return item is not None and item.present
