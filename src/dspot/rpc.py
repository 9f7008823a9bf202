"""Request/response RPC over any transport, one multiplexed connection per peer.

Guarantees:

* **Authenticated peers.** Every connection starts with a mutual challenge-response on the
  cluster secret (HMAC-SHA256 over both sides' nonces). A peer with the wrong secret is
  refused and logged; it never reaches a handler.
* **Deadlines.** ``call`` fails with :class:`~dspot.errors.RpcTimeout` once its deadline
  passes; each attempt has its own shorter timeout, after which the connection is presumed
  broken and replaced.
* **Retries with jittered exponential backoff** for every call. Requests registered as
  idempotent are simply sent again. The others get **at-most-once** execution: the server
  remembers each call id's response for ``dedupe_window`` seconds and answers a retry from
  that memory, and a retry that reaches a *restarted* server (different boot id, memory
  lost) is refused with :class:`~dspot.errors.OutcomeUnknown` instead of running twice.
* **Hostile input is contained.** A malformed or oversize frame (over 4 KiB before the
  peer has proved the secret, JSON nested over 64 deep) closes that one connection with a
  logged reason; anything unexpected on a connection is logged with its traceback and closes
  that connection too. The node keeps serving everyone else.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Self, TypeVar

import anyio
import anyio.abc
import attrs

from dspot import wire
from dspot._frame_io import FrameSender, read_frame, send_frame
from dspot._handshake import ClientHandshake, Peer, ServerHandshake, handshake_proof, refusal
from dspot._taskgroup import enter_task_group
from dspot._wakeup import Waiter, current_time, waiter
from dspot.env import Mechanism, NodeEnv
from dspot.errors import (
    ConnectionLost,
    ConnectTimeout,
    FrameError,
    HandshakeFailed,
    OutcomeUnknown,
    PeerUnavailable,
    RemoteError,
    RpcTimeout,
    RpcUnavailable,
)
from dspot.wire import Frame, FrameDecoder, Kind


class RpcMechanism(Mechanism):
    """What sabotage tests can build an :class:`RpcNode` without (``NodeEnv.disabled``)."""

    DEDUPE = "rpc.dedupe"
    """At-most-once: remember each non-idempotent call's response and answer retries from it."""
    BOOT_CHECK = "rpc.boot_check"
    """Refuse a retry that reaches a restarted server (its memory of calls is gone)."""
    DECODE_GUARD = "rpc.decode_guard"
    """Frame meta parsed within limits, every failure a FrameError (without it: plain
    ``json.loads``, catching ``ValueError`` only, as before issue 13)."""
    AUTH = "rpc.auth"
    """A server admits a connection only once the client proved the cluster secret (off:
    any AUTH frame will do, and a stranger may call every handler, membership's too)."""
    CALL_IDS = "rpc.call_ids"
    """Each call's id, under which a server remembers its answer, is random: unique across
    the caller's restarts (off: a counter from 1 in each incarnation, so a restarted caller
    reuses ids a server still remembers, and its new calls get old answers, never run)."""
    RECONNECT = "rpc.reconnect"
    """A connection that broke is dropped from the node's connection cache, so the next
    attempt connects anew (off: it stays cached, and every later call to that address
    fails on it: a pool that never evicts dead connections)."""
    CONTAIN = "rpc.contain"
    """An unexpected exception on one connection (serving it or reading its responses)
    costs that connection: logged, traced as ``conn.crash``, closed (off: it propagates, to
    the listener and on to the node, as any exception left uncaught would)."""


Req = TypeVar("Req")
Resp = TypeVar("Resp")

# Names the handshake code uses; the frame I/O itself lives in ``_frame_io``.
_ConnectionLost = ConnectionLost
_send_frame = send_frame
_read_frame = read_frame


@attrs.frozen
class RetryPolicy:
    """How ``call`` retries: up to ``attempts`` tries, full-jitter exponential backoff."""

    attempts: int = 5
    base_delay: float = 0.05
    max_delay: float = 1.0
    attempt_timeout: float = 2.0
    """Give up on one attempt (and its connection) after this many seconds; the last
    attempt may use whatever remains of the call's deadline."""

    def backoff(self, attempt: int, rng: Any) -> float:
        cap = min(self.max_delay, self.base_delay * (2**attempt))
        return float(rng.uniform(0, cap))


