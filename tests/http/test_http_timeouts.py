"""Protections that depend on time, in virtual time (MockClock) over in-memory streams:
slowloris, idle keep-alive, slow bodies, slow readers (backpressure), graceful shutdown."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import anyio
import anyio.abc
import pytest

from dspot.http import HttpServer, Request, Response, Router, ServerConfig
from dspot.testing import run_with_mock_clock
from tests.http.helpers import Raw, memory_pair

CONFIG = ServerConfig(
    header_timeout=10, keepalive_timeout=15, body_timeout=20, send_timeout=30, shutdown_timeout=40
)
produced: list[int] = []


def make_app() -> Router:
    app = Router()

    @app.get("/hello")
    async def hello(request: Request) -> Response:
        return Response.text("hello")

    @app.post("/echo")
    async def echo(request: Request) -> Response:
        return Response(200, [], await request.body())

    @app.get("/slow/{seconds}")
    async def slow(request: Request) -> Response:
        await anyio.sleep(float(request.path_params["seconds"]))
        return Response.text("done")

    @app.get("/big")
    async def big(request: Request) -> Response:
        async def body() -> AsyncIterator[bytes]:
            for i in range(200):
                produced.append(i)
                yield b"z" * 65536

        return Response(200, [("content-length", str(200 * 65536))], body())

    return app


GET = b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"


async def with_connection(server: HttpServer, tg: anyio.abc.TaskGroup) -> Raw:
    client, server_end = memory_pair()
    tg.start_soon(server.handle_stream, server_end)
    return Raw(client)


def test_slowloris_head_is_cut_at_header_timeout() -> None:
    async def main() -> None:
        server = HttpServer(make_app(), CONFIG)
        async with anyio.create_task_group() as tg:
            raw = await with_connection(server, tg)
            start = anyio.current_time()
            for byte in GET[:-4]:  # trickle one byte per second, never finishing the head
                await raw.send(bytes([byte]))
                try:
                    with anyio.fail_after(1):
                        status, _, _ = await raw.response()
                    break
                except TimeoutError:
                    continue
            assert status == 408
            assert anyio.current_time() - start == pytest.approx(10, abs=1)
            assert await raw.closed()

    run_with_mock_clock(main)


def test_silent_connection_is_closed_at_header_timeout() -> None:
    async def main() -> None:
        server = HttpServer(make_app(), CONFIG)
        async with anyio.create_task_group() as tg:
            raw = await with_connection(server, tg)
            start = anyio.current_time()
            assert await raw.closed(limit=100)
            assert anyio.current_time() - start == pytest.approx(10)

    run_with_mock_clock(main)


def test_idle_keep_alive_timeout() -> None:
    async def main() -> None:
        server = HttpServer(make_app(), CONFIG)
        async with anyio.create_task_group() as tg:
            raw = await with_connection(server, tg)
            await raw.send(GET)
            assert (await raw.response())[0] == 200
            await anyio.sleep(14)
            await raw.send(GET)  # still open just before the idle timeout
            assert (await raw.response())[0] == 200
            start = anyio.current_time()
            assert await raw.closed(limit=100)
            assert anyio.current_time() - start == pytest.approx(15)

    run_with_mock_clock(main)


def test_slow_body_gets_408() -> None:
    async def main() -> None:
        server = HttpServer(make_app(), CONFIG)
        async with anyio.create_task_group() as tg:
            raw = await with_connection(server, tg)
            start = anyio.current_time()
            await raw.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
            status, headers, _ = await raw.response()
            assert status == 408 and headers["connection"] == "close"
            assert anyio.current_time() - start == pytest.approx(20)

    run_with_mock_clock(main)


def test_expect_100_continue() -> None:
    async def main() -> None:
        server = HttpServer(make_app(), CONFIG)
        async with anyio.create_task_group() as tg:
            raw = await with_connection(server, tg)
            await raw.send(
                b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                b"Expect: 100-continue\r\n\r\n"
            )
            assert (await raw.response())[0] == 100
            await raw.send(b"abc")
            assert (await raw.response())[2] == b"abc"
            tg.cancel_scope.cancel()

    run_with_mock_clock(main)


def test_response_backpressure_and_send_timeout() -> None:
    async def main() -> None:
        produced.clear()
        server = HttpServer(make_app(), CONFIG)
        async with anyio.create_task_group() as tg:
            raw = await with_connection(server, tg)
            await raw.send(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
            await anyio.sleep(5)
            # the reader has not read: the producer is held back by the 4-slot pipe
            assert 0 < len(produced) < 10
            # keep reading: everything arrives
            total = 0
            first = True
            while total < 200 * 65536 + 100:
                data = await raw.stream.receive()
                if first:
                    data = data.split(b"\r\n\r\n", 1)[1]
                    first = False
                total += len(data)
                if total == 200 * 65536:
                    break
            assert len(produced) == 200
            await raw.aclose()
            await anyio.sleep(1)
            assert server.connection_count == 0
            # a second slow reader is dropped after send_timeout
            produced.clear()
            raw2 = await with_connection(server, tg)
            await raw2.send(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
            await anyio.sleep(29)
            assert server.connection_count == 1
            await anyio.sleep(2)
            assert server.connection_count == 0
            assert len(produced) < 10
            tg.cancel_scope.cancel()

    run_with_mock_clock(main)


class MemoryListener:
    """Hands out in-memory connections made with :meth:`connect`."""

    def __init__(self) -> None:
        self._send, self._receive = anyio.create_memory_object_stream[anyio.abc.ByteStream](10)

    async def connect(self) -> Raw:
        client, server = memory_pair()
        await self._send.send(server)
        return Raw(client)

    def close(self) -> None:
        self._send.close()
        self._receive.close()

    async def serve(self, handler: object) -> None:
        async with anyio.create_task_group() as tg:
            async for stream in self._receive:
                tg.start_soon(handler, stream)  # type: ignore[arg-type]


def test_graceful_shutdown_finishes_in_flight_responses() -> None:
    async def main() -> None:
        server = HttpServer(make_app(), CONFIG)
        listener = MemoryListener()
        returned = anyio.Event()

        async def serve(*, task_status: anyio.abc.TaskStatus[None]) -> None:
            await server.serve(listener, task_status=task_status)
            returned.set()

        async with anyio.create_task_group() as tg:
            await tg.start(serve)
            idle = await listener.connect()
            await idle.send(GET)
            assert (await idle.response())[0] == 200
            busy = await listener.connect()
            await busy.send(b"GET /slow/5 HTTP/1.1\r\nHost: x\r\n\r\n")
            await anyio.sleep(1)
            start = anyio.current_time()
            async with anyio.create_task_group() as stopper:
                stopper.start_soon(server.shutdown)
                assert await idle.closed(limit=0.5)  # idle keep-alive dropped at once
                status, headers, body = await busy.response()
                assert (status, body) == (200, b"done")
                assert headers["connection"] == "close"
                assert await busy.closed()
            assert anyio.current_time() - start == pytest.approx(4)
            assert returned.is_set() and server.connection_count == 0
        listener.close()

    run_with_mock_clock(main)


def test_shutdown_timeout_cancels_stuck_requests() -> None:
    async def main() -> None:
        server = HttpServer(make_app(), CONFIG)
        listener = MemoryListener()
        async with anyio.create_task_group() as tg:
            await tg.start(server.serve, listener)
            stuck = await listener.connect()
            await stuck.send(b"GET /slow/1000 HTTP/1.1\r\nHost: x\r\n\r\n")
            await anyio.sleep(1)
            start = anyio.current_time()
            await server.shutdown()
            assert anyio.current_time() - start == pytest.approx(40)
            assert await stuck.closed(limit=1)
        listener.close()

    run_with_mock_clock(main)


def test_access_log(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        server = HttpServer(make_app(), CONFIG)
        async with anyio.create_task_group() as tg:
            raw = await with_connection(server, tg)
            await raw.send(GET)
            await raw.response()
            await raw.send(b"GET /missing?q=1 HTTP/1.1\r\nHost: x\r\n\r\n")
            await raw.response()
            await raw.send(b"GET /hello?token=s3cret&q=2&apiKey=k3y HTTP/1.1\r\nHost: x\r\n\r\n")
            await raw.response()
            await anyio.sleep(1)
            tg.cancel_scope.cancel()

    with caplog.at_level(logging.INFO, logger="dspot.http.access"):
        run_with_mock_clock(main)
    lines = [r.getMessage() for r in caplog.records if r.name == "dspot.http.access"]
    assert lines[0].startswith('- "GET /hello HTTP/1.1" 200 ')
    assert lines[1].startswith('- "GET /missing?q=1 HTTP/1.1" 404 ')
    # Credentials in URLs (browser media elements, Subsonic clients) never reach the log.
    assert lines[2].startswith('- "GET /hello?token=***&q=2&apiKey=*** HTTP/1.1" 200 ')
