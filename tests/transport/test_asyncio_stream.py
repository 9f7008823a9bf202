"""ProtocolStream (TCP on asyncio) beyond the conformance suite: its timeouts, backpressure,
fairness, sendfile, and closing; real sockets on loopback, real clock."""

from __future__ import annotations

import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
import pytest

from dspot.transport import ProtocolStream, TcpTransport, can_send_file, send_file
from dspot.transport._asyncio_stream import READ_HIGH, YIELD_EVERY


def run(fn: Callable[[], Awaitable[Any]]) -> Any:
    return anyio.run(fn, backend="asyncio")


@asynccontextmanager
async def pair() -> AsyncIterator[tuple[ProtocolStream, anyio.abc.SocketStream]]:
    """A server-side ProtocolStream (accepted by TcpTransport) and a plain client socket."""
    listener = await TcpTransport().listen("127.0.0.1:0")
    accepted: list[anyio.abc.ByteStream] = []
    ready = anyio.Event()

    async def keep(stream: anyio.abc.ByteStream) -> None:
        accepted.append(stream)
        ready.set()
        await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, keep)
        host, port = listener.address.rsplit(":", 1)
        client = await anyio.connect_tcp(host, int(port))
        await ready.wait()
        server = accepted[0]
        assert isinstance(server, ProtocolStream)
        try:
            yield server, client
        finally:
            await client.aclose()
            await server.aclose()
            await listener.aclose()
            tg.cancel_scope.cancel()


def test_receive_within_times_out_and_can_be_interrupted() -> None:
    async def main() -> None:
        async with pair() as (server, client):
            assert await server.receive_within(0.05) is None
            await client.send(b"late")
            assert await server.receive_within(5) == b"late"
            # The stream's one timer is still set for the 5 s wait: a shorter one moves it.
            with anyio.fail_after(2):
                assert await server.receive_within(0.05) is None
            # A timer left from a shorter wait fires during a longer one: that one goes on.
            await client.send(b"1")
            assert await server.receive_within(0.2) == b"1"  # its timer stays set for 0.2 s

            async def later() -> None:
                await anyio.sleep(0.5)
                await client.send(b"2")

            async with anyio.create_task_group() as tg:
                tg.start_soon(later)
                assert await server.receive_within(2.0) == b"2"
            async with anyio.create_task_group() as tg:
                got: list[bytes | None] = []

                async def wait() -> None:
                    got.append(await server.receive_within(30))

                tg.start_soon(wait)
                await anyio.sleep(0.05)
                server.interrupt_receive()
            assert got == [None]
            async with anyio.create_task_group() as tg:
                tg.start_soon(server.receive)
                await anyio.sleep(0.01)
                with pytest.raises(anyio.BusyResourceError):
                    await server.receive()
                tg.cancel_scope.cancel()

    run(main)


