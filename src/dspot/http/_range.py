"""Byte ranges (RFC 9110 section 14) and responses for a sized representation.

:func:`parse_range` is pure: it turns a ``Range`` header into satisfiable, coalesced
:class:`ByteRange` values or says why not. :func:`representation_response` combines it with
the conditional-request rules to answer a GET/HEAD for anything with a size and a way to read
a slice (a file, a blob), which is how static files and audio streams are served.

Decisions worth knowing:

* A ``Range`` in another unit than ``bytes`` is ignored (200 with the full body).
* A syntactically invalid byte range set (``bytes=5-2``, ``bytes=x``) is answered with 416.
* Several ranges are coalesced (overlapping or adjacent ones merge); one that remains is a
  plain 206, several are a ``multipart/byteranges`` 206. More than ``max_ranges`` after
  coalescing are answered with 200 and the full body, as RFC 9110 allows.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable, Iterable
from pathlib import Path

import anyio
import attrs

from dspot.http._conditional import evaluate_preconditions, http_date, if_range_allows
from dspot.http._message import Headers, Request, Response
from dspot.http._problem import HTTPError

ReadSlice = Callable[[int, int], AsyncIterable[bytes]]
"""``read(offset, length)`` yields exactly ``length`` bytes starting at ``offset``, in chunks."""


class FileSlice:
    """``length`` bytes of the file at ``path`` from ``offset``, as a response body.

    Iterated, it reads the file in ``chunk_size`` pieces in a worker thread (and raises
    ``OSError`` if the file is shorter than promised). The server sends it with
    ``sendfile(2)`` instead where the connection allows (plain TCP): the kernel copies the
    file to the socket and the bytes never pass through Python.
    """

    def __init__(
        self, path: str | os.PathLike[str], offset: int, length: int, chunk_size: int = 1 << 20
    ) -> None:
        self.path = Path(path)
        self.offset = offset
        self.length = length
        self.chunk_size = chunk_size
        self._chunks: AsyncGenerator[bytes, None] | None = None

    def __aiter__(self) -> AsyncIterator[bytes]:
        self._chunks = self._read()
        return self._chunks

    async def _read(self) -> AsyncGenerator[bytes, None]:
        async with await anyio.open_file(self.path, "rb") as f:
            if self.offset:
                await f.seek(self.offset)
            remaining = self.length
            while remaining > 0:
                chunk = await f.read(min(self.chunk_size, remaining))
                if not chunk:
                    raise OSError(f"{self.path} shrank while being sent")
                remaining -= len(chunk)
                yield chunk

    async def aclose(self) -> None:
        """Close the file if an iteration left it open (the server calls this)."""
        if self._chunks is not None:
            await self._chunks.aclose()


def file_reader(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> ReadSlice:
    """A :data:`ReadSlice` over a file: each slice is a :class:`FileSlice`."""

    def read(offset: int, length: int) -> FileSlice:
        return FileSlice(path, offset, length, chunk_size)

    return read


@attrs.frozen
class ByteRange:
    """Bytes ``start`` to ``end`` inclusive (as in ``Content-Range``)."""

    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end}/{size}"


class RangeNotSatisfiable(HTTPError):
    """416 with ``Content-Range: bytes */size``."""

    def __init__(self, size: int, detail: str) -> None:
        super().__init__(416, detail, headers=[("content-range", f"bytes */{size}")])


def parse_range(value: str, size: int, *, max_ranges: int = 16) -> list[ByteRange] | None:
    """Satisfiable ranges of a ``size``-byte representation, sorted and coalesced.

    Returns ``None`` when the header should be ignored (another unit, or too many ranges);
    raises :class:`RangeNotSatisfiable` when it is malformed or no range is satisfiable.
    """
    unit, sep, spec = value.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    parts = [p.strip() for p in spec.split(",")]
    if len(parts) > 8 * max_ranges:
        return None
    ranges: list[ByteRange] = []
    for part in parts:
        if not part:
            continue
        first, dash, last = part.partition("-")
        first, last = first.strip(), last.strip()
        if not dash or (first and not first.isdigit()) or (last and not last.isdigit()):
            raise RangeNotSatisfiable(size, f"malformed range {part!r}")
        if not first.isascii() or not last.isascii():
            raise RangeNotSatisfiable(size, f"malformed range {part!r}")
        if first:
            start = int(first)
            end = int(last) if last else size - 1
            if last and end < start:
                raise RangeNotSatisfiable(size, f"range {part!r} ends before it starts")
            if start >= size:
                continue
            ranges.append(ByteRange(start, min(end, size - 1)))
        elif last:
            suffix = int(last)
            if suffix == 0 or size == 0:
                continue
            ranges.append(ByteRange(max(0, size - suffix), size - 1))
        else:
            raise RangeNotSatisfiable(size, "range without bounds")
    if not ranges:
        raise RangeNotSatisfiable(size, f"no range of {value!r} is satisfiable")
    ranges.sort(key=lambda r: r.start)
    merged = [ranges[0]]
    for r in ranges[1:]:
        last_r = merged[-1]
        if r.start <= last_r.end + 1:
            merged[-1] = ByteRange(last_r.start, max(last_r.end, r.end))
        else:
            merged.append(r)
    if len(merged) > max_ranges:
        return None
    return merged


def _boundary(etag: str | None, size: int, ranges: Iterable[ByteRange]) -> str:
    # Deterministic (no global randomness) yet unlikely to occur in the body.
    seed = f"{etag}|{size}|" + ",".join(f"{r.start}-{r.end}" for r in ranges)
    return "dspot-" + hashlib.sha256(seed.encode()).hexdigest()[:32]


def representation_response(
    request: Request,
    *,
    size: int,
    read: ReadSlice,
    content_type: str = "application/octet-stream",
    etag: str | None = None,
    last_modified: float | None = None,
    headers: Iterable[tuple[str, str]] = (),
    max_ranges: int = 16,
) -> Response:
    """Answer GET/HEAD for a representation of ``size`` bytes: 200, 206, 304, 412 or 416.

    Validators (``etag``, ``last_modified``) are sent and used for conditional requests;
    ``headers`` (``Cache-Control``...) go on every response. The body is read lazily through
    ``read`` only for the bytes that are sent.
    """
    h = Headers(headers).set("accept-ranges", "bytes")
    if etag is not None:
        h = h.set("etag", etag)
    if last_modified is not None:
        h = h.set("last-modified", http_date(last_modified))
    status = evaluate_preconditions(
        request.method, request.headers, etag=etag, last_modified=last_modified
    )
    if status == 304:
        return Response(304, h)
    if status is not None:
        raise HTTPError(status, "precondition failed", headers=list(h))
    range_header = request.headers.get("range")
    ranges = None
    if (
        range_header is not None
        and request.method in ("GET", "HEAD")
        and if_range_allows(request.headers, etag=etag, last_modified=last_modified)
    ):
        try:
            ranges = parse_range(range_header, size, max_ranges=max_ranges)
        except RangeNotSatisfiable as e:
            e.headers.extend(h)
            raise
    if ranges is None:
        h = h.set("content-type", content_type).set("content-length", str(size))
        return Response(200, h, read(0, size))
    if len(ranges) == 1:
        r = ranges[0]
        h = h.set("content-type", content_type).set("content-range", r.content_range(size))
        return Response(206, h.set("content-length", str(r.length)), read(r.start, r.length))
    boundary = _boundary(etag, size, ranges)
    heads = [
        (
            f"--{boundary}\r\ncontent-type: {content_type}\r\n"
            f"content-range: {r.content_range(size)}\r\n\r\n"
        ).encode()
        for r in ranges
    ]
    tail = f"--{boundary}--\r\n".encode()
    length = sum(len(hd) + r.length + 2 for hd, r in zip(heads, ranges, strict=True)) + len(tail)

    async def multipart() -> AsyncIterator[bytes]:
        for head, r in zip(heads, ranges, strict=True):
            yield head
            async for chunk in read(r.start, r.length):
                yield chunk
            yield b"\r\n"
        yield tail

    h = h.set("content-type", f"multipart/byteranges; boundary={boundary}")
    return Response(206, h.set("content-length", str(length)), multipart())


def bytes_reader(data: bytes, chunk_size: int = 256 * 1024) -> ReadSlice:
    """A :data:`ReadSlice` over an in-memory ``bytes`` (handy for small representations)."""

    async def read(offset: int, length: int) -> AsyncIterator[bytes]:
        view = memoryview(data)
        for pos in range(offset, offset + length, chunk_size):
            yield bytes(view[pos : min(pos + chunk_size, offset + length)])

    return read
