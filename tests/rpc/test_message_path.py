"""The RPC message path: waiters, the per-connection frame sender, the frame decoder, and
request workers, on asyncio (the simulation's loop) and on trio."""

from __future__ import annotations

import itertools
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.abc
import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dspot import wire
from dspot._frame_io import FrameSender
from dspot._wakeup import waiter
from dspot.disk import SimDisk
from dspot.env import NodeEnv
from dspot.errors import ConnectionLost
from dspot.rpc import NO_RETRY, Peer, RpcNode
from dspot.sim import run_virtual
from dspot.testing import run_with_mock_clock
from dspot.transport import SimNetwork


def run_asyncio(fn: Callable[[], Awaitable[Any]]) -> Any:
    return run_virtual(fn, 1)


BACKENDS = pytest.mark.parametrize(
    "run", [run_asyncio, run_with_mock_clock], ids=["asyncio", "trio"]
)


# -- waiters ------------------------------------------------------------------------------


@BACKENDS
def test_a_wake_before_the_wait_is_not_lost(run: Callable[..., Any]) -> None:
    async def main() -> None:
        w = waiter()
        w.wake()
        w.wake()  # idempotent
        assert w.woken
        start = anyio.current_time()
        assert await w.wait(start + 5) is True
        assert anyio.current_time() == start

    run(main)


@BACKENDS
def test_a_wait_ends_at_its_deadline(run: Callable[..., Any]) -> None:
    async def main() -> None:
        w = waiter()
        start = anyio.current_time()
        assert await w.wait(start + 2.5) is False
        assert anyio.current_time() == pytest.approx(start + 2.5)
        assert not w.woken

    run(main)


@BACKENDS
def test_another_task_wakes_the_waiter(run: Callable[..., Any]) -> None:
    async def main() -> None:
        w = waiter()

        async def later() -> None:
            await anyio.sleep(1)
            w.wake()

        async with anyio.create_task_group() as tg:
            tg.start_soon(later)
            start = anyio.current_time()
            await w
            assert anyio.current_time() == pytest.approx(start + 1)

    run(main)


def test_wake_at_wakes_at_that_time_on_asyncio() -> None:
    async def main() -> None:
        w = waiter()
        start = anyio.current_time()
        w.wake_at(start + 0.75)
        assert await w.wait(start + 10) is True
        assert anyio.current_time() == start + 0.75

    run_asyncio(main)


@BACKENDS
def test_a_cancelled_wait_raises_and_a_late_wake_is_harmless(run: Callable[..., Any]) -> None:
    async def main() -> None:
        w = waiter()
        with anyio.move_on_after(1) as scope:
            await w.wait()
        assert scope.cancelled_caught
        w.wake()

    run(main)


# -- the frame sender ---------------------------------------------------------------------


