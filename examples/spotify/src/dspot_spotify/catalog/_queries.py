"""Queries over the music: songs, albums, artists, search, genres (any transaction)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal

import attrs

from dspot_spotify.catalog._sql import Tx
from dspot_spotify.catalog._sql import exec_ as _exec
from dspot_spotify.catalog._sql import one as _one
from dspot_spotify.catalog._sql import scalar as _scalar
from dspot_spotify.catalog._views import (
    MAX_LIMIT,
    AlbumDetail,
    AlbumView,
    ArtistDetail,
    ArtistView,
    Page,
    SearchResults,
    SongView,
)


def fts_query(text: str | None) -> str | None:
    """User text → an FTS5 query: every word must match, as a prefix; None if no words."""
    if not text:
        return None
    words = re.findall(r"\w+", text)[:16]
    if not words:
        return None
    return " ".join('"' + w.replace('"', '""') + '"*' for w in words)


def paging(page: int, limit: int) -> tuple[int, int]:
    if page < 1:
        raise ValueError("page must be 1 or more")
    if limit < 1:
        raise ValueError("limit must be 1 or more")
    return page, min(limit, MAX_LIMIT)


def rows_page(
    tx: Tx, count_sql: str, rows_sql: str, params: Sequence[Any], page: int, limit: int
) -> Page[Sequence[Any]]:
    """Page ``page`` of ``limit`` raw rows (both as :func:`paging` gave them): ``count_sql``
    counts every row, ``rows_sql`` (to which ``LIMIT ? OFFSET ?`` is added) selects them;
    both take ``params``."""
    total = int(_scalar(tx, count_sql, params))
    rows = _exec(tx, f"{rows_sql} LIMIT ? OFFSET ?", [*params, limit, (page - 1) * limit])
    return Page(tuple(rows), page, limit, total)


@attrs.define
class _Filters:
    """The filters of one listing: the joins, the conditions and their parameters."""

    joins: str = ""
    where: list[str] = attrs.field(factory=list)
    params: list[Any] = attrs.field(factory=list)
    fts_table: str | None = None
    fts_rowid: str = ""
    rank: str | None = None
    """The relevance expression (``bm25(...)``) to order by first, when text is searched."""

    def add(self, condition: str, value: Any) -> None:
        """``condition`` on ``value`` (one ``?``), unless ``value`` is None."""
        if value is not None:
            self.where.append(condition)
            self.params.append(value)

    def genre(self, condition: str, genre: str | None) -> None:
        """``condition`` on ``genre`` with its white space folded, unless it is None."""
        self.add(condition, None if genre is None else " ".join(genre.split()))

    def text(self, q: str | None, fts_table: str, rowid: str) -> bool:
        """Match ``q`` in ``fts_table`` (whose rowid is ``rowid``); False if it has no
        words (no filter then)."""
        fts = fts_query(q)
        if fts is None:
            return False
        self.joins = f" JOIN {fts_table} f ON f.rowid = {rowid}"
        self.fts_table = fts_table
        self.fts_rowid = rowid
        self.add(f"{fts_table} MATCH ?", fts)
        return True

    def page(
        self, tx: Tx, key: str, count_from: str, select: str, order: str, page: int, limit: int
    ) -> Page[Sequence[Any]]:
        """Page ``page`` of the rows ``select`` finds under these filters, by ``order``.

        ``key`` is ``select``'s first column, unique per row; ``count_from`` is the FROM
        clause the filters and ``order`` need (every song has its artist, every album its
        artist, so those joins are left out of counting and ordering). The page is found by ``key``
        alone and only its rows are then selected in full: SQLite's sorter would otherwise
        compute every column (joins, subqueries) of every match before keeping ``limit``."""
        cond = (" WHERE " + " AND ".join(self.where)) if self.where else ""
        text_alone = self.fts_table is not None and len(self.where) == 1
        if text_alone:
            # Text alone: the index has one row per listed row (the apply code keeps it so),
            # and counting its matches skips a join per match (at 100,000 songs a common
            # word's count took 15 ms with the join, 0.5 ms without).
            count = f"SELECT COUNT(*) FROM {self.fts_table}{cond}"
        else:
            count = f"SELECT COUNT(*) {count_from}{self.joins}{cond}"
        total = int(_scalar(tx, count, self.params))
        if text_alone and self.rank is not None:
            keys = self._ranked_keys(tx, key, count_from, order, page, limit)
        else:
            if self.rank is not None:
                order = f"{self.rank}, {order}"
            keys = [
                r[0]
                for r in _exec(
                    tx,
                    f"SELECT {key} {count_from}{self.joins}{cond} ORDER BY {order} "
                    "LIMIT ? OFFSET ?",
                    [*self.params, limit, (page - 1) * limit],
                )
            ]
        rows: dict[Any, Sequence[Any]] = {}
        if keys:
            marks = ",".join("?" * len(keys))
            rows = {r[0]: r for r in _exec(tx, f"{select} WHERE {key} IN ({marks})", keys)}
        return Page(tuple(rows[k] for k in keys), page, limit, total)

    def _ranked_keys(
        self, tx: Tx, key: str, count_from: str, order: str, page: int, limit: int
    ) -> list[Any]:
        """The keys of a text search's page by relevance, then ``order``: those ordering every
        match by ``rank, order`` gives, for less work. The index scores every match alone, once
        (``m``); the page's last score is found among the scores (``cut``), and only the
        matches scoring at least as well (ties included) are joined to their rows and sorted
        in full. One statement, a page of keys out: the GIL is taken per row returned, and
        returning every score to Python made concurrent searches slower than the plain
        query (4 threads: 520 against 995 searches/s)."""
        assert self.fts_table is not None and self.rank is not None
        table = self.fts_table
        source = count_from.removeprefix("FROM ")
        return [
            r[0]
            for r in _exec(
                tx,
                f"WITH m AS MATERIALIZED (SELECT rowid AS n, {self.rank} AS r FROM {table} "
                f"WHERE {table} MATCH ?), cut AS (SELECT r FROM m ORDER BY r LIMIT 1 OFFSET ?) "
                f"SELECT {key} FROM m CROSS JOIN {source} ON {self.fts_rowid} = m.n "
                f"WHERE m.r <= COALESCE((SELECT r FROM cut), 1e308) "
                f"ORDER BY m.r, {order} LIMIT ? OFFSET ?",
                [*self.params, page * limit - 1, limit, (page - 1) * limit],
            )
        ]


ALBUM_COVER: Final = (
    "COALESCE(al.cover_sha256, (SELECT t.cover_sha256 FROM songs t WHERE t.album_id = al.id "
    "AND t.cover_sha256 IS NOT NULL ORDER BY t.track IS NULL, t.track, t.n LIMIT 1))"
)
"""An album's cover (``al``): its own, else the art of its first track that has some, so
an album whose first upload had no art shows the art a later track brought."""
SONG_COLUMNS: Final = (
    "s.id, s.title, s.artist_id, ar.name, s.album_id, al.title, s.track, s.year, s.duration, "
    f"s.blob_sha256, s.mime, s.size, COALESCE(s.cover_sha256, {ALBUM_COVER}), s.play_count, "
    "s.like_count, s.created_by, s.created_at"
)
SONG_FROM: Final = (
    "FROM songs s JOIN artists ar ON ar.id = s.artist_id LEFT JOIN albums al ON al.id = s.album_id"
)


def song_views(tx: Tx, rows: Sequence[Sequence[Any]]) -> tuple[SongView, ...]:
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
    page, limit = paging(page, limit)
    if sort is not None and sort not in _SONG_SORTS:
        raise ValueError(f"sort must be one of {', '.join(_SONG_SORTS)}")
    order = _SONG_SORTS[sort or "title"]
    filters = _Filters()
    if filters.text(q, "songs_fts", "s.n") and sort is None:  # title > artist > album
        filters.rank = "bm25(songs_fts, 10.0, 4.0, 2.0)"
    filters.add("s.artist_id = ?", artist_id)
    filters.add("s.album_id = ?", album_id)
    filters.genre("s.id IN (SELECT song_id FROM song_genres WHERE genre = ?)", genre)
    found = filters.page(
        tx, "s.id", "FROM songs s", f"SELECT {SONG_COLUMNS} {SONG_FROM}", order, page, limit
    )
    return Page(song_views(tx, found.items), page, limit, found.total)


ALBUM_FROM: Final = "FROM albums al JOIN artists ar ON ar.id = al.artist_id"


ALBUM_COLUMNS: Final = (
    f"al.id, al.title, al.artist_id, ar.name, al.year, {ALBUM_COVER}, "
    "(SELECT COUNT(*) FROM songs s WHERE s.album_id = al.id), "
    "(SELECT COALESCE(SUM(s.duration), 0) FROM songs s WHERE s.album_id = al.id)"
)
"""The columns of :func:`album_view`."""
ALBUM_SELECT: Final = f"SELECT {ALBUM_COLUMNS} {ALBUM_FROM}"


def album_view(r: Sequence[Any]) -> AlbumView:
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
    page, limit = paging(page, limit)
    order = "al.title COLLATE NOCASE, al.id"
    filters = _Filters()
    if filters.text(q, "albums_fts", "al.n"):
        filters.rank = "bm25(albums_fts, 10.0, 4.0)"
    filters.add("al.artist_id = ?", artist_id)
    filters.genre(
        "al.id IN (SELECT s.album_id FROM songs s JOIN song_genres g "
        "ON g.song_id = s.id WHERE g.genre = ?)",
        genre,
    )
    return filters.page(tx, "al.id", "FROM albums al", ALBUM_SELECT, order, page, limit).map(
        album_view
    )


ARTIST_SELECT: Final = (
    "SELECT ar.id, ar.name, (SELECT COUNT(*) FROM albums al WHERE al.artist_id = ar.id), "
    "(SELECT COUNT(*) FROM songs s WHERE s.artist_id = ar.id) FROM artists ar"
)


def artist_view(r: Sequence[Any]) -> ArtistView:
    return ArtistView(id=r[0], name=r[1], album_count=int(r[2]), song_count=int(r[3]))


def list_artists(
    tx: Tx, *, q: str | None = None, genre: str | None = None, page: int = 1, limit: int = 50
) -> Page[ArtistView]:
    """Artists matching ``q`` (name search) and ``genre`` (has a song of it), by name."""
    page, limit = paging(page, limit)
    order = "ar.name COLLATE NOCASE, ar.id"
    filters = _Filters()
    if filters.text(q, "artists_fts", "ar.n"):
        filters.rank = "bm25(artists_fts)"
    filters.genre(
        "ar.id IN (SELECT s.artist_id FROM songs s JOIN song_genres g "
        "ON g.song_id = s.id WHERE g.genre = ?)",
        genre,
    )
    return filters.page(tx, "ar.id", "FROM artists ar", ARTIST_SELECT, order, page, limit).map(
        artist_view
    )


def search(tx: Tx, q: str, *, limit: int = 5) -> SearchResults:
    """Top ``limit`` artists, albums and songs matching ``q`` (empty if it has no words)."""
    if fts_query(q) is None:
        return SearchResults(artists=(), albums=(), songs=())
    return SearchResults(
        artists=list_artists(tx, q=q, limit=limit).items,
        albums=list_albums(tx, q=q, limit=limit).items,
        songs=list_songs(tx, q=q, limit=limit).items,
    )


def get_song(tx: Tx, song_id: str) -> SongView | None:
    """One song, or None."""
    rows = _exec(tx, f"SELECT {SONG_COLUMNS} {SONG_FROM} WHERE s.id = ?", (song_id,))
    songs = song_views(tx, rows)
    return songs[0] if songs else None


def get_album(tx: Tx, album_id: str) -> AlbumDetail | None:
    """An album with its tracks, or None."""
    row = _one(tx, f"{ALBUM_SELECT} WHERE al.id = ?", (album_id,))
    if row is None:
        return None
    rows = _exec(
        tx,
        f"SELECT {SONG_COLUMNS} {SONG_FROM} WHERE s.album_id = ? "
        "ORDER BY s.track IS NULL, s.track, s.title COLLATE NOCASE, s.id",
        (album_id,),
    )
    return AlbumDetail(album=album_view(row), tracks=song_views(tx, rows))


def get_artist(tx: Tx, artist_id: str) -> ArtistDetail | None:
    """An artist with their albums and album-less songs, or None."""
    row = _one(tx, f"{ARTIST_SELECT} WHERE ar.id = ?", (artist_id,))
    if row is None:
        return None
    albums = _exec(
        tx,
        f"{ALBUM_SELECT} WHERE al.artist_id = ? "
        "ORDER BY al.year IS NULL, al.year, al.title COLLATE NOCASE, al.id",
        (artist_id,),
    )
    singles = _exec(
        tx,
        f"SELECT {SONG_COLUMNS} {SONG_FROM} WHERE s.artist_id = ? "
        "AND s.album_id IS NULL ORDER BY s.title COLLATE NOCASE, s.id",
        (artist_id,),
    )
    return ArtistDetail(
        artist=artist_view(row),
        albums=tuple(album_view(r) for r in albums),
        singles=song_views(tx, singles),
    )


def genres(tx: Tx) -> list[tuple[str, int]]:
    """Every genre with its song count, most used first, then by name (genres match
    ignoring case, as in the ``genre`` filters, so ``Rock`` and ``rock`` are one)."""
    rows = _exec(
        tx, "SELECT genre, COUNT(*) FROM song_genres GROUP BY genre ORDER BY COUNT(*) DESC, genre"
    )
    return [(str(r[0]), int(r[1])) for r in rows]


def song_with_blob(tx: Tx, sha256: str) -> str | None:
    """The oldest song whose audio is the blob ``sha256``, or None."""
    row = _one(tx, "SELECT id FROM songs WHERE blob_sha256 = ? ORDER BY n LIMIT 1", (sha256,))
    return None if row is None else str(row[0])


def song_blobs(tx: Tx) -> list[tuple[str, str, str]]:
    """``(id, title, audio sha256)`` of every song, oldest first."""
    rows = _exec(tx, "SELECT id, title, blob_sha256 FROM songs ORDER BY n")
    return [(str(i), str(t), str(s)) for i, t, s in rows]


def find_artist(tx: Tx, name: str) -> str | None:
    """The oldest artist called ``name`` (case and spacing aside), or None."""
    row = _one(
        tx,
        "SELECT id FROM artists WHERE name = ? COLLATE NOCASE ORDER BY n LIMIT 1",
        (" ".join(name.split()),),
    )
    return None if row is None else str(row[0])


def find_album(tx: Tx, artist_id: str, title: str) -> tuple[str, str | None] | None:
    """The oldest album ``title`` (case and spacing aside) by ``artist_id``, with its cover,
    or None."""
    row = _one(
        tx,
        "SELECT id, cover_sha256 FROM albums WHERE artist_id = ? AND title = ? "
        "COLLATE NOCASE ORDER BY n LIMIT 1",
        (artist_id, " ".join(title.split())),
    )
    return None if row is None else (str(row[0]), row[1])
