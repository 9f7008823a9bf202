"""RPC over every transport: calls, payloads, errors, authentication, hostile frames."""

from __future__ import annotations

import logging
import random
from typing import Any

import anyio
import pytest

from dspot import wire
from dspot.errors import RemoteError, RpcError, RpcTimeout
from dspot.rpc import NO_RETRY, RetryPolicy, RpcNode
from tests.conftest import Net
from tests.helpers.rpc import Bad, Echo, Echoed, Fail, Sleep, make_env, serve_test_handlers


def test_call_round_trips_body_and_binary_payload(net: Net) -> None:
    async def main() -> None:
        blob = bytes(random.Random(1).randbytes(3 * 1024 * 1024))
        async with (
            RpcNode(make_env(net, "a"), listen=net.address("a"), secret=b"s") as server,
            RpcNode(make_env(net, "b"), secret=b"s") as client,
        ):
            serve_test_handlers(server)
            assert server.address is not None
            got = await client.call(server.address, Echo("hi", blob))
            assert got == Echoed("hi", "b", blob)
            # many concurrent calls share one connection
            results: list[Any] = [None] * 50

            async def one(i: int) -> None:
                results[i] = await client.call(server.address, Echo(str(i)))

            async with anyio.create_task_group() as tg:
                for i in range(50):
                    tg.start_soon(one, i)
            assert [r.text for r in results] == [str(i) for i in range(50)]

    net.run(main)


def test_handler_errors_reach_the_caller_with_their_code(net: Net) -> None:
    async def main() -> None:
        async with (
            RpcNode(make_env(net, "a"), listen=net.address("a")) as server,
            RpcNode(make_env(net, "b")) as client,
        ):
            serve_test_handlers(server)
            assert server.address is not None
            with pytest.raises(RemoteError) as err:
                await client.call(server.address, Fail("no_quorum"))
            assert err.value.code == "no_quorum"
            with pytest.raises(RemoteError) as err:
                await client.call(server.address, Fail("crash"))
            assert err.value.code == "internal"
            assert "ZeroDivisionError" in err.value.message
            with pytest.raises(RemoteError) as err:
                await client.call(server.address, Bad())
            assert err.value.code == "internal"
            # the server still serves
            assert (await client.call(server.address, Echo("ok"))).text == "ok"

    net.run(main)


