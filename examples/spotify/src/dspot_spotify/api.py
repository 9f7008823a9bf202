"""The HTTP API of a :class:`~dspot_spotify.node.SpotifyNode` (JSON; errors are RFC 9457
problem documents).

=========================================  ================================================
``POST /api/auth/register``                ``{"username", "password"}`` → 201
                                           ``{"token", "user_id", "username", "role"}``
                                           (the cluster's first user is its admin)
``POST /api/auth/login``                   ``{"username", "password"}`` → 200
                                           ``{"token", "user_id", "username", "role"}``
``GET /api/me``                            ``{"user_id", "username", "role"}``: who I am
``POST /api/songs``                        the audio as the raw body (file name in
                                           ``?filename=`` or ``X-Filename``), or as field
                                           ``file`` of a ``multipart/form-data`` body
                                           (file name from its part; other fields
                                           ignored; no ``file``: 422; a broken form: 400)
                                           → 201 song JSON; the same bytes again → **200
                                           with the existing song** (and
                                           ``"duplicate": true``); too large: 413; not
                                           audio: 415; a corrupt file: 422
``GET /api/songs``                         ``q``, ``artist`` (artist id), ``album`` (album
                                           id), ``genre``, ``sort`` (``title``,
                                           ``recent``, ``plays``: most played first,
                                           ``likes``), ``page``, ``limit`` → a page
                                           ``{"items", "page", "limit", "total"}``
``GET /api/songs/{id}``                    the song (``plays``: how often it was played)
``PATCH /api/songs/{id}``                  any of ``{"title", "artist_id", "album_id",
                                           "track", "year", "genres"}`` (``null`` clears
                                           album, track, year) → 200 the song
``DELETE /api/songs/{id}``                 → 204; its audio and cover blobs are deleted
                                           too once no song or album uses them
``GET|HEAD /api/songs/{id}/stream``        the audio: Range/206, ETag (its sha256),
                                           conditional requests; ``?token=`` accepted
``GET /api/songs/{id}/cover``              the cover image (song's own, else album's);
                                           ``?token=`` accepted
``PUT|DELETE /api/songs/{id}/like``        like / unlike a song → 200 the song
``POST /api/songs/{id}/plays``             record one play of the song → 200 the song
``GET /api/me/likes``                      ``page``, ``limit`` → a page of the songs I like
``GET /api/me/likes/albums``               ``page``, ``limit`` → a page of the albums I like
``GET /api/me/likes/artists``              ``page``, ``limit`` → a page of the artists I like
``GET /api/artists``                       ``q``, ``genre``, ``page``, ``limit`` → a page
``GET /api/artists/{id}``                  the artist with ``albums`` and ``singles``
``PATCH /api/artists/{id}``                ``{"name"}`` → 200 the artist (as GET)
``DELETE /api/artists/{id}``               → 204 (409 while it has albums or songs)
``PUT|DELETE /api/artists/{id}/like``      like / unlike an artist → 200 the artist (as GET)
``GET /api/albums``                        ``q``, ``artist``, ``genre``, ``page``, ``limit``
``GET /api/albums/{id}``                   the album with its ``tracks``
``PATCH /api/albums/{id}``                 any of ``{"title", "artist_id", "year"}`` → 200
                                           the album (as GET)
``DELETE /api/albums/{id}``                → 204 (409 while it has songs); its cover blob
                                           is deleted once nothing uses it
``PUT|DELETE /api/albums/{id}/like``       like / unlike an album → 200 the album (as GET)
``GET /api/genres``                        ``{"items": [{"genre", "songs"}]}``: every genre
                                           with its song count, most songs first, then
                                           by name
``GET /api/playlists``                     ``{"items"}``: my playlists
``POST /api/playlists``                    ``{"name"}`` → 201 the playlist
``GET /api/playlists/{id}``                the playlist with its ``items`` (any user)
``PATCH /api/playlists/{id}``              ``{"name"}`` → 200 the playlist (owner only)
``DELETE /api/playlists/{id}``             → 204 (owner or admin)
``POST /api/playlists/{id}/songs``         ``{"song_id"}`` → 201 the new item (owner only)
``DELETE /api/playlists/{id}/songs/{i}``   remove item ``i`` → 200 the playlist
``POST /api/playlists/{id}/move``          ``{"item_id", "position"}`` (0-based; past the
                                           end: last) → 200 the playlist
``GET /healthz``                           ``{"status": "ok", "quorum": bool}``
=========================================  ================================================

Everything but register, login and ``/healthz`` needs ``Authorization: Bearer <token>``
(401 otherwise). Only the stream and cover of a song, which a browser's ``<audio>`` and
``<img>`` load without headers, also take the token as ``?token=<token>``: an opt-in per
handler (:meth:`Api.authenticate` with ``allow_query_token``), since a URL ends up in
histories and logs.

Unknown ids answer 404. Songs, albums and artists may be changed or deleted by the user
who created them or an admin, playlists by their owner (deleted: also an admin); anyone
else gets 403. A PATCH body is a JSON object of the fields to change: an unknown field or
a value of the wrong type is a 422 that names it.

**Read your writes.** Every write answers with ``X-Log-Position: <epoch>.<seq>``, the log
position of its last entry. A read that sends that header back, to any node, waits until
that node's replica has applied the position (503 after ``read_wait_timeout``).

**Writes on a minority side** of a partition answer 503 with the detail
``read-only: no quorum`` (and ``Retry-After``); reads keep working there.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from typing import Any

import anyio
import attrs
from dspot.blobstore import BlobStoreError, IntegrityError
from dspot.http import HTTPError, Request, Response, Router, representation_response
from dspot.tokenring import CommitTimeout, NoQuorum

from dspot_spotify import accounts, catalog, observe, subsonic
from dspot_spotify.auth import CredentialError, InvalidToken, TokenClaims
from dspot_spotify.ingest import entries_for_upload
from dspot_spotify.node import WRITE_BEHIND_DELAY, Sabotage, SpotifyNode
from dspot_spotify.tags import MediaError, sniff_image_mime
from dspot_spotify.upload import (
    FORM_OVERHEAD,
    FormFile,
    InspectedUpload,
    SpooledUpload,
    form_boundary,
    inspect_upload,
    spool_upload,
)

__all__ = ["LOG_POSITION_HEADER", "NO_QUORUM", "Api", "Credentials", "build_router"]

#: What a PATCH may change, per entry type (the rest of the entry comes from the replica).
SONG_EDITABLE = ("title", "artist_id", "album_id", "track", "year", "genres")
ALBUM_EDITABLE = ("title", "artist_id", "year")
ARTIST_EDITABLE = ("name",)

LOG_POSITION_HEADER = "x-log-position"
NO_QUORUM = "read-only: no quorum"


@attrs.frozen
class Credentials:
    username: str
    password: str


@attrs.frozen
class PlaylistName:
    name: str


@attrs.frozen
class PlaylistSong:
    song_id: str


@attrs.frozen
class PlaylistMove:
    item_id: str
    position: int


# -- helpers ---------------------------------------------------------------------------------


def no_quorum() -> HTTPError:
    return HTTPError(503, NO_QUORUM, headers=[("retry-after", "1")])


def format_position(pos: catalog.LogPosition) -> str:
    return f"{pos.epoch}.{pos.seq}"


def parse_position(text: str) -> catalog.LogPosition:
    epoch, dot, seq = text.strip().partition(".")
    if not dot or not epoch.isdigit() or not seq.isdigit():
        raise HTTPError(400, f"malformed {LOG_POSITION_HEADER}: expected <epoch>.<seq>")
    return catalog.LogPosition(int(epoch), int(seq))


def _int_param(request: Request, name: str, default: int) -> int:
    value = request.query.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise HTTPError(422, f"query parameter {name} must be an integer") from None


class Api:
    """The handlers, bound to one node."""

    def __init__(self, node: SpotifyNode) -> None:
        self.node = node

    # -- plumbing ----------------------------------------------------------------------------

    async def authenticate(
        self, request: Request, *, allow_query_token: bool = False
    ) -> TokenClaims:
        """The claims of the request's ``Authorization: Bearer`` token (401 without one).

        With ``allow_query_token`` a ``?token=`` query parameter is accepted when there is
        no Authorization header: only for what browsers load without headers (``<audio>``,
        ``<img>``, WebSocket), never by default, as URLs end up in histories and logs.
        """
        header = request.headers.get("authorization")
        challenge = [("www-authenticate", 'Bearer realm="dspot"')]
        if header is None and allow_query_token and "token" in request.query:
            scheme, token = "bearer", request.query["token"]
        else:
            scheme, _, token = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise HTTPError(401, "a bearer token is required", headers=challenge)
        # Read your writes covers the token too: a user registered at the client's log
        # position is unknown to a replica that has not applied it yet.
        await self.catch_up(request)
        try:
            return await self.node.replica.read(
                accounts.authenticate_token,
                self.node.signer,
                token.strip(),
                now_ms=self.node.now_ms(),
            )
        except InvalidToken as e:
            raise HTTPError(401, str(e), headers=challenge) from None

    async def catch_up(self, request: Request) -> None:
        """Wait for the log position the client says it has seen (read your writes)."""
        value = request.headers.get(LOG_POSITION_HEADER)
        if value is None:
            return
        pos = parse_position(value)
        try:
            with anyio.fail_after(self.node.config.read_wait_timeout):
                await self.node.replica.wait_applied(pos)
        except TimeoutError:
            raise HTTPError(
                503,
                f"this replica has not reached log position {value} yet",
                headers=[("retry-after", "1")],
            ) from None

    async def submit(self, entry: catalog.Entry) -> catalog.LogPosition:
        """Commit one entry through the token ring (503 on a minority side or timeout)."""
        node = self.node
        try:
            pos = await node.ring.submit(
                catalog.encode_entry(entry),
                entry_id=node.env.ids(),
                timeout=node.config.commit_timeout,
            )
        except NoQuorum:
            raise no_quorum() from None
        except CommitTimeout:
            raise HTTPError(
                503,
                "the write was not committed in time; its outcome is unknown",
                headers=[("retry-after", "1")],
            ) from None
        return catalog.LogPosition(pos.epoch, pos.seq)

    async def result(self, pos: catalog.LogPosition) -> catalog.ApplyResult:
        """Wait until ``pos`` is applied here and say whether it was applied or rejected."""
        try:
            with anyio.fail_after(self.node.config.read_wait_timeout):
                return await self.node.replica.outcome(pos)
        except TimeoutError:
            raise HTTPError(503, "the write committed but is not applied here yet") from None

    async def outcome(self, pos: catalog.LogPosition) -> None:
        """Wait until ``pos`` is applied here; raise its rejection as a problem document."""
        result = await self.result(pos)
        if result.status == "rejected":
            code = result.code or "invalid"
            raise HTTPError(catalog.REJECT_STATUS[code], result.reason, extensions={"code": code})

    async def commit(self, entry: catalog.Entry) -> catalog.LogPosition:
        """Commit ``entry`` and wait for its outcome here (its rejection as a problem)."""
        if not self.node.has_quorum():
            raise no_quorum()
        pos = await self.submit(entry)
        await self.outcome(pos)
        return pos

    async def playlist_or_404(self, playlist_id: str) -> catalog.PlaylistDetail:
        playlist = await self.node.replica.read(catalog.get_playlist, playlist_id)
        if playlist is None:
            raise HTTPError(404, f"no playlist {playlist_id}")
        return playlist

    async def song_or_404(self, song_id: str) -> catalog.SongView:
        song = await self.node.replica.read(catalog.get_song, song_id)
        if song is None:
            raise HTTPError(404, f"no song {song_id}")
        return song

    # -- auth --------------------------------------------------------------------------------

    async def register(self, request: Request) -> Response:
        creds = await request.json(Credentials)
        if not self.node.has_quorum():
            raise no_quorum()
        node = self.node
        try:
            entry = accounts.registration(
                creds.username,
                creds.password,
                user_id=node.env.ids(),
                at=node.now_ms(),
                token_bytes=node.env.secure_token,
                params=node.config.scrypt,
            )
        except CredentialError as e:
            raise HTTPError(422, str(e)) from None
        if await node.replica.read(_user_count) == 0:
            # The first user of a new cluster becomes its admin. If someone else got there
            # first, the log rejects this entry as forbidden and we register a plain user.
            admin = attrs.evolve(entry, role="admin")
            pos = await self.submit(admin)
            result = await self.result(pos)
            if result.status == "applied":
                entry = admin
            elif result.code == "forbidden":
                pos = await self.submit(entry)
                await self.outcome(pos)
            else:
                await self.outcome(pos)  # raises the rejection
        else:
            pos = await self.submit(entry)
            await self.outcome(pos)
        issued = node.signer.issue(entry.user_id, now_ms=node.now_ms())
        body = {
            "token": issued.token,
            "user_id": entry.user_id,
            "username": entry.username,
            "role": entry.role,
        }
        return Response.json(body, 201, headers=[(LOG_POSITION_HEADER, format_position(pos))])

    async def login(self, request: Request) -> Response:
        creds = await request.json(Credentials)
        await self.catch_up(request)
        try:
            user = await self.node.replica.read(
                accounts.check_login, creds.username, creds.password
            )
        except accounts.InvalidCredentials as e:
            raise HTTPError(401, str(e)) from None
        issued = self.node.signer.issue(user.id, now_ms=self.node.now_ms())
        return Response.json(
            {
                "token": issued.token,
                "user_id": user.id,
                "username": user.username,
                "role": user.role,
            }
        )

    # -- songs -------------------------------------------------------------------------------

    async def upload(self, request: Request) -> Response:
        claims = await self.authenticate(request)
        node = self.node
        if not node.has_quorum():
            raise no_quorum()
        filename = request.query.get("filename") or request.headers.get("x-filename")
        try:
            received, filename = await self.receive_upload(request, filename)
        except MediaError as e:
            raise HTTPError(e.status, e.message) from None
        spool: SpooledUpload | None = received
        sha256, size = received.sha256, received.size
        try:
            await self.catch_up(request)
            existing = await node.replica.read(_song_with_blob, sha256)
            if existing is not None:
                song = await self.song_or_404(existing)
                return Response.json({**_song_json(song), "duplicate": True}, 200)
            try:
                found = inspect_upload(received, filename=filename)
            except MediaError as e:
                raise HTTPError(e.status, e.message) from None
            if Sabotage.ACK_BEFORE_SYNC in node.config.sabotage and node.background:
                node.background.start_soon(_write_behind, node, received, found)
                spool = None  # the write-behind task owns it now
            else:
                await _store_blobs(node, received, found)
        finally:
            if spool is not None:
                spool.close()
        song_id = node.env.ids()
        entries = await node.replica.read(
            entries_for_upload,
            found.tags,
            actor=claims.user_id,
            at=node.now_ms(),
            song_id=song_id,
            blob_sha256=sha256,
            size=size,
            cover_sha256=found.cover_sha256,
        )
        pos = catalog.LogPosition(0, 0)
        for entry in entries:
            pos = await self.submit(entry)
        await self.outcome(pos)  # the last entry is the song itself
        song = await self.song_or_404(song_id)
        headers = [
            (LOG_POSITION_HEADER, format_position(pos)),
            ("location", f"/api/songs/{song_id}"),
        ]
        return Response.json(_song_json(song), 201, headers=headers)

    async def receive_upload(
        self, request: Request, filename: str | None
    ) -> tuple[SpooledUpload, str | None]:
        """Spool the upload's audio, from the raw body or the ``file`` field of a form; with
        the file name to fall back on for tags (the form part's, else ``filename``)."""
        limit = self.node.config.max_upload
        boundary = form_boundary(request.headers.get("content-type"))
        if boundary is None:
            request.max_body_size = limit
            return await spool_upload(request.stream(), max_bytes=limit), filename
        # The file alone is held to the limit (413); the form around it may add a little.
        request.max_body_size = limit + FORM_OVERHEAD
        form = FormFile(request.stream(), boundary)
        spool = await spool_upload(form.chunks(), max_bytes=limit)
        return spool, form.filename or filename

    async def paged(
        self,
        request: Request,
        query: Callable[..., catalog.Page[Any]],
        to_json: Callable[[Any], dict[str, Any]],
        *args: Any,
        **filters: Any,
    ) -> Response:
        """One page of a catalog listing, with ``page``/``limit`` from the query string;
        a value the catalog refuses (bad page, limit or sort) is a 422."""
        try:
            page = await self.node.replica.read(
                query,
                *args,
                page=_int_param(request, "page", 1),
                limit=_int_param(request, "limit", 50),
                **filters,
            )
        except ValueError as e:
            raise HTTPError(422, str(e)) from None
        return Response.json(_page_json(page, to_json))

    async def list_songs(self, request: Request) -> Response:
        await self.authenticate(request)
        await self.catch_up(request)
        query = request.query
        sort = query.get("sort") or None
        return await self.paged(
            request,
            catalog.list_songs,
            _song_json,
            q=query.get("q") or None,
            artist_id=query.get("artist") or None,
            album_id=query.get("album") or None,
            genre=query.get("genre") or None,
            sort=sort,
        )

    async def get_song(self, request: Request) -> Response:
        await self.authenticate(request)
        await self.catch_up(request)
        song = await self.song_or_404(request.path_params["song_id"])
        return Response.json(_song_json(song))

    async def stream(self, request: Request) -> Response:
        await self.authenticate(request, allow_query_token=True)  # for <audio src>
        await self.catch_up(request)
        song = await self.song_or_404(request.path_params["song_id"])
        return song_audio(self.node, request, song)

    async def cover(self, request: Request) -> Response:
        await self.authenticate(request, allow_query_token=True)  # for <img src>
        await self.catch_up(request)
        song = await self.song_or_404(request.path_params["song_id"])
        if song.cover_sha256 is None:
            raise HTTPError(404, "this song has no cover")
        try:
            data = await self.node.blobs.read(song.cover_sha256)
        except BlobStoreError as e:
            raise HTTPError(503, f"cover unavailable: {e}") from None
        mime = sniff_image_mime(data) or "application/octet-stream"
        return Response(
            200,
            [
                ("content-type", mime),
                ("etag", f'"{song.cover_sha256}"'),
                ("cache-control", "private, max-age=31536000, immutable"),
            ],
            data,
        )

    # -- likes -------------------------------------------------------------------------------

    async def like(self, request: Request) -> Response:
        return await self._like(request, like=True)

    async def unlike(self, request: Request) -> Response:
        return await self._like(request, like=False)

    async def _like(self, request: Request, *, like: bool) -> Response:
        claims = await self.authenticate(request)
        song_id = request.path_params["song_id"]
        node = self.node
        kind = catalog.LikeSong if like else catalog.UnlikeSong
        return await self._edit_song(
            song_id, kind(actor=claims.user_id, at=node.now_ms(), song_id=song_id)
        )

    async def _edit_song(self, song_id: str, entry: catalog.Entry) -> Response:
        """Commit ``entry`` and answer with the song as it is now."""
        pos = await self.commit(entry)
        song = await self.song_or_404(song_id)
        return Response.json(
            _song_json(song), headers=[(LOG_POSITION_HEADER, format_position(pos))]
        )

    async def record_play(self, request: Request) -> Response:
        claims = await self.authenticate(request)
        song_id = request.path_params["song_id"]
        entry = catalog.RecordPlay(actor=claims.user_id, at=self.node.now_ms(), song_id=song_id)
        return await self._edit_song(song_id, entry)

    # -- editing and deleting songs, albums, artists ------------------------------------------

    async def update_song(self, request: Request) -> Response:
        claims = await self.authenticate(request)
        changes = await _changes(request, catalog.UpdateSong, SONG_EDITABLE)
        song = await self.song_or_404(request.path_params["song_id"])
        # Read, modify, write: the entry carries every field, the unchanged ones as read here.
        fields: dict[str, Any] = {
            "title": song.title,
            "artist_id": song.artist_id,
            "album_id": song.album_id,
            "track": song.track,
            "year": song.year,
            "genres": song.genres,
        }
        entry = catalog.UpdateSong(
            actor=claims.user_id, at=self.node.now_ms(), song_id=song.id, **(fields | changes)
        )
        return await self._edit_song(song.id, entry)

    async def delete_song(self, request: Request) -> Response:
        claims = await self.authenticate(request)
        song = await self.song_or_404(request.path_params["song_id"])
        entry = catalog.DeleteSong(actor=claims.user_id, at=self.node.now_ms(), song_id=song.id)
        pos = await self.commit(entry)
        await self.collect_blobs(song.blob_sha256, song.cover_sha256)
        return Response(204, [(LOG_POSITION_HEADER, format_position(pos))])

    async def collect_blobs(self, *hashes: str | None) -> None:
        """Delete the blobs among ``hashes`` that no song or album uses any more (after the
        commit that dropped their last use is applied here). Best effort: a failure is
        logged, never raised, and leaves at worst an orphan blob."""
        node = self.node
        for sha in dict.fromkeys(h for h in hashes if h is not None):
            try:
                if await node.replica.read(catalog.blob_references, sha) == 0:
                    await node.blobs.delete(sha)
            except Exception as e:  # the write is done; an orphan blob is only space
                node.env.log(logging.WARNING, "spotify.blob_delete_failed", sha256=sha, error=e)

    async def album_or_404(self, album_id: str) -> catalog.AlbumDetail:
        detail = await self.node.replica.read(catalog.get_album, album_id)
        if detail is None:
            raise HTTPError(404, f"no album {album_id}")
        return detail

    async def artist_or_404(self, artist_id: str) -> catalog.ArtistDetail:
        detail = await self.node.replica.read(catalog.get_artist, artist_id)
        if detail is None:
            raise HTTPError(404, f"no artist {artist_id}")
        return detail

    async def update_album(self, request: Request) -> Response:
        claims = await self.authenticate(request)
        changes = await _changes(request, catalog.UpdateAlbum, ALBUM_EDITABLE)
        album = (await self.album_or_404(request.path_params["album_id"])).album
        fields: dict[str, Any] = {
            "title": album.title,
            "artist_id": album.artist_id,
            "year": album.year,
            "cover_sha256": album.cover_sha256,
        }
        entry = catalog.UpdateAlbum(
            actor=claims.user_id, at=self.node.now_ms(), album_id=album.id, **(fields | changes)
        )
        pos = await self.commit(entry)
        detail = await self.album_or_404(album.id)
        headers = [(LOG_POSITION_HEADER, format_position(pos))]
        return Response.json(_album_detail_json(detail), headers=headers)

    async def delete_album(self, request: Request) -> Response:
        claims = await self.authenticate(request)
        album = (await self.album_or_404(request.path_params["album_id"])).album
        entry = catalog.DeleteAlbum(actor=claims.user_id, at=self.node.now_ms(), album_id=album.id)
        pos = await self.commit(entry)
        await self.collect_blobs(album.cover_sha256)
        return Response(204, [(LOG_POSITION_HEADER, format_position(pos))])

    async def update_artist(self, request: Request) -> Response:
        claims = await self.authenticate(request)
        changes = await _changes(request, catalog.UpdateArtist, ARTIST_EDITABLE)
        artist = (await self.artist_or_404(request.path_params["artist_id"])).artist
        fields: dict[str, Any] = {"name": artist.name}
        entry = catalog.UpdateArtist(
            actor=claims.user_id, at=self.node.now_ms(), artist_id=artist.id, **(fields | changes)
        )
        pos = await self.commit(entry)
        detail = await self.artist_or_404(artist.id)
        headers = [(LOG_POSITION_HEADER, format_position(pos))]
        return Response.json(_artist_detail_json(detail), headers=headers)

    async def delete_artist(self, request: Request) -> Response:
        claims = await self.authenticate(request)
        artist = (await self.artist_or_404(request.path_params["artist_id"])).artist
        entry = catalog.DeleteArtist(
            actor=claims.user_id, at=self.node.now_ms(), artist_id=artist.id
        )
        pos = await self.commit(entry)
        return Response(204, [(LOG_POSITION_HEADER, format_position(pos))])

    # -- me ------------------------------------------------------------------------------------

    async def me(self, request: Request) -> Response:
        claims = await self.authenticate(request)
        user = await self.node.replica.read(catalog.get_user, claims.user_id)
        if user is None:  # authenticate() found the user; only a broken replica gets here
            raise HTTPError(401, "unknown user")
        return Response.json({"user_id": user.id, "username": user.username, "role": user.role})

    async def my_likes(self, request: Request) -> Response:
        claims = await self.authenticate(request)
        return await self.paged(request, catalog.liked_songs, _song_json, claims.user_id)

    async def my_liked_albums(self, request: Request) -> Response:
        claims = await self.authenticate(request)
        return await self.paged(request, catalog.liked_albums, _album_json, claims.user_id)

    async def my_liked_artists(self, request: Request) -> Response:
        claims = await self.authenticate(request)
        return await self.paged(request, catalog.liked_artists, _artist_json, claims.user_id)

    async def like_album(self, request: Request) -> Response:
        return await self._like_album(request, like=True)

    async def unlike_album(self, request: Request) -> Response:
        return await self._like_album(request, like=False)

    async def _like_album(self, request: Request, *, like: bool) -> Response:
        claims = await self.authenticate(request)
        album_id = request.path_params["album_id"]
        kind = catalog.LikeAlbum if like else catalog.UnlikeAlbum
        pos = await self.commit(
            kind(actor=claims.user_id, at=self.node.now_ms(), album_id=album_id)
        )
        detail = await self.album_or_404(album_id)
        headers = [(LOG_POSITION_HEADER, format_position(pos))]
        return Response.json(_album_detail_json(detail), headers=headers)

    async def like_artist(self, request: Request) -> Response:
        return await self._like_artist(request, like=True)

    async def unlike_artist(self, request: Request) -> Response:
        return await self._like_artist(request, like=False)

    async def _like_artist(self, request: Request, *, like: bool) -> Response:
        claims = await self.authenticate(request)
        artist_id = request.path_params["artist_id"]
        kind = catalog.LikeArtist if like else catalog.UnlikeArtist
        entry = kind(actor=claims.user_id, at=self.node.now_ms(), artist_id=artist_id)
        pos = await self.commit(entry)
        detail = await self.artist_or_404(artist_id)
        headers = [(LOG_POSITION_HEADER, format_position(pos))]
        return Response.json(_artist_detail_json(detail), headers=headers)

    # -- artists and albums ------------------------------------------------------------------

    async def list_artists(self, request: Request) -> Response:
        await self.authenticate(request)
        query = request.query
        return await self.paged(
            request,
            catalog.list_artists,
            _artist_json,
            q=query.get("q") or None,
            genre=query.get("genre") or None,
        )

    async def get_artist(self, request: Request) -> Response:
        await self.authenticate(request)
        detail = await self.artist_or_404(request.path_params["artist_id"])
        return Response.json(_artist_detail_json(detail))

    async def list_albums(self, request: Request) -> Response:
        await self.authenticate(request)
        query = request.query
        return await self.paged(
            request,
            catalog.list_albums,
            _album_json,
            q=query.get("q") or None,
            artist_id=query.get("artist") or None,
            genre=query.get("genre") or None,
        )

    async def get_album(self, request: Request) -> Response:
        await self.authenticate(request)
        detail = await self.album_or_404(request.path_params["album_id"])
        return Response.json(_album_detail_json(detail))

    async def list_genres(self, request: Request) -> Response:
        await self.authenticate(request)
        await self.catch_up(request)
        rows = await self.node.replica.read(catalog.genres)
        return Response.json({"items": [{"genre": g, "songs": n} for g, n in rows]})

    # -- playlists ---------------------------------------------------------------------------

    async def my_playlists(self, request: Request) -> Response:
        claims = await self.authenticate(request)
        playlists = await self.node.replica.read(catalog.user_playlists, claims.user_id)
        return Response.json({"items": [attrs.asdict(p) for p in playlists]})

    async def create_playlist(self, request: Request) -> Response:
        claims = await self.authenticate(request)
        body = await request.json(PlaylistName)
        node = self.node
        playlist_id = node.env.ids()
        entry = catalog.CreatePlaylist(
            actor=claims.user_id, at=node.now_ms(), playlist_id=playlist_id, name=body.name
        )
        pos = await self.commit(entry)
        playlist = await self.playlist_or_404(playlist_id)
        headers = [
            (LOG_POSITION_HEADER, format_position(pos)),
            ("location", f"/api/playlists/{playlist_id}"),
        ]
        return Response.json(_playlist_json(playlist), 201, headers=headers)

    async def get_playlist(self, request: Request) -> Response:
        await self.authenticate(request)
        playlist = await self.playlist_or_404(request.path_params["playlist_id"])
        return Response.json(_playlist_json(playlist))

    async def _edit_playlist(self, playlist_id: str, entry: catalog.Entry) -> Response:
        pos = await self.commit(entry)
        playlist = await self.playlist_or_404(playlist_id)
        headers = [(LOG_POSITION_HEADER, format_position(pos))]
        return Response.json(_playlist_json(playlist), headers=headers)

    async def rename_playlist(self, request: Request) -> Response:
        claims = await self.authenticate(request)
        body = await request.json(PlaylistName)
        playlist_id = request.path_params["playlist_id"]
        entry = catalog.RenamePlaylist(
            actor=claims.user_id, at=self.node.now_ms(), playlist_id=playlist_id, name=body.name
        )
        return await self._edit_playlist(playlist_id, entry)

    async def delete_playlist(self, request: Request) -> Response:
        claims = await self.authenticate(request)
        entry = catalog.DeletePlaylist(
            actor=claims.user_id,
            at=self.node.now_ms(),
            playlist_id=request.path_params["playlist_id"],
        )
        pos = await self.commit(entry)
        return Response(204, [(LOG_POSITION_HEADER, format_position(pos))])

    async def add_to_playlist(self, request: Request) -> Response:
        claims = await self.authenticate(request)
        body = await request.json(PlaylistSong)
        node = self.node
        playlist_id = request.path_params["playlist_id"]
        item_id = node.env.ids()
        entry = catalog.AddToPlaylist(
            actor=claims.user_id,
            at=node.now_ms(),
            playlist_id=playlist_id,
            item_id=item_id,
            song_id=body.song_id,
        )
        pos = await self.commit(entry)
        playlist = await self.playlist_or_404(playlist_id)
        [item] = [i for i in playlist.items if i.item_id == item_id]
        return Response.json(
            _item_json(item), 201, headers=[(LOG_POSITION_HEADER, format_position(pos))]
        )

    async def remove_from_playlist(self, request: Request) -> Response:
        claims = await self.authenticate(request)
        playlist_id = request.path_params["playlist_id"]
        entry = catalog.RemoveFromPlaylist(
            actor=claims.user_id,
            at=self.node.now_ms(),
            playlist_id=playlist_id,
            item_id=request.path_params["item_id"],
        )
        return await self._edit_playlist(playlist_id, entry)

    async def move_in_playlist(self, request: Request) -> Response:
        claims = await self.authenticate(request)
        body = await request.json(PlaylistMove)
        if body.position < 0:
            raise HTTPError(422, "position must be 0 or more")
        playlist_id = request.path_params["playlist_id"]
        playlist = await self.playlist_or_404(playlist_id)
        # The log names items, not indexes: "before the item now at that index, the moved
        # item left out" (None: to the end).
        others = [i.item_id for i in playlist.items if i.item_id != body.item_id]
        before = others[body.position] if body.position < len(others) else None
        entry = catalog.MovePlaylistItem(
            actor=claims.user_id,
            at=self.node.now_ms(),
            playlist_id=playlist_id,
            item_id=body.item_id,
            before_item_id=before,
        )
        return await self._edit_playlist(playlist_id, entry)

    # -- health ------------------------------------------------------------------------------

    async def healthz(self, request: Request) -> Response:
        return Response.json({"status": "ok", "quorum": self.node.has_quorum()})


def _page_json(page: catalog.Page[Any], item: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    return {
        "items": [item(i) for i in page.items],
        "page": page.page,
        "limit": page.limit,
        "total": page.total,
    }


def _artist_json(artist: catalog.ArtistView) -> dict[str, Any]:
    return attrs.asdict(artist)


def _album_json(album: catalog.AlbumView) -> dict[str, Any]:
    return attrs.asdict(album)


def _artist_detail_json(detail: catalog.ArtistDetail) -> dict[str, Any]:
    return {
        **_artist_json(detail.artist),
        "albums": [_album_json(a) for a in detail.albums],
        "singles": [_song_json(s) for s in detail.singles],
    }


def _album_detail_json(detail: catalog.AlbumDetail) -> dict[str, Any]:
    return {**_album_json(detail.album), "tracks": [_song_json(s) for s in detail.tracks]}


def _item_json(item: catalog.PlaylistItemView) -> dict[str, Any]:
    return {"item_id": item.item_id, "position": item.position, "song": _song_json(item.song)}


def _playlist_json(detail: catalog.PlaylistDetail) -> dict[str, Any]:
    return {**attrs.asdict(detail.playlist), "items": [_item_json(i) for i in detail.items]}


async def _store_blobs(node: SpotifyNode, spool: SpooledUpload, found: InspectedUpload) -> None:
    """The upload's audio and cover into the blob store, acknowledged by W synced copies."""
    try:
        await node.blobs.put(spool.chunks(), sha256=spool.sha256)
        if found.cover is not None and found.cover_sha256 is not None:
            await node.blobs.put(_once(found.cover), sha256=found.cover_sha256)
    except (BlobStoreError, IntegrityError) as e:
        raise HTTPError(503, f"could not store the file: {e}") from None


async def _write_behind(node: SpotifyNode, spool: SpooledUpload, found: InspectedUpload) -> None:
    """:attr:`Sabotage.ACK_BEFORE_SYNC`: store an upload that was already acknowledged."""
    try:
        await anyio.sleep(WRITE_BEHIND_DELAY)
        await _store_blobs(node, spool, found)
    except HTTPError as e:
        node.env.log(logging.ERROR, "spotify.SABOTAGE.upload_lost", sha256=spool.sha256, error=e)
    finally:
        spool.close()


def _song_json(song: catalog.SongView) -> dict[str, Any]:
    return {
        **attrs.asdict(song, recurse=False),
        "genres": list(song.genres),
        "plays": song.play_count,
    }


async def _changes(
    request: Request, kind: type[catalog.Entry], editable: Collection[str]
) -> dict[str, Any]:
    """A PATCH body: a JSON object of some ``editable`` fields of ``kind`` (400 if not JSON,
    422 naming the field for an unknown field or a value of the wrong type)."""
    try:
        raw = json.loads(await request.body())
    except ValueError as e:
        raise HTTPError(400, f"body is not valid JSON: {e}") from None
    try:
        return catalog.entry_changes(kind, raw, editable)
    except catalog.InvalidEntry as e:
        raise HTTPError(422, str(e)) from None


def _user_count(tx: catalog.Tx) -> int:
    [(count,)] = list(tx.execute("SELECT COUNT(*) FROM users"))
    return int(count)


def _song_with_blob(tx: catalog.Tx, sha256: str) -> str | None:
    rows = list(
        tx.execute("SELECT id FROM songs WHERE blob_sha256 = ? ORDER BY n LIMIT 1", (sha256,))
    )
    return str(rows[0][0]) if rows else None


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


def song_audio(
    node: SpotifyNode, request: Request, song: catalog.SongView, *extra: tuple[str, str]
) -> Response:
    """The song's audio from the blob store, with Range/206, its sha256 as the ETag and
    conditional requests (the REST and the Subsonic API serve it alike)."""
    blobs = node.blobs
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
        headers=[("cache-control", "private, max-age=31536000, immutable"), *extra],
    )


def build_router(node: SpotifyNode) -> Router:
    """The API's routes for ``node``."""
    api = Api(node)
    router = Router()
    routes: list[tuple[str, str, Callable[[Request], Awaitable[Response]]]] = [
        ("POST", "/api/auth/register", api.register),
        ("POST", "/api/auth/login", api.login),
        ("POST", "/api/songs", api.upload),
        ("GET", "/api/songs", api.list_songs),
        ("GET", "/api/songs/{song_id}", api.get_song),
        ("GET", "/api/songs/{song_id}/stream", api.stream),
        ("GET", "/api/songs/{song_id}/cover", api.cover),
        ("PATCH", "/api/songs/{song_id}", api.update_song),
        ("DELETE", "/api/songs/{song_id}", api.delete_song),
        ("PUT", "/api/songs/{song_id}/like", api.like),
        ("DELETE", "/api/songs/{song_id}/like", api.unlike),
        ("POST", "/api/songs/{song_id}/plays", api.record_play),
        ("GET", "/api/me", api.me),
        ("GET", "/api/me/likes", api.my_likes),
        ("GET", "/api/me/likes/albums", api.my_liked_albums),
        ("GET", "/api/me/likes/artists", api.my_liked_artists),
        ("GET", "/api/artists", api.list_artists),
        ("GET", "/api/artists/{artist_id}", api.get_artist),
        ("PATCH", "/api/artists/{artist_id}", api.update_artist),
        ("DELETE", "/api/artists/{artist_id}", api.delete_artist),
        ("PUT", "/api/artists/{artist_id}/like", api.like_artist),
        ("DELETE", "/api/artists/{artist_id}/like", api.unlike_artist),
        ("GET", "/api/albums", api.list_albums),
        ("GET", "/api/albums/{album_id}", api.get_album),
        ("PATCH", "/api/albums/{album_id}", api.update_album),
        ("DELETE", "/api/albums/{album_id}", api.delete_album),
        ("PUT", "/api/albums/{album_id}/like", api.like_album),
        ("DELETE", "/api/albums/{album_id}/like", api.unlike_album),
        ("GET", "/api/genres", api.list_genres),
        ("GET", "/api/playlists", api.my_playlists),
        ("POST", "/api/playlists", api.create_playlist),
        ("GET", "/api/playlists/{playlist_id}", api.get_playlist),
        ("PATCH", "/api/playlists/{playlist_id}", api.rename_playlist),
        ("DELETE", "/api/playlists/{playlist_id}", api.delete_playlist),
        ("POST", "/api/playlists/{playlist_id}/songs", api.add_to_playlist),
        ("DELETE", "/api/playlists/{playlist_id}/songs/{item_id}", api.remove_from_playlist),
        ("POST", "/api/playlists/{playlist_id}/move", api.move_in_playlist),
        ("GET", "/healthz", api.healthz),
    ]
    for method, path, handler in routes:
        router.add(method, path, handler)
    observe.add_routes(router, node, api)  # cluster, replicas, events, metrics, openapi
    subsonic.add_routes(router, node, api)  # /rest/..., /api/me/subsonic
    return router
