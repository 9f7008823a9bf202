"""Faults of the simulated network: latency, loss, partitions, one-way blocks, crashes."""

from __future__ import annotations

import random

import anyio
import anyio.abc
import pytest

from dspot.errors import ConnectionReset, ConnectRefused, ConnectTimeout
from dspot.testing import run_with_mock_clock
from dspot.transport import LinkModel, SimNetwork


async def _pair(net: SimNetwork, tg: anyio.abc.TaskGroup):  # type: ignore[no-untyped-def]
    """A connected (client, server) stream pair between hosts a and b."""
    accepted: list[anyio.abc.ByteStream] = []
    got = anyio.Event()

    async def keep(stream: anyio.abc.ByteStream) -> None:
        accepted.append(stream)
        got.set()

    listener = await net.transport("b").listen("b:1")
    tg.start_soon(listener.serve, keep)
    client = await net.transport("a").connect("b:1")
    await got.wait()
    return client, accepted[0], listener


def test_latency_is_virtual_and_follows_the_link_model() -> None:
    async def main() -> None:
        net = SimNetwork(random.Random(0), link=LinkModel(latency=0.1, jitter=0.0))
        async with anyio.create_task_group() as tg:
            client, server, listener = await _pair(net, tg)
            start = anyio.current_time()
            await client.send(b"x")
            assert await server.receive() == b"x"
            assert anyio.current_time() - start == pytest.approx(0.1)
            await listener.aclose()
            tg.cancel_scope.cancel()

    run_with_mock_clock(main)


def test_loss_costs_retransmission_time_but_loses_no_bytes() -> None:
    async def main() -> None:
        net = SimNetwork(random.Random(3), link=LinkModel(latency=0.001, jitter=0, loss=0.5))
        async with anyio.create_task_group() as tg:
            client, server, listener = await _pair(net, tg)
            start = anyio.current_time()
            for i in range(50):
                await client.send(b"%03d" % i)
            got = b""
            while len(got) < 150:
                got += await server.receive()
            assert got == b"".join(b"%03d" % i for i in range(50))
            assert anyio.current_time() - start > 0.2  # some retransmissions happened
            await listener.aclose()
            tg.cancel_scope.cancel()

    run_with_mock_clock(main)


@pytest.mark.parametrize("checksum", [True, False])
def test_damaged_transmissions_are_resent_unless_the_checksum_is_off(checksum: bool) -> None:
    sent = [b"%04d" % i for i in range(200)]

    async def main() -> None:
        net = SimNetwork(random.Random(5), link=LinkModel(latency=0.001, jitter=0, corrupt=0.2))
        net.checksum = checksum
        async with anyio.create_task_group() as tg:
            client, server, listener = await _pair(net, tg)
            start = anyio.current_time()
            for item in sent:
                await client.send(item)
            got = b""
            while len(got) < 800:
                got += await server.receive()
            if checksum:  # every damaged transmission was caught and resent: later, intact
                assert got == b"".join(sent)
                assert anyio.current_time() - start > 0.2
            else:  # about one in five arrives with a bit flipped, on time
                damaged = sum(got[i * 4 : i * 4 + 4] != item for i, item in enumerate(sent))
                assert 20 < damaged < 70, damaged
            await listener.aclose()
            tg.cancel_scope.cancel()

    run_with_mock_clock(main)


def test_one_way_block_stops_bytes_until_heal() -> None:
    async def main() -> None:
        net = SimNetwork(random.Random(0))
        async with anyio.create_task_group() as tg:
            client, server, listener = await _pair(net, tg)
            net.block("a", "b")
            await client.send(b"held")
            with anyio.move_on_after(30):
                await server.receive()
                pytest.fail("bytes crossed a blocked link")
            # the other direction still flows
            await server.send(b"back")
            assert await client.receive() == b"back"
            net.heal()
            with anyio.fail_after(5):
                assert await server.receive() == b"held"
            await listener.aclose()
            tg.cancel_scope.cancel()

    run_with_mock_clock(main)


