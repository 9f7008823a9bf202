"""The client: pooling, retries of idempotent requests, timeouts, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.abc
import pytest

from dspot.errors import ConnectRefused
from dspot.http import (
    HttpClient,
    HttpClientError,
    HTTPError,
    HTTPStatusError,
    ReadTimeout,
    Request,
    Response,
    Router,
    ServerConfig,
    ServerDisconnected,
    Timeouts,
)
from dspot.http._client import DIRECT_BODY_MIN
from dspot.testing import run_with_mock_clock
from tests.http.helpers import Net


def make_app() -> Router:
    app = Router()

    @app.get("/peer")
    async def peer(request: Request) -> Response:
        return Response.text(request.client or "?")

    @app.get("/slow")
    async def slow(request: Request) -> Response:
        await anyio.sleep(100)
        return Response.text("late")

    @app.get("/gone")
    async def gone(request: Request) -> Response:
        raise HTTPError(410, "song deleted", extensions={"song": "s1"})

    return app


def test_connections_are_pooled(net: Net) -> None:
    async def main() -> None:
        async with net.serving(make_app()) as (_, addr), HttpClient(net.connect) as c:
            peers = set()
            for _ in range(5):
                r = await c.get(f"http://{addr}/peer")
                peers.add(await r.read())
            assert len(peers) == 1
            assert c.idle_connections == 1
            # two responses open at once need two connections, both pooled afterwards
            r1 = await c.get(f"http://{addr}/peer")
            r2 = await c.get(f"http://{addr}/peer")
            assert await r1.read() != await r2.read()
            assert c.idle_connections == 2
            # a response closed unread is not reused
            r3 = await c.get(f"http://{addr}/peer")
            await r3.aclose()
            assert c.idle_connections == 1

    net.run(main)


def test_problem_raised_for_status(net: Net) -> None:
    async def main() -> None:
        async with net.serving(make_app()) as (_, addr), HttpClient(net.connect) as c:
            r = await c.get(f"http://{addr}/gone")
            with pytest.raises(HTTPStatusError) as info:
                await r.raise_for_status()
            assert info.value.status == 410
            assert info.value.problem.detail == "song deleted"
            assert info.value.problem.extensions == {"song": "s1"}
            r = await c.get(f"http://{addr}/peer")
            await r.raise_for_status()
            await r.read()

    net.run(main)


class FlakyServer:
    """Drops the first ``failures`` connections after reading the request head."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.requests = 0

    async def __call__(self, stream: anyio.abc.ByteStream) -> None:
        async with stream:
            buf = b""
            while b"\r\n\r\n" not in buf:
                try:
                    buf += await stream.receive()
                except anyio.EndOfStream:
                    return
            self.requests += 1
            if self.failures > 0:
                self.failures -= 1
                return  # close without answering
            await stream.send(
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
            )


async def flaky_listener(net: Net, handler: FlakyServer, tg: anyio.abc.TaskGroup) -> Any:
    if net.kind != "sim":
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        tg.start_soon(listener.serve, handler)
        return listener, f"127.0.0.1:{port}"
    sim = await net._network().transport("flaky").listen("flaky:81")
    tg.start_soon(sim.serve, handler)
    return sim, str(sim.address)


def test_idempotent_requests_are_retried(net: Net) -> None:
    async def main() -> None:
        async with anyio.create_task_group() as tg:
            flaky = FlakyServer(failures=2)
            listener, addr = await flaky_listener(net, flaky, tg)
            async with HttpClient(net.connect, retries=2) as c:
                r = await c.get(f"http://{addr}/x")
                assert await r.read() == b"ok"
                assert flaky.requests == 3
                flaky.failures, flaky.requests = 1, 0
                with pytest.raises(HttpClientError):
                    await c.post(f"http://{addr}/x", body=b"data")  # not idempotent
                assert flaky.requests == 1
                flaky.failures, flaky.requests = 5, 0
                with pytest.raises(HttpClientError):
                    await c.put(f"http://{addr}/x", body=b"data")
                assert flaky.requests == 3  # first try + 2 retries
            async with HttpClient(net.connect, retries=0) as c:
                flaky.failures, flaky.requests = 1, 0
                with pytest.raises(HttpClientError):
                    await c.get(f"http://{addr}/x")
                assert flaky.requests == 1
            tg.cancel_scope.cancel()
        await listener.aclose()

    net.run(main)


