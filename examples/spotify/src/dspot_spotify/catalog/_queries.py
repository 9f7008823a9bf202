"""Read-side views and queries over a catalog replica (any transaction or connection)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final, Generic, Literal, TypeVar

import attrs

from dspot_spotify.auth import CredentialError, validate_username
from dspot_spotify.catalog._apply import LogPosition, RejectCode
from dspot_spotify.catalog._sql import Tx
from dspot_spotify.catalog._sql import exec_ as _exec
from dspot_spotify.catalog._sql import one as _one
from dspot_spotify.catalog._sql import scalar as _scalar

T = TypeVar("T")


# --------------------------------------------------------------------------- views

MAX_LIMIT: Final = 200


@attrs.frozen
class Page(Generic[T]):
    """One page of results: ``items``, the 1-based ``page``, ``limit`` and ``total``."""

    items: tuple[T, ...]
    page: int
    limit: int
    total: int

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
    created_at: int


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


# --------------------------------------------------------------------------- queries


def _fts_query(text: str | None) -> str | None:
    """User text → an FTS5 query: every word must match, as a prefix; None if no words."""
    if not text:
        return None
    words = re.findall(r"\w+", text)[:16]
    if not words:
        return None
    return " ".join('"' + w.replace('"', '""') + '"*' for w in words)


def _paging(page: int, limit: int) -> tuple[int, int]:
    if page < 1:
        raise ValueError("page must be 1 or more")
    if limit < 1:
        raise ValueError("limit must be 1 or more")
    return page, min(limit, MAX_LIMIT)


_SONG_COLUMNS: Final = (
    "s.id, s.title, s.artist_id, ar.name, s.album_id, al.title, s.track, s.year, s.duration, "
    "s.blob_sha256, s.mime, s.size, COALESCE(s.cover_sha256, al.cover_sha256), s.play_count, "
    "s.like_count, s.created_by, s.created_at"
)
_SONG_FROM: Final = (
    "FROM songs s JOIN artists ar ON ar.id = s.artist_id LEFT JOIN albums al ON al.id = s.album_id"
)


def _songs(tx: Tx, rows: Sequence[Sequence[Any]]) -> tuple[SongView, ...]:
    ids = [str(r[0]) for r in rows]
    genres: dict[str, list[str]] = {i: [] for i in ids}
    if ids:
        marks = ",".join("?" * len(ids))
        for song_id, genre in _exec(
            tx,
            f"SELECT song_id, genre FROM song_genres WHERE song_id IN ({marks}) "
            "ORDER BY song_id, position",
            ids,
        ):
            genres[str(song_id)].append(str(genre))
    return tuple(
        SongView(
            id=str(r[0]),
            title=r[1],
            artist_id=r[2],
            artist_name=r[3],
            album_id=r[4],
            album_title=r[5],
            track=r[6],
            year=r[7],
            genres=tuple(genres[str(r[0])]),
            duration=float(r[8]),
            blob_sha256=r[9],
            mime=r[10],
            size=int(r[11]),
            cover_sha256=r[12],
            play_count=int(r[13]),
            like_count=int(r[14]),
            created_by=r[15],
            created_at=int(r[16]),
        )
        for r in rows
    )


SongSort = Literal["title", "recent", "plays", "likes"]
_SONG_SORTS: Final[Mapping[str, str]] = {
    "title": "s.title COLLATE NOCASE, s.id",
    "recent": "s.created_at DESC, s.n DESC",
    "plays": "s.play_count DESC, s.title COLLATE NOCASE, s.id",
    "likes": "s.like_count DESC, s.title COLLATE NOCASE, s.id",
}


def list_songs(
    tx: Tx,
    *,
    q: str | None = None,
    artist_id: str | None = None,
    album_id: str | None = None,
    genre: str | None = None,
    sort: SongSort | None = None,
    page: int = 1,
    limit: int = 50,
) -> Page[SongView]:
    """Songs matching every given filter; text ``q`` searches title, artist and album names.

    ``sort``: ``title``, ``recent`` (newest first), ``plays`` or ``likes`` (most first).
    By default, with ``q``: best matches first (BM25; a title hit weighs more than an artist
    hit, which weighs more than an album hit); without: by title. Genre match ignores case.
    """
    page, limit = _paging(page, limit)
    if sort is not None and sort not in _SONG_SORTS:
        raise ValueError(f"sort must be one of {', '.join(_SONG_SORTS)}")
    joins = ""
    where: list[str] = []
    params: list[Any] = []
    order = _SONG_SORTS[sort or "title"]
    fts = _fts_query(q)
    if fts is not None:
        joins = " JOIN songs_fts f ON f.rowid = s.n"
        where.append("songs_fts MATCH ?")
        params.append(fts)
        if sort is None:  # title > artist > album
            order = "bm25(songs_fts, 10.0, 4.0, 2.0), " + order
    if artist_id is not None:
        where.append("s.artist_id = ?")
        params.append(artist_id)
    if album_id is not None:
        where.append("s.album_id = ?")
        params.append(album_id)
    if genre is not None:
        where.append("s.id IN (SELECT song_id FROM song_genres WHERE genre = ?)")
        params.append(" ".join(genre.split()))
    cond = (" WHERE " + " AND ".join(where)) if where else ""
    total = int(_scalar(tx, f"SELECT COUNT(*) {_SONG_FROM}{joins}{cond}", params))
    rows = _exec(
        tx,
        f"SELECT {_SONG_COLUMNS} {_SONG_FROM}{joins}{cond} ORDER BY {order} LIMIT ? OFFSET ?",
        [*params, limit, (page - 1) * limit],
    )
    return Page(_songs(tx, rows), page, limit, total)


_ALBUM_SELECT: Final = (
    "SELECT al.id, al.title, al.artist_id, ar.name, al.year, al.cover_sha256, "
    "(SELECT COUNT(*) FROM songs s WHERE s.album_id = al.id), "
    "(SELECT COALESCE(SUM(s.duration), 0) FROM songs s WHERE s.album_id = al.id) "
    "FROM albums al JOIN artists ar ON ar.id = al.artist_id"
)


def _album(r: Sequence[Any]) -> AlbumView:
    return AlbumView(
        id=r[0],
        title=r[1],
        artist_id=r[2],
        artist_name=r[3],
        year=r[4],
        cover_sha256=r[5],
        song_count=int(r[6]),
        duration=float(r[7]),
    )


def list_albums(
    tx: Tx,
    *,
    q: str | None = None,
    artist_id: str | None = None,
    genre: str | None = None,
    page: int = 1,
    limit: int = 50,
) -> Page[AlbumView]:
    """Albums matching the filters; ``q`` searches album titles and artist names.

    ``genre`` keeps albums with at least one song of that genre.
    """
    page, limit = _paging(page, limit)
    joins = ""
    where: list[str] = []
    params: list[Any] = []
    order = "al.title COLLATE NOCASE, al.id"
    fts = _fts_query(q)
    if fts is not None:
        joins = " JOIN albums_fts f ON f.rowid = al.n"
        where.append("albums_fts MATCH ?")
        params.append(fts)
        order = "bm25(albums_fts, 10.0, 4.0), " + order
    if artist_id is not None:
        where.append("al.artist_id = ?")
        params.append(artist_id)
    if genre is not None:
        where.append(
            "al.id IN (SELECT s.album_id FROM songs s JOIN song_genres g "
            "ON g.song_id = s.id WHERE g.genre = ?)"
        )
        params.append(" ".join(genre.split()))
    cond = (" WHERE " + " AND ".join(where)) if where else ""
    base_from = "FROM albums al JOIN artists ar ON ar.id = al.artist_id"
    total = int(_scalar(tx, f"SELECT COUNT(*) {base_from}{joins}{cond}", params))
    rows = _exec(
        tx,
        f"{_ALBUM_SELECT}{joins}{cond} ORDER BY {order} LIMIT ? OFFSET ?",
        [*params, limit, (page - 1) * limit],
    )
    return Page(tuple(_album(r) for r in rows), page, limit, total)


_ARTIST_SELECT: Final = (
    "SELECT ar.id, ar.name, (SELECT COUNT(*) FROM albums al WHERE al.artist_id = ar.id), "
    "(SELECT COUNT(*) FROM songs s WHERE s.artist_id = ar.id) FROM artists ar"
)


def _artist(r: Sequence[Any]) -> ArtistView:
    return ArtistView(id=r[0], name=r[1], album_count=int(r[2]), song_count=int(r[3]))


def list_artists(
    tx: Tx, *, q: str | None = None, genre: str | None = None, page: int = 1, limit: int = 50
) -> Page[ArtistView]:
    """Artists matching ``q`` (name search) and ``genre`` (has a song of it), by name."""
    page, limit = _paging(page, limit)
    joins = ""
    where: list[str] = []
    params: list[Any] = []
    order = "ar.name COLLATE NOCASE, ar.id"
    fts = _fts_query(q)
    if fts is not None:
        joins = " JOIN artists_fts f ON f.rowid = ar.n"
        where.append("artists_fts MATCH ?")
        params.append(fts)
        order = "bm25(artists_fts), " + order
    if genre is not None:
        where.append(
            "ar.id IN (SELECT s.artist_id FROM songs s JOIN song_genres g "
            "ON g.song_id = s.id WHERE g.genre = ?)"
        )
        params.append(" ".join(genre.split()))
    cond = (" WHERE " + " AND ".join(where)) if where else ""
    total = int(_scalar(tx, f"SELECT COUNT(*) FROM artists ar{joins}{cond}", params))
    rows = _exec(
        tx,
        f"{_ARTIST_SELECT}{joins}{cond} ORDER BY {order} LIMIT ? OFFSET ?",
        [*params, limit, (page - 1) * limit],
    )
    return Page(tuple(_artist(r) for r in rows), page, limit, total)


@attrs.frozen(kw_only=True)
class SearchResults:
    """The best few artists, albums and songs for one query (a search-as-you-type box)."""

    artists: tuple[ArtistView, ...]
    albums: tuple[AlbumView, ...]
    songs: tuple[SongView, ...]


def search(tx: Tx, q: str, *, limit: int = 5) -> SearchResults:
    """Top ``limit`` artists, albums and songs matching ``q`` (empty if it has no words)."""
    if _fts_query(q) is None:
        return SearchResults(artists=(), albums=(), songs=())
    return SearchResults(
        artists=list_artists(tx, q=q, limit=limit).items,
        albums=list_albums(tx, q=q, limit=limit).items,
        songs=list_songs(tx, q=q, limit=limit).items,
    )


def get_song(tx: Tx, song_id: str) -> SongView | None:
    """One song, or None."""
    rows = _exec(tx, f"SELECT {_SONG_COLUMNS} {_SONG_FROM} WHERE s.id = ?", (song_id,))
    songs = _songs(tx, rows)
    return songs[0] if songs else None


def get_album(tx: Tx, album_id: str) -> AlbumDetail | None:
    """An album with its tracks, or None."""
    row = _one(tx, f"{_ALBUM_SELECT} WHERE al.id = ?", (album_id,))
    if row is None:
        return None
    rows = _exec(
        tx,
        f"SELECT {_SONG_COLUMNS} {_SONG_FROM} WHERE s.album_id = ? "
        "ORDER BY s.track IS NULL, s.track, s.title COLLATE NOCASE, s.id",
        (album_id,),
    )
    return AlbumDetail(album=_album(row), tracks=_songs(tx, rows))


def get_artist(tx: Tx, artist_id: str) -> ArtistDetail | None:
    """An artist with their albums and album-less songs, or None."""
    row = _one(tx, f"{_ARTIST_SELECT} WHERE ar.id = ?", (artist_id,))
    if row is None:
        return None
    albums = _exec(
        tx,
        f"{_ALBUM_SELECT} WHERE al.artist_id = ? "
        "ORDER BY al.year IS NULL, al.year, al.title COLLATE NOCASE, al.id",
        (artist_id,),
    )
    singles = _exec(
        tx,
        f"SELECT {_SONG_COLUMNS} {_SONG_FROM} WHERE s.artist_id = ? "
        "AND s.album_id IS NULL ORDER BY s.title COLLATE NOCASE, s.id",
        (artist_id,),
    )
    return ArtistDetail(
        artist=_artist(row), albums=tuple(_album(r) for r in albums), singles=_songs(tx, singles)
    )


def genres(tx: Tx) -> list[tuple[str, int]]:
    """Every genre with its song count, most used first, then by name (genres match
    ignoring case, as in the ``genre`` filters, so ``Rock`` and ``rock`` are one)."""
    rows = _exec(
        tx, "SELECT genre, COUNT(*) FROM song_genres GROUP BY genre ORDER BY COUNT(*) DESC, genre"
    )
    return [(str(r[0]), int(r[1])) for r in rows]


_USER_SELECT: Final = (
    "SELECT id, username, role, created_at, password_hash, tokens_valid_after FROM users"
)


def _user(r: Sequence[Any]) -> UserRecord:
    return UserRecord(
        id=r[0],
        username=r[1],
        role=r[2],
        created_at=int(r[3]),
        password_hash=r[4],
        tokens_valid_after=int(r[5]),
    )


def list_users(tx: Tx, *, page: int = 1, limit: int = 50) -> Page[UserRecord]:
    """Every user, by username (for admins)."""
    page, limit = _paging(page, limit)
    total = int(_scalar(tx, "SELECT COUNT(*) FROM users"))
    rows = _exec(
        tx, f"{_USER_SELECT} ORDER BY username LIMIT ? OFFSET ?", (limit, (page - 1) * limit)
    )
    return Page(tuple(_user(r) for r in rows), page, limit, total)


def get_user(tx: Tx, user_id: str) -> UserRecord | None:
    """A user by id, or None."""
    row = _one(tx, f"{_USER_SELECT} WHERE id = ?", (user_id,))
    return None if row is None else _user(row)


def get_user_by_username(tx: Tx, username: str) -> UserRecord | None:
    """A user by username (case-insensitive, after canonicalisation), or None."""
    try:
        canon = validate_username(username)
    except CredentialError:
        return None
    row = _one(tx, f"{_USER_SELECT} WHERE username = ?", (canon,))
    return None if row is None else _user(row)


@attrs.frozen(kw_only=True)
class SubsonicCredentials:
    """A user's Subsonic password and API key (see :class:`SetSubsonicCredentials`)."""

    user_id: str
    username: str
    password: str = attrs.field(repr=False)
    api_key: str = attrs.field(repr=False)
    updated_at: int


