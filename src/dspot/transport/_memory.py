"""A simulated network of named hosts, for the deterministic simulation.

Theory of operation: each connection is two one-way *pipes*. ``send`` appends a segment to
the sender's pipe with a delivery time drawn from the link's model (latency + jitter, a
TCP-like retransmission delay per lost transmission, serialisation time at the link's
bandwidth) and never earlier than the previous segment, so bytes stay ordered as TCP keeps
them. ``receive`` waits in virtual time until the head segment is due. A blocked direction
(partition, one-way or not) stops delivery without losing bytes; when it heals, the held
bytes arrive after a retransmission delay. Connecting needs both directions open (SYN and
SYN-ACK), otherwise it times out. Crashing a host resets every connection it has (its peers
see :class:`~dspot.errors.ConnectionReset`) and removes its listeners; connecting to a
crashed host is refused. Every random choice comes from the network's own seeded RNG, and
every connect, send, delivery and fault goes to the tracer.
"""

from __future__ import annotations

import logging
import math
import random
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
import attrs
from anyio.abc import SocketAttribute

from dspot._wakeup import Waiter, current_time, waiter
from dspot.env import Tracer, null_tracer
from dspot.errors import AddressInUse, ConnectionReset, ConnectRefused, ConnectTimeout, DspotError
from dspot.transport._base import StreamHandler, join_address, split_address


@attrs.frozen
class LinkModel:
    """How one direction of a link between two hosts behaves."""

    latency: float = 0.0005
    """One-way delay in seconds."""
    jitter: float = 0.0002
    """Uniform extra delay in ``[0, jitter)`` seconds."""
    loss: float = 0.0
    """Probability that a transmission is lost and must be resent."""
    rto: float = 0.2
    """Delay added by the first retransmission; each further loss doubles it."""
    bandwidth: float = 1.0e9
    """Bytes per second; large transfers take time, so faults can hit them mid-flight."""
    corrupt: float = 0.0
    """Probability that a transmission arrives with one bit flipped. TCP's checksum
    rejects it and it is resent like a lost one, unless the network models no checksum
    (:attr:`SimNetwork.checksum`)."""


_log = logging.getLogger("dspot.transport")

SegmentTracer = Callable[[str, int, str, str, int], None]

_SEND_BUFFER = 256 * 1024  # bytes in flight per direction before send() blocks


class _Pipe:
    """One direction of a connection: ordered segments with delivery times.

    At most one task receives from a pipe; ``reader`` is its waiter while it waits (with
    ``reader_until`` the time it wakes by itself, or None), and ``writers`` are senders
    waiting for buffer space.
    """

    __slots__ = (
        "buffered",
        "dst",
        "eof",
        "last_due",
        "queue",
        "reader",
        "reader_closed",
        "reader_until",
        "reset",
        "src",
        "stalled",
        "writers",
    )

    def __init__(self, src: str, dst: str) -> None:
        self.src = src
        self.dst = dst
        self.queue: deque[list[Any]] = deque()  # [due, bytes]
        self.buffered = 0
        self.last_due = 0.0
        self.eof = False
        self.reset = False
        self.reader_closed = False
        self.stalled = False
        self.reader: Waiter | None = None
        self.reader_until: float | None = None
        self.writers: list[Waiter] = []

    def notify(self) -> None:
        """Something changed (a fault, a close): every waiting task re-checks now."""
        if self.reader is not None:
            self.reader.wake()
        for w in self.writers:
            w.wake()


class _Connection:
    __slots__ = ("a", "a_to_b", "b", "b_to_a", "conn_id")

    def __init__(self, conn_id: int, a: str, b: str) -> None:
        self.conn_id = conn_id
        self.a = a
        self.b = b
        self.a_to_b = _Pipe(a, b)
        self.b_to_a = _Pipe(b, a)

    def reset(self) -> None:
        for pipe in (self.a_to_b, self.b_to_a):
            pipe.reset = True
            pipe.notify()