NO_RETRY = RetryPolicy(attempts=1)


Handler = Callable[[Any, Peer], Awaitable[Any]]


class _Slot:
    __slots__ = ("error", "frame", "waiter")

    def __init__(self) -> None:
        self.waiter = waiter()
        self.frame: Frame | None = None
        self.error: BaseException | None = None


class _Outbound:
    """Our connection to one peer address: sends requests, matches responses by msg id."""

    def __init__(self, stream: anyio.abc.ByteStream, peer: Peer, decoder: FrameDecoder) -> None:
        self.stream = stream
        self.peer = peer
        self.decoder = decoder
        self.sender = FrameSender(stream)
        self.pending: dict[int, _Slot] = {}
        self.next_id = 0
        self.closed = False

    def fail_all(self, exc: BaseException) -> None:
        self.closed = True
        self.sender.stop(exc)
        for slot in self.pending.values():
            if slot.frame is None and slot.error is None:
                slot.error = exc
                slot.waiter.wake()
        self.pending.clear()


class _Inbound:
    """A connection from a peer, served by worker tasks that take turns reading.

    One worker at a time reads the next request and then runs it itself. If the handler
    blocks, another worker (an idle one, or a new one) takes over reading; a handler that
    answers without blocking costs no task switch at all. Workers are reused, never
    spawned per request.
    """

    __slots__ = (
        "closing",
        "decoder",
        "idle",
        "peer",
        "reading",
        "sender",
        "stream",
        "tg",
        "workers",
    )

    def __init__(
        self,
        stream: anyio.abc.ByteStream,
        decoder: FrameDecoder,
        peer: Peer,
        tg: anyio.abc.TaskGroup,
    ) -> None:
        self.stream = stream
        self.decoder = decoder
        self.peer = peer
        self.tg = tg
        self.sender = FrameSender(stream)
        self.idle: list[Waiter] = []
        self.reading = False
        self.closing = False
        self.workers = 0

    def close(self) -> None:
        """No more requests: idle workers leave, busy ones finish theirs first."""
        self.closing = True
        for idle in self.idle:
            idle.wake()
        self.idle.clear()


@attrs.define
class _Executed:
    done: anyio.Event
    expires: float
    response: Frame | None = None