_SUBSONIC_SELECT: Final = (
    "SELECT c.user_id, u.username, c.password, c.api_key, c.updated_at "
    "FROM subsonic_credentials c JOIN users u ON u.id = c.user_id"
)


def _subsonic(r: Sequence[Any]) -> SubsonicCredentials:
    return SubsonicCredentials(
        user_id=r[0], username=r[1], password=r[2], api_key=r[3], updated_at=int(r[4])
    )


def subsonic_credentials(tx: Tx, user_id: str) -> SubsonicCredentials | None:
    """A user's Subsonic credentials, or None if they have none yet."""
    row = _one(tx, f"{_SUBSONIC_SELECT} WHERE c.user_id = ?", (user_id,))
    return None if row is None else _subsonic(row)


def subsonic_credentials_by_api_key(tx: Tx, api_key: str) -> SubsonicCredentials | None:
    """Whose API key this is, or None."""
    row = _one(tx, f"{_SUBSONIC_SELECT} WHERE c.api_key = ?", (api_key,))
    return None if row is None else _subsonic(row)


def is_token_revoked(tx: Tx, *, token_id: str, user_id: str, issued_at: int) -> bool:
    """Whether a (signature-checked) token was revoked, its user removed, or issued before
    the user's last password change."""
    row = _one(tx, "SELECT tokens_valid_after FROM users WHERE id = ?", (user_id,))
    if row is None or issued_at < int(row[0]):
        return True
    return _one(tx, "SELECT 1 FROM revoked_tokens WHERE token_id = ?", (token_id,)) is not None