class SimStream(anyio.abc.ByteStream):
    """One end of a simulated connection: an anyio byte stream in virtual time.

    A receiver waiting for bytes is woken once, when they are due (the sender sets the
    wakeup), rather than once when they are sent and again when they arrive; everything
    due by then comes out of one ``receive``, up to ``max_bytes``.
    """

    def __init__(
        self,
        net: SimNetwork,
        conn: _Connection,
        outgoing: _Pipe,
        incoming: _Pipe,
        local: tuple[str, int],
        remote: tuple[str, int],
    ) -> None:
        self._net = net
        self._conn = conn
        self._out = outgoing
        self._in = incoming
        self._local = local
        self._remote = remote
        self._closed = False

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return {
            SocketAttribute.local_address: lambda: self._local,
            SocketAttribute.remote_address: lambda: self._remote,
        }

    @property
    def conn_id(self) -> int:
        """The network-wide id of this connection (shown in traces)."""
        return self._conn.conn_id

    async def receive(self, max_bytes: int = 65536) -> bytes:
        pipe = self._in
        net = self._net
        while True:
            if self._closed:
                raise anyio.ClosedResourceError
            if pipe.reset:
                raise ConnectionReset(f"connection {self._conn.conn_id} reset")
            until: float | None
            if pipe.queue:
                if net.is_blocked(pipe.src, pipe.dst):
                    pipe.stalled = True
                    until = None  # held until the link heals
                else:
                    now = current_time()
                    if pipe.stalled:
                        # The link healed: held bytes arrive after a retransmission.
                        pipe.stalled = False
                        resend = now + net.link(pipe.src, pipe.dst).rto
                        for seg in pipe.queue:
                            if seg[0] < resend:
                                seg[0] = resend
                        pipe.last_due = max(pipe.last_due, resend)
                    until = pipe.queue[0][0]
                    if until <= now:
                        return self._take(pipe, max_bytes, now)
            elif pipe.eof:
                raise anyio.EndOfStream
            else:
                until = None
            # Wait (inline, not in a helper: this is the hottest wait of a simulation).
            if pipe.reader is not None:
                raise anyio.BusyResourceError("receiving")
            pipe.reader = w = waiter()
            pipe.reader_until = until
            try:
                await w.wait(until)
            finally:
                pipe.reader = None

    def _take(self, pipe: _Pipe, max_bytes: int, now: float) -> bytes:
        """Everything due by ``now``, up to ``max_bytes``."""
        queue = pipe.queue
        head = queue[0]
        data: bytes = head[1]
        if len(data) > max_bytes:
            head[1] = data[max_bytes:]
            data = data[:max_bytes]
        else:
            queue.popleft()
            if queue and queue[0][0] <= now and len(data) + len(queue[0][1]) <= max_bytes:
                parts = [data]
                size = len(data)
                while queue and queue[0][0] <= now and size + len(queue[0][1]) <= max_bytes:
                    part = queue.popleft()[1]
                    parts.append(part)
                    size += len(part)
                data = b"".join(parts)
        before = pipe.buffered
        pipe.buffered -= len(data)
        if pipe.writers and before >= _SEND_BUFFER > pipe.buffered:
            for w in pipe.writers:
                w.wake()
        self._net.trace_segment("net.deliver", self._conn.conn_id, pipe.src, pipe.dst, len(data))
        return data

    def _writable(self) -> bool:
        """Whether a send now would not wait; raises what a send would raise."""
        pipe = self._out
        if self._closed:
            raise anyio.ClosedResourceError
        if pipe.reset or pipe.reader_closed:
            raise ConnectionReset(f"connection {self._conn.conn_id} reset")
        if pipe.eof:
            raise anyio.ClosedResourceError("send after send_eof")
        return pipe.buffered < _SEND_BUFFER

    def send_nowait(self, item: bytes) -> bool:
        """Send ``item`` if that needs no waiting (True); otherwise send nothing (False).

        Not part of anyio's stream API: RPC's frame sender uses it when present to write
        from the caller's task instead of waking its own.
        """
        if not self._writable():
            return False
        if item:
            self._enqueue(bytes(item))
        return True

    async def send(self, item: bytes) -> None:
        pipe = self._out
        while not self._writable():
            w = waiter()
            pipe.writers.append(w)
            try:
                await w.wait()
            finally:
                pipe.writers.remove(w)
        if item:
            self._enqueue(bytes(item))

    def _enqueue(self, data: bytes) -> None:
        pipe = self._out
        net = self._net
        due = net.due_time(pipe, len(data))
        if net.damages(pipe):
            data = net.flip_a_bit(data)
        pipe.queue.append([due, data])
        pipe.buffered += len(data)
        reader = pipe.reader
        if reader is not None and pipe.reader_until is None:
            reader.wake_at(due)  # the one wakeup, when the bytes arrive
            pipe.reader_until = due
        net.trace_segment("net.send", self._conn.conn_id, pipe.src, pipe.dst, len(data))

    async def send_eof(self) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        self._out.eof = True
        self._out.notify()
        await anyio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._out.eof = True
            self._out.notify()
            self._in.reader_closed = True
            self._in.notify()
            self._net.forget(self._conn, self)
        # No checkpoint: closing takes no time, and one here raised a fresh cancellation
        # from cleanup code that AsyncExitStack then chained into a __context__ cycle
        # (CPython's _fix_exception_context when the next exit re-raises it), on which
        # anyio's asyncio task group loops forever. Cleanup must not raise needlessly.


