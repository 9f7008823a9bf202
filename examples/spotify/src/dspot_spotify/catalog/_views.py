"""Read-side views of a catalog replica: what the queries return."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Generic, TypeVar

import attrs

from dspot_spotify.catalog._schema import LogPosition, RejectCode

T = TypeVar("T")
U = TypeVar("U")

MAX_LIMIT: Final = 200
"""The largest page a listing returns (a larger ``limit`` is clamped to it)."""


@attrs.frozen
class Page(Generic[T]):
    """One page of results: ``items``, the 1-based ``page``, ``limit`` and ``total``."""

    items: tuple[T, ...]
    page: int
    limit: int
    total: int

    def map(self, fn: Callable[[T], U]) -> Page[U]:
        """The same page with ``fn`` applied to every item."""
        return Page(tuple(fn(i) for i in self.items), self.page, self.limit, self.total)

    @property
    def pages(self) -> int:
        """How many pages there are (at least 1)."""
        return max(1, -(-self.total // self.limit))


@attrs.frozen(kw_only=True)
class ArtistView:
    """An artist with counts."""

    id: str
    name: str
    album_count: int
    song_count: int


@attrs.frozen(kw_only=True)
class AlbumView:
    """An album with its artist's name, track count and total duration."""

    id: str
    title: str
    artist_id: str
    artist_name: str
    year: int | None
    cover_sha256: str | None
    song_count: int
    duration: float


@attrs.frozen(kw_only=True)
class SongView:
    """A song as listed: names resolved, genres, blob address, counters.

    ``cover_sha256`` is the song's own cover, else its album's.
    """

    id: str
    title: str
    artist_id: str
    artist_name: str
    album_id: str | None
    album_title: str | None
    track: int | None
    year: int | None
    genres: tuple[str, ...]
    duration: float
    blob_sha256: str
    mime: str
    size: int
    cover_sha256: str | None
    play_count: int
    like_count: int
    created_by: str | None
    created_at: int = attrs.field(
        metadata={"json_schema": {"description": "milliseconds since the Unix epoch"}}
    )


@attrs.frozen(kw_only=True)
class AlbumDetail:
    """An album and its tracks in order (track number, then title)."""

    album: AlbumView
    tracks: tuple[SongView, ...]


@attrs.frozen(kw_only=True)
class ArtistDetail:
    """An artist, their albums (by year) and their songs outside any album."""

    artist: ArtistView
    albums: tuple[AlbumView, ...]
    singles: tuple[SongView, ...]


@attrs.frozen(kw_only=True)
class UserRecord:
    """A user as stored, including what login and token checks need."""

    id: str
    username: str
    role: str
    created_at: int
    password_hash: str = attrs.field(repr=False)
    tokens_valid_after: int
    disabled: bool = False
    token_generation: int = 0
    sealed_password: str | None = attrs.field(default=None, repr=False)
    """The account password sealed for Subsonic's token auth (see ``SealPassword``)."""

    @property
    def admin(self) -> bool:
        """Whether the user is an admin (a disabled admin acts as no one)."""
        return self.role == "admin" and not self.disabled


@attrs.frozen(kw_only=True)
class PlaylistView:
    """A playlist with its song count and total duration."""

    id: str
    owner_id: str
    name: str
    song_count: int
    duration: float
    created_at: int
    updated_at: int


@attrs.frozen(kw_only=True)
class PlaylistItemView:
    """One playlist entry: its own id, position and the song."""

    item_id: str
    position: int
    song: SongView


@attrs.frozen(kw_only=True)
class PlaylistDetail:
    """A playlist and its items in order."""

    playlist: PlaylistView
    items: tuple[PlaylistItemView, ...]


@attrs.frozen(kw_only=True)
class Rejection:
    """A log entry that every replica refused, why, and the code (HTTP status via
    ``REJECT_STATUS``)."""

    position: LogPosition
    kind: str
    actor: str | None
    reason: str
    code: RejectCode


@attrs.frozen(kw_only=True)
class SubsonicCredentials:
    """A user's Subsonic password and API key (see :class:`SetSubsonicCredentials`)."""

    user_id: str
    username: str
    password: str = attrs.field(repr=False)
    api_key: str = attrs.field(repr=False)
    updated_at: int
    current: bool = True
    """False once the user's token generation moved past them (a password change, a
    disabling): they no longer work, and the user gets new ones on asking."""


@attrs.frozen(kw_only=True)
class SearchResults:
    """The best few artists, albums and songs for one query (a search-as-you-type box)."""

    artists: tuple[ArtistView, ...]
    albums: tuple[AlbumView, ...]
    songs: tuple[SongView, ...]
