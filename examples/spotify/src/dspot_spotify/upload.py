"""Receiving an upload: spool the body while hashing it, then read its tags.

The upload endpoint takes the audio file as the raw request body (the file name in a
query parameter or header; no multipart). :func:`spool_upload` copies the body into a
temporary file (in memory up to ``memory_bytes``), computing its sha256 — the blob address
— and enforcing a size limit; :func:`inspect_upload` reads the tags from the spool and
extracts the cover as its own content-addressed blob. The spool is then streamed into the
blob store with :meth:`SpooledUpload.chunks` and the catalog entries come from
:func:`dspot_spotify.ingest.entries_for_upload`.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import AsyncIterable, AsyncIterator
from typing import IO

import anyio.lowlevel
import attrs

from dspot_spotify.tags import MediaError, TrackTags, UnsupportedMedia, read_tags

__all__ = [
    "DEFAULT_MAX_UPLOAD",
    "InspectedUpload",
    "PayloadTooLarge",
    "SpooledUpload",
    "inspect_upload",
    "spool_upload",
]

#: Default upload limit: 200 MiB (a long FLAC album track is ~100 MiB).
DEFAULT_MAX_UPLOAD = 200 * 1024 * 1024


class PayloadTooLarge(MediaError):
    """The upload exceeds the size limit (HTTP 413)."""

    status = 413


@attrs.define
class SpooledUpload:
    """An upload copied to a temporary file, with its sha256 (hex) and size."""

    file: IO[bytes]
    sha256: str
    size: int

    async def chunks(self, chunk_size: int = 256 * 1024) -> AsyncIterator[bytes]:
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
    discarded) and :class:`~dspot_spotify.tags.UnsupportedMedia` for an empty body.
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
