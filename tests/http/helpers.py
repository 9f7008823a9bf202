"""Helpers of the HTTP tests: networks to run on, servers, raw connections, certificates.

``net`` runs the server suite over real TCP (trio, real clock) and over the simulated
network (trio ``MockClock``, virtual time). Timeout tests use ``memory_pair`` streams under
``MockClock`` so they take no real time.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
import attrs
import trustme
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from dspot.env import EventLoopClock
from dspot.http import Handler, HttpServer, ServerConfig
from dspot.testing import run_with_mock_clock
from dspot.transport import SimNetwork, TcpTransport


def run_real(fn: Callable[[], Awaitable[Any]]) -> Any:
    return anyio.run(fn, backend="trio")


class MemoryByteStream(anyio.abc.ByteStream):
    """One end of an in-process byte pipe with a bounded buffer (so writes can block)."""

    def __init__(
        self,
        send: MemoryObjectSendStream[bytes],
        receive: MemoryObjectReceiveStream[bytes],
    ) -> None:
        self._send = send
        self._receive = receive
        self._pending = b""

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if not self._pending:
            try:
                self._pending = await self._receive.receive()
            except anyio.EndOfStream:
                raise
        data, self._pending = self._pending[:max_bytes], self._pending[max_bytes:]
        return data

    async def send(self, item: bytes) -> None:
        try:
            await self._send.send(bytes(item))
        except anyio.BrokenResourceError:
            raise
        await anyio.lowlevel.checkpoint()

    async def send_eof(self) -> None:
        await self._send.aclose()

    async def aclose(self) -> None:
        self.close()
        await anyio.lowlevel.checkpoint()

    def close(self) -> None:
        self._send.close()
        self._receive.close()


_memory_streams: list[MemoryByteStream] = []


def memory_pair(capacity: int = 4) -> tuple[MemoryByteStream, MemoryByteStream]:
    """Two connected byte streams; each direction buffers ``capacity`` writes.

    Both ends are closed after the test, so tests need not close them.
    """
    a_send, b_recv = anyio.create_memory_object_stream[bytes](capacity)
    b_send, a_recv = anyio.create_memory_object_stream[bytes](capacity)
    pair = MemoryByteStream(a_send, a_recv), MemoryByteStream(b_send, b_recv)
    _memory_streams.extend(pair)
    return pair


def close_memory_streams() -> None:
    """Close every stream :func:`memory_pair` made (called after each test)."""
    while _memory_streams:
        _memory_streams.pop().close()


_CLOCK = EventLoopClock()  # loop time from a fixed epoch: a Date header, and deterministic


class Net:
    """A network to run a server suite on: ``tcp`` / ``transport-tcp`` (real clock) or
    ``sim`` (virtual time)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._sim: Any = None
        self.opened: list[anyio.abc.ByteStream] = []

    def run(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        if self.kind == "sim":
            return run_with_mock_clock(fn)
        if self.kind.endswith("-asyncio"):
            return anyio.run(fn, backend="asyncio")
        return run_real(fn)

    def _network(self) -> Any:
        if self._sim is None:
            self._sim = SimNetwork(rng=random.Random(1))
        return self._sim

    async def connect(self, address: str, *, timeout: float = 10.0) -> anyio.abc.ByteStream:
        """Open a connection; every one is closed when :meth:`serving` ends."""
        stream: anyio.abc.ByteStream
        if self.kind == "tcp":
            host, _, port = address.rpartition(":")
            with anyio.fail_after(timeout):
                stream = await anyio.connect_tcp(host, int(port))
        elif self.kind.startswith("transport-tcp"):
            stream = await TcpTransport().connect(address, timeout=timeout)
        else:
            stream = await self._network().transport("client").connect(address, timeout=timeout)
        self.opened.append(stream)
        return stream

    @contextlib.asynccontextmanager
    async def serving(
        self, handler: Handler, config: ServerConfig | None = None, *, clock: Any = _CLOCK
    ) -> AsyncIterator[tuple[HttpServer, str]]:
        """Run an :class:`HttpServer` for ``handler``; yields it and its address."""
        server = HttpServer(handler, config, clock=clock)
        if self.kind == "tcp":
            listener: Any = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
            port = listener.extra(anyio.abc.SocketAttribute.local_port)
            address = f"127.0.0.1:{port}"
        elif self.kind.startswith("transport-tcp"):
            listener = await TcpTransport().listen("127.0.0.1:0")
            address = listener.address
        else:
            listener = await self._network().transport("server").listen("server:80")
            address = listener.address
        try:
            async with anyio.create_task_group() as tg:
                await tg.start(server.serve, listener)
                try:
                    yield server, address
                finally:
                    tg.cancel_scope.cancel()
        finally:
            await listener.aclose()
            for stream in self.opened:
                await anyio.aclose_forcefully(stream)


# tcp: an anyio TCP listener; transport-tcp: dspot's TcpTransport; sim: dspot's SimNetwork;
# transport-tcp-asyncio: TcpTransport on asyncio, where its streams are ProtocolStreams.
NET_KINDS = ["tcp", "transport-tcp", "sim", "transport-tcp-asyncio"]


class Raw:
    """A raw client connection: send bytes, read responses with Content-Length framing."""

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self.stream = stream
        self.buf = b""

    async def send(self, data: bytes) -> None:
        await self.stream.send(data)

    async def _fill(self) -> None:
        self.buf += await self.stream.receive()

    async def response(self, *, head: bool = False) -> tuple[int, dict[str, str], bytes]:
        """Status, headers (lower-case names, last wins) and body of the next response.

        Raises EndOfStream if the peer closes before a complete head arrives.
        """
        while b"\r\n\r\n" not in self.buf:
            await self._fill()
        raw_head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = raw_head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        no_body = head or status in (204, 304) or status < 200
        length = 0 if no_body else int(headers.get("content-length", "0"))
        while len(self.buf) < length:
            await self._fill()
        body, self.buf = self.buf[:length], self.buf[length:]
        return status, headers, body

    async def closed(self, limit: float = 30.0) -> bool:
        """Whether the peer closes the connection (within ``limit`` s) without more data."""
        try:
            with anyio.fail_after(limit):
                data = await self.stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return not self.buf
        self.buf += data
        return False

    async def aclose(self) -> None:
        await self.stream.aclose()


async def read_until_closed(stream: anyio.abc.ByteStream, limit: float = 30.0) -> bytes:
    """Everything the peer sends until it closes the connection."""
    out = b""
    with anyio.fail_after(limit):
        while True:
            try:
                out += await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return out


@attrs.frozen
class TlsFiles:
    """A trustme CA and a server certificate for ``localhost`` / ``127.0.0.1`` on disk."""

    ca_pem: str
    cert_chain: str
    key: str


def make_tls_files(d: Path) -> TlsFiles:
    """A fresh CA and server certificate, written to directory ``d``."""
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(d / "chain.pem"))
    for extra in cert.cert_chain_pems[1:]:
        extra.write_to_path(str(d / "chain.pem"), append=True)
    cert.private_key_pem.write_to_path(str(d / "key.pem"))
    return TlsFiles(ca.cert_pem.bytes().decode(), str(d / "chain.pem"), str(d / "key.pem"))