def test_connect_refused(net: Net) -> None:
    async def main() -> None:
        async with HttpClient(net.connect, retries=1) as c:
            if net.kind != "sim":
                listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
                port = listener.extra(anyio.abc.SocketAttribute.local_port)
                await listener.aclose()
                url = f"http://127.0.0.1:{port}/"
            else:
                net._network().transport("nobody")
                url = "http://nobody:80/"
            with pytest.raises((ConnectRefused, OSError)):
                await c.get(url)

    net.run(main)


def test_stale_keep_alive_connection_is_retried_transparently() -> None:
    net = Net("sim")

    async def main() -> None:
        config = ServerConfig(keepalive_timeout=1)
        async with (
            net.serving(make_app(), config) as (_, addr),
            HttpClient(net.connect, keepalive_expiry=60) as c,
        ):
            first = await (await c.get(f"http://{addr}/peer")).read()
            await anyio.sleep(2)  # the server has closed the idle connection
            assert c.idle_connections == 1
            second = await (await c.get(f"http://{addr}/peer")).read()
            assert first != second

    run_with_mock_clock(main)


@pytest.mark.parametrize("kind", ["sim", "transport-tcp-asyncio"])
def test_read_timeout(kind: str) -> None:
    """A server that never answers gives ReadTimeout after the read timeout, and the next
    request gets a fresh connection. Over loopback TCP on asyncio the client times its reads
    with the stream's own timer rather than a cancel scope."""
    net = Net(kind)
    limit = 5.0 if kind == "sim" else 0.3

    async def main() -> None:
        async with (
            net.serving(make_app()) as (_, addr),
            HttpClient(net.connect, timeouts=Timeouts(read=limit)) as c,
        ):
            start = anyio.current_time()
            with pytest.raises(ReadTimeout):
                await c.get(f"http://{addr}/slow")
            took = anyio.current_time() - start
            if kind == "sim":
                assert took == pytest.approx(limit, abs=0.1)
            else:
                assert limit - 0.05 < took < 5  # the handler sleeps 100 s
            assert (await c.get(f"http://{addr}/peer")).status == 200

    net.run(main)


def test_a_request_lost_with_its_server_is_not_reported_as_refused() -> None:
    """A server reads a GET and dies (its listener closes too). The client sends the GET
    again, and that retry finds nobody listening; still the error says the connection was
    lost mid-request, not "refused": the server may have handled the request, and a caller
    (a gateway) would otherwise take it as never delivered."""

    async def main() -> None:
        requests: list[bytes] = []
        listener = (await anyio.create_tcp_listener(local_host="127.0.0.1")).listeners[0]
        assert isinstance(listener, anyio.abc.SocketListener)
        port = listener.extra(anyio.abc.SocketAttribute.local_port)

        async def die() -> None:
            stream = await listener.accept()
            await listener.aclose()  # the process is gone: nobody listens any more
            data = b""
            while b"\r\n\r\n" not in data:
                data += await stream.receive()
            requests.append(data)
            await stream.aclose()

        async with anyio.create_task_group() as tg:
            tg.start_soon(die)
            async with HttpClient(retries=2) as c:
                with pytest.raises(ServerDisconnected):
                    await c.get(f"http://127.0.0.1:{port}/star")
        assert len(requests) == 1

    anyio.run(main, backend="trio")


@pytest.mark.parametrize(("idempotent", "sent"), [(None, 3), (False, 1)])
def test_a_get_that_changes_something_is_sent_once(idempotent: bool | None, sent: int) -> None:
    """A server that hangs up after reading each request: a GET is sent again (``retries``
    times), one declared ``idempotent=False`` (a Subsonic star) only once."""

    async def main() -> None:
        requests: list[bytes] = []

        async def hang_up(stream: anyio.abc.ByteStream) -> None:
            async with stream:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += await stream.receive()
                requests.append(data)

        async with (
            await anyio.create_tcp_listener(local_host="127.0.0.1") as listener,
            anyio.create_task_group() as tg,
        ):
            port = listener.extra(anyio.abc.SocketAttribute.local_port)
            tg.start_soon(listener.serve, hang_up)
            async with HttpClient(retries=2, retry_backoff=0.01) as c:
                with pytest.raises(ServerDisconnected):
                    await c.request("GET", f"http://127.0.0.1:{port}/star", idempotent=idempotent)
            tg.cancel_scope.cancel()
        assert len(requests) == sent

    anyio.run(main, backend="trio")