def test_partition_makes_connects_time_out() -> None:
    async def main() -> None:
        net = SimNetwork(random.Random(0))
        listener = await net.transport("b").listen("b:1")
        net.partition([["a"], ["b"]])
        start = anyio.current_time()
        with pytest.raises(ConnectTimeout):
            await net.transport("a").connect("b:1", timeout=3)
        assert anyio.current_time() - start == pytest.approx(3)
        # a one-way block is enough to stop a handshake
        net.heal()
        net.block("b", "a")
        with pytest.raises(ConnectTimeout):
            await net.transport("a").connect("b:1", timeout=3)
        await listener.aclose()

    run_with_mock_clock(main)


def test_connect_waiting_on_partition_succeeds_when_it_heals() -> None:
    async def main() -> None:
        net = SimNetwork(random.Random(0))
        listener = await net.transport("b").listen("b:1")
        net.partition([["a"], ["b"]])
        async with anyio.create_task_group() as tg:

            async def heal_later() -> None:
                await anyio.sleep(1)
                net.heal()

            tg.start_soon(heal_later)
            tg.start_soon(listener.serve, lambda s: s.aclose())
            stream = await net.transport("a").connect("b:1", timeout=5)
            assert 1 <= anyio.current_time() < 2
            await stream.aclose()
            await listener.aclose()

    run_with_mock_clock(main)


def test_crash_resets_peers_and_removes_listeners() -> None:
    async def main() -> None:
        net = SimNetwork(random.Random(0))
        async with anyio.create_task_group() as tg:
            client, _server, _listener = await _pair(net, tg)
            net.crash("b")
            with pytest.raises(ConnectionReset):
                await client.receive()
            with pytest.raises(anyio.BrokenResourceError):
                await client.send(b"x")
            with pytest.raises(ConnectRefused):
                await net.transport("a").connect("b:1")
            net.restart("b")
            again = await net.transport("b").listen("b:1")  # the port is free again
            await again.aclose()
            tg.cancel_scope.cancel()

    run_with_mock_clock(main)


def test_backpressure_blocks_a_sender_whose_reader_is_slow() -> None:
    async def main() -> None:
        net = SimNetwork(random.Random(0))
        async with anyio.create_task_group() as tg:
            client, _server, listener = await _pair(net, tg)
            sent = 0
            with anyio.move_on_after(10):
                while True:
                    await client.send(b"x" * 65536)
                    sent += 65536
            assert sent <= 512 * 1024  # bounded by the send buffer, not by memory
            await listener.aclose()
            tg.cancel_scope.cancel()

    run_with_mock_clock(main)


def test_same_seed_same_delays() -> None:
    def once(seed: int) -> list[float]:
        times: list[float] = []

        async def main() -> None:
            net = SimNetwork(random.Random(seed), link=LinkModel(jitter=0.01, loss=0.2))
            async with anyio.create_task_group() as tg:
                client, server, listener = await _pair(net, tg)
                for _ in range(20):
                    await client.send(b"ab")
                    await server.receive()
                    times.append(anyio.current_time())
                await listener.aclose()
                tg.cancel_scope.cancel()

        run_with_mock_clock(main)
        return times

    assert once(7) == once(7)
    assert once(7) != once(8)


def test_closing_raises_no_cancellation_of_its_own() -> None:
    """Cleanup code closes streams and listeners inside cancelled scopes. A checkpoint in
    ``aclose`` raised a fresh cancellation there, which ``AsyncExitStack`` chained into a
    ``__context__`` cycle when the next exit callback (an anyio task group) re-raised it;
    anyio's asyncio task group then looped forever walking that chain."""

    async def main() -> None:
        net = SimNetwork(random.Random(0))
        async with anyio.create_task_group() as tg:
            client, server, listener = await _pair(net, tg)
            closed = []
            with anyio.CancelScope() as scope:
                scope.cancel()
                await client.aclose()
                await server.aclose()
                await listener.aclose()
                closed.append(True)
            assert closed == [True]
            tg.cancel_scope.cancel()

    run_with_mock_clock(main)