def test_reading_pauses_when_unread_bytes_pile_up_and_nothing_is_lost() -> None:
    async def main() -> None:
        async with pair() as (server, client):
            payload = bytes(range(256)) * (4 * READ_HIGH // 256)  # 4x the high-water mark

            async with anyio.create_task_group() as tg:
                tg.start_soon(client.send, payload)
                with anyio.fail_after(10):
                    while not server._protocol.reading_paused:  # noqa: ASYNC110 (a flag, no event)
                        await anyio.sleep(0.01)
                # Paused: the socket is not drained while nobody reads, so memory stays bound.
                assert server._protocol.buffered < READ_HIGH + 512 * 1024
                got = bytearray()
                while len(got) < len(payload):
                    got += await server.receive()
            assert bytes(got) == payload
            assert not server._protocol.reading_paused

    run(main)


def test_send_times_out_when_the_peer_does_not_read() -> None:
    async def main() -> None:
        async with pair() as (server, _client):
            chunk = b"x" * (1 << 20)
            with pytest.raises(TimeoutError):
                for _ in range(256):  # far more than the kernel buffers of both sides
                    await server.send_within(0.2, chunk)

    run(main)


def test_a_stream_that_never_waits_still_lets_others_run() -> None:
    async def main() -> None:
        async with pair() as (server, client):
            ticks = 0

            async def other() -> None:
                nonlocal ticks
                while True:
                    await anyio.lowlevel.checkpoint()
                    ticks += 1

            async with anyio.create_task_group() as tg:
                tg.start_soon(other)
                await anyio.lowlevel.checkpoint()
                for _ in range(10 * YIELD_EVERY):
                    await server.send(b"x")  # the kernel takes these at once
                tg.cancel_scope.cancel()
            assert ticks >= 9
            assert len(await _read(client, 10 * YIELD_EVERY)) == 10 * YIELD_EVERY

    run(main)


async def _read(stream: anyio.abc.ByteStream, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        buf += await stream.receive()
    return bytes(buf)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_send_file_lets_the_kernel_copy_a_slice(tmp_path: Path, backend: str) -> None:
    data = bytes(range(256)) * 40_000  # 10 MB: more than one sendfile chunk of a 4 MiB test
    path = tmp_path / "f.bin"
    path.write_bytes(data)

    async def main() -> None:
        listener = await TcpTransport().listen("127.0.0.1:0")
        got = bytearray()
        done = anyio.Event()

        async def serve(stream: anyio.abc.ByteStream) -> None:
            assert can_send_file(stream)
            with path.open("rb") as f:
                offset, left = 1234, len(data) - 2000
                while left:
                    n = await send_file(stream, f, offset, left)
                    offset += n
                    left -= n
            await stream.aclose()

        async def reader(stream: anyio.abc.ByteStream) -> None:
            try:
                while True:
                    got.extend(await stream.receive())
            except anyio.EndOfStream:
                done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, serve)
            client = await TcpTransport().connect(listener.address)
            tg.start_soon(reader, client)
            with anyio.fail_after(20):
                await done.wait()
            await client.aclose()
            await listener.aclose()
        assert bytes(got) == data[1234 : len(data) - 766]

    anyio.run(main, backend=backend)


def test_close_with_unsent_bytes_aborts_and_a_closed_stream_refuses() -> None:
    async def main() -> None:
        async with pair() as (server, client):
            with pytest.raises(TimeoutError):
                for _ in range(256):
                    await server.send_within(0.1, b"y" * (1 << 20))
            await server.aclose()  # bytes left in the buffer: the connection is reset
            with pytest.raises(anyio.ClosedResourceError):
                await server.send(b"z")
            with pytest.raises(anyio.ClosedResourceError):
                await server.receive()
            with pytest.raises((anyio.BrokenResourceError, anyio.EndOfStream)):
                while True:
                    await client.receive()
            raw = client.extra(anyio.abc.SocketAttribute.raw_socket)
            assert raw.type == socket.SOCK_STREAM

    run(main)


def test_closing_the_listener_ends_serve() -> None:
    async def main() -> None:
        listener = await TcpTransport().listen("127.0.0.1:0")
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(listener.serve, lambda s: s.aclose())
                await anyio.sleep(0.05)
                await listener.aclose()  # serve returns: the task group can finish

    run(main)


def test_the_peer_address_survives_the_peer_resetting_the_connection() -> None:
    """The client resets the connection (SO_LINGER 0): the server side still says who it
    was. Asking the socket then fails with ENOTCONN, which once killed a gateway from the
    line that logs a failed connection."""

    async def main() -> None:
        async with pair() as (server, client):
            expected = server.extra(anyio.abc.SocketAttribute.remote_address)
            raw = client.extra(anyio.abc.SocketAttribute.raw_socket)
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            await client.aclose()
            with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError, OSError)):
                await server.receive()
            raw_server = server.extra(anyio.abc.SocketAttribute.raw_socket)
            with pytest.raises(OSError):
                raw_server.getpeername()  # what the attribute used to ask
            assert server.extra(anyio.abc.SocketAttribute.remote_address) == expected
            assert server.extra(anyio.abc.SocketAttribute.remote_port) == expected[1]

    run(main)


def test_connections_made_on_asyncio_are_protocol_streams_by_address_or_name() -> None:
    """TcpTransport.connect on asyncio gives the lean stream on both ends, for an address and
    for a name that resolves; refused everywhere is ConnectRefused, as with anyio's."""
    from dspot.errors import ConnectRefused
    from dspot.testing import free_ports

    async def main() -> None:
        transport = TcpTransport()
        listener = await transport.listen("127.0.0.1:0")
        port = listener.address.rsplit(":", 1)[1]
        got: list[bytes] = []

        async def echo(stream: anyio.abc.ByteStream) -> None:
            async with stream:
                data = await stream.receive()
                got.append(data)
                await stream.send(data.upper())

        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, echo)
            for host in ("127.0.0.1", "localhost"):
                stream = await transport.connect(f"{host}:{port}")
                assert isinstance(stream, ProtocolStream)
                async with stream:
                    await stream.send(host.encode())
                    assert await stream.receive() == host.upper().encode()
            await listener.aclose()
            tg.cancel_scope.cancel()
        assert got == [b"127.0.0.1", b"localhost"]
        [free] = free_ports(1)
        for host in ("127.0.0.1", "localhost"):
            with pytest.raises(ConnectRefused):
                await transport.connect(f"{host}:{free}")

    run(main)
