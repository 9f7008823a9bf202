"""Pure (no event loop) tests of ranges, preconditions, headers, paths and problems."""

from __future__ import annotations

import json

import anyio
import pytest

from dspot.http import (
    ByteRange,
    Headers,
    HTTPError,
    Problem,
    RangeNotSatisfiable,
    Request,
    Response,
    Router,
    content_type_for,
    evaluate_preconditions,
    http_date,
    parse_http_date,
    parse_range,
    safe_relative_path,
)
from dspot.http._conditional import if_range_allows, parse_etags


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        ("bytes=0-9", 100, [ByteRange(0, 9)]),
        ("bytes=10-", 100, [ByteRange(10, 99)]),
        ("bytes=-10", 100, [ByteRange(90, 99)]),
        ("bytes=-1000", 100, [ByteRange(0, 99)]),
        ("bytes=90-1000", 100, [ByteRange(90, 99)]),
        ("bytes=0-0,-1", 100, [ByteRange(0, 0), ByteRange(99, 99)]),
        ("bytes=0-10, 5-20", 100, [ByteRange(0, 20)]),  # overlapping ranges coalesce
        ("bytes=0-9,10-19", 100, [ByteRange(0, 19)]),  # adjacent too
        ("bytes=50-59,0-9", 100, [ByteRange(0, 9), ByteRange(50, 59)]),
        ("bytes=0-9,200-300", 100, [ByteRange(0, 9)]),  # unsatisfiable ones dropped
        ("BYTES = 1-2", 100, [ByteRange(1, 2)]),
    ],
)
def test_parse_range(header: str, size: int, expected: list[ByteRange]) -> None:
    assert parse_range(header, size) == expected


@pytest.mark.parametrize(
    ("header", "size"),
    [
        ("bytes=100-", 100),
        ("bytes=100-200", 100),
        ("bytes=-0", 100),
        ("bytes=0-1", 0),
        ("bytes=-5", 0),
        ("bytes=5-2", 100),
        ("bytes=a-b", 100),
        ("bytes=-", 100),
        ("bytes=1", 100),
        ("bytes=", 100),
        ("bytes=²-3", 100),
        ("bytes=0x10-20", 100),
    ],
)
def test_parse_range_unsatisfiable(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable) as info:
        parse_range(header, size)
    assert info.value.status == 416
    assert ("content-range", f"bytes */{size}") in info.value.headers


@pytest.mark.parametrize("header", ["items=0-1", "0-1", "", "bytes 0-1"])
def test_parse_range_other_unit_is_ignored(header: str) -> None:
    assert parse_range(header, 100) is None


def test_parse_range_too_many_ranges_is_ignored() -> None:
    many = ",".join(f"{i * 10}-{i * 10 + 1}" for i in range(17))
    assert parse_range("bytes=" + many, 1000, max_ranges=16) is None
    assert parse_range("bytes=" + many, 1000, max_ranges=17) is not None


ETAG = '"abc"'
LM = 1_700_000_000.0


def h(**kw: str) -> Headers:
    return Headers({k.replace("_", "-"): v for k, v in kw.items()})


@pytest.mark.parametrize(
    ("method", "headers", "expected"),
    [
        ("GET", h(), None),
        ("GET", h(if_none_match='"abc"'), 304),
        ("GET", h(if_none_match='W/"abc"'), 304),  # weak comparison
        ("GET", h(if_none_match='"x", "abc"'), 304),
        ("GET", h(if_none_match="*"), 304),
        ("GET", h(if_none_match='"x"'), None),
        ("HEAD", h(if_none_match='"abc"'), 304),
        ("PUT", h(if_none_match='"abc"'), 412),
        ("GET", h(if_modified_since=http_date(LM)), 304),
        ("GET", h(if_modified_since=http_date(LM + 10)), 304),
        ("GET", h(if_modified_since=http_date(LM - 10)), None),
        ("GET", h(if_modified_since="garbage"), None),
        # If-None-Match wins over If-Modified-Since
        ("GET", h(if_none_match='"x"', if_modified_since=http_date(LM)), None),
        ("PUT", h(if_match='"abc"'), None),
        ("PUT", h(if_match='W/"abc"'), 412),  # strong comparison
        ("PUT", h(if_match='"x"'), 412),
        ("PUT", h(if_match="*"), None),
        ("PUT", h(if_unmodified_since=http_date(LM - 10)), 412),
        ("PUT", h(if_unmodified_since=http_date(LM)), None),
    ],
)
def test_preconditions(method: str, headers: Headers, expected: int | None) -> None:
    assert evaluate_preconditions(method, headers, etag=ETAG, last_modified=LM) == expected


def test_if_range() -> None:
    assert if_range_allows(h(), etag=ETAG, last_modified=LM)
    assert if_range_allows(h(if_range='"abc"'), etag=ETAG, last_modified=LM)
    assert not if_range_allows(h(if_range='"old"'), etag=ETAG, last_modified=LM)
    assert not if_range_allows(h(if_range='W/"abc"'), etag='W/"abc"', last_modified=LM)
    assert if_range_allows(h(if_range=http_date(LM)), etag=ETAG, last_modified=LM)
    assert not if_range_allows(h(if_range=http_date(LM - 1)), etag=ETAG, last_modified=LM)


