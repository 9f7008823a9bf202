"""HTTP hygiene over real TCP: methods, versions, ambiguous framing, bugs, JSON bodies,
integers, and headers on every response (issue 13)."""

from __future__ import annotations

import json
import logging

import anyio
import attrs
import pytest

from dspot.http import Request, Response, Router, ServerConfig
from tests.http.helpers import Net, Raw

TCP = Net("transport-tcp")


@attrs.frozen
class Playlist:
    name: str


app = Router()


@app.post("/playlists")
async def create(request: Request) -> Response:
    return Response.json(await request.json(Playlist), 201)


@app.get("/songs")
async def songs(request: Request) -> Response:
    page = request.query_int("page", 1, minimum=1, maximum=1_000_000)
    position = request.header_int("x-log-position", minimum=0, maximum=2**63 - 1)
    return Response.json({"page": page, "position": position})


@app.get("/bug")
async def bug(request: Request) -> Response:
    raise RecursionError("a handler bug")


async def _anything(request: Request) -> Response:
    return Response.text(f"{request.method} served")


app.mount("/proxy", _anything)  # every method, as a relaying gateway registers it


async def exchange(
    data: bytes, config: ServerConfig | None = None
) -> tuple[int, dict[str, str], bytes, bool]:
    """Send ``data`` on a fresh connection: status, headers, body, and whether the server
    then closed the connection."""
    async with TCP.serving(app, config) as (_, address):
        raw = Raw(await TCP.connect(address))
        await raw.send(data)
        with anyio.fail_after(10):
            status, headers, body = await raw.response()
        closed = await raw.closed(limit=3) if headers.get("connection") == "close" else False
        return status, headers, body, closed


def run(data: bytes, config: ServerConfig | None = None) -> tuple[int, dict[str, str], bytes, bool]:
    return TCP.run(lambda: exchange(data, config))  # type: ignore[no-any-return]


def post(body: bytes, content_type: str | None = "application/json") -> bytes:
    head = f"POST /playlists HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
    if content_type is not None:
        head += f"Content-Type: {content_type}\r\n"
    return head.encode() + b"\r\n" + body