class RpcNode:
    """One node's RPC endpoint: serves registered handlers and calls other nodes.

    Use as ``async with RpcNode(env, listen="host:0", secret=...) as rpc:``; the listener and
    every connection's reader live in its task group and stop when the block exits.
    """

    def __init__(
        self,
        env: NodeEnv,
        *,
        listen: str | None = None,
        secret: bytes | None = None,
        call_timeout: float = 10.0,
        retry: RetryPolicy = RetryPolicy(),
        handshake_timeout: float = 5.0,
        connect_timeout: float = 2.0,
        max_frame: int = wire.DEFAULT_MAX_FRAME,
        dedupe_window: float = 300.0,
    ) -> None:
        self.env = env
        self.node_id = env.node_id
        self.boot = env.ids()
        self.secret = secret
        self.call_timeout = call_timeout
        self.retry = retry
        self.handshake_timeout = handshake_timeout
        self.connect_timeout = connect_timeout
        self.max_frame = max_frame
        self.dedupe_window = dedupe_window
        self._dedupe = env.enabled(RpcMechanism.DEDUPE)
        self._boot_check = env.enabled(RpcMechanism.BOOT_CHECK)
        self._loads = wire.loads if env.enabled(RpcMechanism.DECODE_GUARD) else _unguarded_loads
        self._contain = env.enabled(RpcMechanism.CONTAIN)
        self._reconnect = env.enabled(RpcMechanism.RECONNECT)
        self._random_call_ids = env.enabled(RpcMechanism.CALL_IDS)
        self._auth = env.enabled(RpcMechanism.AUTH)
        self._calls = 0
        self.duplicate_rate = 0.0
        """Fault injection: probability that a request frame is sent twice (as a network
        retransmission at the message level would); the duplicate's response is ignored."""
        self._listen_at = listen
        self.address: str | None = None
        self._handlers: dict[str, tuple[Handler, bool]] = {}
        self._outbound: dict[str, _Outbound] = {}
        self._connecting: dict[str, anyio.Lock] = {}
        self._executed: OrderedDict[tuple[str, str], _Executed] = OrderedDict()
        self._rng = env.child_rng("rpc")
        self._tg: anyio.abc.TaskGroup | None = None
        self._listener: Any = None
        self._log = env.logger

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._tg = await enter_task_group(self._listen)
        return self

    async def _listen(self, tg: anyio.abc.TaskGroup) -> None:
        if self._listen_at is not None:
            self._listener = await self.env.transport.listen(self._listen_at)
            self.address = self._listener.address
            tg.start_soon(self._listener.serve, self._serve_connection)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._tg is not None
        self._tg.cancel_scope.cancel()
        if self._listener is not None:
            with anyio.CancelScope(shield=True):
                await self._listener.aclose()
        for conn in list(self._outbound.values()):
            conn.fail_all(_ConnectionLost("rpc node closed"))
            with anyio.CancelScope(shield=True):
                await anyio.aclose_forcefully(conn.stream)
        self._outbound.clear()
        return await self._tg.__aexit__(exc_type, exc, tb)

    def handle(
        self, request_type: type[Req], handler: Callable[[Req, Peer], Awaitable[Any]]
    ) -> None:
        """Serve ``request_type`` with ``handler(request, peer) -> response message``.

        A handler raises :class:`~dspot.errors.RemoteError` to send the caller an error with
        a code; any other exception is logged and reported as ``internal``.
        """
        name = wire.message_name(request_type)
        self._handlers[name] = (handler, wire.is_idempotent(request_type))

    # -- client side ----------------------------------------------------------------------

    async def call(
        self,
        address: str,
        request: Any,
        *,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
    ) -> Any:
        """Send ``request`` to the node at ``address`` and return its response message.

        Raises :class:`RpcTimeout` when the deadline passes, :class:`RemoteError` when the
        handler refused, :class:`OutcomeUnknown` when a non-idempotent call cannot be known
        to have run, :class:`~dspot.errors.RpcUnavailable` (a
        :class:`~dspot.errors.PeerUnavailable`) when every attempt failed to reach the peer.
        """
        policy = retry or self.retry
        timeout = self.call_timeout if timeout is None else timeout
        name, body, payload = wire.encode_body(request)
        idempotent = wire.is_idempotent(type(request))
        if self._random_call_ids:
            call_id = self.env.ids.token(8).hex()
        else:
            self._calls += 1
            call_id = str(self._calls)
        now = current_time()
        deadline = now + timeout
        sent_to_boot: str | None = None
        attempt = 0
        last_exc: BaseException | None = None
        while True:
            remaining = deadline - now
            if remaining <= 0:
                raise RpcTimeout(f"{name} to {address} timed out after {timeout:g}s") from last_exc
            conn: _Outbound | None = self._outbound.get(address)
            try:
                last_try = attempt + 1 >= policy.attempts
                budget = remaining if last_try else min(remaining, policy.attempt_timeout)
                attempt_deadline = now + budget
                if conn is None or (conn.closed and self._reconnect):
                    conn = None
                    with anyio.fail_after(budget):
                        conn = await self._connection(address)
                meta: dict[str, Any] = {"call": call_id, "body": body}
                if not idempotent:
                    meta["boot"] = sent_to_boot or conn.peer.boot
                    sent_to_boot = meta["boot"]
                frame = await self._exchange(
                    conn, name, wire.dumps(meta), payload, attempt_deadline
                )
                return self._response(frame, name, address)
            except OutcomeUnknown:
                raise
            except RemoteError:
                raise
            except TimeoutError as exc:
                last_exc = exc
                if conn is not None:
                    await self._discard(address, conn)
            except (PeerUnavailable, FrameError) as exc:
                last_exc = exc
                if conn is not None:
                    await self._discard(address, conn)
                if isinstance(exc, HandshakeFailed):
                    raise RpcUnavailable(f"{name} to {address}: {exc}") from exc
            attempt += 1
            if attempt >= policy.attempts:
                if isinstance(last_exc, TimeoutError) and not isinstance(last_exc, PeerUnavailable):
                    raise RpcTimeout(f"{name} to {address} timed out") from last_exc
                raise RpcUnavailable(
                    f"{name} to {address} failed after {attempt} attempts: {last_exc!r}"
                ) from last_exc
            pause = min(policy.backoff(attempt, self._rng), max(0.0, deadline - current_time()))
            await anyio.sleep(pause)
            now = current_time()

    def _response(self, frame: Frame, name: str, address: str) -> Any:
        meta = self._loads(frame.meta)
        if frame.kind is Kind.ERROR:
            code = str(meta.get("code", "error"))
            text = str(meta.get("message", ""))
            if code == "outcome_unknown":
                raise OutcomeUnknown(f"{name} to {address}: {text}")
            raise RemoteError(code, text)
        if frame.kind is not Kind.RESPONSE:
            raise FrameError(f"expected a response, got {frame.kind.name}")
        return wire.decode_body(frame.name, meta.get("body"), frame.payload)

    async def _exchange(
        self, conn: _Outbound, name: str, meta: bytes, payload: bytes, deadline: float
    ) -> Frame:
        """Queue the request on the connection's sender, then wait for its response until
        ``deadline`` (TimeoutError). The caller never writes to the stream itself."""
        if conn.closed:
            raise _ConnectionLost("connection closed")
        conn.next_id += 1
        msg_id = conn.next_id
        slot = _Slot()
        conn.pending[msg_id] = slot
        try:
            await conn.sender.send(Frame(Kind.REQUEST, msg_id, name, meta, payload), deadline)
            if self.duplicate_rate and self._rng.random() < self.duplicate_rate:
                conn.next_id += 1
                self.env.trace("rpc.duplicate", name=name)
                await conn.sender.send(
                    Frame(Kind.REQUEST, conn.next_id, name, meta, payload), deadline
                )
            if not await slot.waiter.wait(deadline):
                raise TimeoutError
        finally:
            conn.pending.pop(msg_id, None)
        if slot.error is not None:
            raise slot.error
        assert slot.frame is not None
        return slot.frame

    async def _connection(self, address: str) -> _Outbound:
        conn = self._outbound.get(address)
        if conn is not None and (not conn.closed or not self._reconnect):
            return conn
        lock = self._connecting.setdefault(address, anyio.Lock())
        async with lock:
            conn = self._outbound.get(address)
            if conn is not None and (not conn.closed or not self._reconnect):
                return conn
            stream = await self.env.transport.connect(address, timeout=self.connect_timeout)
            try:
                with anyio.fail_after(self.handshake_timeout):
                    conn = await self._client_handshake(stream, address)
            except TimeoutError as exc:
                await anyio.aclose_forcefully(stream)
                raise ConnectTimeout(f"handshake with {address} timed out") from exc
            except BaseException:
                await anyio.aclose_forcefully(stream)
                raise
            self._outbound[address] = conn
            assert self._tg is not None
            self._tg.start_soon(self._read_responses, address, conn)
            self._tg.start_soon(conn.sender.run)
            return conn

    async def _client_handshake(self, stream: anyio.abc.ByteStream, address: str) -> _Outbound:
        # Until the server has proved the secret it is a stranger: small frames only.
        decoder = FrameDecoder(wire.PREAUTH_MAX_FRAME)
        nonce = self.env.secure_token(16).hex()
        handshake = ClientHandshake(self.secret, self.node_id, self.boot, nonce, self._loads)
        await _send_frame(stream, handshake.hello())
        try:
            auth, peer = handshake.answer(await _read_frame(stream, decoder), address)
        except HandshakeFailed as exc:
            self._log.warning("handshake with %s failed: %s", address, exc)
            raise
        await _send_frame(stream, auth)
        decoder.max_frame = self.max_frame
        return _Outbound(stream, peer, decoder)

    async def _read_responses(self, address: str, conn: _Outbound) -> None:
        exc: BaseException
        try:
            while True:
                frame = await _read_frame(conn.stream, conn.decoder)
                slot = conn.pending.get(frame.msg_id)
                if slot is not None and slot.frame is None and slot.error is None:
                    slot.frame = frame
                    slot.waiter.wake()
        except FrameError as e:
            self._log.warning("closing connection to %s: %s", address, e)
            exc = e
        except PeerUnavailable as e:
            exc = e
        except Exception as e:
            # Whatever goes wrong on one connection costs that connection, never the node.
            if not self._contain:
                raise
            self._log.exception("closing connection to %s after an unexpected error", address)
            self.env.trace("conn.crash", error=type(e).__name__)
            exc = e
        conn.fail_all(_ConnectionLost(f"connection to {address} lost: {exc!r}"))
        await self._discard(address, conn)

    async def _discard(self, address: str, conn: _Outbound) -> None:
        conn.fail_all(_ConnectionLost(f"connection to {address} abandoned"))
        if self._outbound.get(address) is conn and self._reconnect:
            del self._outbound[address]
        await anyio.aclose_forcefully(conn.stream)

    # -- server side ----------------------------------------------------------------------

    async def _serve_connection(self, stream: anyio.abc.ByteStream) -> None:
        # A stranger gets small frames only until it has proved the cluster secret.
        decoder = FrameDecoder(wire.PREAUTH_MAX_FRAME)
        try:
            try:
                with anyio.fail_after(self.handshake_timeout):
                    peer = await self._server_handshake(stream, decoder)
            except (TimeoutError, HandshakeFailed) as exc:
                self._log.warning("%s refused a connection: %s", self.node_id, exc)
                return
            except FrameError as exc:
                self._log.warning("%s closing connection: %s", self.node_id, exc)
                return
            decoder.max_frame = self.max_frame
            # Handlers in flight finish even if the peer goes away: cancelling one halfway
            # through its effect would leave the effect done but not remembered.
            async with anyio.create_task_group() as tg:
                conn = _Inbound(stream, decoder, peer, tg)
                tg.start_soon(conn.sender.run)
                await self._serve_requests(conn)  # this task is the first worker
        except PeerUnavailable:
            pass  # the peer went away: nothing to answer
        except Exception as exc:
            # Nothing from one connection may reach the listener's task group (and take
            # every other connection, and the node, with it): log it, close this one.
            if not self._contain:
                raise
            self._log.exception("%s closing a connection after an unexpected error", self.node_id)
            self.env.trace("conn.crash", error=type(exc).__name__)
        finally:
            await anyio.aclose_forcefully(stream)

    async def _serve_requests(self, conn: _Inbound) -> None:
        """One worker of ``conn``: read a request when nobody else is reading, run it,
        answer, repeat; wait idle while another worker reads."""
        conn.workers += 1
        try:
            while not conn.closing:
                if conn.reading:
                    idle = waiter()
                    conn.idle.append(idle)
                    await idle
                    continue
                conn.reading = True
                try:
                    frame = await _read_frame(conn.stream, conn.decoder)
                    if frame.kind is not Kind.REQUEST:
                        raise FrameError(f"unexpected {frame.kind.name} frame")
                except FrameError as exc:
                    who = conn.peer.node_id
                    self._log.warning("%s closing connection from %s: %s", self.node_id, who, exc)
                    conn.close()
                    return
                except PeerUnavailable:
                    conn.close()
                    return
                finally:
                    conn.reading = False
                handover = _hand_over_reading(self._promote, conn)
                try:
                    response = await self._execute(conn.peer, frame)
                finally:
                    if handover is not None:
                        handover.cancel()
                reply = Frame(
                    response.kind, frame.msg_id, response.name, response.meta, response.payload
                )
                try:
                    await conn.sender.send(reply)
                except _ConnectionLost:
                    conn.close()  # the caller retries (idempotent) or asks again (deduplicated)
                    return
        finally:
            conn.workers -= 1
            if conn.workers == 0:
                conn.sender.close()  # what is queued still goes out

    def _promote(self, conn: _Inbound) -> None:
        """The reading worker's handler blocked: let another worker read meanwhile."""
        if conn.reading or conn.closing:
            return
        if conn.idle:
            conn.idle.pop().wake()
        else:
            conn.tg.start_soon(self._serve_requests, conn)

    async def _server_handshake(self, stream: anyio.abc.ByteStream, decoder: FrameDecoder) -> Peer:
        hello = await _read_frame(stream, decoder)
        nonce = self.env.secure_token(16).hex()
        handshake = ServerHandshake(
            self.secret, self.node_id, self.boot, nonce, self._loads, authenticate=self._auth
        )
        await _send_frame(stream, handshake.answer_hello(hello))
        try:
            frame = await _read_frame(stream, decoder)
        except ConnectionLost as exc:
            # A client with the wrong secret rejects our proof and hangs up here: log it as
            # a refusal on this side too, not as a silent disconnect.
            raise HandshakeFailed(
                f"node {handshake.claimed!r} hung up before proving the cluster secret"
            ) from exc
        try:
            return handshake.check_auth(frame)
        except HandshakeFailed:
            with anyio.move_on_after(1):
                await _send_frame(stream, refusal())
            raise

    async def _execute(self, peer: Peer, frame: Frame) -> Frame:
        try:
            meta = self._loads(frame.meta)
            if not isinstance(meta, dict):
                raise FrameError("request meta is not an object")
            entry = self._handlers.get(frame.name)
            if entry is None:
                return _error("unknown_method", f"no handler for {frame.name!r}")
            handler, idempotent = entry
            request = wire.decode_body(frame.name, meta.get("body"), frame.payload)
        except FrameError as exc:
            return _error("bad_request", str(exc))
        if idempotent or not self._dedupe:
            return await self._run(handler, request, peer, frame.name)
        if self._boot_check and meta.get("boot") != self.boot:
            return _error("outcome_unknown", "the server restarted since the first attempt")
        key = (peer.node_id, str(meta.get("call")))
        now = current_time()
        self._expire(now)
        done = self._executed.get(key)
        self.env.trace("rpc.exec", call=key[1], peer=key[0], repeat=done is not None)
        if done is not None:
            await done.done.wait()
            assert done.response is not None
            return done.response
        record = _Executed(done=anyio.Event(), expires=now + self.dedupe_window)
        self._executed[key] = record
        try:
            record.response = await self._run(handler, request, peer, frame.name)
        finally:
            if record.response is None:
                # Cancelled (node shutting down): forget it, the effect did not complete.
                self._executed.pop(key, None)
                record.response = _error("outcome_unknown", "server stopped mid-call")
            record.done.set()
        return record.response

    def _expire(self, now: float) -> None:
        while self._executed:
            first = next(iter(self._executed.values()))
            if first.expires > now or not first.done.is_set():
                break
            self._executed.popitem(last=False)

    async def _run(self, handler: Handler, request: Any, peer: Peer, name: str) -> Frame:
        try:
            response = await handler(request, peer)
            # Encoding is the handler's responsibility too: returning something that is not
            # a registered message is the handler's bug, reported like any other.
            rname, body, payload = wire.encode_body(response)
            meta = wire.dumps({"body": body})
        except RemoteError as exc:
            return _error(exc.code, exc.message)
        except Exception as exc:
            self._log.exception("%s handler for %s failed", self.node_id, name)
            return _error("internal", f"{type(exc).__name__}: {exc}")
        return Frame(Kind.RESPONSE, 0, rname, meta, payload)


def _hand_over_reading(promote: Callable[[_Inbound], None], conn: _Inbound) -> Any:
    """Arrange for ``promote(conn)`` to run if the handler about to run blocks.

    On asyncio that is a callback at the next loop iteration, cancelled (returned handle)
    when the handler answers first. trio has no such callbacks: hand over at once.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        promote(conn)
        return None
    return loop.call_soon(promote, conn)


def _unguarded_loads(meta: bytes) -> Any:
    # RpcMechanism.DECODE_GUARD switched off (sabotage tests only): wire.loads as it was
    # before issue 13, which let RecursionError through.
    try:
        return json.loads(meta)
    except ValueError as exc:
        raise FrameError(f"frame meta is not JSON: {exc}") from None


def _error(code: str, message: str) -> Frame:
    return Frame(Kind.ERROR, 0, "error", wire.dumps({"code": code, "message": message}))


__all__ = [
    "NO_RETRY",
    "ClientHandshake",
    "Peer",
    "RetryPolicy",
    "RpcMechanism",
    "RpcNode",
    "handshake_proof",
]
_ = logging  # module logger comes from the env
