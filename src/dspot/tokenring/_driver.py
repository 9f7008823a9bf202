"""The anyio driver of the token ring: feeds :class:`TokenRingCore` from RPC, the clock and
the ring view, makes its disk writes durable before anything leaves, reads back entries
that left the memory window, applies committed entries in order, and takes, sends and
installs snapshots.

Every core call runs under one lock together with the disk write it asks for, so the core
and the disk never disagree about what was acknowledged. Requests the core wants sent run
as tasks in the ring's task group; their replies go back through the same lock.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Self

import anyio
import anyio.abc

from dspot._taskgroup import enter_task_group
from dspot.disk import DiskFault
from dspot.env import NodeEnv
from dspot.errors import RemoteError, RpcError
from dspot.membership import MemberState, RingView
from dspot.rpc import Peer, RetryPolicy, RpcNode
from dspot.tokenring._config import TokenRingConfig, TokenRingMechanism
from dspot.tokenring._core import TokenRingCore
from dspot.tokenring._errors import CommitTimeout, NoQuorum
from dspot.tokenring._log import IdWindow
from dspot.tokenring._messages import (
    Append,
    AppendReply,
    CommittedEntry,
    Entry,
    InstallSnapshot,
    InstallSnapshotReply,
    LogPosition,
    Vote,
    VoteReply,
)
from dspot.tokenring._output import (
    Fetch,
    HardState,
    Output,
    Persist,
    Send,
    SnapshotOffer,
    Status,
)
from dspot.tokenring._snapshot import (
    AppliesBatches,
    SnapshotHeader,
    SnapshotReader,
    StateMachine,
    read_header,
    write_snapshot,
)
from dspot.tokenring._store import LogStore
from dspot.tokenring._transfer import InstallStep, SnapshotReceiver, send_snapshot

ApplyCallback = Callable[[CommittedEntry], Awaitable[None]]

APPLY_BATCH = 256
"""Most entries the apply loop reads from disk at once."""


class _Waiter:
    __slots__ = ("done", "error", "position")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.position: LogPosition | None = None
        self.error: Exception | None = None


class TokenRing:
    """One member of a token ring: ``async with TokenRing(env, rpc, view, config) as ring:``.

    ``rpc`` must be entered (listening) and reachable at the addresses ``view`` gives.

    Committed entries go, in log order, to either ``apply`` (a callback that sees every
    committed entry once per process lifetime: after a restart it sees the log again from
    the start, and the log is never compacted) or ``state_machine`` (a
    :class:`~dspot.tokenring.StateMachine`: the ring resumes it where it durably stopped,
    snapshots it every ``compact_every`` entries, compacts the log, and restores it from
    a snapshot when the log no longer reaches back far enough).

    ``learner``: set it when this member starts with an empty disk in a cluster that
    already has a log — a new member, or one whose disk was lost. Such a member neither
    votes nor stands for election until its log has matched a holder's whole log (a member
    that forgot what it acknowledged or voted must not vote: it could elect a log without
    a committed entry). Only read when the disk is empty; the state is kept durably.
    """

    def __init__(
        self,
        env: NodeEnv,
        rpc: RpcNode,
        view: RingView,
        config: TokenRingConfig | None = None,
        *,
        apply: ApplyCallback | None = None,
        state_machine: StateMachine | None = None,
        learner: bool = False,
    ) -> None:
        if apply is not None and state_machine is not None:
            raise ValueError("give apply or state_machine, not both")
        self.env = env
        self.rpc = rpc
        self.view = view
        self.config = config or TokenRingConfig()
        self._machine = state_machine
        self._learner = learner
        self._apply = state_machine.apply if state_machine is not None else apply
        self._apply_batch = (
            state_machine.apply_batch if isinstance(state_machine, AppliesBatches) else None
        )
        self._store = LogStore(env.disk.db, self.config.table_prefix)
        self._snapshots = f"{self.config.table_prefix}/snapshots/"
        self._known: list[str] = []
        self._core: TokenRingCore | None = None
        self._lock = anyio.Lock()
        self._tg: anyio.abc.TaskGroup | None = None
        self._waiters: dict[str, list[_Waiter]] = {}
        self._applied = 0
        self._applied_epoch = 0
        self._committed_changed = anyio.Event()
        self._applied_changed = anyio.Event()
        self._retry = RetryPolicy(attempts=1, attempt_timeout=self.config.rpc_timeout)
        self._reading: Counter[str] = Counter()
        """Snapshot files being sent (not deleted until done)."""
        self._receiver = SnapshotReceiver(env, self._snapshots)
        self.on_install_step: InstallStep | None = None
        """Fault injection (simulation): called at each step of a snapshot install —
        ``"chunk"`` (a chunk was written), ``"file"`` (the file is complete and synced),
        ``"recorded"`` (the new base is durable) and ``"restored"``."""
        rpc.handle(Append, self._on_append)
        rpc.handle(Vote, self._on_vote)
        rpc.handle(InstallSnapshot, self._on_install)

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        cfg = self.config
        loaded = await self._store.load(cfg.memory_entries, cfg.dedupe_window)
        state = loaded.state
        if loaded.fresh and self._learner and self.env.enabled(TokenRingMechanism.LEARNER):
            state = HardState(learner=True)
            await self._store.write(Persist(state=state))  # a crash must not forget it
        self._known = await self._store.load_members()
        ids = loaded.ids
        if loaded.snapshot is not None:
            header, _ = await read_header(self.env.disk, loaded.snapshot.name)
            ids = [t for t in header.ids if t[1] < (ids[0][1] if ids else t[1] + 1)] + ids
        applied = await self._machine.applied_index() if self._machine is not None else 0
        self._core = TokenRingCore(
            self.env.node_id,
            cfg,
            rng=self.env.child_rng("tokenring"),
            now=self.env.clock.now(),
            state=state,
            log=loaded.log,
            ids=IdWindow(ids),
            snapshot=loaded.snapshot,
            applied=applied,
            disabled=self.env.disabled,
        )
        self._applied = applied
        self._applied_epoch = self._core.epoch_at(applied)
        await self._delete_old_snapshots(at_start=True)
        await self._refresh_view()
        self.env.trace(
            "tokenring.start",
            epoch=state.epoch,
            learner=state.learner,
            last=loaded.log.last_index,
            base=loaded.log.base_index,
            applied=applied,
        )
        self._tg = await enter_task_group(self._start_loops)
        return self

    async def _start_loops(self, tg: anyio.abc.TaskGroup) -> None:
        tg.start_soon(self._timer_loop)
        tg.start_soon(self._apply_loop)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._tg is not None
        self._tg.cancel_scope.cancel()
        try:
            return await self._tg.__aexit__(exc_type, exc, tb)
        finally:
            with anyio.CancelScope(shield=True):
                await self._receiver.abort()

    @property
    def core(self) -> TokenRingCore:
        """The state machine (for tests and dashboards; do not drive it directly)."""
        if self._core is None:
            raise RuntimeError("TokenRing is not running (use it with async with)")
        return self._core

    # -- public API -----------------------------------------------------------------------

    async def submit(
        self, entry: bytes, *, entry_id: str | None = None, timeout: float | None = None
    ) -> LogPosition:
        """Append ``entry`` to the log; return its position once it is committed.

        Raises :class:`NoQuorum` at once when this member does not see a majority (the
        entry was not submitted), :class:`CommitTimeout` after ``timeout`` (outcome
        unknown). Resubmitting with the same ``entry_id`` does not append it twice while
        the id is remembered: at least until ``dedupe_window`` more entries are committed.
        """
        core = self.core
        eid = entry_id or self.env.ids()
        pos = core.position_of(eid)
        if pos is not None:
            return pos
        await self._refresh_view()
        if not core.view_has_quorum():
            raise NoQuorum(f"{self.env.node_id}: read-only, no quorum")
        waiter = _Waiter()
        self._waiters.setdefault(eid, []).append(waiter)
        limit = self.config.submit_timeout if timeout is None else timeout
        try:
            with anyio.fail_after(limit):
                await self._step(lambda: core.enqueue(eid, entry, self.env.clock.now()))
                await waiter.done.wait()
        except TimeoutError:
            raise CommitTimeout(f"entry {eid} not committed within {limit:g}s") from None
        finally:
            waiters = self._waiters.get(eid, [])
            if waiter in waiters:
                waiters.remove(waiter)
                if not waiters:
                    del self._waiters[eid]
                    core.cancel(eid)
        if waiter.error is not None:
            raise waiter.error
        assert waiter.position is not None
        return waiter.position

    async def wait_applied(self, position: LogPosition, timeout: float | None = None) -> None:
        """Wait until this member has applied the log up to ``position`` (read your writes)."""
        with anyio.fail_after(timeout):
            while self._applied < position.seq:
                await self._applied_changed.wait()

    @property
    def applied_position(self) -> LogPosition:
        """The last entry this member applied (``seq`` 0 before any)."""
        return LogPosition(self._applied, self._applied_epoch)

    @property
    def commit_position(self) -> LogPosition:
        core = self.core
        return LogPosition(core.commit_index, core.epoch_at(core.commit_index))

    @property
    def holder(self) -> str | None:
        """Who holds the token as far as this member knows."""
        return self.core.holder

    @property
    def epoch(self) -> int:
        return self.core.epoch

    @property
    def known_members(self) -> tuple[str, ...]:
        """Every voter this member has ever counted in the ring (kept on disk), sorted."""
        return tuple(self._known)

    def status(self) -> Status:
        return self.core.status()

    async def committed(self, start: int = 1, end: int | None = None) -> list[CommittedEntry]:
        """Committed entries with ``start <= seq <= end`` still in the log (no-ops left
        out; entries compacted into a snapshot are gone)."""
        core = self.core
        last = core.commit_index if end is None else min(end, core.commit_index)
        first = max(start, core.base_index + 1, 1)
        out: list[CommittedEntry] = []
        while first <= last:
            batch = await self._entries(first, min(last, first + APPLY_BATCH - 1))
            if not batch:
                break
            for seq, e in enumerate(batch, first):
                if not e.is_noop:
                    out.append(CommittedEntry(LogPosition(seq, e.epoch), e.entry_id, e.data))
            first += len(batch)
        return out

    async def log_entries_on_disk(self) -> int:
        """How many log entries this member keeps on disk."""
        return await self._store.count()

    # -- plumbing -------------------------------------------------------------------------

    async def _refresh_view(self) -> None:
        """Feed the core the live ring and the configured membership.

        The configured membership is the union of every member ever seen configured, less
        those that left gracefully, kept durably: a member that restarts and, for a while,
        sees only itself through membership still counts majorities against the whole
        cluster instead of taking itself for a majority of one.
        """
        left = {m.node_id for m in self.view.members() if m.state is MemberState.LEFT}
        seen = {m.node_id for m in self.view.configured()}
        known = sorted((set(self._known) | seen) - left)
        if known != self._known:
            await self._store.save_members(known)
            self._known = known
        self.core.set_view([m.node_id for m in self.view.live()], known)

    async def _step(self, call: Callable[[], Output]) -> None:
        async with self._lock:
            await self._refresh_view()
            out = await self._persist(call())
        self._dispatch(out)

    async def _persist(self, out: Output) -> Output:
        """Make the output's disk write durable, then tell the core (it may commit more)."""
        p = out.persist
        if p is None:
            return out
        self._store.sync = self.env.enabled(TokenRingMechanism.FSYNC)
        await self._store.write(p)
        if p.members:
            self._known = sorted(set(self._known) | set(p.members))
        out.merge(self.core.persisted(p.upto))
        return out

    def _dispatch(self, out: Output) -> None:
        assert self._tg is not None
        for send in out.sends:
            self._tg.start_soon(self._send, send)
        for fetch in out.fetches:
            self._tg.start_soon(self._fetch, fetch)
        for eid, pos in out.resolved:
            for w in self._waiters.pop(eid, []):
                w.position = pos
                w.done.set()
        for eid in out.rejected:
            for w in self._waiters.pop(eid, []):
                w.error = NoQuorum(f"{self.env.node_id}: read-only, no quorum")
                w.done.set()
        if out.committed:
            self._committed_changed.set()
            self._committed_changed = anyio.Event()

    async def _entries(self, start: int, end: int) -> list[Entry]:
        """Entries ``start..end`` from memory or disk (fewer if some are gone)."""
        entries = self.core.log.entries(start, end)
        if entries is not None:
            return entries
        # Under the lock: every write the core asked for so far is on disk.
        async with self._lock:
            return await self._store.read(start, end)

    async def _send(self, send: Send) -> None:
        core = self.core
        member = self.view.get(send.peer)
        msg = send.message
        if isinstance(msg, SnapshotOffer):
            await self._offer(send.peer, msg, member.address if member else None)
            return
        reply: AppendReply | VoteReply | None = None
        if member is not None:
            try:
                reply = await self.rpc.call(
                    member.address, msg, timeout=self.config.rpc_timeout, retry=self._retry
                )
            except RpcError:
                reply = None
        now = self.env.clock.now()
        if isinstance(msg, Append) and isinstance(reply, AppendReply):
            await self._step(lambda: core.on_append_reply(send.peer, msg, reply, now))
        elif isinstance(msg, Vote) and isinstance(reply, VoteReply):
            await self._step(lambda: core.on_vote_reply(send.peer, msg, reply, now))
        else:
            await self._step(lambda: core.on_send_failed(send.peer, msg, now))

    async def _offer(self, peer: str, offer: SnapshotOffer, address: str | None) -> None:
        core = self.core
        self._reading[offer.meta.name] += 1
        try:
            reply = None
            if address is not None:
                reply = await send_snapshot(
                    self.env,
                    self.rpc,
                    address,
                    offer,
                    chunk=self.config.snapshot_chunk,
                    timeout=self.config.rpc_timeout,
                    current=lambda: core.inflight.get(peer) is offer,
                )
        finally:
            self._reading[offer.meta.name] -= 1
        now = self.env.clock.now()
        if reply is None:
            await self._step(lambda: core.on_send_failed(peer, offer, now))
        else:
            self.env.trace("tokenring.snapshot.sent", peer=peer, index=offer.meta.index)
            await self._step(lambda: core.on_snapshot_reply(peer, offer, reply, now))

    async def _fetch(self, fetch: Fetch) -> None:
        try:
            entries = await self._store.read(fetch.start, fetch.end)
        except (DiskFault, OSError):
            entries = []
        now = self.env.clock.now()
        await self._step(lambda: self.core.on_fetched(fetch, entries, now))

    async def _on_append(self, msg: Append, peer: Peer) -> AppendReply:
        core = self._running()
        async with self._lock:
            await self._refresh_view()
            reply, out = core.on_append(msg, self.env.clock.now())
            out = await self._persist(out)
        self._dispatch(out)
        if reply.took_token:
            self.env.trace("tokenring.token", epoch=msg.epoch, hop=msg.hop, src=peer.node_id)
        return reply

    async def _on_vote(self, msg: Vote, peer: Peer) -> VoteReply:
        core = self._running()
        async with self._lock:
            await self._refresh_view()
            reply, out = core.on_vote(msg, self.env.clock.now())
            out = await self._persist(out)
        self._dispatch(out)
        return reply

    async def _on_install(self, msg: InstallSnapshot, peer: Peer) -> InstallSnapshotReply:
        core = self._running()
        async with self._lock:
            await self._refresh_view()
            reply, out = core.on_snapshot_chunk(msg, self.env.clock.now())
            out = await self._persist(out)
        self._dispatch(out)
        if reply is not None:
            return reply
        if self._machine is None:
            raise RemoteError("unsupported", "this member's state cannot restore snapshots")
        step = self.on_install_step or _no_step
        meta, ahead = await self._receiver.receive(msg, step)
        if meta is None:
            return InstallSnapshotReply(core.epoch, True, next_offset=ahead)
        self._reading[meta.name] += 1  # not an old snapshot to delete, not yet
        try:
            header, _ = await read_header(self.env.disk, meta.name)
            async with self._lock:
                reply, out = core.install_snapshot(meta, header.ids, header.members)
                out = await self._persist(out)
        finally:
            self._reading[meta.name] -= 1
        self._dispatch(out)
        self.env.trace("tokenring.snapshot.install", index=meta.index, src=peer.node_id)
        await step("recorded")
        await self._delete_old_snapshots()
        return reply

    def _running(self) -> TokenRingCore:
        if self._core is None or self._tg is None:
            raise RemoteError("unavailable", "token ring not started")
        return self._core

    async def _timer_loop(self) -> None:
        core = self.core
        clock = self.env.clock
        while True:
            now = clock.now()
            due = min(core.next_deadline(now), now + self.config.tick_interval)
            # Always yield a little: a deadline that input has to clear must not spin.
            await anyio.sleep(max(due - now, 0.001))
            await self._step(lambda: core.tick(clock.now()))

    # -- applying, snapshots --------------------------------------------------------------

    async def _apply_loop(self) -> None:
        core = self.core
        while True:
            changed = self._committed_changed
            if self._applied < core.base_index:
                await self._restore()
            while core.base_index <= self._applied < core.commit_index:
                start = self._applied + 1
                batch = await self._entries(start, min(core.commit_index, start + APPLY_BATCH - 1))
                if not batch:
                    break  # compacted away meanwhile (a snapshot was installed)
                if self._apply_batch is not None:
                    # One call (for a durable state, one commit) for the whole run.
                    entries = [
                        CommittedEntry(LogPosition(seq, e.epoch), e.entry_id, e.data)
                        for seq, e in enumerate(batch, start)
                        if not e.is_noop
                    ]
                    if entries:
                        await self._apply_batch(entries)
                    self._set_applied(start + len(batch) - 1, batch[-1].epoch)
                    continue
                for seq, e in enumerate(batch, start):
                    if not e.is_noop and self._apply is not None:
                        await self._apply(
                            CommittedEntry(LogPosition(seq, e.epoch), e.entry_id, e.data)
                        )
                    self._set_applied(seq, e.epoch)
            await self._maybe_compact()
            if self._applied < core.base_index and self._restorable():
                continue
            # Wait for news; ``changed`` was taken before looking, so none is missed.
            await changed.wait()

    def _set_applied(self, seq: int, epoch: int) -> None:
        self._applied = seq
        self._applied_epoch = epoch
        self._applied_changed.set()
        self._applied_changed = anyio.Event()

    def _restorable(self) -> bool:
        snap = self.core.snapshot
        return (
            snap is not None and snap.index > self._applied and snap.index >= self.core.base_index
        )

    async def _restore(self) -> None:
        """The log no longer reaches back to what we applied: restore the latest snapshot."""
        core = self.core
        snap = core.snapshot
        if self._machine is None or snap is None or not self._restorable():
            return  # nothing to restore from: wait for one
        self._reading[snap.name] += 1  # an install meanwhile must not delete it
        try:
            await self._machine.restore_snapshot(SnapshotReader(self.env.disk, snap))
        finally:
            self._reading[snap.name] -= 1
        if self.on_install_step is not None:
            await self.on_install_step("restored")
        self.env.trace("tokenring.snapshot.restore", index=snap.index)
        self._set_applied(snap.index, snap.epoch)

    async def _maybe_compact(self) -> None:
        core = self.core
        index = self._applied
        if self._machine is None or not core.base_index <= index <= core.commit_index:
            return
        last = core.snapshot.index if core.snapshot is not None else 0
        if index - last < self.config.compact_every:
            return
        header = SnapshotHeader(index, core.epoch_at(index), core.ids_upto(index), self._known)
        name = f"{self._snapshots}{index:012d}-{self.env.ids.token(6).hex()}"
        self._reading[name] += 1  # not an old snapshot to delete, not yet
        try:
            meta = await write_snapshot(
                self.env.disk, name, header, self._machine, self.env.offload
            )
            async with self._lock:
                out = await self._persist(core.compacted(meta))
        finally:
            self._reading[name] -= 1
        self._dispatch(out)
        self.env.trace("tokenring.snapshot.take", index=index, base=core.base_index)
        await self._delete_old_snapshots()

    async def _delete_old_snapshots(self, *, at_start: bool = False) -> None:
        """Delete snapshot files older than the latest one (and not in use).

        The latest is looked up again for every file: an install that completes during one
        of the deletes moves it, and a name taken before would delete the new latest. A
        file newer than the latest is a received or compacted snapshot on its way to
        becoming it (or one refused, which a later snapshot passes): only ``at_start``,
        when nothing is on its way, is every file but the latest deleted.
        """
        for name in await self.env.disk.list_files(self._snapshots):
            snap = self.core.snapshot
            if (snap is not None and name == snap.name) or self._reading[name]:
                continue
            if not at_start and (snap is None or _snapshot_index(name) >= snap.index):
                continue
            with contextlib.suppress(FileNotFoundError):
                await self.env.disk.delete(name, sync=False)


def _snapshot_index(name: str) -> int:
    """The log index in a snapshot file's name (``.../000000000024-<hex>``); -1 for a file
    not named so (older than any snapshot: deleted)."""
    stem = name.rsplit("/", 1)[-1].split("-", 1)[0]
    return int(stem) if stem.isdigit() else -1


async def _no_step(step: str) -> None:
    """No fault injection."""