class SimListener:
    """Accepts simulated connections at one ``host:port``."""

    def __init__(self, net: SimNetwork, host: str, port: int, *, contain: bool = True) -> None:
        self._net = net
        self._host = host
        self._port = port
        self._contain = contain
        self._send, self._receive = anyio.create_memory_object_stream[SimStream](math.inf)
        self._closed = False

    @property
    def address(self) -> str:
        return join_address(self._host, self._port)

    def _offer(self, stream: SimStream) -> None:
        self._send.send_nowait(stream)

    async def serve(self, handler: StreamHandler) -> None:
        async with anyio.create_task_group() as tg:
            try:
                async for stream in self._receive:
                    if self._contain:
                        tg.start_soon(_run_handler, handler, stream, self._net.trace)
                    else:  # TransportMechanism.CONTAIN off (sabotage tests only)
                        tg.start_soon(_run_bare, handler, stream)
            except anyio.ClosedResourceError:
                pass

    def close_now(self) -> None:
        if not self._closed:
            self._closed = True
            self._net.unlisten(self._host, self._port, self)
            self._send.close()
            self._receive.close()

    async def aclose(self) -> None:
        self.close_now()  # no checkpoint: see SimStream.aclose


async def _run_bare(handler: StreamHandler, stream: SimStream) -> None:
    await handler(stream)


async def _run_handler(handler: StreamHandler, stream: SimStream, trace: Tracer) -> None:
    try:
        await handler(stream)
    except Exception as exc:
        # As on TCP: whatever escapes one connection costs that connection, not the listener.
        _log.exception("connection %s failed; closing it", stream.conn_id)
        trace("conn.crash", conn=stream.conn_id, error=type(exc).__name__)
        await anyio.aclose_forcefully(stream)


class _Host:
    __slots__ = ("connections", "listeners", "name", "next_port", "up")

    def __init__(self, name: str) -> None:
        self.name = name
        self.up = True
        self.listeners: dict[int, SimListener] = {}
        self.connections: dict[int, _Connection] = {}  # insertion-ordered: deterministic
        self.next_port = 40000