def test_etag_parsing() -> None:
    assert parse_etags('"a", W/"b" ,"c"') == ['"a"', 'W/"b"', '"c"']
    assert parse_etags("*") == ["*"]
    assert parse_etags("a, b") is None


def test_http_date_round_trip() -> None:
    assert http_date(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT"
    assert parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT") == 784111777
    assert parse_http_date("not a date") is None
    assert parse_http_date(None) is None


def test_headers_case_insensitive_and_immutable() -> None:
    hs = Headers([("Content-Type", "a"), ("X-A", "1"), ("x-a", "2")])
    assert hs.get("content-type") == "a"
    assert hs.get_all("X-A") == ["1", "2"]
    assert "CONTENT-TYPE" in hs
    hs2 = hs.set("x-a", "3")
    assert hs.get_all("x-a") == ["1", "2"]
    assert hs2.get_all("x-a") == ["3"]
    assert Headers([("Connection", "keep-alive, Upgrade")]).has_token("connection", "upgrade")


@pytest.mark.parametrize(
    "path",
    ["/../etc/passwd", "/a/../../b", "/./x", "/a\\..\\b", "/a\x00.txt", "..", "/a/..", "\\x"],
)
def test_safe_relative_path_rejects(path: str) -> None:
    with pytest.raises(HTTPError) as info:
        safe_relative_path(path)
    assert info.value.status == 400


def test_safe_relative_path_normalises_harmless_paths() -> None:
    assert safe_relative_path("/a//b/c.txt") == "a/b/c.txt"
    assert safe_relative_path("/") == ""
    assert safe_relative_path("/%2e%2e") == "%2e%2e"  # already decoded once: a literal name


def test_content_types() -> None:
    assert content_type_for("a.html") == "text/html; charset=utf-8"
    assert content_type_for("a.css") == "text/css; charset=utf-8"
    assert content_type_for("a.png") == "image/png"
    assert content_type_for("a.mp3") == "audio/mpeg"
    assert content_type_for("a.unknownext") == "application/octet-stream"
    assert content_type_for("a.tar.gz") == "application/octet-stream"  # never as gzip-encoded


def test_problem_document() -> None:
    err = HTTPError(404, "no such song", extensions={"song": "x"})
    doc = json.loads(err.problem.to_json())
    assert doc == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": "no such song",
        "song": "x",
    }
    assert Problem.from_json(err.problem.to_json()) == err.problem


def _router_app() -> Router:
    app = Router()

    async def song(request: Request) -> Response:
        return Response.json(request.path_params)

    async def files(request: Request) -> Response:
        return Response.text(request.path_params["path"])

    async def create(request: Request) -> Response:
        return Response(201)

    app.add("GET", "/songs/{song_id}", song)
    app.add("POST", "/songs", create)
    app.add(["GET", "PUT"], "/songs/{song_id}/tags/{tag}", song)
    app.mount("/files", files)
    return app


def _call(app: Router, method: str, target: str) -> tuple[int, bytes, Headers]:
    async def main() -> tuple[int, bytes, Headers]:
        try:
            r = await app(Request(method, target))
        except HTTPError as e:
            return e.status, b"", Headers(e.headers)
        assert isinstance(r.body, bytes)
        return r.status, r.body, r.headers

    result: tuple[int, bytes, Headers] = anyio.run(main, backend="trio")
    return result


def test_router_params_methods_and_mounts() -> None:
    app = _router_app()
    assert _call(app, "GET", "/songs/42")[1] == b'{"song_id":"42"}'
    assert _call(app, "GET", "/songs/a%2Fb?x=1")[1] == b'{"song_id":"a/b"}'  # %2F stays inside
    assert _call(app, "HEAD", "/songs/42")[0] == 200  # HEAD falls back to GET
    assert _call(app, "GET", "/songs/1/tags/rock")[1] == b'{"song_id":"1","tag":"rock"}'
    assert _call(app, "POST", "/songs")[0] == 201
    status, _, headers = _call(app, "DELETE", "/songs/42")
    assert status == 405 and headers.get("allow") == "GET, HEAD"
    assert _call(app, "GET", "/songs")[2].get("allow") == "POST"
    assert _call(app, "GET", "/songs/")[0] == 404  # an empty parameter does not match
    assert _call(app, "GET", "/songs/1/2")[0] == 404
    assert _call(app, "GET", "/files/a/b%20c.txt")[1] == b"a/b c.txt"
    assert _call(app, "GET", "http://host/songs/7")[1] == b'{"song_id":"7"}'  # absolute-form


def test_router_rejects_path_parameter_not_last() -> None:
    with pytest.raises(ValueError):
        Router().add("GET", "/{rest:path}/x", _router_app())
    with pytest.raises(ValueError):
        Router().add("GET", "no-slash", _router_app())
