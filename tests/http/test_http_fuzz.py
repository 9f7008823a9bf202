"""Hypothesis fuzz of request parsing: whatever bytes arrive, in whatever pieces, the server
answers with statuses below 500 (never a crash, never a 500) and closes cleanly."""

from __future__ import annotations

import logging
import re

import anyio
import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dspot.http import HttpServer, Request, Response, Router, ServerConfig, bytes_reader
from dspot.http import representation_response as represent
from dspot.testing import run_with_mock_clock
from tests.http.helpers import memory_pair

DATA = bytes(range(256)) * 4


@attrs.frozen
class Song:
    title: str
    seconds: int


app = Router()


@app.get("/hello")
async def hello(request: Request) -> Response:
    return Response.text("hello")


@app.post("/songs")
async def songs(request: Request) -> Response:
    return Response.json(await request.json(Song), 201)


@app.route("/len", ["POST", "PUT"])
async def length(request: Request) -> Response:
    return Response.json({"n": len(await request.body())})


@app.get("/data/{name}")
async def data(request: Request) -> Response:
    return represent(request, size=len(DATA), read=bytes_reader(DATA, 100), etag='"e"')


CONFIG = ServerConfig(max_header_size=1024, max_body_size=2048, header_timeout=5)


# Each part is usually valid and sometimes not, so that most requests get past h11 to the
# router, conditional and range code, and some exercise every parser error path.
def mostly(
    valid: st.SearchStrategy[str], invalid: st.SearchStrategy[str]
) -> st.SearchStrategy[str]:
    return st.integers(0, 9).flatmap(lambda n: invalid if n == 0 else valid)


methods = mostly(
    st.sampled_from(["GET", "POST", "PUT", "HEAD", "DELETE"]),
    st.sampled_from(["G\x00T", "", "GET GET", "get"]),
)
targets = mostly(
    st.sampled_from(["/hello", "/songs", "/len", "/data/x", "/data/%2e%2e", "/data/%", "/"])
    | st.text(max_size=30).map(lambda t: "/data/" + t),
    st.text(max_size=30) | st.just("*"),
)
versions = mostly(st.just("HTTP/1.1") | st.just("HTTP/1.0"), st.sampled_from(["HTTP/2.0", ""]))
header_names = mostly(
    st.sampled_from(
        [
            "Content-Length",
            "Transfer-Encoding",
            "Range",
            "If-None-Match",
            "Connection",
            "Expect",
            "If-Range",
            "If-Modified-Since",
            "Upgrade",
            "Host",
        ]
    ),
    st.text(max_size=10),
)
header_values = mostly(
    st.sampled_from(
        [
            "x",
            "5",
            "-1",
            "99999999999999999999",
            "chunked",
            "gzip, chunked",
            "bytes=0-3",
            "bytes=5-1",
            "bytes=-3,0-",
            "bytes=0-1,4-5,9-9",
            '"e"',
            "close",
            "100-continue",
            "websocket",
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "bytes=0-0,-1,3-",
        ]
    ),
    st.text(max_size=20),
)


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    head = f"{draw(methods)} {draw(targets)} {draw(versions)}\r\n"
    if draw(st.integers(0, 9)):
        head += "Host: x\r\n"
    for name, value in draw(st.lists(st.tuples(header_names, header_values), max_size=5)):
        head += f"{name}: {value}\r\n"
    body = draw(st.one_of(st.just(b""), st.binary(max_size=60), st.just(b"3\r\nabc\r\n0\r\n\r\n")))
    raw = head.encode("utf-8", "surrogatepass") + b"\r\n" + body
    if draw(st.booleans()):  # pipelining: a valid request after it
        raw += b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
    return raw


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    base = bytearray(
        b'POST /songs HTTP/1.1\r\nHost: x\r\nContent-Length: 27\r\n\r\n{"title": "a", "seconds": 1}'
    )
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(base) - 1))
        base[pos] = draw(st.integers(0, 255))
    return bytes(base)


class _ErrorLog(logging.Handler):
    """Collects ERROR records: a handler crash or connection failure the server survived."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    data=st.one_of(requests(), requests(), mutated(), st.binary(max_size=200)),
    piece=st.sampled_from([1, 7, 4096]),
)
def test_server_survives_any_input(data: bytes, piece: int) -> None:
    async def main() -> bytes:
        server = HttpServer(app, CONFIG)
        client, server_end = memory_pair(capacity=1024)
        out = b""
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                tg.start_soon(server.handle_stream, server_end)

                async def feed() -> None:
                    try:
                        for i in range(0, len(data), piece):
                            await client.send(data[i : i + piece])
                        await client.send_eof()
                    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                        pass  # the server closed early, which is allowed

                tg.start_soon(feed)
                while True:
                    try:
                        out += await client.receive()
                    except (anyio.EndOfStream, anyio.ClosedResourceError):
                        break
        return out

    errors = _ErrorLog()
    logging.getLogger("dspot.http.error").addHandler(errors)
    try:
        out = run_with_mock_clock(main)
    finally:
        logging.getLogger("dspot.http.error").removeHandler(errors)
    assert not errors.records, [r.getMessage() for r in errors.records]
    statuses = [int(s) for s in re.findall(rb"HTTP/1\.[01] (\d{3}) ", out)]
    for status in statuses:
        assert 100 <= status < 500 or status in (501, 505), (status, out)
    assert b" 500 " not in out.split(b"\r\n", 1)[0]
