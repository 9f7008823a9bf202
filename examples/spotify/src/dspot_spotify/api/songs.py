"""Songs: upload, list and search, one song, its audio and cover, edits, plays.

``POST /api/songs`` takes the audio as the raw body (file name in ``?filename=`` or
``X-Filename``) or as field ``file`` of a ``multipart/form-data`` body (file name from its
part; other fields ignored; no ``file``: 422; a broken form: 400) and answers 201 with the
song; the same bytes again answer **200 with the existing song** and ``"duplicate": true``;
too large: 413; not audio: 415; a corrupt file: 422; tags the catalog refuses (a title over
200 characters, more than 10 genres): 422, before anything is stored. ``DELETE`` leaves the
song's audio and cover to the blob collector (:mod:`dspot_spotify.collector`), which deletes
them once no song or album uses them.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator
from typing import Final, Literal

import anyio
import attrs
from dspot.blobstore import BlobStoreError, IntegrityError, UploadFailed
from dspot.http import HTTPError, Request, Response

from dspot_spotify import catalog
from dspot_spotify.api.context import LIMIT, PAGE, Api
from dspot_spotify.api.resource import delete_one, get_one, update_one
from dspot_spotify.api.route import (
    BAD_REQUEST,
    FORBIDDEN,
    INVALID,
    NOT_FOUND,
    TOO_MANY,
    UNAVAILABLE,
    Route,
    TextParam,
    binary,
)
from dspot_spotify.api.schema import json_schema
from dspot_spotify.api.wire import patch_of
from dspot_spotify.auth import TokenClaims
from dspot_spotify.config import WRITE_BEHIND_DELAY, Sabotage
from dspot_spotify.ingest import entries_for_upload
from dspot_spotify.media import cover_response, song_audio
from dspot_spotify.security import unavailable
from dspot_spotify.signin import throttle_error
from dspot_spotify.tags import MediaError
from dspot_spotify.throttle import Throttled
from dspot_spotify.upload import (
    FORM_OVERHEAD,
    FormFile,
    InspectedUpload,
    SpooledUpload,
    form_boundary,
    inspect_upload,
    spool_upload,
)

__all__ = ["ROUTES", "SONG_EDITABLE", "DuplicateSong", "Song", "SongPatch", "lease"]

SONG_EDITABLE: Final = ("title", "artist_id", "album_id", "track", "year", "genres")
"""What a PATCH may change (the rest of the entry comes from the replica)."""


@attrs.frozen(kw_only=True)
class Song(catalog.SongView):
    """A song: names resolved, genres, its audio blob, counters. ``cover_sha256`` is the
    song's own cover, else its album's."""

    plays: int = attrs.field(metadata=json_schema(description="the same as play_count"))

    @classmethod
    def of(cls, view: catalog.SongView) -> Song:
        """The API's form of a catalog song."""
        return cls(**attrs.asdict(view, recurse=False), plays=view.play_count)


@attrs.frozen(kw_only=True)
class DuplicateSong(Song):
    """The song an upload's bytes already were (answered with 200)."""

    duplicate: Literal[True] = True


SongPatch = patch_of(catalog.UpdateSong, SONG_EDITABLE, "SongPatch")


async def _once(data: bytes) -> AsyncGenerator[bytes, None]:
    yield data


async def _receive(api: Api, request: Request) -> tuple[SpooledUpload, str | None]:
    """Spool the upload's audio, from the raw body or the ``file`` field of a form; with
    the file name to fall back on for tags (the form part's, else the query's/header's)."""
    filename = request.query.get("filename") or request.headers.get("x-filename")
    limit = api.node.config.max_upload
    offload = api.node.env.offload
    boundary = form_boundary(request.headers.get("content-type"))
    if boundary is None:
        request.max_body_size = limit
        return await spool_upload(request.stream(), max_bytes=limit, offload=offload), filename
    # The file alone is held to the limit (413); the form around it may add a little.
    request.max_body_size = limit + FORM_OVERHEAD
    form = FormFile(request.stream(), boundary)
    spool = await spool_upload(form.chunks(), max_bytes=limit, offload=offload)
    return spool, form.filename or filename


async def upload(api: Api, request: Request) -> Response:
    """Store an uploaded song; 429 while the user already runs as many uploads as a user
    may at once on this node (``ThrottleConfig.uploads_per_user``)."""
    claims = await api.authenticate(request)
    try:
        with api.node.uploads.slot(claims.user_id):
            return await _upload(api, request, claims)
    except Throttled as e:
        raise throttle_error(e) from None


