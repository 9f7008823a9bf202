"""The anyio driver around :class:`~dspot.membership._core.MembershipCore`.

It feeds the core the node's RPC traffic and the clock, sends what the core asks for (one
task per message, ``rpc.call`` with a short deadline and no retries: SWIM's own rounds are
the retries), and publishes the core's events to subscribers. It also implements
:class:`~dspot.membership.RingView` for the primitives built on membership.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, Self

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from dspot._taskgroup import enter_task_group
from dspot.env import NodeEnv
from dspot.errors import DspotError, HandshakeFailed, RemoteError
from dspot.membership._config import MembershipConfig
from dspot.membership._core import MembershipCore, Output, Send
from dspot.membership._messages import (
    Ack,
    Gossip,
    Message,
    Ping,
    PingReq,
    Received,
    Sync,
    SyncReply,
)
from dspot.membership._view import EventKind, Member, MembershipEvent
from dspot.rpc import NO_RETRY, Peer, RpcNode

_LOG_LEVELS = {EventKind.DEAD: logging.WARNING, EventKind.UPDATED: logging.DEBUG}
"""How each kind of event is logged; the others at INFO."""


class Membership:
    """SWIM ring membership for one node, over its :class:`~dspot.rpc.RpcNode`.

    Use ``async with Membership(env, rpc, seeds=[...]) as m:`` (leaves gracefully on a clean
    exit) or ``await tg.start(m.run)``. ``rpc`` must be listening; its address is the one
    advertised. Only nodes that prove the cluster secret to ``rpc`` can reach the handlers,
    so a node without it is never admitted nor gossiped.
    """

    def __init__(
        self,
        env: NodeEnv,
        rpc: RpcNode,
        config: MembershipConfig | None = None,
        *,
        seeds: Sequence[str] = (),
        meta: Mapping[str, str] | None = None,
        address: str | None = None,
    ) -> None:
        advertised = address or rpc.address
        if advertised is None:
            raise ValueError("the RpcNode must listen (or pass address=) to take part")
        self.env = env
        self.config = config or MembershipConfig()
        self.core = MembershipCore(
            env.node_id,
            advertised,
            config=self.config,
            rng=env.child_rng("membership"),
            meta=meta,
            seeds=seeds,
            now=env.clock.now(),
            disabled=env.disabled,
        )
        self._rpc = rpc
        self._tg: anyio.abc.TaskGroup | None = None
        self._wake = anyio.Event()
        self._sleeping_until = -math.inf
        self._joined = anyio.Event()
        self._stopped = anyio.Event()
        self._subscribers: list[MemoryObjectSendStream[MembershipEvent]] = []
        self._run_scope: anyio.CancelScope | None = None
        self._cm_tg: anyio.abc.TaskGroup | None = None

    # -- RingView ---------------------------------------------------------------------------

    @property
    def self_id(self) -> str:
        return self.core.self_id

    def members(self) -> list[Member]:
        return self.core.members()

    def live(self) -> list[Member]:
        return self.core.live()

    def configured(self) -> list[Member]:
        return self.core.configured()

    def get(self, node_id: str) -> Member | None:
        return self.core.get(node_id)

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[MemoryObjectReceiveStream[MembershipEvent]]:
        """Events from now on, in order, until the block exits (unbounded buffer)."""
        send, receive = anyio.create_memory_object_stream[MembershipEvent](math.inf)
        self._subscribers.append(send)
        try:
            async with receive:
                yield receive
        finally:
            self._subscribers.remove(send)
            send.close()

    # -- control ----------------------------------------------------------------------------

    @property
    def joined(self) -> bool:
        return self.core.joined

    async def wait_joined(self) -> None:
        """Until a seed has answered (at once for a node started without seeds)."""
        await self._joined.wait()

    def update_meta(self, meta: Mapping[str, str]) -> None:
        """Replace this node's metadata; it spreads with the next messages."""
        self._apply(self.core.update_meta(meta, self.env.clock.now()))

    async def leave(self) -> None:
        """Announce a graceful leave (waiting up to ``leave_timeout``) and stop."""
        if self.core.leaving:
            return
        out = self.core.leave(self.env.clock.now())
        self.env.log(logging.INFO, "membership.leave", incarnation=self.core.incarnation)
        self.env.trace("membership.leave", incarnation=self.core.incarnation)
        self._publish(out)
        with anyio.move_on_after(self.config.leave_timeout):
            async with anyio.create_task_group() as tg:
                for send in out.sends:
                    tg.start_soon(self._send, send)
        if self._run_scope is not None:
            self._run_scope.cancel()

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[Self] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Take part until cancelled or :meth:`leave`; started once joined (or after
        ``join_timeout``, still trying)."""
        with anyio.CancelScope() as scope:
            self._run_scope = scope
            async with anyio.create_task_group() as tg:
                self._tg = tg
                for request in (Ping, PingReq, Ack, Gossip, Sync):
                    self._rpc.handle(request, self._handle)
                self._apply(self.core.start(self.env.clock.now()))
                tg.start_soon(self._timers)
                with anyio.move_on_after(self.config.join_timeout):
                    await self._joined.wait()
                task_status.started(self)
                await anyio.sleep_forever()
        self._tg = None
        self._stopped.set()

    async def __aenter__(self) -> Self:
        self._cm_tg = await enter_task_group(lambda tg: tg.start(self.run))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._cm_tg is not None
        try:
            if exc_type is None:
                await self.leave()
        finally:
            self._cm_tg.cancel_scope.cancel()
            suppress = await self._cm_tg.__aexit__(exc_type, exc, tb)
        return suppress

    # -- internals --------------------------------------------------------------------------

    async def _timers(self) -> None:
        clock = self.env.clock
        while True:
            wake = self._wake = anyio.Event()
            deadline = self._sleeping_until = self.core.next_deadline()
            delay = deadline - clock.now()
            if delay > 0:
                with anyio.move_on_after(delay):
                    await wake.wait()
            self._sleeping_until = -math.inf
            self._apply(self.core.tick(clock.now()))

    def _apply(self, out: Output) -> None:
        self._publish(out)
        if self.core.joined and not self._joined.is_set():
            self._joined.set()
        tg = self._tg
        if tg is not None and not self.core.leaving:
            for send in out.sends:
                tg.start_soon(self._send, send)
        if self.core.next_deadline() < self._sleeping_until:
            self._wake.set()  # the input set an earlier timer than the one being slept on

    def _publish(self, out: Output) -> None:
        for event in out.events:
            member = event.member
            self.env.trace(
                "membership.event",
                kind=event.kind.value,
                member=member.node_id,
                incarnation=member.incarnation,
            )
            # A member's metadata changes often (a service node publishes its log position
            # a few times a second while it applies): routine, so not at INFO.
            level = _LOG_LEVELS.get(event.kind, logging.INFO)
            self.env.log(
                level,
                f"membership.{event.kind.value}",
                member=member.node_id,
                incarnation=member.incarnation,
            )
            for subscriber in self._subscribers:
                subscriber.send_nowait(event)

    async def _send(self, send: Send) -> None:
        try:
            response = await self._rpc.call(
                send.address, send.message, timeout=self.config.rpc_timeout, retry=NO_RETRY
            )
        except DspotError as exc:
            self._failed(send, exc)
            return
        if isinstance(response, (Ack, SyncReply)) and not self.core.leaving:
            self._apply(self.core.receive(response, self.env.clock.now()))

    def _failed(self, send: Send, exc: DspotError) -> None:
        cause: BaseException | None = exc
        while cause is not None and not isinstance(cause, HandshakeFailed):
            cause = cause.__cause__
        if cause is not None or "cluster secret" in str(exc):
            # Either side failed to prove the cluster secret: never admitted, never gossiped.
            self.env.log(logging.ERROR, "membership.refused", address=send.address, error=str(exc))
            self.env.trace("membership.refused", address=send.address)
        elif isinstance(send.message, Sync) and send.message.join:
            self.env.log(logging.INFO, "membership.join_failed", seed=send.address, error=str(exc))

    async def _handle(self, request: Any, peer: Peer) -> Message | Received:
        message: Message = request
        if message.origin.node_id != peer.node_id:
            self.env.log(
                logging.WARNING,
                "membership.impostor",
                claimed=message.origin.node_id,
                peer=peer.node_id,
            )
            raise RemoteError("forbidden", "origin does not match the authenticated peer")
        if self.core.leaving or self._tg is None:
            raise RemoteError("gone", f"{self.core.self_id} is not taking part")
        out = self.core.receive(message, self.env.clock.now())
        self._apply(out)
        if isinstance(message, (Ping, Sync)):
            if out.reply is None:
                raise RemoteError("not_target", f"this is {self.core.self_id}")
            return out.reply
        return Received()


__all__ = ["Membership"]
