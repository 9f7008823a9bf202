"""The anyio driver of the token ring: feeds :class:`TokenRingCore` from RPC, the clock and
the ring view, makes its disk writes durable before anything leaves, and applies committed
entries in order.

Every core call runs under one lock together with the disk write it asks for, so the core
and the disk never disagree about what was acknowledged. Requests the core wants sent run
as tasks in the ring's task group; their replies go back through the same lock.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Self

import anyio
import anyio.abc

from dspot.env import NodeEnv
from dspot.errors import RemoteError, RpcError
from dspot.membership import MemberState, RingView
from dspot.rpc import Peer, RetryPolicy, RpcNode
from dspot.tokenring._config import TokenRingConfig
from dspot.tokenring._core import Output, Send, Status, TokenRingCore
from dspot.tokenring._errors import CommitTimeout, NoQuorum
from dspot.tokenring._messages import (
    Append,
    AppendReply,
    CommittedEntry,
    LogPosition,
    Vote,
    VoteReply,
)
from dspot.tokenring._store import LogStore

ApplyCallback = Callable[[CommittedEntry], Awaitable[None]]


class _Waiter:
    __slots__ = ("done", "error", "position")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.position: LogPosition | None = None
        self.error: Exception | None = None


class TokenRing:
    """One member of a token ring: ``async with TokenRing(env, rpc, view, config) as ring:``.

    ``rpc`` must be entered (listening) and reachable at the addresses ``view`` gives.
    ``apply`` (optional) sees every committed entry once per process lifetime, in log
    order; after a restart it sees the log again from the start.
    """

    def __init__(
        self,
        env: NodeEnv,
        rpc: RpcNode,
        view: RingView,
        config: TokenRingConfig | None = None,
        *,
        apply: ApplyCallback | None = None,
    ) -> None:
        self.env = env
        self.rpc = rpc
        self.view = view
        self.config = config or TokenRingConfig()
        self._apply = apply
        self._store = LogStore(env.disk.db, self.config.table_prefix)
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
        self.fsync_enabled = True  # switched off only by sabotage tests
        rpc.handle(Append, self._on_append)
        rpc.handle(Vote, self._on_vote)

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        state, log = await self._store.load()
        self._known = await self._store.load_members()
        self._core = TokenRingCore(
            self.env.node_id,
            self.config,
            rng=self.env.child_rng("tokenring"),
            now=self.env.clock.now(),
            state=state,
            log=log,
        )
        await self._refresh_view()
        self.env.trace("tokenring.start", epoch=state.epoch, last=len(log))
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._timer_loop)
        self._tg.start_soon(self._apply_loop)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._tg is not None
        self._tg.cancel_scope.cancel()
        return await self._tg.__aexit__(exc_type, exc, tb)

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
        unknown). Resubmitting with the same ``entry_id`` never appends it twice.
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

    def committed(self, start: int = 1, end: int | None = None) -> list[CommittedEntry]:
        """Committed entries with ``start <= seq <= end`` (no-ops left out)."""
        core = self.core
        last = core.commit_index if end is None else min(end, core.commit_index)
        out = []
        for seq in range(max(start, 1), last + 1):
            e = core.log[seq - 1]
            if not e.is_noop:
                out.append(CommittedEntry(LogPosition(seq, e.epoch), e.entry_id, e.data))
        return out

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
        self._store.sync = self.fsync_enabled
        await self._store.write(p)
        more = self.core.persisted(p.upto)
        out.sends += more.sends
        out.resolved += more.resolved
        out.rejected += more.rejected
        out.committed = out.committed or more.committed
        return out

    def _dispatch(self, out: Output) -> None:
        assert self._tg is not None
        for send in out.sends:
            self._tg.start_soon(self._send, send)
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

    async def _send(self, send: Send) -> None:
        core = self.core
        member = self.view.get(send.peer)
        msg = send.message
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

    async def _apply_loop(self) -> None:
        core = self.core
        while True:
            while self._applied < core.commit_index:
                seq = self._applied + 1
                e = core.log[seq - 1]
                if not e.is_noop and self._apply is not None:
                    await self._apply(CommittedEntry(LogPosition(seq, e.epoch), e.entry_id, e.data))
                self._applied = seq
                self._applied_epoch = e.epoch
                self._applied_changed.set()
                self._applied_changed = anyio.Event()
            await self._committed_changed.wait()
