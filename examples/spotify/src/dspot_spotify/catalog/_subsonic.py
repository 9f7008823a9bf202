"""Queries the Subsonic API needs beyond the REST API's: albums with play counts and a
genre, album lists by kind, stars (likes) with their times, the artist index."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import attrs

from dspot_spotify.catalog._queries import ALBUM_COLUMNS, ALBUM_FROM, album_view
from dspot_spotify.catalog._schema import LIKE_TABLES, LikeTarget
from dspot_spotify.catalog._sql import Tx, marks, values_by_id
from dspot_spotify.catalog._sql import exec_ as _exec
from dspot_spotify.catalog._sql import one as _one
from dspot_spotify.catalog._sql import scalar as _scalar
from dspot_spotify.catalog._views import AlbumView


@attrs.frozen(kw_only=True)
class AlbumRow(AlbumView):
    """An album with what Subsonic shows of it."""

    created_at: int
    play_count: int
    genre: str | None


_ALBUM_ROW: Final = (
    f"SELECT {ALBUM_COLUMNS}, al.created_at, "
    "(SELECT COALESCE(SUM(s.play_count), 0) FROM songs s WHERE s.album_id = al.id), "
    "(SELECT g.genre FROM songs s JOIN song_genres g ON g.song_id = s.id "
    "WHERE s.album_id = al.id ORDER BY s.track IS NULL, s.track, g.position LIMIT 1) "
    f"{ALBUM_FROM}"
)


def _album_row(r: Sequence[Any]) -> AlbumRow:
    return AlbumRow(
        **attrs.asdict(album_view(r[:8]), recurse=False),
        created_at=int(r[8]),
        play_count=int(r[9]),
        genre=r[10],
    )


def _album_rows(tx: Tx, where: str = "", params: Sequence[Any] = ()) -> list[AlbumRow]:
    return [_album_row(r) for r in _exec(tx, f"{_ALBUM_ROW} {where}", params)]


def album_row(tx: Tx, album_id: str) -> AlbumRow | None:
    """One album as Subsonic shows it, or None."""
    rows = _album_rows(tx, "WHERE al.id = ?", (album_id,))
    return rows[0] if rows else None


def album_rows(tx: Tx, ids: Sequence[str]) -> list[AlbumRow]:
    """The albums ``ids`` that exist, in the order given."""
    found = {a.id: a for a in _album_rows(tx, f"WHERE al.id IN ({marks(ids)})", ids)}
    return [found[i] for i in ids if i in found]


def artist_album_rows(tx: Tx, artist_id: str) -> list[AlbumRow]:
    """An artist's albums by year (undated last), then title."""
    return _album_rows(
        tx,
        "WHERE al.artist_id = ? ORDER BY al.year IS NULL, al.year, al.title COLLATE NOCASE, al.id",
        (artist_id,),
    )


def starred_album_rows(tx: Tx, user_id: str) -> list[AlbumRow]:
    """The albums ``user_id`` likes, most recently liked first."""
    return _album_rows(
        tx,
        "JOIN album_likes l ON l.album_id = al.id WHERE l.user_id = ? ORDER BY l.at DESC, al.id",
        (user_id,),
    )


_BY_TITLE: Final = "ORDER BY al.title COLLATE NOCASE, al.id"
_ALBUM_ORDERS: Final[Mapping[str, str]] = {
    "newest": "ORDER BY al.created_at DESC, al.id",
    "alphabeticalByName": _BY_TITLE,
    "alphabeticalByArtist": "ORDER BY ar.name COLLATE NOCASE, al.title COLLATE NOCASE, al.id",
    "frequent": "ORDER BY (SELECT COALESCE(SUM(s.play_count), 0) FROM songs s "
    "WHERE s.album_id = al.id) DESC, al.id",
    "highest": "ORDER BY (SELECT COALESCE(SUM(s.like_count), 0) FROM songs s "
    "WHERE s.album_id = al.id) DESC, al.id",
}
ALBUM_LISTS: Final = frozenset({*_ALBUM_ORDERS, "byYear", "byGenre", "starred", "recent"})
"""The ``getAlbumList2`` types :func:`album_list` serves (``random`` is the caller's)."""


