"""Song audio and cover images as HTTP answers, the same for the REST and the Subsonic API."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from dspot.blobstore import BlobStore
from dspot.http import Request, Response, representation_response

from dspot_spotify import catalog
from dspot_spotify.tags import sniff_image_mime

__all__ = ["IMMUTABLE", "cover_response", "song_audio"]

IMMUTABLE = "private, max-age=31536000, immutable"
"""Cache-Control of content-addressed bytes: a blob never changes under its sha256."""


def song_audio(
    blobs: BlobStore, request: Request, song: catalog.SongView, *extra: tuple[str, str]
) -> Response:
    """The song's audio from the blob store, with Range/206, its sha256 as the ETag and
    conditional requests."""
    sha = song.blob_sha256

    async def read(offset: int, length: int) -> AsyncIterator[bytes]:
        async with contextlib.aclosing(blobs.get(sha, offset, length)) as chunks:
            async for chunk in chunks:
                yield chunk

    return representation_response(
        request,
        size=song.size,
        read=read,
        content_type=song.mime,
        etag=f'"{sha}"',
        headers=[("cache-control", IMMUTABLE), *extra],
    )


def cover_response(data: bytes, sha256: str) -> Response:
    """A cover image blob (its type sniffed from the bytes: the catalog keeps none)."""
    return Response(
        200,
        [
            ("content-type", sniff_image_mime(data) or "application/octet-stream"),
            ("etag", f'"{sha256}"'),
            ("cache-control", IMMUTABLE),
        ],
        data,
    )