def _playlist_view(r: Sequence[Any]) -> PlaylistView:
    return PlaylistView(
        id=r[0],
        owner_id=r[1],
        name=r[2],
        song_count=int(r[3]),
        duration=float(r[4]),
        created_at=int(r[5]),
        updated_at=int(r[6]),
    )


_PLAYLIST_SELECT: Final = (
    "SELECT p.id, p.owner_id, p.name, "
    "(SELECT COUNT(*) FROM playlist_items i WHERE i.playlist_id = p.id), "
    "(SELECT COALESCE(SUM(s.duration), 0) FROM playlist_items i JOIN songs s ON s.id = i.song_id "
    "WHERE i.playlist_id = p.id), p.created_at, p.updated_at FROM playlists p"
)


def user_playlists(tx: Tx, user_id: str) -> list[PlaylistView]:
    """A user's playlists, by name."""
    rows = _exec(
        tx,
        f"{_PLAYLIST_SELECT} WHERE p.owner_id = ? ORDER BY p.name COLLATE NOCASE, p.id",
        (user_id,),
    )
    return [_playlist_view(r) for r in rows]


def get_playlist(tx: Tx, playlist_id: str) -> PlaylistDetail | None:
    """A playlist with its songs in order, or None."""
    row = _one(tx, f"{_PLAYLIST_SELECT} WHERE p.id = ?", (playlist_id,))
    if row is None:
        return None
    rows = _exec(
        tx,
        f"SELECT i.item_id, i.position, {_SONG_COLUMNS} FROM playlist_items i "
        "JOIN songs s ON s.id = i.song_id JOIN artists ar ON ar.id = s.artist_id "
        "LEFT JOIN albums al ON al.id = s.album_id WHERE i.playlist_id = ? "
        "ORDER BY i.position, i.item_id",
        (playlist_id,),
    )
    songs = _songs(tx, [r[2:] for r in rows])
    items = tuple(
        PlaylistItemView(item_id=str(r[0]), position=int(r[1]), song=s)
        for r, s in zip(rows, songs, strict=True)
    )
    return PlaylistDetail(playlist=_playlist_view(row), items=items)