def album_list(
    tx: Tx,
    kind: str,
    *,
    user_id: str,
    size: int,
    offset: int = 0,
    years: tuple[int, int] | None = None,
    genre: str | None = None,
) -> list[AlbumRow]:
    """One window of a ``getAlbumList2`` list: ``byYear`` (``years`` from, to: descending
    when from > to), ``byGenre`` (``genre``), ``starred`` and ``recent`` (``user_id``'s),
    or one of the orders of :data:`ALBUM_LISTS`. ``ValueError`` for another kind."""
    where: list[str] = []
    args: list[Any] = []
    if kind == "byYear":
        start, end = years or (0, 0)
        where.append("al.year BETWEEN ? AND ?")
        args += sorted((start, end))
        order = "ORDER BY al.year " + ("DESC" if start > end else "ASC") + ", al.id"
    elif kind == "byGenre":
        where.append(
            "al.id IN (SELECT s.album_id FROM songs s JOIN song_genres g "
            "ON g.song_id = s.id WHERE g.genre = ?)"
        )
        args.append(" ".join((genre or "").split()))
        order = _BY_TITLE
    elif kind == "starred":
        where.append("al.id IN (SELECT l.album_id FROM album_likes l WHERE l.user_id = ?)")
        args.append(user_id)
        order = _BY_TITLE
    elif kind == "recent":
        where.append(
            "al.id IN (SELECT s.album_id FROM plays pl JOIN songs s ON s.id = pl.song_id "
            "WHERE pl.user_id = ?)"
        )
        order = (
            "ORDER BY (SELECT MAX(pl.last_at) FROM plays pl JOIN songs s ON s.id = pl.song_id "
            "WHERE pl.user_id = ? AND s.album_id = al.id) DESC, al.id"
        )
        args += [user_id, user_id]
    elif kind in _ALBUM_ORDERS:
        order = _ALBUM_ORDERS[kind]
    else:
        raise ValueError(f"unknown album list type: {kind}")
    cond = ("WHERE " + " AND ".join(where)) if where else ""
    return _album_rows(tx, f"{cond} {order} LIMIT ? OFFSET ?", [*args, size, offset])


def album_ids(tx: Tx) -> list[str]:
    """Every album id, sorted (to sample from)."""
    return [str(r[0]) for r in _exec(tx, "SELECT id FROM albums ORDER BY id")]


def song_ids(
    tx: Tx, *, genre: str | None = None, from_year: int | None = None, to_year: int | None = None
) -> list[str]:
    """The ids of the songs of ``genre`` from ``from_year`` to ``to_year``, sorted (to sample
    from)."""
    where: list[str] = []
    args: list[Any] = []
    if genre:
        where.append("id IN (SELECT song_id FROM song_genres WHERE genre = ?)")
        args.append(" ".join(genre.split()))
    if from_year is not None:
        where.append("year >= ?")
        args.append(from_year)
    if to_year is not None:
        where.append("year <= ?")
        args.append(to_year)
    cond = ("WHERE " + " AND ".join(where)) if where else ""
    return [str(r[0]) for r in _exec(tx, f"SELECT id FROM songs {cond} ORDER BY id", args)]


def stars(tx: Tx, user_id: str, ids: Sequence[str], target: LikeTarget = "song") -> dict[str, int]:
    """When ``user_id`` starred (liked) each of the songs (albums, artists) ``ids`` they
    like."""
    table, column, _ = LIKE_TABLES[target]
    sql = f"SELECT {column}, at FROM {table} WHERE user_id = ? AND {column} IN ({{marks}})"
    return values_by_id(tx, sql, [user_id], ids)


def liked_song_ids(tx: Tx, user_id: str) -> list[str]:
    """The songs ``user_id`` likes, most recently liked first."""
    rows = _exec(
        tx, "SELECT song_id FROM likes WHERE user_id = ? ORDER BY at DESC, song_id", (user_id,)
    )
    return [str(r[0]) for r in rows]


@attrs.frozen(kw_only=True)
class ArtistEntry:
    """An artist as Subsonic's indexes list it: album count and when the caller starred it."""

    id: str
    name: str
    album_count: int
    starred: int | None


def artist_entries(tx: Tx, user_id: str) -> list[ArtistEntry]:
    """Every artist, with ``user_id``'s star (unsorted: the index sorts by its own rules)."""
    rows = _exec(
        tx,
        "SELECT ar.id, ar.name, (SELECT COUNT(*) FROM albums al WHERE al.artist_id = ar.id), "
        "(SELECT l.at FROM artist_likes l WHERE l.user_id = ? AND l.artist_id = ar.id) "
        "FROM artists ar",
        (user_id,),
    )
    return [_artist_entry(r) for r in rows]


