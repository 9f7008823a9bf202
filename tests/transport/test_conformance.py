"""One conformance suite for every transport: the memory network, TCP and TLS."""

from __future__ import annotations

import anyio
import anyio.abc
import pytest

from dspot.errors import AddressInUse, ConnectRefused
from tests.conftest import Net


async def _echo(stream: anyio.abc.ByteStream) -> None:
    async with stream:
        try:
            while True:
                await stream.send(await stream.receive())
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            pass


async def _read_exactly(stream: anyio.abc.ByteStream, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        buf += await stream.receive()
    return bytes(buf)


def test_echo_keeps_order_and_bytes(net: Net) -> None:
    async def main() -> None:
        server = net.transport("a")
        client = net.transport("b")
        listener = await server.listen(net.address("a"))
        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, _echo)
            stream = await client.connect(listener.address)
            payload = bytes(range(256)) * 4096  # 1 MiB
            async with anyio.create_task_group() as io:
                io.start_soon(stream.send, payload)
                got = await _read_exactly(stream, len(payload))
            assert got == payload
            for i in range(20):
                await stream.send(b"%d;" % i)
            expected = b"".join(b"%d;" % i for i in range(20))
            assert await _read_exactly(stream, len(expected)) == expected
            await stream.aclose()
            await listener.aclose()
            tg.cancel_scope.cancel()

    net.run(main)


def test_send_eof_reaches_peer_as_end_of_stream(net: Net) -> None:
    if net.kind == "tls":
        pytest.skip("TLS has no half-close (anyio's TLSStream.send_eof is not implemented)")

    async def main() -> None:
        server = net.transport("a")
        got: list[bytes] = []
        done = anyio.Event()

        async def reader(stream: anyio.abc.ByteStream) -> None:
            try:
                while True:
                    got.append(await stream.receive())
            except anyio.EndOfStream:
                done.set()
            await stream.aclose()

        listener = await server.listen(net.address("a"))
        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, reader)
            stream = await net.transport("b").connect(listener.address)
            await stream.send(b"last words")
            await stream.send_eof()
            with anyio.fail_after(5):
                await done.wait()
            assert b"".join(got) == b"last words"
            await stream.aclose()
            await listener.aclose()
            tg.cancel_scope.cancel()

    net.run(main)


def test_connect_to_nothing_is_refused(net: Net) -> None:
    async def main() -> None:
        listener = await net.transport("a").listen(net.address("a"))
        address = listener.address
        await listener.aclose()
        with pytest.raises(ConnectRefused):
            await net.transport("b").connect(address, timeout=5)

    net.run(main)


def test_listening_twice_on_one_address_fails(net: Net) -> None:
    async def main() -> None:
        t = net.transport("a")
        first = await t.listen(net.address("a"))
        with pytest.raises(AddressInUse):
            await t.listen(first.address)
        await first.aclose()

    net.run(main)


def test_peer_close_gives_end_of_stream(net: Net) -> None:
    async def main() -> None:
        async def closer(stream: anyio.abc.ByteStream) -> None:
            await stream.send(b"bye")
            await stream.aclose()

        listener = await net.transport("a").listen(net.address("a"))
        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, closer)
            stream = await net.transport("b").connect(listener.address)
            assert await _read_exactly(stream, 3) == b"bye"
            with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                with anyio.fail_after(5):
                    await stream.receive()
            await stream.aclose()
            await listener.aclose()
            tg.cancel_scope.cancel()

    net.run(main)


def test_many_concurrent_connections(net: Net) -> None:
    async def main() -> None:
        listener = await net.transport("a").listen(net.address("a"))
        results: dict[int, bytes] = {}

        async def client(i: int) -> None:
            stream = await net.transport(f"c{i}").connect(listener.address)
            msg = f"client {i} ".encode() * 100
            await stream.send(msg)
            results[i] = await _read_exactly(stream, len(msg))
            await stream.aclose()

        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, _echo)
            async with anyio.create_task_group() as clients:
                for i in range(30):
                    clients.start_soon(client, i)
            await listener.aclose()
            tg.cancel_scope.cancel()
        assert results == {i: f"client {i} ".encode() * 100 for i in range(30)}

    net.run(main)