class SimNetwork:
    """A deterministic network of named hosts with injectable faults.

    Create transports with :meth:`transport`. Faults: :meth:`block` (one direction),
    :meth:`partition` (groups that cannot talk to each other), :meth:`heal`,
    :meth:`set_link` / :meth:`set_default_link` (latency, jitter, loss, bandwidth),
    :meth:`crash` and :meth:`restart` of a host.
    """

    def __init__(
        self,
        rng: random.Random,
        *,
        link: LinkModel | None = None,
        tracer: Tracer = null_tracer,
        segment_tracer: SegmentTracer | None = None,
    ) -> None:
        self._rng = rng
        self._default = link or LinkModel()
        self._links: dict[tuple[str, str], LinkModel] = {}
        self._blocked: set[tuple[str, str]] = set()
        self._hosts: dict[str, _Host] = {}
        self._next_conn = 0
        self._changed = anyio.Event()
        self.trace = tracer
        self.trace_segment: SegmentTracer = segment_tracer or self._segment
        """Traces a segment sent or delivered: ``(kind, conn, src, dst, nbytes)``; the
        simulation passes :meth:`~dspot.sim.TraceLog.segment`, the same event as
        ``trace(kind, conn=, src=, dst=, n=)`` made cheaply (one per message and hop)."""
        self.checksum = True
        """A transmission damaged by ``LinkModel.corrupt`` is caught and resent, as TCP's
        checksum does (off: the damaged bytes are delivered; a sabotage of
        ``TransportMechanism.CHECKSUM``)."""

    def _segment(self, kind: str, conn: int, src: str, dst: str, n: int) -> None:
        self.trace(kind, conn=conn, src=src, dst=dst, n=n)

    # -- topology -------------------------------------------------------------------------

    def transport(self, host: str, *, contain: bool = True) -> MemoryTransport:
        """A transport whose connections originate from ``host`` (created if new);
        ``contain=False``: its listeners let a connection's exception through (sabotage)."""
        self._host(host)
        return MemoryTransport(self, host, contain=contain)

    def _host(self, name: str) -> _Host:
        host = self._hosts.get(name)
        if host is None:
            host = self._hosts[name] = _Host(name)
        return host

    @property
    def hosts(self) -> list[str]:
        """Every host ever seen, in creation order."""
        return list(self._hosts)

    def listening(self, host: str) -> list[str]:
        """The addresses ``host`` listens on now, in port order (for probes like the
        simulation's hostile stranger, which must find listeners without being told)."""
        h = self._hosts.get(host)
        if h is None or not h.up:
            return []
        return [listener.address for _, listener in sorted(h.listeners.items())]

    def is_up(self, host: str) -> bool:
        h = self._hosts.get(host)
        return h is not None and h.up

    def link(self, src: str, dst: str) -> LinkModel:
        return self._links.get((src, dst), self._default)

    def set_link(self, src: str, dst: str, model: LinkModel, *, both_ways: bool = True) -> None:
        """Set the model of the ``src → dst`` link (and the reverse one)."""
        self._links[(src, dst)] = model
        if both_ways:
            self._links[(dst, src)] = model
        self.trace("fault.link", src=src, dst=dst, loss=model.loss, latency=model.latency)

    def set_default_link(self, model: LinkModel) -> None:
        """Set the model of every link without its own (loss spikes, latency)."""
        self._default = model
        self.trace("fault.default_link", loss=model.loss, latency=model.latency)

    def clear_links(self) -> None:
        self._links.clear()

    # -- partitions -----------------------------------------------------------------------

    def is_blocked(self, src: str, dst: str) -> bool:
        return bool(self._blocked) and (src, dst) in self._blocked

    def block(self, src: str, dst: str) -> list[tuple[str, str]]:
        """Stop bytes flowing from ``src`` to ``dst`` (one way); returns the pairs it added."""
        if (src, dst) in self._blocked:
            return []
        self._blocked.add((src, dst))
        self.trace("fault.block", src=src, dst=dst)
        self._notify_all()
        return [(src, dst)]

    def partition(self, groups: Iterable[Iterable[str]]) -> list[tuple[str, str]]:
        """Cut every link between different groups, both ways; unnamed hosts reach everyone.

        Returns the directed pairs it blocked that were not blocked before, so the caller
        can undo exactly this partition with :meth:`unblock`.
        """
        sides = [sorted(set(g)) for g in groups]
        added: list[tuple[str, str]] = []
        for i, left in enumerate(sides):
            for right in sides[i + 1 :]:
                for a in left:
                    for b in right:
                        for pair in ((a, b), (b, a)):
                            if pair not in self._blocked:
                                self._blocked.add(pair)
                                added.append(pair)
        self.trace("fault.partition", groups=sides)
        self._notify_all()
        return added

    def unblock(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Let bytes flow again on these directed pairs (undoes one block or partition)."""
        removed = [p for p in pairs if p in self._blocked]
        for pair in removed:
            self._blocked.discard(pair)
        if removed:
            self.trace("fault.unblock", pairs=[list(p) for p in removed])
            self._notify_all()

    def heal(self) -> None:
        """Remove every block and partition (link models stay)."""
        if self._blocked:
            self._blocked.clear()
            self.trace("fault.heal")
            self._notify_all()

    # -- crashes --------------------------------------------------------------------------

    def crash(self, host: str) -> None:
        """The host's process dies: its connections reset and its listeners vanish."""
        h = self._host(host)
        h.up = False
        for listener in list(h.listeners.values()):
            listener.close_now()
        conns = list(h.connections.values())
        for conn in conns:
            conn.reset()
            self._drop(conn)
        self.trace("fault.crash", host=host, reset=len(conns))
        self._notify_all()

    def restart(self, host: str) -> None:
        """The host is back (with no listeners until its code listens again)."""
        h = self._host(host)
        h.up = True
        self.trace("fault.restart", host=host)

    # -- internals used by streams and transports -----------------------------------------

    def _notify_all(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()
        for h in self._hosts.values():
            for conn in h.connections.values():
                conn.a_to_b.notify()
                conn.b_to_a.notify()

    def due_time(self, pipe: _Pipe, nbytes: int) -> float:
        links = self._links
        model = links.get((pipe.src, pipe.dst), self._default) if links else self._default
        now = current_time()
        delay = model.latency
        if model.jitter:
            delay += self._rng.random() * model.jitter
        rto = model.rto
        tries = 0
        while model.loss and tries < 6 and self._rng.random() < model.loss:
            delay += rto
            rto *= 2
            tries += 1
        if model.corrupt and self.checksum:
            while tries < 6 and self._rng.random() < model.corrupt:
                delay += rto  # the checksum failed: resent like a lost segment
                rto *= 2
                tries += 1
        due = max(now + delay, pipe.last_due) + nbytes / model.bandwidth
        pipe.last_due = due
        return due

    def damages(self, pipe: _Pipe) -> bool:
        """Whether this transmission on ``pipe`` arrives damaged (never with the checksum)."""
        model = self.link(pipe.src, pipe.dst)
        return bool(model.corrupt) and not self.checksum and self._rng.random() < model.corrupt

    def flip_a_bit(self, data: bytes) -> bytes:
        """``data`` with one bit flipped at a random place (traced as ``net.damaged``)."""
        damaged = bytearray(data)
        at = self._rng.randrange(len(damaged))
        damaged[at] ^= 1 << self._rng.randrange(8)
        self.trace("net.damaged", at=at, n=len(data))
        return bytes(damaged)

    def forget(self, conn: _Connection, stream: SimStream) -> None:
        a_pipe, b_pipe = conn.a_to_b, conn.b_to_a
        if a_pipe.reader_closed and b_pipe.reader_closed:
            self._drop(conn)

    def _drop(self, conn: _Connection) -> None:
        for name in (conn.a, conn.b):
            h = self._hosts.get(name)
            if h is not None:
                h.connections.pop(conn.conn_id, None)

    def unlisten(self, host: str, port: int, listener: SimListener) -> None:
        h = self._hosts.get(host)
        if h is not None and h.listeners.get(port) is listener:
            del h.listeners[port]

    async def listen(self, host: str, address: str, *, contain: bool = True) -> SimListener:
        want_host, port = split_address(address)
        if want_host != host:
            raise DspotError(f"host {host!r} cannot listen on {address!r}")
        h = self._host(host)
        if not h.up:
            raise DspotError(f"host {host!r} is down")
        if port == 0:
            while h.next_port in h.listeners:
                h.next_port += 1
            port = h.next_port
            h.next_port += 1
        if port in h.listeners:
            raise AddressInUse(f"{address} is already in use")
        listener = SimListener(self, host, port, contain=contain)
        h.listeners[port] = listener
        self.trace("net.listen", host=host, port=port)
        await anyio.lowlevel.checkpoint()
        return listener

    async def connect(self, src: str, address: str, timeout: float) -> SimStream:
        dst, port = split_address(address)
        deadline = anyio.current_time() + timeout
        self.trace("net.connect", src=src, dst=dst, port=port)
        while True:
            if not self.is_up(src):
                raise ConnectRefused(f"{src} is down")
            changed = self._changed
            if not (self.is_blocked(src, dst) or self.is_blocked(dst, src)):
                rtt = self._handshake_delay(src, dst)
                if anyio.current_time() + rtt > deadline:
                    break
                await anyio.sleep(rtt)
                if not (self.is_blocked(src, dst) or self.is_blocked(dst, src)):
                    return self._establish(src, dst, port, address)
                continue
            remaining = deadline - anyio.current_time()
            if remaining <= 0:
                break
            with anyio.move_on_after(remaining):
                await changed.wait()
        self.trace("net.connect_timeout", src=src, dst=dst, port=port)
        raise ConnectTimeout(f"connecting {src} -> {address} timed out after {timeout:g}s")

    def _handshake_delay(self, src: str, dst: str) -> float:
        there = self.link(src, dst)
        back = self.link(dst, src)
        delay = there.latency + back.latency
        for model in (there, back):
            if model.jitter:
                delay += self._rng.random() * model.jitter
            if model.loss and self._rng.random() < model.loss:
                delay += model.rto * 5  # a lost SYN waits for the initial SYN timeout
        return delay

    def _establish(self, src: str, dst: str, port: int, address: str) -> SimStream:
        target = self._hosts.get(dst)
        listener = target.listeners.get(port) if target is not None and target.up else None
        if listener is None or not self.is_up(src):
            self.trace("net.refused", src=src, dst=dst, port=port)
            raise ConnectRefused(f"connection to {address} refused")
        self._next_conn += 1
        conn = _Connection(self._next_conn, src, dst)
        self._hosts[src].connections[conn.conn_id] = conn
        target.connections[conn.conn_id] = conn  # type: ignore[union-attr]
        src_port = 50000 + conn.conn_id
        client = SimStream(self, conn, conn.a_to_b, conn.b_to_a, (src, src_port), (dst, port))
        server = SimStream(self, conn, conn.b_to_a, conn.a_to_b, (dst, port), (src, src_port))
        self.trace("net.established", conn=conn.conn_id, src=src, dst=dst, port=port)
        listener._offer(server)
        return client


class MemoryTransport:
    """The :class:`~dspot.transport.Transport` of one host on a :class:`SimNetwork`."""

    def __init__(self, net: SimNetwork, host: str, *, contain: bool = True) -> None:
        self._net = net
        self.host = host
        self._contain = contain

    async def connect(self, address: str, *, timeout: float = 10.0) -> anyio.abc.ByteStream:
        return await self._net.connect(self.host, address, timeout)

    async def listen(self, address: str) -> SimListener:
        return await self._net.listen(self.host, address, contain=self._contain)
