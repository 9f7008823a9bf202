"""The catalog's tables, log positions and what applying an entry can result in."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal

import attrs

from dspot_spotify.catalog._sql import Tx
from dspot_spotify.catalog._sql import exec_ as _exec

SCHEMA: Final[tuple[str, ...]] = (
    """CREATE TABLE IF NOT EXISTS catalog_meta (
        key TEXT PRIMARY KEY, value INTEGER NOT NULL)""",
    # ``token_generation``: tokens (and Subsonic app credentials) of an older generation are
    # refused; ``tokens_valid_after``: the same by time, from password changes applied before
    # generations existed. ``sealed_password``: the account password sealed for Subsonic's
    # token auth (None when unknown or when the cluster requires app passwords).
    """CREATE TABLE IF NOT EXISTS users (
        n INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,
        username TEXT NOT NULL UNIQUE COLLATE NOCASE, password_hash TEXT NOT NULL,
        role TEXT NOT NULL, created_at INTEGER NOT NULL,
        tokens_valid_after INTEGER NOT NULL DEFAULT 0,
        disabled INTEGER NOT NULL DEFAULT 0, token_generation INTEGER NOT NULL DEFAULT 0,
        sealed_password TEXT)""",
    # Subsonic API credentials: the password sealed, the API key as a keyed hash (auth.py);
    # valid while ``generation`` is the user's token generation.
    """CREATE TABLE IF NOT EXISTS subsonic_credentials (
        user_id TEXT PRIMARY KEY, password TEXT NOT NULL, api_key TEXT NOT NULL UNIQUE,
        updated_at INTEGER NOT NULL, generation INTEGER NOT NULL DEFAULT 0)""",
    # Cluster-wide settings an admin changes through the log (``SETTINGS`` has the defaults).
    """CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value INTEGER NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS revoked_tokens (
        token_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, expires_at INTEGER NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS artists (
        n INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
        created_by TEXT, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS artists_name ON artists (name COLLATE NOCASE, id)",
    """CREATE TABLE IF NOT EXISTS albums (
        n INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, title TEXT NOT NULL,
        artist_id TEXT NOT NULL, year INTEGER, cover_sha256 TEXT,
        created_by TEXT, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS albums_artist ON albums (artist_id, year, title)",
    """CREATE TABLE IF NOT EXISTS songs (
        n INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, title TEXT NOT NULL,
        artist_id TEXT NOT NULL, album_id TEXT, track INTEGER, year INTEGER,
        duration REAL NOT NULL, blob_sha256 TEXT NOT NULL, mime TEXT NOT NULL,
        size INTEGER NOT NULL, cover_sha256 TEXT, created_by TEXT,
        created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
        play_count INTEGER NOT NULL DEFAULT 0, like_count INTEGER NOT NULL DEFAULT 0)""",
    "CREATE INDEX IF NOT EXISTS songs_artist ON songs (artist_id)",
    "CREATE INDEX IF NOT EXISTS songs_album ON songs (album_id, track)",
    "CREATE INDEX IF NOT EXISTS songs_blob ON songs (blob_sha256)",
    "CREATE INDEX IF NOT EXISTS songs_title ON songs (title COLLATE NOCASE, id)",
    """CREATE TABLE IF NOT EXISTS song_genres (
        song_id TEXT NOT NULL, position INTEGER NOT NULL, genre TEXT NOT NULL COLLATE NOCASE,
        PRIMARY KEY (song_id, position))""",
    "CREATE INDEX IF NOT EXISTS song_genres_genre ON song_genres (genre, song_id)",
    """CREATE TABLE IF NOT EXISTS playlists (
        n INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, owner_id TEXT NOT NULL,
        name TEXT NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS playlists_owner ON playlists (owner_id)",
    """CREATE TABLE IF NOT EXISTS playlist_items (
        item_id TEXT PRIMARY KEY, playlist_id TEXT NOT NULL, position INTEGER NOT NULL,
        song_id TEXT NOT NULL, added_at INTEGER NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS playlist_items_order ON playlist_items (playlist_id, position)",
    "CREATE INDEX IF NOT EXISTS playlist_items_song ON playlist_items (song_id)",
    """CREATE TABLE IF NOT EXISTS likes (
        user_id TEXT NOT NULL, song_id TEXT NOT NULL, at INTEGER NOT NULL,
        PRIMARY KEY (user_id, song_id))""",
    "CREATE INDEX IF NOT EXISTS likes_song ON likes (song_id)",
    """CREATE TABLE IF NOT EXISTS album_likes (
        user_id TEXT NOT NULL, album_id TEXT NOT NULL, at INTEGER NOT NULL,
        PRIMARY KEY (user_id, album_id))""",
    "CREATE INDEX IF NOT EXISTS album_likes_album ON album_likes (album_id)",
    """CREATE TABLE IF NOT EXISTS artist_likes (
        user_id TEXT NOT NULL, artist_id TEXT NOT NULL, at INTEGER NOT NULL,
        PRIMARY KEY (user_id, artist_id))""",
    "CREATE INDEX IF NOT EXISTS artist_likes_artist ON artist_likes (artist_id)",
    """CREATE TABLE IF NOT EXISTS plays (
        user_id TEXT NOT NULL, song_id TEXT NOT NULL, count INTEGER NOT NULL,
        last_at INTEGER NOT NULL, PRIMARY KEY (user_id, song_id))""",
    "CREATE INDEX IF NOT EXISTS plays_song ON plays (song_id)",
    # What players keep per user: ratings, bookmarks, the play queue, what plays now.
    """CREATE TABLE IF NOT EXISTS ratings (
        user_id TEXT NOT NULL, target TEXT NOT NULL, target_id TEXT NOT NULL,
        rating INTEGER NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (user_id, target, target_id))""",
    "CREATE INDEX IF NOT EXISTS ratings_target ON ratings (target_id)",
    """CREATE TABLE IF NOT EXISTS bookmarks (
        user_id TEXT NOT NULL, song_id TEXT NOT NULL, position INTEGER NOT NULL,
        comment TEXT, created_at INTEGER NOT NULL, changed_at INTEGER NOT NULL,
        PRIMARY KEY (user_id, song_id))""",
    "CREATE INDEX IF NOT EXISTS bookmarks_song ON bookmarks (song_id)",
    """CREATE TABLE IF NOT EXISTS play_queues (
        user_id TEXT PRIMARY KEY, song_ids TEXT NOT NULL, current TEXT,
        position INTEGER NOT NULL, changed_at INTEGER NOT NULL, changed_by TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS now_playing (
        user_id TEXT NOT NULL, client TEXT NOT NULL, song_id TEXT NOT NULL, at INTEGER NOT NULL,
        PRIMARY KEY (user_id, client))""",
    """CREATE TABLE IF NOT EXISTS song_lyrics (song_id TEXT PRIMARY KEY, lyrics TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS rejections (
        epoch INTEGER NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL, actor TEXT,
        reason TEXT NOT NULL, code TEXT NOT NULL, PRIMARY KEY (epoch, seq))""",
    # Full-text indexes; each row's rowid is the base table's ``n``.
    """CREATE VIRTUAL TABLE IF NOT EXISTS songs_fts USING fts5(
        title, artist, album, tokenize = 'unicode61 remove_diacritics 2')""",
    """CREATE VIRTUAL TABLE IF NOT EXISTS albums_fts USING fts5(
        title, artist, tokenize = 'unicode61 remove_diacritics 2')""",
    """CREATE VIRTUAL TABLE IF NOT EXISTS artists_fts USING fts5(
        name, tokenize = 'unicode61 remove_diacritics 2')""",
)


ADDED_COLUMNS: Final[tuple[tuple[str, str, str], ...]] = (
    ("users", "disabled", "INTEGER NOT NULL DEFAULT 0"),
    ("users", "token_generation", "INTEGER NOT NULL DEFAULT 0"),
    ("users", "sealed_password", "TEXT"),
    ("subsonic_credentials", "generation", "INTEGER NOT NULL DEFAULT 0"),
)
"""Columns added to tables after a release: ``(table, column, declaration)``. A replica made
before gets them with their defaults when it opens (:func:`create_schema`)."""

SETTINGS: Final[Mapping[str, int]] = {"subsonic_account_password": 1}
"""Every cluster setting and its value until an admin changes it."""


def _count(column: str, delta: str) -> str:
    """SQL that adds ``delta`` (``+ 1`` / ``- 1``) to the reference count of the blob in
    ``column`` (``new.x`` / ``old.x``) when it is not NULL; a count that drops to zero
    records the log's clock as the blob's release time and lists the blob in
    ``blob_released`` for the entry being applied."""
    if delta == "+ 1":
        return (
            f"INSERT INTO blobs (sha256, refs) SELECT {column}, 1 WHERE {column} IS NOT NULL "
            "ON CONFLICT (sha256) DO UPDATE SET refs = refs + 1;"
        )
    clock = "COALESCE((SELECT value FROM catalog_meta WHERE key = 'log_clock'), 0)"
    return (
        f"UPDATE blobs SET refs = refs - 1, released_at = CASE WHEN refs = 1 THEN {clock} "
        f"ELSE released_at END WHERE sha256 = {column}; "
        f"INSERT OR IGNORE INTO blob_released (sha256) SELECT {column} "
        f"WHERE (SELECT refs FROM blobs WHERE sha256 = {column}) = 0;"
    )


def _triggers(table: str, columns: tuple[str, ...]) -> tuple[str, ...]:
    """Triggers that keep ``blobs.refs`` equal to the references ``columns`` of ``table``
    hold."""
    add = " ".join(_count(f"new.{c}", "+ 1") for c in columns)
    drop = " ".join(_count(f"old.{c}", "- 1") for c in columns)
    changed = " OR ".join(f"old.{c} IS NOT new.{c}" for c in columns)
    of = ", ".join(columns)
    return (
        f"CREATE TRIGGER IF NOT EXISTS {table}_blobs_insert AFTER INSERT ON {table} "
        f"BEGIN {add} END",
        f"CREATE TRIGGER IF NOT EXISTS {table}_blobs_delete AFTER DELETE ON {table} "
        f"BEGIN {drop} END",
        f"CREATE TRIGGER IF NOT EXISTS {table}_blobs_update AFTER UPDATE OF {of} ON {table} "
        f"WHEN {changed} BEGIN {add} {drop} END",
    )


BLOB_SCHEMA: Final[tuple[str, ...]] = (
    # Every blob an applied entry refers to or leased: how many song audios, song covers and
    # album covers refer to it, until when an upload lease protects it, and when (by the
    # log's clock) its last reference went. A row with no references and no live lease is
    # garbage for the blob collector. Kept by the triggers below, so no handler forgets.
    """CREATE TABLE IF NOT EXISTS blobs (
        sha256 TEXT PRIMARY KEY, refs INTEGER NOT NULL DEFAULT 0,
        lease_until INTEGER NOT NULL DEFAULT 0, released_at INTEGER NOT NULL DEFAULT 0)""",
    "CREATE INDEX IF NOT EXISTS blobs_refs ON blobs (refs, sha256)",
    # Scratch: the blobs the entry being applied released (empty between entries).
    "CREATE TABLE IF NOT EXISTS blob_released (sha256 TEXT PRIMARY KEY)",
    *_triggers("songs", ("blob_sha256", "cover_sha256")),
    *_triggers("albums", ("cover_sha256",)),
)

_BACKFILL: Final = """INSERT INTO blobs (sha256, refs)
    SELECT sha, COUNT(*) FROM (
        SELECT blob_sha256 AS sha FROM songs
        UNION ALL SELECT cover_sha256 FROM songs WHERE cover_sha256 IS NOT NULL
        UNION ALL SELECT cover_sha256 FROM albums WHERE cover_sha256 IS NOT NULL)
    GROUP BY sha ORDER BY sha"""


def create_schema(tx: Tx) -> None:
    """Create the catalog tables if missing, and add the columns of :data:`ADDED_COLUMNS`
    that an older replica lacks (idempotent; run inside a transaction).

    A catalog written before blobs were reference-counted gets its ``blobs`` table filled
    from the songs and albums it holds, once (the same rows on every replica, since they
    hold the same catalog at the same position)."""
    for stmt in SCHEMA:
        _exec(tx, stmt)
    for table, column, declaration in ADDED_COLUMNS:
        have = {str(r[1]) for r in _exec(tx, f"PRAGMA table_info({table})")}
        if column not in have:
            _exec(tx, f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
    counted = _exec(tx, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'blobs'")
    for stmt in BLOB_SCHEMA:
        _exec(tx, stmt)
    if not counted:
        _exec(tx, _BACKFILL)


@attrs.frozen(order=True)
class LogPosition:
    """A log entry's place: ``(epoch, seq)``, compared lexicographically."""

    epoch: int
    seq: int


RejectCode = Literal["invalid", "unauthenticated", "forbidden", "not_found", "conflict", "expired"]
#: HTTP status for each rejection code. ``expired``: an upload's lease on its blobs ran out
#: before its song was committed; nothing was done and the same upload may be sent again.
REJECT_STATUS: Final[Mapping[str, int]] = {
    "invalid": 422,
    "unauthenticated": 401,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
    "expired": 503,
}


@attrs.frozen
class ApplyResult:
    """What :func:`apply` did: ``applied``, ``rejected`` (with a reason and a code) or
    ``skipped``. ``REJECT_STATUS[code]`` is the HTTP status to answer a rejected write with.
    """

    status: Literal["applied", "rejected", "skipped"]
    reason: str | None = None
    code: RejectCode | None = None
    unowned: tuple[str, ...] = ()
    """Blobs the entry left without a reference, or leased (unowned once the lease ends):
    what the blob collector should look at after its grace period."""

    @property
    def ok(self) -> bool:
        """True when the entry took effect now or at an earlier application."""
        return self.status != "rejected"


LikeTarget = Literal["song", "album", "artist"]
"""What a user can like (a Subsonic client "stars")."""

#: Per like target: the like table, its id column and the table of the liked things.
LIKE_TABLES: Final[Mapping[str, tuple[str, str, str]]] = {
    "song": ("likes", "song_id", "songs"),
    "album": ("album_likes", "album_id", "albums"),
    "artist": ("artist_likes", "artist_id", "artists"),
}
