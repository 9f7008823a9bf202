"""A lean anyio byte stream for TCP connections on asyncio, and zero-copy file sending.

anyio's asyncio ``SocketStream`` pauses reading after every ``receive`` and resumes it before
the next one (two ``epoll_ctl`` system calls per message) and goes once around the event loop
after every ``send``. For a server answering tens of thousands of small requests a second
those costs are a good part of the whole. :class:`ProtocolStream` sits directly on an
asyncio ``Protocol``:

* reading stays on until :data:`READ_HIGH` bytes wait unread (then it pauses: backpressure)
  and ``receive`` returns buffered bytes without a trip around the loop;
* ``send`` hands bytes to the transport and waits only when the kernel did not take them
  all (the transport's write buffer limit is 0, so a finished ``send`` means the kernel has
  every byte, as with anyio's stream);
* every :data:`YIELD_EVERY` calls that did not wait, one goes around the loop anyway, so a
  busy connection cannot starve the others and cancellation is seen promptly.

:func:`send_file` lets the kernel copy a file to a socket (``sendfile(2)``): the bytes never
enter Python. On asyncio it works on a :class:`ProtocolStream` (through
``loop.sendfile``); on trio on a plain TCP stream (``os.sendfile`` on the raw socket). For
anything else, TLS in particular, it returns ``False`` and the caller sends the bytes itself.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import math
import os
import socket
from collections.abc import Callable, Mapping
from typing import IO, Any

import anyio
import anyio.abc
import sniffio
from anyio.abc import SocketAttribute

__all__ = [
    "READ_HIGH",
    "ProtocolStream",
    "accept_stream",
    "can_send_file",
    "connect_stream",
    "send_file",
]

READ_HIGH = 256 * 1024
"""Unread bytes at which a stream stops reading from its socket until some are consumed."""
READ_LOW = 64 * 1024
YIELD_EVERY = 16
SENDFILE_CHUNK = 8 * 1024 * 1024
"""Most bytes one ``sendfile`` call may send: each call is one unit for the caller's
timeout, so a slow but steady reader is not cut off in the middle of a large file."""


class _StreamProtocol(asyncio.Protocol):
    """Buffers what arrives and wakes the one waiting reader or writer."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.chunks: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self.eof = False
        self.lost = False
        self.exception: BaseException | None = None
        self.reading_paused = False
        self.read_waiter: asyncio.Future[bool] | None = None
        self.write_paused = False
        self.drain_waiter: asyncio.Future[bool] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(0)

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.buffered += len(data)
        if self.buffered >= READ_HIGH and not self.reading_paused and self.transport:
            self.transport.pause_reading()
            self.reading_paused = True
        self._wake_reader()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake_reader()
        return True  # keep the transport open: we may still have something to say

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = self.eof = True
        self.exception = exc
        self._wake_reader()
        self._wake_writer()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake_writer()

    def _wake_reader(self) -> None:
        if self.read_waiter is not None:
            _settle(self.read_waiter, True)

    def _wake_writer(self) -> None:
        if self.drain_waiter is not None:
            _settle(self.drain_waiter, True)


def _settle(waiter: asyncio.Future[bool], value: bool) -> None:
    if not waiter.done():
        waiter.set_result(value)


