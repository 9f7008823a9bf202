"""Subsonic endpoints that answer bytes: ``stream``, ``download`` and ``getCoverArt``
(Range, ETag and conditional requests as the REST API does them)."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Final

from dspot.blobstore import BlobStoreError
from dspot.http import Response

from dspot_spotify import catalog
from dspot_spotify.media import cover_response, song_audio
from dspot_spotify.subsonic.call import Call, Endpoint
from dspot_spotify.subsonic.protocol import GENERIC, NOT_FOUND, SubsonicError, suffix

__all__ = ["ENDPOINTS"]


async def stream(call: Call) -> Response:
    song_id = call.params.require("id")
    try:
        song = await call.song(song_id)
    except SubsonicError:
        # The specification's answer (HTTP 200, error 70) is easy to miss in a player, which
        # just plays nothing: say it where the operator looks too.
        call.node.env.log(
            logging.WARNING, "subsonic.stream_unknown_song", song=song_id, user=call.me.id
        )
        raise
    return song_audio(call.node.blobs, call.request, song)


def _disposition(name: str) -> str:
    """``Content-Disposition: attachment`` with an ASCII fallback and the UTF-8 name."""
    ascii_name = re.sub(r"[^A-Za-z0-9 ._-]", "_", name)
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''" + "".join(
        c
        if (c.isalnum() and c.isascii()) or c in "._-"
        else "%" + "%".join(f"{b:02X}" for b in c.encode())
        for c in name
    )


async def download(call: Call) -> Response:
    song = await call.song(call.params.require("id"))
    disposition = _disposition(f"{song.title}.{suffix(song.mime)}")
    return song_audio(call.node.blobs, call.request, song, ("content-disposition", disposition))


async def get_cover_art(call: Call) -> Response:
    art_id = call.params.require("id")  # a song's or an album's id

    def query(tx: catalog.Tx) -> str | None:
        song = catalog.get_song(tx, art_id)
        if song is not None:
            return song.cover_sha256
        album = catalog.album_row(tx, art_id)
        return None if album is None else album.cover_sha256

    sha = await call.read(query)
    if sha is None:
        raise SubsonicError(NOT_FOUND, f"no cover art {art_id}")
    try:
        data = await call.node.blobs.read(sha)
    except BlobStoreError as e:
        raise SubsonicError(GENERIC, f"cover unavailable: {e}") from None
    return cover_response(data, sha)


ENDPOINTS: Final[Mapping[str, Endpoint]] = {
    "stream": stream,
    "download": download,
    "getCoverArt": get_cover_art,
}
