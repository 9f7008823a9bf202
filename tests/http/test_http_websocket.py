"""WebSockets on the HTTP server: messages, close handshake, keep-alive, backpressure."""

from __future__ import annotations

import anyio
import pytest

from dspot.http import (
    Request,
    Response,
    Router,
    ServerConfig,
    WebSocket,
    WebSocketClosed,
    WebSocketConfig,
    WebSocketHandshakeError,
    connect_websocket,
)
from dspot.testing import run_with_mock_clock, wait_until
from tests.http.helpers import Net, Raw

received_close: list[int | None] = []
consumed: list[int] = []


def make_app() -> Router:
    app = Router()

    @app.websocket("/echo", subprotocol="chat")
    async def echo(ws: WebSocket) -> None:
        async for message in ws:
            if message == "bye":
                await ws.close(4001, "asked to leave")
                return
            await ws.send(message)
        received_close.append(ws.close_code)

    @app.websocket("/lazy")
    async def lazy(ws: WebSocket) -> None:
        await anyio.sleep(50)  # does not read: the client must be held back
        async for _ in ws:
            consumed.append(1)

    @app.websocket("/crash")
    async def crash(ws: WebSocket) -> None:
        raise RuntimeError("session bug")

    @app.get("/hello")
    async def hello(request: Request) -> Response:
        return Response.text("hello")

    return app


def test_echo_text_and_binary_and_close(net: Net) -> None:
    async def main() -> None:
        received_close.clear()
        async with net.serving(make_app()) as (_, addr):
            url = f"ws://{addr}/echo"
            async with connect_websocket(url, connect=net.connect, subprotocols=["chat"]) as ws:
                assert ws.subprotocol == "chat"
                await ws.send("héllo")
                assert await ws.receive() == "héllo"
                await ws.send(b"\x00\x01" * 50_000)  # larger than one read
                assert await ws.receive() == b"\x00\x01" * 50_000
                await ws.close(1000)
            assert ws.close_code == 1000
            await wait_until(lambda: bool(received_close), timeout=5)
            assert received_close == [1000]
            # the server closes with a code of its choosing
            async with connect_websocket(url, connect=net.connect) as ws:
                await ws.send("bye")
                with pytest.raises(WebSocketClosed) as info:
                    await ws.receive()
                assert info.value.code == 4001 and info.value.reason == "asked to leave"
                with pytest.raises(WebSocketClosed):
                    await ws.send("too late")
            # a crashing session closes with 1011, the server keeps serving
            async with connect_websocket(f"ws://{addr}/crash", connect=net.connect) as ws:
                with pytest.raises(WebSocketClosed) as info:
                    await ws.receive()
                assert info.value.code == 1011
            raw = Raw(await net.connect(addr))
            await raw.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await raw.response())[2] == b"hello"

    net.run(main)


def test_plain_get_on_websocket_route_is_426(net: Net) -> None:
    async def main() -> None:
        async with net.serving(make_app()) as (_, addr):
            raw = Raw(await net.connect(addr))
            await raw.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers, _ = await raw.response()
            assert status == 426 and headers["upgrade"] == "websocket"
            # an upgrade without a valid key is refused
            await raw.send(
                b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                b"Sec-WebSocket-Version: 13\r\n\r\n"
            )
            assert (await raw.response())[0] == 400
            with pytest.raises(WebSocketHandshakeError) as info:
                async with connect_websocket(f"ws://{addr}/hello", connect=net.connect):
                    pass
            assert info.value.status == 200 or info.value.status >= 400

    net.run(main)


def test_keepalive_drops_a_silent_peer() -> None:
    net = Net("sim")

    async def main() -> None:
        config = ServerConfig(ws_ping_interval=10, ws_ping_timeout=5)
        async with net.serving(make_app(), config) as (server, addr):
            client_cfg = WebSocketConfig(ping_interval=None)
            url = f"ws://{addr}/echo"
            async with connect_websocket(url, connect=net.connect, config=client_cfg) as ws:
                # the client answers pings: still open after several intervals
                await anyio.sleep(35)
                await ws.send("still here")
                assert await ws.receive() == "still here"
                # partition the client away: pings go unanswered
                net._network().block("client", "server")
                net._network().block("server", "client")
                start = anyio.current_time()
                await wait_until(lambda: server.connection_count == 0, timeout=60, step=0.5)
                assert anyio.current_time() - start <= 10 + 5 + 1
                net._network().heal()

    run_with_mock_clock(main)


def test_backpressure_holds_a_fast_sender() -> None:
    net = Net("sim")

    async def main() -> None:
        consumed.clear()
        config = ServerConfig(ws_queue_size=2, ws_ping_interval=None)
        async with net.serving(make_app(), config) as (_, addr):
            cfg = WebSocketConfig(ping_interval=None, send_timeout=1000)
            url = f"ws://{addr}/lazy"
            async with connect_websocket(url, connect=net.connect, config=cfg) as ws:
                sent = 0
                with anyio.move_on_after(20):
                    while True:
                        await ws.send(b"x" * 65536)
                        sent += 1
                # queue (2) + socket buffers: far from the 64 MiB an unbounded queue would take
                assert 2 < sent < 40
                await anyio.sleep(40)  # the server starts reading: everything is consumed
                assert len(consumed) == sent

    run_with_mock_clock(main)


def test_shutdown_closes_websockets_with_1001() -> None:
    net = Net("sim")

    async def main() -> None:
        config = ServerConfig(shutdown_timeout=60)
        async with (
            net.serving(make_app(), config) as (server, addr),
            connect_websocket(f"ws://{addr}/echo", connect=net.connect) as ws,
        ):
            await ws.send("hi")
            assert await ws.receive() == "hi"
            start = anyio.current_time()
            async with anyio.create_task_group() as tg:
                tg.start_soon(server.shutdown)
                with pytest.raises(WebSocketClosed) as info:
                    await ws.receive()
                assert info.value.code == 1001
            assert anyio.current_time() - start < 5  # not the 60 s shutdown timeout

    run_with_mock_clock(main)