class ProtocolStream(anyio.abc.ByteStream):
    """An anyio byte stream over one asyncio TCP transport (see the module docstring)."""

    def __init__(self, transport: asyncio.Transport, protocol: _StreamProtocol) -> None:
        self._transport = transport
        self._protocol = protocol
        self._loop = asyncio.get_running_loop()
        self._closed = False
        self._receiving = False
        self._sending = False
        self._eager = 0  # calls in a row that returned without going around the loop
        self._read_deadline = math.inf
        self._read_timer: asyncio.TimerHandle | None = None

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        sock: socket.socket = self._transport.get_extra_info("socket")
        # The addresses the transport read when the connection was made: asking the socket
        # now fails (ENOTCONN) once the peer has reset it, and a server logging who
        # disconnected must not die of that.
        local = self._transport.get_extra_info("sockname")
        peer = self._transport.get_extra_info("peername")
        attributes: dict[Any, Callable[[], Any]] = {
            SocketAttribute.family: lambda: sock.family,
            SocketAttribute.raw_socket: lambda: sock,
        }
        if local is not None:
            attributes[SocketAttribute.local_address] = lambda: local
            attributes[SocketAttribute.local_port] = lambda: local[1]
        if peer is not None:
            attributes[SocketAttribute.remote_address] = lambda: peer
            attributes[SocketAttribute.remote_port] = lambda: peer[1]
        return attributes

    async def _fairness(self) -> None:
        self._eager += 1
        if self._eager >= YIELD_EVERY:
            self._eager = 0
            await asyncio.sleep(0)

    def _raise_if_gone(self) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        p = self._protocol
        if p.lost and p.exception is not None:
            raise anyio.BrokenResourceError from p.exception

    async def receive(self, max_bytes: int = 65536) -> bytes:
        data = await self.receive_within(math.inf, max_bytes)
        assert data is not None  # only a timeout or an interruption returns None
        return data

    async def receive_within(self, timeout: float, max_bytes: int = 65536) -> bytes | None:
        """Like :meth:`receive`, but ``None`` when nothing arrived within ``timeout`` seconds
        or :meth:`interrupt_receive` was called: a timeout without a cancel scope, which on
        asyncio costs far more than this timer."""
        if max_bytes < 1:
            raise ValueError("max_bytes must be a positive integer")
        if self._receiving:
            raise anyio.BusyResourceError("reading from")
        p = self._protocol
        if p.chunks:
            await self._fairness()
        else:
            self._raise_if_gone()
            if p.eof:
                raise anyio.EndOfStream
            if not await self._wait_readable(timeout):
                return None
            if not p.chunks:
                self._raise_if_gone()
                raise anyio.EndOfStream
        chunk = p.chunks.popleft()
        if len(chunk) > max_bytes:
            p.chunks.appendleft(chunk[max_bytes:])
            chunk = chunk[:max_bytes]
        p.buffered -= len(chunk)
        if p.reading_paused and p.buffered <= READ_LOW and not p.lost:
            p.reading_paused = False
            self._transport.resume_reading()
        return chunk

    async def _wait_readable(self, timeout: float) -> bool:
        """Wait for data, end of stream or close; False on timeout or interruption."""
        p = self._protocol
        waiter: asyncio.Future[bool] = self._loop.create_future()
        self._read_deadline = self._loop.time() + timeout if timeout < math.inf else math.inf
        self._arm_read_timer()
        self._receiving = True
        p.read_waiter = waiter
        try:
            woken = await waiter
        finally:
            p.read_waiter = None
            self._receiving = False
        self._eager = 0
        return woken

    def _arm_read_timer(self) -> None:
        # One timer per stream, left armed between reads and moved only when it would fire
        # too late: a keep-alive connection waits for every request, and a timer set and
        # cancelled per wait would cost more than the rest of the wait.
        deadline = self._read_deadline
        timer = self._read_timer
        if deadline == math.inf or (timer is not None and timer.when() <= deadline):
            return
        if timer is not None:
            timer.cancel()
        self._read_timer = self._loop.call_at(deadline, self._read_timer_fired)

    def _read_timer_fired(self) -> None:
        self._read_timer = None
        waiter = self._protocol.read_waiter
        if waiter is None:
            return
        if self._loop.time() >= self._read_deadline:
            _settle(waiter, False)
        else:
            self._arm_read_timer()  # the deadline moved on since the timer was set

    def interrupt_receive(self) -> None:
        """Make a :meth:`receive_within` that is waiting return ``None`` now."""
        waiter = self._protocol.read_waiter
        if waiter is not None:
            _settle(waiter, False)

    async def send(self, item: bytes) -> None:
        await self.send_within(math.inf, item)

    async def send_within(self, timeout: float, item: bytes) -> None:
        """Like :meth:`send`; ``TimeoutError`` if the peer did not take the bytes within
        ``timeout`` seconds (the stream is then unusable: close it)."""
        if self._sending:
            raise anyio.BusyResourceError("writing to")
        self._raise_if_gone()
        p = self._protocol
        if p.lost or self._transport.is_closing():
            raise anyio.BrokenResourceError
        self._transport.write(item)
        if p.write_paused:
            await self._drain(timeout)
        else:
            await self._fairness()

    async def _drain(self, timeout: float) -> None:
        p = self._protocol
        loop = self._loop
        deadline = loop.time() + timeout
        self._sending = True
        try:
            while p.write_paused and not p.lost and not self._closed:
                left = deadline - loop.time()
                if left <= 0:
                    raise TimeoutError("the peer is not reading")
                waiter: asyncio.Future[bool] = loop.create_future()
                timer = loop.call_later(left, _settle, waiter, False) if left < math.inf else None
                p.drain_waiter = waiter
                try:
                    await waiter
                finally:
                    p.drain_waiter = None
                    if timer is not None:
                        timer.cancel()
        finally:
            self._sending = False
        self._eager = 0
        self._raise_if_gone()
        if p.lost:
            raise anyio.BrokenResourceError

    async def send_eof(self) -> None:
        self._raise_if_gone()
        if self._transport.can_write_eof():
            self._transport.write_eof()
        await self._fairness()

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            if self._read_timer is not None:
                self._read_timer.cancel()
                self._read_timer = None
            if self._transport.get_write_buffer_size():
                self._transport.abort()  # a send was cancelled half-way: drop its tail
            else:
                self._transport.close()
            self._protocol._wake_reader()
            self._protocol._wake_writer()
        await asyncio.sleep(0)

    async def send_file(self, file: IO[bytes], offset: int, count: int) -> int:
        """Send ``count`` bytes of ``file`` from ``offset`` with ``sendfile(2)``; the bytes
        sent (fewer only if the file ended)."""
        self._raise_if_gone()
        if self._sending:
            raise anyio.BusyResourceError("writing to")
        self._sending = True
        try:
            sent = await self._loop.sendfile(self._transport, file, offset, count)
        except (ConnectionError, RuntimeError) as exc:
            raise anyio.BrokenResourceError from exc
        finally:
            self._sending = False
        self._eager = 0
        return sent