def test_wrong_cluster_secret_is_refused_and_others_still_served(
    net: Net, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        async with (
            RpcNode(make_env(net, "a"), listen=net.address("a"), secret=b"right") as server,
            RpcNode(make_env(net, "b"), secret=b"wrong") as intruder,
            RpcNode(make_env(net, "c"), secret=b"right") as friend,
        ):
            serve_test_handlers(server)
            assert server.address is not None
            with pytest.raises(RpcError, match="secret"):
                await intruder.call(server.address, Echo("let me in"), timeout=5)
            assert (await friend.call(server.address, Echo("hi"))).peer == "c"

    with caplog.at_level(logging.WARNING):
        net.run(main)
    assert any("cluster secret" in r.getMessage() for r in caplog.records)


def test_deadline_passes_as_rpc_timeout(simnet: Net) -> None:
    async def main() -> None:
        async with (
            RpcNode(make_env(simnet, "a"), listen="a:0") as server,
            RpcNode(make_env(simnet, "b")) as client,
        ):
            serve_test_handlers(server)
            assert server.address is not None
            start = anyio.current_time()
            with pytest.raises(RpcTimeout):
                await client.call(server.address, Sleep(60), timeout=3, retry=NO_RETRY)
            assert anyio.current_time() - start == pytest.approx(3, abs=0.01)

    simnet.run(main)


def test_idempotent_call_retries_until_the_server_comes_back(simnet: Net) -> None:
    async def main() -> None:
        assert simnet.sim is not None
        client_env = make_env(simnet, "b")
        retry = RetryPolicy(attempts=20, max_delay=0.5)

        async def late_server(*, task_status: Any) -> None:
            task_status.started()
            await anyio.sleep(2)
            async with RpcNode(make_env(simnet, "a"), listen="a:9") as server:
                serve_test_handlers(server)
                await anyio.sleep(10)

        async with RpcNode(client_env, retry=retry) as client, anyio.create_task_group() as tg:
            await tg.start(late_server)
            got = await client.call("a:9", Echo("eventually"), timeout=8)
            assert got.text == "eventually"
            assert anyio.current_time() >= 2
            tg.cancel_scope.cancel()

    simnet.run(main)


async def _raw_connect_and_send(net: Net, address: str, data: bytes) -> bytes:
    stream = await net.transport("raw").connect(address)
    await stream.send(data)
    got = b""
    try:
        with anyio.fail_after(5):
            while True:
                got += await stream.receive()
    except (anyio.EndOfStream, anyio.BrokenResourceError):
        pass
    await stream.aclose()
    return got


@pytest.mark.parametrize(
    "garbage",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",  # not our protocol
        b"DS\x09" + b"\x00" * 40,  # unknown version
        wire.HEADER.pack(b"DS", 1, 1, 0, 5, 2**31, 0),  # oversize frame
        b"\xff" * 64,
    ],
    ids=["http", "version", "oversize", "noise"],
)
def test_malformed_frames_close_only_that_connection(
    net: Net, garbage: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        async with (
            RpcNode(make_env(net, "a"), listen=net.address("a"), max_frame=1 << 20) as server,
            RpcNode(make_env(net, "b")) as client,
        ):
            serve_test_handlers(server)
            assert server.address is not None
            assert (await client.call(server.address, Echo("before"))).text == "before"
            await _raw_connect_and_send(net, server.address, garbage)  # returns once closed
            assert (await client.call(server.address, Echo("after"))).text == "after"

    with caplog.at_level(logging.WARNING):
        net.run(main)
    assert any(
        "closing connection" in r.getMessage() or "refused" in r.getMessage()
        for r in caplog.records
    )


def test_frame_decoder_handles_one_byte_at_a_time() -> None:
    frames = [
        wire.Frame(wire.Kind.REQUEST, 7, "x.y", b'{"a":1}', b"\x00\x01payload"),
        wire.Frame(wire.Kind.RESPONSE, 8, "z", b"{}", b"\xff" * 70000),
    ]
    data = b"".join(b"".join(f.encode()) for f in frames)
    decoder = wire.FrameDecoder()
    out = []
    for i in range(len(data)):
        decoder.feed(data[i : i + 1])
        while (frame := decoder.next_frame()) is not None:
            out.append(frame)
    assert out == frames
    assert decoder.buffered == 0


@pytest.mark.parametrize("seed", range(8))
def test_frame_decoder_splits_large_payloads_from_the_frames_after_them(seed: int) -> None:
    # Large payloads arrive as many reads, the last holding the start of the next frames;
    # feeds may come several at a time before frames are taken.
    rng = random.Random(seed)
    frames = [
        wire.Frame(wire.Kind.REQUEST, i, "blob.chunk", b"{}", rng.randbytes(size))
        for i, size in enumerate([300_000, 7, 1 << 20, 262_144, 0, 600_001, 3])
    ]
    data = b"".join(b"".join(f.encode()) for f in frames)
    decoder = wire.FrameDecoder()
    out = []
    pos = 0
    while pos < len(data):
        n = rng.choice([1, 100, 65536, 262144, 1 << 20])
        decoder.feed(data[pos : pos + n])
        pos += n
        if rng.random() < 0.7:
            while (frame := decoder.next_frame()) is not None:
                out.append(frame)
    while (frame := decoder.next_frame()) is not None:
        out.append(frame)
    assert out == frames
    assert decoder.buffered == 0


def test_frame_decoder_rejects_oversize_before_buffering_it() -> None:
    decoder = wire.FrameDecoder(max_frame=1000)
    decoder.feed(wire.HEADER.pack(b"DS", 1, int(wire.Kind.REQUEST), 1, 1, 10, 5000))
    with pytest.raises(Exception, match="exceeds"):
        decoder.next_frame()


def test_message_payload_is_raw_bytes_not_base64() -> None:
    name, body, payload = wire.encode_body(Echo("t", b"\x00\xff" * 10))
    assert name == "test.echo"
    assert payload == b"\x00\xff" * 10
    assert "payload" not in body
    assert wire.decode_body(name, body, payload) == Echo("t", b"\x00\xff" * 10)
