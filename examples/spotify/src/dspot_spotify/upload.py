"""Receiving an upload: spool the body while hashing it, then read its tags.

The upload endpoint takes the audio file either as the raw request body (the file name in a
query parameter or header) or as the field ``file`` of a ``multipart/form-data`` body (what
a browser's form sends): :class:`FormFile` streams that one field out of the body as it
arrives, with the push parser of the ``multipart`` package, never holding the whole body.
:func:`spool_upload` copies either stream into a temporary file (in memory up to
``memory_bytes``), computing its sha256 — the blob address — and enforcing a size limit;
:func:`inspect_upload` reads the tags from the spool and extracts the cover as its own
content-addressed blob. The spool is then streamed into the
blob store with :meth:`SpooledUpload.chunks` and the catalog entries come from
:func:`dspot_spotify.ingest.entries_for_upload`.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import AsyncGenerator, AsyncIterable
from typing import IO

import anyio.lowlevel
import attrs
import multipart  # type: ignore[import-untyped]

from dspot_spotify.tags import MediaError, TrackTags, UnsupportedMedia, read_tags

__all__ = [
    "DEFAULT_MAX_UPLOAD",
    "FORM_OVERHEAD",
    "FormFile",
    "InspectedUpload",
    "MalformedForm",
    "MissingFormFile",
    "PayloadTooLarge",
    "SpooledUpload",
    "form_boundary",
    "inspect_upload",
    "spool_upload",
]

#: Default upload limit: 200 MiB (a long FLAC album track is ~100 MiB).
DEFAULT_MAX_UPLOAD = 200 * 1024 * 1024

#: What a multipart body may carry beyond its file: boundaries, part headers, small fields.
FORM_OVERHEAD = 64 * 1024

#: Parts a form may have (the file and a few ignored fields); more is not a browser's form.
_MAX_FORM_PARTS = 32


class PayloadTooLarge(MediaError):
    """The upload exceeds the size limit (HTTP 413)."""

    status = 413


@attrs.define
class SpooledUpload:
    """An upload copied to a temporary file, with its sha256 (hex) and size."""

    file: IO[bytes]
    sha256: str
    size: int

    async def chunks(self, chunk_size: int = 256 * 1024) -> AsyncGenerator[bytes, None]:
        """The content again from the start, in chunks (for streaming into the blob store)."""
        self.file.seek(0)
        while chunk := self.file.read(chunk_size):
            yield chunk
            await anyio.lowlevel.checkpoint()
        self.file.seek(0)

    def close(self) -> None:
        """Delete the temporary file."""
        self.file.close()


async def spool_upload(
    body: AsyncIterable[bytes],
    *,
    max_bytes: int = DEFAULT_MAX_UPLOAD,
    memory_bytes: int = 1024 * 1024,
) -> SpooledUpload:
    """Copy ``body`` into a temporary file while hashing it.

    Raises :class:`PayloadTooLarge` as soon as more than ``max_bytes`` arrive (the spool is
    discarded) and :class:`~dspot_spotify.tags.UnsupportedMedia` for an empty body. A body
    that is an async generator is closed however this ends (it may be left mid-way).
    """
    spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=memory_bytes)  # noqa: SIM115
    digest = hashlib.sha256()
    size = 0
    try:
        async for chunk in body:
            size += len(chunk)
            if size > max_bytes:
                raise PayloadTooLarge(f"upload larger than {max_bytes} bytes")
            digest.update(chunk)
            spool.write(chunk)
        if size == 0:
            raise UnsupportedMedia("the upload is empty")
    except BaseException:
        spool.close()
        raise
    finally:
        await _aclose(body)
    spool.seek(0)
    return SpooledUpload(file=spool, sha256=digest.hexdigest(), size=size)


@attrs.frozen(kw_only=True)
class InspectedUpload:
    """An upload's tags, and its cover art as a blob: bytes, sha256 and MIME type."""

    tags: TrackTags
    cover: bytes | None
    cover_sha256: str | None
    cover_mime: str | None


def inspect_upload(spool: SpooledUpload, *, filename: str | None) -> InspectedUpload:
    """Read the tags of a spooled upload (MediaError subclasses for bad files)."""
    tags = read_tags(spool.file, filename=filename)
    cover = tags.cover
    if cover is None:
        return InspectedUpload(tags=tags, cover=None, cover_sha256=None, cover_mime=None)
    return InspectedUpload(
        tags=tags,
        cover=cover.data,
        cover_sha256=hashlib.sha256(cover.data).hexdigest(),
        cover_mime=cover.mime,
    )


async def _aclose(stream: AsyncIterable[bytes]) -> None:
    """Close an async generator (a request body) that may have been left mid-way."""
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()


class MalformedForm(MediaError):
    """A ``multipart/form-data`` body that does not parse (HTTP 400)."""

    status = 400


class MissingFormFile(MediaError):
    """A well-formed form without the file field (HTTP 422)."""

    status = 422


def form_boundary(content_type: str | None) -> str | None:
    """The boundary of a ``multipart/form-data`` Content-Type; None for any other type.

    Raises :class:`MalformedForm` for a form type without a boundary.
    """
    if not content_type:
        return None
    kind, options = multipart.parse_options_header(content_type)
    if kind != "multipart/form-data":
        return None
    boundary = options.get("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise MalformedForm("multipart/form-data without a boundary parameter")
    return boundary


@attrs.define
class FormFile:
    """One file field of a ``multipart/form-data`` body, streamed out as the body arrives.

    :meth:`chunks` yields the content of the first part named ``field``; once it has
    yielded (or ended) :attr:`filename` is that part's file name (None if it gave none).
    Other parts are read past and dropped. The parser holds at most a chunk and a boundary,
    so memory stays flat however large the upload. The body must be one complete form:
    :class:`MalformedForm` otherwise, :class:`MissingFormFile` if it has no such field.
    ``body`` is closed when :meth:`chunks` ends, is closed, or fails.
    """

    body: AsyncIterable[bytes]
    boundary: str
    field: str = "file"
    filename: str | None = None
    found: bool = False

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        in_file = False
        try:
            parser = multipart.PushMultipartParser(self.boundary, max_segment_count=_MAX_FORM_PARTS)
            async for data in self.body:
                if not data:
                    continue  # b"" would tell the parser the body ended
                for event in parser.parse(data):
                    if isinstance(event, multipart.MultipartSegment):
                        in_file = not self.found and event.name == self.field
                        if in_file:
                            self.found = True
                            self.filename = event.filename or None
                    elif event is None:
                        in_file = False
                    elif in_file:
                        yield event
            parser.close()  # raises unless the closing boundary came
        except multipart.MultipartError as e:
            raise MalformedForm(f"malformed multipart/form-data body: {e}") from None
        finally:
            await _aclose(self.body)
        if not self.found:
            raise MissingFormFile(f"the form has no {self.field!r} field with the audio file")