async def accept_stream(listener: socket.socket) -> ProtocolStream:
    """Accept one connection on a listening socket; a :class:`ProtocolStream` over it."""
    sock, _ = await asyncio.get_running_loop().sock_accept(listener)
    return await _stream_over(sock)


async def _stream_over(sock: socket.socket) -> ProtocolStream:
    """A :class:`ProtocolStream` over a connected socket (closed if that fails)."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport, protocol = await asyncio.get_running_loop().connect_accepted_socket(
            _StreamProtocol, sock
        )
    except BaseException:
        sock.close()
        raise
    return ProtocolStream(transport, protocol)


async def connect_stream(host: str, port: int) -> ProtocolStream:
    """A TCP connection to ``host:port`` as a :class:`ProtocolStream` (asyncio only).

    The addresses ``host`` resolves to are tried in turn. Errors are those of
    ``anyio.connect_tcp``'s kind: ``ConnectionRefusedError`` when every address refused,
    another ``OSError`` (the first address's error as its cause) otherwise.
    """
    loop = asyncio.get_running_loop()
    targets: list[tuple[socket.AddressFamily, Any]]
    try:
        ip = ipaddress.ip_address(host)  # a literal needs no resolver (a worker thread)
    except ValueError:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        targets = [(family, address) for family, _, _, _, address in infos]
    else:
        targets = [(socket.AF_INET6 if ip.version == 6 else socket.AF_INET, (ip.compressed, port))]
    errors: list[OSError] = []
    for family, address in targets:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, address)
        except OSError as exc:
            sock.close()
            errors.append(exc)
            continue
        except BaseException:
            sock.close()
            raise
        return await _stream_over(sock)
    if errors and all(isinstance(e, ConnectionRefusedError) for e in errors):
        raise errors[0]
    raise OSError(f"cannot connect to {host}:{port}: {errors or 'no address'}") from (
        errors[0] if errors else None
    )


def can_send_file(stream: anyio.abc.ByteStream) -> bool:
    """Whether :func:`send_file` can use ``sendfile(2)`` on ``stream``."""
    if isinstance(stream, ProtocolStream):
        return True
    if not hasattr(os, "sendfile") or not isinstance(stream, anyio.abc.SocketStream):
        return False
    try:
        library = sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        return False
    if library != "trio":
        return False  # anyio's asyncio stream owns its socket through a transport
    sock = stream.extra(SocketAttribute.raw_socket, None)
    return isinstance(sock, socket.socket) and sock.type == socket.SOCK_STREAM


async def send_file(stream: anyio.abc.ByteStream, file: IO[bytes], offset: int, count: int) -> int:
    """Copy ``count`` bytes of ``file`` from ``offset`` to ``stream`` in the kernel, at most
    :data:`SENDFILE_CHUNK` per call. Returns the bytes sent (fewer only if the file ended).

    Only for streams :func:`can_send_file` accepts.
    """
    count = min(count, SENDFILE_CHUNK)
    if isinstance(stream, ProtocolStream):
        return await stream.send_file(file, offset, count)
    sock: socket.socket = stream.extra(SocketAttribute.raw_socket)
    while True:
        try:
            return os.sendfile(sock.fileno(), file.fileno(), offset, count)
        except BlockingIOError:
            await anyio.wait_writable(sock)
        except OSError as exc:
            raise anyio.BrokenResourceError from exc
