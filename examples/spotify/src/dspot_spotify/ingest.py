"""From an uploaded file's tags to the catalog entries that add it.

The upload endpoint spools the body, calls :func:`dspot_spotify.tags.read_tags`, stores the
audio (and cover) blobs, then appends the entries of :func:`entries_for_upload` to the log
in order.

Artist and album ids are **derived from their names** (UUIDv5 under a fixed namespace), not
drawn at random: two gateways that concurrently upload the first song of a new artist both
emit ``CreateArtist`` with the *same* id, the log keeps the first, rejects the second as a
duplicate, and both songs land under one artist. Song ids are random (from the writer's
seeded id source), since two uploads of one file are two songs by intent.
"""

from __future__ import annotations

import uuid
from typing import Final

from dspot_spotify.catalog import (
    CreateAlbum,
    CreateArtist,
    CreateSong,
    Entry,
    Tx,
    find_album,
    find_artist,
)
from dspot_spotify.tags import TrackTags

__all__ = ["NAMESPACE", "UNKNOWN_ARTIST", "album_id_for", "artist_id_for", "entries_for_upload"]

#: Namespace of derived artist and album ids.
NAMESPACE: Final = uuid.UUID("6f1d3c2e-5b1a-4c8e-9d0f-2a7b6c5d4e3f")
UNKNOWN_ARTIST: Final = "Unknown Artist"


def _key(text: str) -> str:
    return " ".join(text.split()).casefold()


def artist_id_for(name: str) -> str:
    """The id an artist called ``name`` gets (case and spacing do not matter)."""
    return str(uuid.uuid5(NAMESPACE, "artist:" + _key(name)))


def album_id_for(artist_id: str, title: str) -> str:
    """The id of the album ``title`` by the artist ``artist_id``."""
    return str(uuid.uuid5(NAMESPACE, f"album:{artist_id}:{_key(title)}"))


def entries_for_upload(
    tx: Tx,
    tags: TrackTags,
    *,
    actor: str,
    at: int,
    song_id: str,
    blob_sha256: str,
    size: int,
    cover_sha256: str | None = None,
) -> list[Entry]:
    """The entries that add one uploaded song, creating its artist and album if missing.

    Looks up existing artists and albums by name (case-insensitive) in the local replica
    ``tx``; a stale replica at worst emits a create that the log rejects as a duplicate.
    The album belongs to the album artist when the tags name one (compilations). The cover
    goes on the album when the album is new, else on the song if it differs.
    """
    entries: list[Entry] = []

    def artist(name: str) -> str:
        found = find_artist(tx, name)
        if found is not None:
            return found
        new = artist_id_for(name)
        if not any(isinstance(e, CreateArtist) and e.artist_id == new for e in entries):
            entries.append(CreateArtist(actor=actor, at=at, artist_id=new, name=name))
        return new

    artist_name = tags.artist or tags.album_artist or UNKNOWN_ARTIST
    song_artist = artist(artist_name)
    album_id: str | None = None
    song_cover = cover_sha256
    if tags.album:
        owner = artist(tags.album_artist) if tags.album_artist else song_artist
        album = find_album(tx, owner, tags.album)
        if album is None:
            album_id = album_id_for(owner, tags.album)
            entries.append(
                CreateAlbum(
                    actor=actor,
                    at=at,
                    album_id=album_id,
                    title=tags.album,
                    artist_id=owner,
                    year=tags.year,
                    cover_sha256=cover_sha256,
                )
            )
            song_cover = None  # the album carries it
        else:
            album_id, album_cover = album
            if album_cover == cover_sha256:
                song_cover = None
    entries.append(
        CreateSong(
            actor=actor,
            at=at,
            song_id=song_id,
            title=tags.title,
            artist_id=song_artist,
            album_id=album_id,
            track=tags.track,
            year=tags.year,
            genres=tags.genres,
            duration=tags.duration,
            blob_sha256=blob_sha256,
            mime=tags.mime,
            size=size,
            cover_sha256=song_cover,
            lyrics=tags.lyrics,
        )
    )
    return entries