async def _upload(api: Api, request: Request, claims: TokenClaims) -> Response:
    node = api.node
    api.writer.require_quorum()
    try:
        received, filename = await _receive(api, request)
    except MediaError as e:
        raise HTTPError(e.status, e.message) from None
    spool: SpooledUpload | None = received
    try:
        await api.writer.catch_up(request)
        existing = await api.read(catalog.song_with_blob, received.sha256)
        if existing is not None:
            song = await api.song(existing)
            return api.reply(DuplicateSong(**attrs.asdict(Song.of(song), recurse=False)))
        try:
            found = await inspect_upload(received, filename=filename)
        except MediaError as e:
            raise HTTPError(e.status, e.message) from None
        song_id = node.env.ids()
        at = node.now_ms()
        entries = await api.read(
            entries_for_upload,
            found.tags,
            actor=claims.user_id,
            at=at,
            song_id=song_id,
            blob_sha256=received.sha256,
            size=received.size,
            cover_sha256=found.cover_sha256,
        )
        batch = catalog.Batch.of(entries, actor=claims.user_id, at=at)
        blobs = tuple(dict.fromkeys(h for e in batch.entries for h in catalog.named_blobs(e)))
        # Everything the log will check, checked before a byte is stored (a refused upload
        # leaves nothing behind); then a lease, so the collector keeps the blobs until the
        # song refers to them; then the blobs; then the song, as one entry.
        await api.writer.check(batch, leased=blobs)
        until = await lease(api, claims.user_id, blobs)
        if Sabotage.ACK_BEFORE_SYNC in node.config.sabotage and node.background:
            node.background.start_soon(_write_behind, api, received, found)
            spool = None  # the write-behind task owns it now
        else:
            await _store_blobs(api, received, found)
    finally:
        if spool is not None:
            spool.close()
    if node.now_ms() >= until - int(node.config.upload_lease * 1000 * LEASE_MARGIN):
        raise HTTPError(503, "storing the upload took longer than its lease: upload again")
    done = catalog.Batch.of(batch.entries, actor=claims.user_id, at=node.now_ms())
    pos = await api.writer.commit(done)
    song = await api.song(song_id)
    location = [("location", f"/api/songs/{song_id}")]
    return api.reply(Song.of(song), 201, position=pos, headers=location)


LEASE_MARGIN: Final = 0.1
"""An upload commits its song only while this share of its lease is left."""


async def lease(api: Api, actor: str, blobs: tuple[str, ...]) -> int:
    """Lease ``blobs`` for an upload (committed before they are stored); its end (ms)."""
    node = api.node
    at = node.now_ms()
    until = at + int(node.config.upload_lease * 1000)
    await api.writer.commit(catalog.LeaseBlobs(actor=actor, at=at, blobs=blobs, until=until))
    return until


async def _store_blobs(api: Api, spool: SpooledUpload, found: InspectedUpload) -> None:
    """The upload's audio and cover into the blob store, acknowledged by W synced copies."""
    blobs = api.node.blobs
    try:
        # Closed here even when a put stops half-way: a generator left to the garbage
        # collector is closed from outside any task (the simulation's loop refuses that).
        try:
            async with contextlib.aclosing(spool.chunks()) as audio:
                await blobs.put(audio, sha256=spool.sha256)
        except UploadFailed:
            # Once more: a replica that failed (a full disk, say) is now last in the chain,
            # where it costs a copy instead of the upload.
            async with contextlib.aclosing(spool.chunks()) as audio:
                await blobs.put(audio, sha256=spool.sha256)
        if found.cover is not None and found.cover_sha256 is not None:
            async with contextlib.aclosing(_once(found.cover)) as cover:
                await blobs.put(cover, sha256=found.cover_sha256)
    except (BlobStoreError, IntegrityError) as e:
        raise unavailable(api.node.env, "storing the file", e) from None


async def _write_behind(api: Api, spool: SpooledUpload, found: InspectedUpload) -> None:
    """:attr:`Sabotage.ACK_BEFORE_SYNC`: store an upload that was already acknowledged."""
    try:
        await anyio.sleep(WRITE_BEHIND_DELAY)
        await _store_blobs(api, spool, found)
    except HTTPError as e:
        api.node.env.log(
            logging.ERROR, "spotify.SABOTAGE.upload_lost", sha256=spool.sha256, error=e
        )
    finally:
        spool.close()


async def list_songs(api: Api, request: Request) -> Response:
    await api.authenticate(request)
    page = await api.paged(
        request,
        catalog.list_songs,
        Song.of,
        q=Q.read(request),
        artist_id=ARTIST.read(request),
        album_id=ALBUM.read(request),
        genre=GENRE.read(request),
        sort=SORT.read(request),
    )
    return api.reply(page)