class _RecordingStream(anyio.abc.ByteStream):
    """Records each send; a send blocks while ``gate`` is closed, or fails if ``broken``."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.gate: anyio.Event | None = None
        self.broken = False
        self.closed = False

    async def send(self, item: bytes) -> None:
        if self.broken:
            raise anyio.BrokenResourceError
        if self.gate is not None:
            await self.gate.wait()
        self.sent.append(bytes(item))

    async def receive(self, max_bytes: int = 65536) -> bytes:
        raise NotImplementedError

    async def send_eof(self) -> None:
        pass

    async def aclose(self) -> None:
        self.closed = True


def _frame(i: int, payload: bytes = b"") -> wire.Frame:
    return wire.Frame(wire.Kind.REQUEST, i, "t", b"{}", payload)


def _decode_all(chunks: list[bytes]) -> list[wire.Frame]:
    decoder = wire.FrameDecoder()
    out = []
    for chunk in chunks:
        decoder.feed(chunk)
        while (frame := decoder.next_frame()) is not None:
            out.append(frame)
    return out


@BACKENDS
def test_frames_queued_during_a_write_go_out_together_in_order(run: Callable[..., Any]) -> None:
    async def main() -> None:
        stream = _RecordingStream()
        sender = FrameSender(stream)
        stream.gate = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(sender.run)
            await sender.send(_frame(0))
            await anyio.sleep(0.1)  # the sender task is now blocked writing frame 0
            for i in range(1, 33):
                await sender.send(_frame(i))
            big = bytes(range(256)) * 1024
            await sender.send(_frame(33, big))
            stream.gate.set()
            sender.close()
        assert _decode_all(stream.sent) == [_frame(i) for i in range(33)] + [_frame(33, big)]
        # Frame 0, then the 32 small frames queued meanwhile in one write (with the big
        # frame's header), then the big payload on its own.
        assert len(stream.sent) == 3

    run(main)


@BACKENDS
def test_a_broken_stream_stops_the_sender_and_refuses_frames(run: Callable[..., Any]) -> None:
    async def main() -> None:
        stream = _RecordingStream()
        stream.broken = True
        sender = FrameSender(stream)
        async with anyio.create_task_group() as tg:
            tg.start_soon(sender.run)
            await sender.send(_frame(1))
        assert isinstance(sender.error, anyio.BrokenResourceError)
        assert stream.closed
        with pytest.raises(ConnectionLost):
            await sender.send(_frame(2))

    run(main)


@BACKENDS
def test_a_full_queue_makes_senders_wait_until_their_deadline(run: Callable[..., Any]) -> None:
    async def main() -> None:
        stream = _RecordingStream()
        stream.gate = anyio.Event()  # the peer reads nothing
        sender = FrameSender(stream, limit=1000)
        async with anyio.create_task_group() as tg:
            tg.start_soon(sender.run)
            await sender.send(_frame(0))
            await anyio.sleep(0.1)
            await sender.send(_frame(1, b"x" * 2000))  # over the limit once queued
            start = anyio.current_time()
            with pytest.raises(TimeoutError):
                await sender.send(_frame(2), start + 3)
            assert anyio.current_time() == pytest.approx(start + 3)
            stream.gate.set()
            await sender.send(_frame(3), anyio.current_time() + 3)  # space again
            sender.close()
        assert [f.msg_id for f in _decode_all(stream.sent)] == [0, 1, 3]

    run(main)


# -- the frame decoder --------------------------------------------------------------------

_frames = st.lists(
    st.builds(
        wire.Frame,
        kind=st.sampled_from(list(wire.Kind)),
        msg_id=st.integers(0, 2**64 - 1),
        name=st.text(max_size=20),
        meta=st.binary(max_size=100),
        payload=st.one_of(
            st.binary(max_size=300),
            st.integers(200_000, 700_000).map(lambda n: bytes(range(256)) * (n // 256)),
        ),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=60, deadline=None)
@given(frames=_frames, cuts=st.lists(st.integers(0, 2_000_000), max_size=20))
def test_the_decoder_gives_back_every_frame_however_the_bytes_are_cut(
    frames: list[wire.Frame], cuts: list[int]
) -> None:
    data = b"".join(b"".join(f.encode()) for f in frames)
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    chunks = [data[a:b] for a, b in itertools.pairwise(bounds)]
    decoder = wire.FrameDecoder()
    assert _decode_all_with(decoder, chunks) == frames
    assert decoder.buffered == 0


def _decode_all_with(decoder: wire.FrameDecoder, chunks: list[bytes]) -> list[wire.Frame]:
    out = []
    for chunk in chunks:
        decoder.feed(chunk)
        while (frame := decoder.next_frame()) is not None:
            out.append(frame)
    return out


# -- request workers ----------------------------------------------------------------------


@wire.message("test.path.wait", idempotent=True)
@attrs.frozen
class Wait:
    seconds: float


@wire.message("test.path.done")
@attrs.frozen
class Done:
    at: float


def _env(net: SimNetwork, name: str) -> NodeEnv:
    return NodeEnv(
        node_id=name,
        transport=net.transport(name),
        disk=SimDisk(random.Random(0)),
        rng=random.Random(name),
        logger=logging.getLogger(f"test.{name}"),
    )


@BACKENDS
def test_a_blocked_handler_does_not_hold_up_the_next_request(run: Callable[..., Any]) -> None:
    """Requests on one connection run concurrently: while one handler waits, another
    worker reads and answers the next request."""

    async def main() -> None:
        net = SimNetwork(random.Random(1))

        async def wait(req: Wait, peer: Peer) -> Done:
            if req.seconds:
                await anyio.sleep(req.seconds)
            return Done(anyio.current_time())

        async with (
            RpcNode(_env(net, "a"), listen="a:1") as server,
            RpcNode(_env(net, "b"), retry=NO_RETRY) as client,
        ):
            server.handle(Wait, wait)
            await client.call("a:1", Wait(0))  # one connection, already open
            answers: dict[str, float] = {}

            async def call(label: str, seconds: float) -> None:
                answers[label] = (await client.call("a:1", Wait(seconds), timeout=30)).at

            start = anyio.current_time()
            async with anyio.create_task_group() as tg:
                tg.start_soon(call, "slow", 10)
                await anyio.sleep(0.1)
                for i in range(3):
                    tg.start_soon(call, f"quick{i}", 0)
            assert answers["slow"] >= start + 10
            assert all(answers[f"quick{i}"] < start + 1 for i in range(3))

    run(main)