def test_early_413_is_returned_while_uploading() -> None:
    net = Net("sim")

    async def main() -> None:
        app = Router()

        @app.put("/upload")
        async def upload(request: Request) -> Response:
            return Response.json({"n": len(await request.body())})

        config = ServerConfig(max_body_size=100_000)
        async with net.serving(app, config) as (_, addr), HttpClient(net.connect) as c:

            async def big() -> AsyncIterator[bytes]:
                for _ in range(100):
                    yield b"u" * 10_000

            r = await c.put(
                f"http://{addr}/upload", body=big(), headers={"content-length": "1000000"}
            )
            assert r.status == 413
            assert (await r.json())["status"] == 413

    run_with_mock_clock(main)


def _pattern(n: int) -> bytes:
    return bytes(i * 7 % 251 for i in range(n))


def test_a_large_body_arrives_whole_and_its_connection_is_reused(net: Net) -> None:
    """Bodies of DIRECT_BODY_MIN bytes or more are read past h11; the bytes, the end of the
    body and the pooled connection must be exactly as on the h11 path."""
    sizes = [DIRECT_BODY_MIN - 1, DIRECT_BODY_MIN, 3 * 1024 * 1024 + 5]

    async def main() -> None:
        app = make_app()

        @app.get("/big/{n}")
        async def big(request: Request) -> Response:
            return Response(
                200,
                [("content-type", "application/octet-stream")],
                _pattern(int(request.path_params["n"])),
            )

        async with net.serving(app) as (_, addr), HttpClient(net.connect) as c:
            first = await (await c.get(f"http://{addr}/peer")).read()
            for n in sizes:
                r = await c.get(f"http://{addr}/big/{n}")
                assert await r.read() == _pattern(n)
                chunks = [x async for x in (await c.get(f"http://{addr}/big/{n}")).iter_bytes()]
                assert b"".join(chunks) == _pattern(n)
                # the same connection serves the next request
                assert await (await c.get(f"http://{addr}/peer")).read() == first
            assert c.idle_connections == 1

    net.run(main)


async def _raw_server(answers: list[bytes], *, task_status: anyio.abc.TaskStatus[int]) -> None:
    """A TCP server answering each request on one connection with the next raw answer."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)

    async def serve(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            for answer in answers:
                seen = b""
                while b"\r\n\r\n" not in seen:
                    seen += await stream.receive()
                await stream.send(answer)

    async with listener:
        task_status.started(listener.extra(anyio.abc.SocketAttribute.local_port))
        await listener.serve(serve)


def test_a_large_body_cut_short_is_an_error_not_a_short_body() -> None:
    body = _pattern(200_000)
    head = b"HTTP/1.1 200 OK\r\ncontent-length: 300000\r\n\r\n"

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            port = await tg.start(_raw_server, [head + body])
            async with HttpClient() as c:
                r = await c.get(f"http://127.0.0.1:{port}/")
                with pytest.raises(ServerDisconnected, match="100000 bytes missing"):
                    await r.read()
                assert c.idle_connections == 0
            tg.cancel_scope.cancel()

    anyio.run(main)


def test_a_large_body_with_connection_close_is_not_pooled() -> None:
    body = _pattern(100_000)
    close = b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 100000\r\n\r\n" + body
    old = b"HTTP/1.0 200 OK\r\ncontent-length: 100000\r\n\r\n" + body
    keep = b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n" + body

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for answer, pooled in ((close, 0), (old, 0), (keep, 1)):
                port = await tg.start(_raw_server, [answer])
                async with HttpClient() as c:
                    assert await (await c.get(f"http://127.0.0.1:{port}/")).read() == body
                    assert c.idle_connections == pooled
            tg.cancel_scope.cancel()

    anyio.run(main)