def liked_songs(tx: Tx, user_id: str, *, page: int = 1, limit: int = 50) -> Page[SongView]:
    """Songs a user likes, most recently liked first."""
    page, limit = _paging(page, limit)
    total = int(_scalar(tx, "SELECT COUNT(*) FROM likes WHERE user_id = ?", (user_id,)))
    rows = _exec(
        tx,
        f"SELECT {_SONG_COLUMNS} FROM likes l JOIN songs s ON s.id = l.song_id "
        "JOIN artists ar ON ar.id = s.artist_id LEFT JOIN albums al "
        "ON al.id = s.album_id WHERE l.user_id = ? ORDER BY l.at DESC, s.id "
        "LIMIT ? OFFSET ?",
        (user_id, limit, (page - 1) * limit),
    )
    return Page(_songs(tx, rows), page, limit, total)


def liked_albums(tx: Tx, user_id: str, *, page: int = 1, limit: int = 50) -> Page[AlbumView]:
    """Albums a user likes, most recently liked first."""
    page, limit = _paging(page, limit)
    total = int(_scalar(tx, "SELECT COUNT(*) FROM album_likes WHERE user_id = ?", (user_id,)))
    rows = _exec(
        tx,
        f"{_ALBUM_SELECT} JOIN album_likes l ON l.album_id = al.id WHERE l.user_id = ? "
        "ORDER BY l.at DESC, al.id LIMIT ? OFFSET ?",
        (user_id, limit, (page - 1) * limit),
    )
    return Page(tuple(_album(r) for r in rows), page, limit, total)


