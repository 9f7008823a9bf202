"""Upload spooling: hashing, size limit, tag inspection, re-reading for the blob store."""

from __future__ import annotations

import hashlib
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
from dspot_spotify.demo import encode_audio, make_cover_png, synthesize, tag_file
from dspot_spotify.tags import CorruptMedia, UnsupportedMedia
from dspot_spotify.upload import PayloadTooLarge, inspect_upload, spool_upload

from dspot.env import run_in_thread


async def body(data: bytes, chunk: int = 1000) -> AsyncIterator[bytes]:
    for i in range(0, len(data), chunk):
        yield data[i : i + chunk]
        await trio.lowlevel.checkpoint()


def audio_file(tmp_path: Path) -> bytes:
    path = tmp_path / "x.flac"
    path.write_bytes(encode_audio(synthesize(random.Random(1), 1.0), 44100, "flac"))
    tag_file(
        path,
        title="Up",
        artist="Loader",
        album="Spool",
        track=2,
        cover=make_cover_png(random.Random(2), 16),
    )
    return path.read_bytes()


def test_spool_hash_inspect_and_reread(tmp_path: Path) -> None:
    data = audio_file(tmp_path)

    async def main() -> None:
        # rolls over to disk; hashed, written and read in worker threads as on a node
        spool = await spool_upload(body(data), memory_bytes=10_000, offload=run_in_thread)
        try:
            assert spool.sha256 == hashlib.sha256(data).hexdigest()
            assert spool.size == len(data)
            found = await inspect_upload(spool, filename="whatever.mp3")
            assert (found.tags.title, found.tags.format, found.tags.track) == ("Up", "flac", 2)
            assert found.cover is not None and found.cover_mime == "image/png"
            assert found.cover_sha256 == hashlib.sha256(found.cover).hexdigest()
            again = b"".join([c async for c in spool.chunks(chunk_size=4096)])
            assert again == data
        finally:
            spool.close()

    trio.run(main)


def test_limits_and_bad_content(tmp_path: Path) -> None:
    data = audio_file(tmp_path)

    async def main() -> None:
        with pytest.raises(PayloadTooLarge) as info:
            await spool_upload(body(data), max_bytes=len(data) - 1)
        assert info.value.status == 413
        with pytest.raises(UnsupportedMedia):
            await spool_upload(body(b""))
        spool = await spool_upload(body(data[:40]))
        with pytest.raises(CorruptMedia):
            await inspect_upload(spool, filename="cut.flac")
        spool.close()
        spool = await spool_upload(body(b"just text, no music"))
        with pytest.raises(UnsupportedMedia):
            await inspect_upload(spool, filename="a.mp3")
        spool.close()

    trio.run(main)
