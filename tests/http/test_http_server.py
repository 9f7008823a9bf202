"""The server suite, over TCP and over the simulated network.

Malformed requests go over raw connections and must each get the right 4xx while another
connection, opened before, is still served.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import attrs
import pytest

from dspot.http import (
    HttpClient,
    HTTPError,
    Request,
    Response,
    Router,
    ServerConfig,
    bytes_reader,
    representation_response,
)
from dspot.testing import wait_until
from tests.http.helpers import Net, Raw

DATA = bytes(range(256)) * 40  # 10240 bytes


@attrs.frozen
class Song:
    title: str
    seconds: int


def make_app() -> Router:
    app = Router()

    @app.get("/hello")
    async def hello(request: Request) -> Response:
        return Response.text("hello")

    @app.get("/songs/{song_id}")
    async def song(request: Request) -> Response:
        return Response.json({"id": request.path_params["song_id"]})

    @app.post("/songs")
    async def create(request: Request) -> Response:
        s = await request.json(Song)
        return Response.json(s, 201)

    @app.post("/echo")
    async def echo(request: Request) -> Response:
        return Response(200, [("content-type", "application/octet-stream")], await request.body())

    @app.put("/count")
    async def count(request: Request) -> Response:
        n = 0
        async for chunk in request.stream():
            n += len(chunk)
        return Response.json({"bytes": n})

    @app.put("/upload")
    async def upload(request: Request) -> Response:
        request.max_body_size = 1_000_000  # an upload route allows more than the default
        n = 0
        async for chunk in request.stream():
            n += len(chunk)
        return Response.json({"bytes": n})

    @app.get("/data")
    async def data(request: Request) -> Response:
        return representation_response(
            request,
            size=len(DATA),
            read=bytes_reader(DATA, 1000),
            etag='"v1"',
            last_modified=1_700_000_000.0,
        )

    @app.get("/stream")
    async def stream(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            for i in range(100):
                yield b"%d," % i

        return Response(200, [("content-type", "text/plain")], chunks())

    @app.get("/boom")
    async def boom(request: Request) -> Response:
        raise RuntimeError("handler bug")

    @app.get("/teapot")
    async def teapot(request: Request) -> Response:
        raise HTTPError(418, "short and stout")

    return app


CONFIG = ServerConfig(max_header_size=4096, max_body_size=100_000)


def get(path: str, *extra: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: x", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_a_server_without_a_clock_sends_no_date(net: Net, monkeypatch: pytest.MonkeyPatch) -> None:
    """RFC 9110 6.6.1: no clock, no Date. The server must not read the system clock on
    its own (a simulation that forgot to pass one would stop replaying)."""

    def no_system_clock() -> float:
        raise AssertionError("the server read the system clock")

    async def main() -> None:
        async with (
            net.serving(make_app(), CONFIG, clock=None) as (_, addr),
            HttpClient(net.connect) as client,
        ):
            monkeypatch.setattr("time.time", no_system_clock)
            r = await client.get(f"http://{addr}/hello")
            assert r.status == 200
            assert "date" not in r.headers

    net.run(main)


def test_get_json_and_problem(net: Net) -> None:
    async def main() -> None:
        async with (
            net.serving(make_app(), CONFIG) as (_, addr),
            HttpClient(net.connect) as client,
        ):
            r = await client.get(f"http://{addr}/songs/a%20b")
            assert r.status == 200
            assert await r.json() == {"id": "a b"}
            assert r.headers.get("date", "").endswith("GMT")
            r = await client.get(f"http://{addr}/nope")
            assert r.status == 404
            assert r.headers.get("content-type") == "application/problem+json"
            doc = await r.json()
            assert doc["status"] == 404 and doc["title"] == "Not Found"
            r = await client.request("DELETE", f"http://{addr}/hello")
            assert r.status == 405
            assert r.headers.get("allow") == "GET, HEAD"
            await r.read()
            r = await client.get(f"http://{addr}/teapot")
            assert r.status == 418 and (await r.json())["detail"] == "short and stout"
            r = await client.get(f"http://{addr}/boom")
            assert r.status == 500 and (await r.json())["title"] == "Internal Server Error"
            r = await client.get(f"http://{addr}/hello")  # still serving after a 500
            assert await r.read() == b"hello"

    net.run(main)


def test_json_body_structured_with_cattrs(net: Net) -> None:
    async def main() -> None:
        async with (
            net.serving(make_app(), CONFIG) as (_, addr),
            HttpClient(net.connect) as client,
        ):
            r = await client.post(f"http://{addr}/songs", json=Song("x", 3))
            assert r.status == 201
            assert await r.json(Song) == Song("x", 3)
            r = await client.post(f"http://{addr}/songs", json={"title": "x"})
            assert r.status == 422
            assert "seconds" in (await r.json())["detail"]
            r = await client.post(f"http://{addr}/songs", body=b"{nope")
            assert r.status == 400
            await r.read()

    net.run(main)


def test_keep_alive_and_pipelining(net: Net) -> None:
    async def main() -> None:
        async with net.serving(make_app(), CONFIG) as (_, addr):
            raw = Raw(await net.connect(addr))
            await raw.send(get("/hello"))
            assert (await raw.response())[2] == b"hello"
            await raw.send(get("/songs/1"))
            assert (await raw.response())[2] == b'{"id":"1"}'
            # three pipelined requests in one write, answered in order
            await raw.send(get("/songs/a") + get("/nope") + get("/songs/b", "Connection: close"))
            assert (await raw.response())[2] == b'{"id":"a"}'
            assert (await raw.response())[0] == 404
            status, headers, body = await raw.response()
            assert (status, body, headers["connection"]) == (200, b'{"id":"b"}', "close")
            assert await raw.closed()
            await raw.aclose()

    net.run(main)


def test_http10_closes_without_keep_alive(net: Net) -> None:
    async def main() -> None:
        async with net.serving(make_app(), CONFIG) as (_, addr):
            raw = Raw(await net.connect(addr))
            await raw.send(b"GET /hello HTTP/1.0\r\n\r\n")
            status, _, body = await raw.response()
            assert (status, body) == (200, b"hello")
            assert await raw.closed()

    net.run(main)


def test_head_has_length_but_no_body(net: Net) -> None:
    async def main() -> None:
        async with net.serving(make_app(), CONFIG) as (_, addr):
            raw = Raw(await net.connect(addr))
            await raw.send(get("/data").replace(b"GET", b"HEAD"))
            status, headers, _ = await raw.response(head=True)
            assert status == 200 and headers["content-length"] == str(len(DATA))
            await raw.send(get("/hello"))  # no stray body bytes before the next response
            assert (await raw.response())[2] == b"hello"

    net.run(main)


def test_ranges_and_conditionals(net: Net) -> None:
    async def main() -> None:
        async with net.serving(make_app(), CONFIG) as (_, addr):
            url = f"http://{addr}/data"
            async with HttpClient(net.connect) as c:
                r = await c.get(url, headers={"range": "bytes=10-19"})
                assert r.status == 206
                assert r.headers.get("content-range") == f"bytes 10-19/{len(DATA)}"
                assert await r.read() == DATA[10:20]
                r = await c.get(url, headers={"range": "bytes=-5"})
                assert await r.read() == DATA[-5:]
                r = await c.get(url, headers={"range": "bytes=10000-"})
                assert r.status == 206 and await r.read() == DATA[10000:]
                r = await c.get(url, headers={"range": f"bytes={len(DATA)}-"})
                assert r.status == 416
                assert r.headers.get("content-range") == f"bytes */{len(DATA)}"
                await r.read()
                r = await c.get(url, headers={"range": "bytes=9-3"})
                assert r.status == 416
                await r.read()
                r = await c.get(url, headers={"range": "bytes=0-1,100-101"})
                assert r.status == 206
                ctype = r.headers.get("content-type") or ""
                assert ctype.startswith("multipart/byteranges; boundary=")
                boundary = ctype.split("boundary=")[1]
                body = await r.read()
                assert int(r.headers.get("content-length") or 0) == len(body)
                parts = body.split(f"--{boundary}".encode())
                assert parts[-1] == b"--\r\n"
                assert parts[1].endswith(b"\r\n\r\n" + DATA[0:2] + b"\r\n")
                assert b"content-range: bytes 100-101/10240" in parts[2]
                assert parts[2].endswith(DATA[100:102] + b"\r\n")
                # a changed representation (If-Range mismatch) gets the full 200
                r = await c.get(url, headers={"range": "bytes=0-1", "if-range": '"v0"'})
                assert r.status == 200 and await r.read() == DATA
                r = await c.get(url, headers={"if-none-match": '"v1"'})
                assert r.status == 304 and await r.read() == b""
                assert r.headers.get("etag") == '"v1"'
                lm = r.headers.get("last-modified") or ""
                r = await c.get(url, headers={"if-modified-since": lm})
                assert r.status == 304
                r = await c.get(url, headers={"if-none-match": '"v0"', "if-modified-since": lm})
                assert r.status == 200 and await r.read() == DATA

    net.run(main)


def test_streamed_request_and_response_bodies(net: Net) -> None:
    async def main() -> None:
        async with (
            net.serving(make_app(), CONFIG) as (_, addr),
            HttpClient(net.connect) as c,
        ):

            async def upload() -> AsyncIterator[bytes]:
                for _ in range(50):
                    yield b"x" * 1000

            r = await c.put(f"http://{addr}/count", body=upload())
            assert await r.json() == {"bytes": 50_000}
            r = await c.get(f"http://{addr}/stream")
            assert r.headers.get("transfer-encoding") == "chunked"
            chunks = [chunk async for chunk in r.iter_bytes()]
            assert b"".join(chunks) == b"".join(b"%d," % i for i in range(100))

    net.run(main)


BAD_REQUESTS = [
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET /x HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400),
    (b"GET /x HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n", 400),
    (b"GET /x HTTP/1.1\r\n\r\n", 400),  # HTTP/1.1 without Host
    (b"GET /x HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 5000 + b"\r\n\r\n", 431),
    (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400),
    (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
    (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\nabc", 413),
    (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    (b"GET /data HTTP/1.1\r\nHost: x\r\nRange: bytes=5-1\r\n\r\n", 416),
    (b"GET /data HTTP/1.1\r\nHost: x\r\nRange: bytes=99999-\r\n\r\n", 416),
]


@pytest.mark.parametrize(("request_bytes", "status"), BAD_REQUESTS)
def test_malformed_requests_get_4xx_and_others_are_served(
    net: Net, request_bytes: bytes, status: int
) -> None:
    async def main() -> None:
        async with net.serving(make_app(), CONFIG) as (_, addr):
            other = Raw(await net.connect(addr))
            await other.send(get("/hello"))
            assert (await other.response())[0] == 200
            bad = Raw(await net.connect(addr))
            await bad.send(request_bytes)
            got, headers, body = await bad.response()
            assert got == status
            assert headers["content-type"] == "application/problem+json"
            assert json.loads(body)["status"] == status
            await other.send(get("/hello"))
            assert (await other.response())[2] == b"hello"

    net.run(main)


def test_chunked_body_over_limit_is_413(net: Net) -> None:
    async def main() -> None:
        async with net.serving(make_app(), CONFIG) as (_, addr):
            raw = Raw(await net.connect(addr))
            await raw.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            chunk = b"%x\r\n%s\r\n" % (60_000, b"y" * 60_000)
            await raw.send(chunk + chunk)
            status, headers, _ = await raw.response()
            assert status == 413 and headers["connection"] == "close"

    net.run(main)


def test_truncated_body_closes_connection(net: Net) -> None:
    async def main() -> None:
        async with net.serving(make_app(), CONFIG) as (_, addr):
            raw = Raw(await net.connect(addr))
            await raw.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
            await raw.stream.send_eof()
            status, _, body = await raw.response()
            assert status == 400 and b"body" in body
            assert await raw.closed()

    net.run(main)


def test_unread_small_body_is_drained_for_keep_alive(net: Net) -> None:
    async def main() -> None:
        async with net.serving(make_app(), CONFIG) as (_, addr):
            raw = Raw(await net.connect(addr))
            # /hello ignores the body: the server must skip it, not parse it as a request
            req = b"GET /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n" + b"G" * 20
            await raw.send(req + get("/songs/z"))
            status, headers, _ = await raw.response()
            assert status == 200 and "connection" not in headers
            assert (await raw.response())[2] == b'{"id":"z"}'

    net.run(main)


def test_connection_limit_answers_503(net: Net) -> None:
    async def main() -> None:
        config = ServerConfig(max_connections=2)
        async with net.serving(make_app(), config) as (server, addr):
            first = [Raw(await net.connect(addr)) for _ in range(2)]
            for raw in first:
                await raw.send(get("/hello"))
                assert (await raw.response())[0] == 200
            assert server.connection_count == 2
            extra = Raw(await net.connect(addr))
            status, headers, _ = await extra.response()
            assert status == 503 and headers["connection"] == "close"
            await first[0].aclose()
            await wait_until(lambda: server.connection_count == 1, timeout=5)
            again = Raw(await net.connect(addr))
            await again.send(get("/hello"))
            assert (await again.response())[0] == 200

    net.run(main)


def test_route_may_raise_the_body_limit(net: Net) -> None:
    async def main() -> None:
        async with net.serving(make_app(), CONFIG) as (_, addr), HttpClient(net.connect) as c:
            r = await c.put(f"http://{addr}/upload", body=b"u" * 300_000)
            assert await r.json() == {"bytes": 300_000}
            r = await c.put(f"http://{addr}/count", body=b"u" * 300_000)
            assert r.status == 413
            await r.read()

    net.run(main)


def test_a_handler_cannot_smuggle_headers(net: Net) -> None:
    """A header value with a line break (or a name that is no token) from a handler is
    refused: the client gets a 500, never a second header of the attacker's choosing."""
    app = Router()

    @app.get("/value")
    async def value(request: Request) -> Response:
        return Response(200, [("x-note", "a\r\nset-cookie: evil=1")], b"x")

    @app.get("/name")
    async def name(request: Request) -> Response:
        return Response(200, [("x note:", "a")], b"x")

    @app.get("/ok")
    async def ok(request: Request) -> Response:
        return Response(200, [("x-note", "fine\tstill")], b"x")

    async def main() -> None:
        async with net.serving(app, CONFIG) as (_, addr):
            for path in ("/value", "/name"):
                raw = Raw(await net.connect(addr))
                await raw.send(get(path))
                status, headers, _ = await raw.response()
                assert status == 500
                assert "set-cookie" not in headers and "x-note" not in headers
                assert await raw.closed()
            raw = Raw(await net.connect(addr))
            await raw.send(get("/ok"))
            status, headers, body = await raw.response()
            assert (status, headers["x-note"], body) == (200, "fine\tstill", b"x")

    net.run(main)