def liked_artists(tx: Tx, user_id: str, *, page: int = 1, limit: int = 50) -> Page[ArtistView]:
    """Artists a user likes, most recently liked first."""
    page, limit = _paging(page, limit)
    total = int(_scalar(tx, "SELECT COUNT(*) FROM artist_likes WHERE user_id = ?", (user_id,)))
    rows = _exec(
        tx,
        f"{_ARTIST_SELECT} JOIN artist_likes l ON l.artist_id = ar.id WHERE l.user_id = ? "
        "ORDER BY l.at DESC, ar.id LIMIT ? OFFSET ?",
        (user_id, limit, (page - 1) * limit),
    )
    return Page(tuple(_artist(r) for r in rows), page, limit, total)


def blob_references(tx: Tx, sha256: str) -> int:
    """How many songs, song covers and album covers point at a blob (0: collectable)."""
    return int(
        _scalar(
            tx,
            "SELECT (SELECT COUNT(*) FROM songs WHERE blob_sha256 = ?1) + "
            "(SELECT COUNT(*) FROM songs WHERE cover_sha256 = ?1) + "
            "(SELECT COUNT(*) FROM albums WHERE cover_sha256 = ?1)",
            (sha256,),
        )
    )


def rejection_at(tx: Tx, position: LogPosition) -> Rejection | None:
    """Why the entry at ``position`` was rejected, or None if it was not (or is unknown).

    A writer that waited for its position to be applied calls this to learn its outcome.
    """
    row = _one(
        tx,
        "SELECT epoch, seq, kind, actor, reason, code FROM rejections WHERE epoch = ? AND seq = ?",
        (position.epoch, position.seq),
    )
    if row is None:
        return None
    return Rejection(
        position=LogPosition(int(row[0]), int(row[1])),
        kind=row[2],
        actor=row[3],
        reason=row[4],
        code=row[5],
    )


def rejections(tx: Tx, *, limit: int = 100) -> list[Rejection]:
    """The most recent rejected entries, newest first."""
    rows = _exec(
        tx,
        "SELECT epoch, seq, kind, actor, reason, code FROM rejections "
        "ORDER BY epoch DESC, seq DESC LIMIT ?",
        (min(max(limit, 1), 1000),),
    )
    return [
        Rejection(
            position=LogPosition(int(r[0]), int(r[1])),
            kind=r[2],
            actor=r[3],
            reason=r[4],
            code=r[5],
        )
        for r in rows
    ]
