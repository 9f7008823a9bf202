"""The gateway's cap on connections per client address: an HTTP server on real loopback TCP
behind :class:`~dspot_spotify.gateway.limits.PerClientListener`; clients connect from
127.0.0.1 and 127.0.0.2 (both loopback) to be two addresses."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import anyio
import trio
from dspot_spotify.gateway.limits import PerClientListener

from dspot.http import HttpServer, Request, Response, ServerConfig
from dspot.transport import TcpTransport


async def hello(request: Request) -> Response:
    return Response(200, [("content-type", "text/plain")], b"hello")


@contextmanager
def connection(port: int, source: str) -> Iterator[socket.socket]:
    s = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    try:
        yield s
    finally:
        s.close()


def get(s: socket.socket) -> bytes:
    """One keep-alive GET on ``s``: the answer's first bytes, or b"" if the server closed."""
    try:
        s.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        return s.recv(4096)
    except OSError:
        return b""


def settle(listener: PerClientListener, expected: dict[str, int]) -> None:
    deadline = time.monotonic() + 5
    while listener.open != expected and time.monotonic() < deadline:
        time.sleep(0.02)
    assert listener.open == expected


def test_one_address_is_capped_and_others_are_not() -> None:
    async def main() -> None:
        inner = await TcpTransport().listen("127.0.0.1:0")
        listener = PerClientListener(inner, per_client=2)
        server = HttpServer(hello, ServerConfig(max_connections=100))
        port = int(listener.address.rsplit(":", 1)[1])
        async with anyio.create_task_group() as tg:
            await tg.start(server.serve, listener)

            def clients() -> None:
                with connection(port, "127.0.0.1") as a, connection(port, "127.0.0.1") as b:
                    assert get(a).startswith(b"HTTP/1.1 200")
                    assert get(b).startswith(b"HTTP/1.1 200")
                    with connection(port, "127.0.0.1") as c:
                        start = time.monotonic()
                        assert get(c) == b""  # closed at once, no answer
                        assert time.monotonic() - start < 2
                    with connection(port, "127.0.0.2") as d:  # another client: served
                        assert get(d).startswith(b"HTTP/1.1 200")
                    settle(listener, {"127.0.0.1": 2})  # d's slot came back
                settle(listener, {})  # a and b's too, once the server closed its side
                with connection(port, "127.0.0.1") as e:
                    assert get(e).startswith(b"HTTP/1.1 200")

            await trio.to_thread.run_sync(clients)
            assert listener.refused == 1
            await server.shutdown()
            await listener.aclose()
            tg.cancel_scope.cancel()

    trio.run(main)