@pytest.mark.parametrize("target", ["/proxy/x", "/songs", "/nowhere"])
def test_trace_is_405_everywhere(target: str) -> None:
    status, headers, _, _ = run(f"TRACE {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert status == 405
    assert "TRACE" not in headers["allow"] and "GET" in headers["allow"]


@pytest.mark.parametrize("method", ["FOO", "PROPFIND", "BREW"])
def test_an_unknown_method_is_501(method: str) -> None:
    status, _, _, _ = run(f"{method} /proxy/x HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert status == 501


@pytest.mark.parametrize("version", ["2.0", "1.2", "0.9", "3.0"])
def test_a_version_other_than_1_0_and_1_1_is_505(version: str) -> None:
    status, _, _, _ = run(f"GET /songs HTTP/{version}\r\nHost: x\r\n\r\n".encode())
    assert status == 505


def test_both_content_length_and_transfer_encoding_is_400_and_closes() -> None:
    smuggled = (
        b"POST /proxy/x HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /songs HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    status, headers, _, closed = run(smuggled)
    assert status == 400
    assert headers["connection"] == "close" and closed


def test_a_handler_bug_is_a_500_with_a_traceback_and_the_server_keeps_serving(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        async with TCP.serving(app) as (_, address):
            raw = Raw(await TCP.connect(address))
            await raw.send(b"GET /bug HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await raw.response())[0] == 500
            await raw.send(b"GET /proxy/x HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await raw.response())[0] == 200
            other = Raw(await TCP.connect(address))
            await other.send(b"GET /proxy/x HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await other.response())[0] == 200

    with caplog.at_level(logging.ERROR, logger="dspot.http.error"):
        TCP.run(main)
    assert any(r.exc_info and r.exc_info[0] is RecursionError for r in caplog.records)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"[" * 50_000 + b"]" * 50_000, 400),
        (b'{"name":' + b"[" * 40 + b"]" * 40 + b"}", 400),
        (b'{"name":"\\ud800x"}', 400),
        (b'{"name":"\xff\xfe"}', 400),
        (b'{"name":"ok"', 400),
        (b'{"name":' + b"9" * 5000 + b"}", 400),
        (b'{"name":123}', 422),
        (b'{"name":null}', 422),
        (b'{"name":["a"]}', 422),
        (b'{"name":"ok","extra":1}', 201),
        (b'{"name":"\\ud83c\\udfb5 \\u00e9"}', 201),
    ],
    ids=[
        "nested",
        "deep",
        "lone_surrogate",
        "bad_utf8",
        "truncated",
        "huge_number",
        "number_for_string",
        "null_for_string",
        "list_for_string",
        "extra_key",
        "surrogate_pair",
    ],
)
def test_json_bodies_are_checked_before_the_handler_sees_them(body: bytes, status: int) -> None:
    got, _, answer, _ = run(post(body))
    assert got == status, answer
    if status == 201:
        assert json.loads(answer)["name"]


def test_a_json_body_over_the_limit_is_413() -> None:
    from dspot.http import JsonLimits

    config = ServerConfig(json_limits=JsonLimits(max_size=1000))
    body = json.dumps({"name": "x" * 2000}).encode()
    assert run(post(body), config)[0] == 413
    assert run(post(json.dumps({"name": "x" * 900}).encode()), config)[0] == 201


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("text/plain", 415),
        ("text/plain;charset=UTF-8", 415),
        ("application/x-www-form-urlencoded", 415),
        ("multipart/form-data; boundary=x", 415),
        ("application/json", 201),
        ("application/json; charset=utf-8", 201),
        ("application/merge-patch+json", 201),
        (None, 201),
    ],
)
def test_json_endpoints_refuse_other_content_types(content_type: str | None, status: int) -> None:
    assert run(post(b'{"name":"ok"}', content_type))[0] == status


def test_a_missing_content_type_can_be_required() -> None:
    from dspot.http import JsonLimits

    config = ServerConfig(json_limits=JsonLimits(require_content_type=True))
    assert run(post(b'{"name":"ok"}', None), config)[0] == 415


@pytest.mark.parametrize(
    ("query", "header", "status"),
    [
        ("page=2", None, 200),
        ("page=99999999999999999999", None, 400),
        ("page=4611686018427387903", None, 400),
        ("page=0", None, 400),
        ("page=-1", None, 400),
        ("page=1_0", None, 400),
        ("page=%20+3", None, 400),
        ("page=%D9%A3", None, 400),  # ARABIC-INDIC DIGIT THREE: int() would take it
        ("page=abc", None, 400),
        ("page=", None, 200),
        ("", "12", 200),
        ("", "9" * 5000, 400),
        ("", "-5", 400),
        ("", "0x10", 400),
    ],
)
def test_integers_from_query_and_headers_are_checked(
    query: str, header: str | None, status: int
) -> None:
    head = f"GET /songs?{query} HTTP/1.1\r\nHost: x\r\n"
    if header is not None:
        head += f"X-Log-Position: {header}\r\n"
    got, _, body, _ = run(head.encode() + b"\r\n")
    assert got == status, body
    if status == 400:
        assert b"must be an integer from" in body


SECURITY_HEADERS = (
    ("strict-transport-security", "max-age=63072000"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("content-security-policy", "default-src 'self'"),
)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /songs HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /bug HTTP/1.1\r\nHost: x\r\n\r\n",
        b"TRACE /songs HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /songs HTTP/2.0\r\nHost: x\r\n\r\n",
    ],
    ids=["ok", "404", "500", "405", "505"],
)
def test_configured_headers_are_on_every_response(request_bytes: bytes) -> None:
    config = ServerConfig(response_headers=SECURITY_HEADERS)
    _, headers, _, _ = run(request_bytes, config)
    for name, value in SECURITY_HEADERS:
        assert headers[name] == value


def test_a_response_may_override_a_configured_header() -> None:
    router = Router()

    @router.get("/framed")
    async def framed(request: Request) -> Response:
        return Response.text("x", headers={"content-security-policy": "frame-ancestors 'none'"})

    async def main() -> None:
        config = ServerConfig(response_headers=SECURITY_HEADERS)
        async with TCP.serving(router, config) as (_, address):
            raw = Raw(await TCP.connect(address))
            await raw.send(b"GET /framed HTTP/1.1\r\nHost: x\r\n\r\n")
            _, headers, _ = await raw.response()
            assert headers["content-security-policy"] == "frame-ancestors 'none'"

    TCP.run(main)
