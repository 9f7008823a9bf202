"""Client and server wired back to back in memory (as h11's tests pair two connections),
with every read cut to one byte on both sides to flush out buffering bugs."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import anyio.abc
import pytest

from dspot.http import (
    HttpClient,
    HttpServer,
    Request,
    Response,
    Router,
    WebSocket,
    bytes_reader,
    connect_websocket,
    representation_response,
)
from dspot.testing import run_with_mock_clock
from tests.http.helpers import memory_pair

DATA = bytes(range(256)) * 3


class Trickle(anyio.abc.ByteStream):
    """Wraps a stream so that each ``receive`` returns at most ``n`` bytes."""

    def __init__(self, inner: anyio.abc.ByteStream, n: int) -> None:
        self.inner = inner
        self.n = n
        self.pending = b""

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if not self.pending:
            self.pending = await self.inner.receive()
        data, self.pending = self.pending[: self.n], self.pending[self.n :]
        return data

    async def send(self, item: bytes) -> None:
        await self.inner.send(item)

    async def send_eof(self) -> None:
        await self.inner.send_eof()

    async def aclose(self) -> None:
        await self.inner.aclose()


def make_app() -> Router:
    app = Router()

    @app.route("/echo", ["POST", "PUT"])
    async def echo(request: Request) -> Response:
        return Response(
            200, [("x-len", request.headers.get("content-length", "-"))], await request.body()
        )

    @app.get("/data")
    async def data(request: Request) -> Response:
        return representation_response(
            request, size=len(DATA), read=bytes_reader(DATA, 7), etag='"d"'
        )

    @app.get("/chunks")
    async def chunks(request: Request) -> Response:
        async def body() -> AsyncIterator[bytes]:
            for i in range(20):
                yield bytes([i]) * i

        return Response(200, [], body())

    @app.websocket("/ws")
    async def ws(socket: WebSocket) -> None:
        async for message in socket:
            await socket.send(message)

    return app


@pytest.mark.parametrize("n", [1, 3, 1000])
def test_back_to_back(n: int) -> None:
    async def main() -> None:
        server = HttpServer(make_app())
        async with anyio.create_task_group() as tg:

            async def connect(address: str, *, timeout: float = 10.0) -> anyio.abc.ByteStream:
                client, server_end = memory_pair()
                tg.start_soon(server.handle_stream, Trickle(server_end, n))
                return Trickle(client, n)

            async with HttpClient(connect) as c:
                for _ in range(2):  # the second round reuses the pooled connection
                    r = await c.post("http://x/echo", body=b"hello world")
                    assert await r.read() == b"hello world"
                    assert r.headers.get("x-len") == "11"

                async def upload() -> AsyncIterator[bytes]:
                    for i in range(10):
                        yield b"%d;" % i

                r = await c.put("http://x/echo", body=upload())
                assert await r.read() == b"".join(b"%d;" % i for i in range(10))
                assert r.headers.get("x-len") == "-"  # it came chunked
                r = await c.get("http://x/data", headers={"range": "bytes=5-9,700-"})
                body = await r.read()
                assert r.status == 206 and DATA[5:10] in body and DATA[700:] in body
                r = await c.get("http://x/chunks")
                assert await r.read() == b"".join(bytes([i]) * i for i in range(20))
                assert c.idle_connections == 1
            async with connect_websocket("ws://x/ws", connect=connect) as ws:
                await ws.send("ping " * 50)
                assert await ws.receive() == "ping " * 50
                await ws.send(b"\x00" * 300)
                assert await ws.receive() == b"\x00" * 300
            tg.cancel_scope.cancel()

    run_with_mock_clock(main)