async def _song(api: Api, song_id: str) -> Song:
    return Song.of(await api.song(song_id))


async def stream(api: Api, request: Request) -> Response:
    await api.authenticate(request, allow_query_token=True)  # for <audio src>
    song = await api.song(request.path_params["song_id"])
    return song_audio(api.node.blobs, request, song)


async def cover(api: Api, request: Request) -> Response:
    await api.authenticate(request, allow_query_token=True)  # for <img src>
    song = await api.song(request.path_params["song_id"])
    if song.cover_sha256 is None:
        raise HTTPError(404, "this song has no cover")
    try:
        data = await api.node.blobs.read(song.cover_sha256)
    except BlobStoreError as e:
        raise unavailable(api.node.env, "the cover", e) from None
    return cover_response(data, song.cover_sha256)


async def record_play(api: Api, request: Request) -> Response:
    claims = await api.authenticate(request)
    song_id = request.path_params["song_id"]
    entry = catalog.RecordPlay(actor=claims.user_id, at=api.node.now_ms(), song_id=song_id)
    pos = await api.writer.commit(entry)
    return api.reply(await _song(api, song_id), position=pos)


Q: Final = TextParam("q", "full-text search")
ARTIST: Final = TextParam("artist", "artist id")
ALBUM: Final = TextParam("album", "album id")
GENRE: Final = TextParam("genre", "only this genre")
SORT: Final = TextParam("sort", "order", ("title", "recent", "plays", "likes"))
SONG: Final = "/api/songs/{song_id}"

ROUTES: Final = (
    Route(
        method="POST",
        path="/api/songs",
        handler=upload,
        summary="Upload a song (raw audio body, or multipart field `file`); "
        "the same bytes again answer 200 with the existing song",
        tag="songs",
        query=(TextParam("filename", "file name of a raw-body upload (or X-Filename)"),),
        body={
            **binary("application/octet-stream", "audio/*"),
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
        },
        ok=201,
        ok_description="Created",
        reply=Song,
        also={200: ("The audio already existed: that song", DuplicateSong)},
        write=True,
        errors=(BAD_REQUEST, 413, 415, INVALID, TOO_MANY),  # too large; not audio we can read
    ),
    Route(
        method="GET",
        path="/api/songs",
        handler=list_songs,
        summary="List and search songs",
        tag="songs",
        query=(Q, ARTIST, ALBUM, GENRE, SORT, PAGE, LIMIT),
        reply=catalog.Page[Song],
        errors=(BAD_REQUEST, INVALID),
    ),
    Route(
        method="GET",
        path=SONG,
        handler=get_one("song", _song),
        summary="One song",
        tag="songs",
        reply=Song,
        errors=(NOT_FOUND,),
    ),
    Route(
        method="PATCH",
        path=SONG,
        handler=update_one("song", _song, SongPatch, SONG_EDITABLE, catalog.UpdateSong),
        summary="Edit a song's tags (creator or admin); `null` clears album, track, year",
        tag="songs",
        body=SongPatch,
        reply=Song,
        write=True,
        errors=(BAD_REQUEST, FORBIDDEN, NOT_FOUND, INVALID),
    ),
    Route(
        method="DELETE",
        path=SONG,
        handler=delete_one("song", _song, catalog.DeleteSong),
        summary="Delete a song (creator or admin); unused blobs are collected later",
        tag="songs",
        ok=204,
        ok_description="Deleted",
        write=True,
        errors=(FORBIDDEN, NOT_FOUND),
    ),
    Route(
        method="GET",
        path=f"{SONG}/stream",
        handler=stream,
        summary="The audio, with Range (206), ETag and conditional requests",
        tag="songs",
        query_token=True,
        ok_description="The audio (206 for a range)",
        reply=binary("audio/*"),
        errors=(NOT_FOUND, UNAVAILABLE),
    ),
    Route(
        method="GET",
        path=f"{SONG}/cover",
        handler=cover,
        summary="The song's cover image (its own, else its album's)",
        tag="songs",
        query_token=True,
        ok_description="The image",
        reply=binary("image/*"),
        errors=(NOT_FOUND, UNAVAILABLE),
    ),
    Route(
        method="POST",
        path=f"{SONG}/plays",
        handler=record_play,
        summary="Record one play of a song",
        tag="songs",
        ok_description="The song with its updated `plays`",
        reply=Song,
        write=True,
        errors=(NOT_FOUND,),
    ),
)