def starred_artists(tx: Tx, user_id: str) -> list[ArtistEntry]:
    """The artists ``user_id`` likes, most recently liked first."""
    rows = _exec(
        tx,
        "SELECT ar.id, ar.name, (SELECT COUNT(*) FROM albums al WHERE al.artist_id = ar.id), "
        "l.at FROM artist_likes l JOIN artists ar ON ar.id = l.artist_id WHERE l.user_id = ? "
        "ORDER BY l.at DESC, ar.id",
        (user_id,),
    )
    return [_artist_entry(r) for r in rows]


def _artist_entry(r: Sequence[Any]) -> ArtistEntry:
    return ArtistEntry(
        id=str(r[0]),
        name=str(r[1]),
        album_count=int(r[2]),
        starred=None if r[3] is None else int(r[3]),
    )


def last_modified(tx: Tx) -> int:
    """When an artist, album or song was last created or edited (deletions not seen)."""
    return int(
        _scalar(
            tx,
            "SELECT MAX(COALESCE((SELECT MAX(updated_at) FROM artists), 0), "
            "COALESCE((SELECT MAX(updated_at) FROM albums), 0), "
            "COALESCE((SELECT MAX(updated_at) FROM songs), 0))",
        )
    )


def exists(tx: Tx, target: LikeTarget, item_id: str) -> bool:
    """Whether a song, album or artist (``target``) with id ``item_id`` exists."""
    table = LIKE_TABLES[target][2]
    return _one(tx, f"SELECT 1 FROM {table} WHERE id = ?", (item_id,)) is not None


def genre_counts(tx: Tx) -> list[tuple[str, int, int]]:
    """Every genre with its song and album counts, by name (``Rock`` and ``rock`` are one)."""
    rows = _exec(
        tx,
        "SELECT g.genre, COUNT(DISTINCT g.song_id), COUNT(DISTINCT s.album_id) "
        "FROM song_genres g JOIN songs s ON s.id = g.song_id "
        "GROUP BY g.genre ORDER BY g.genre",
    )
    return [(str(r[0]), int(r[1]), int(r[2])) for r in rows]


def top_song_ids(tx: Tx, artist_id: str, count: int) -> list[str]:
    """An artist's most played songs (then most liked, then by title), at most ``count``."""
    rows = _exec(
        tx,
        "SELECT id FROM songs WHERE artist_id = ? "
        "ORDER BY play_count DESC, like_count DESC, title COLLATE NOCASE, id LIMIT ?",
        (artist_id, count),
    )
    return [str(r[0]) for r in rows]


def artist_genres(tx: Tx, artist_id: str) -> list[str]:
    """The genres of an artist's songs, most used first."""
    rows = _exec(
        tx,
        "SELECT g.genre FROM song_genres g JOIN songs s ON s.id = g.song_id "
        "WHERE s.artist_id = ? GROUP BY g.genre ORDER BY COUNT(*) DESC, g.genre",
        (artist_id,),
    )
    return [str(r[0]) for r in rows]


def related_song_ids(tx: Tx, artist_id: str, genres: Sequence[str]) -> list[str]:
    """Songs by ``artist_id`` or of any of ``genres``, sorted by id (to sample from)."""
    unique = list(dict.fromkeys(genres))
    rows = _exec(
        tx,
        "SELECT id FROM songs WHERE artist_id = ? OR id IN (SELECT song_id FROM song_genres "
        f"WHERE genre IN ({marks(unique)})) ORDER BY id",
        [artist_id, *unique],
    )
    return [str(r[0]) for r in rows]


def related_artists(tx: Tx, user_id: str, artist_id: str, count: int) -> list[ArtistEntry]:
    """Other artists with songs of the genres of ``artist_id``'s songs, those sharing the
    most songs' genres first (``user_id``'s stars with them)."""
    rows = _exec(
        tx,
        "SELECT ar.id, ar.name, (SELECT COUNT(*) FROM albums al WHERE al.artist_id = ar.id), "
        "(SELECT l.at FROM artist_likes l WHERE l.user_id = ? AND l.artist_id = ar.id) "
        "FROM artists ar JOIN songs s ON s.artist_id = ar.id "
        "JOIN song_genres g ON g.song_id = s.id WHERE ar.id != ? AND g.genre IN "
        "(SELECT g2.genre FROM song_genres g2 JOIN songs s2 ON s2.id = g2.song_id "
        "WHERE s2.artist_id = ?) GROUP BY ar.id ORDER BY COUNT(*) DESC, ar.name, ar.id LIMIT ?",
        (user_id, artist_id, artist_id, count),
    )
    return [_artist_entry(r) for r in rows]


def song_count(tx: Tx) -> int:
    """How many songs the catalog holds."""
    return int(_scalar(tx, "SELECT COUNT(*) FROM songs"))
