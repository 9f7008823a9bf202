"""The catalog state machine: schema, and :func:`apply` of one entry at one log position."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal

import attrs

from dspot_spotify.auth import CredentialError, is_password_hash, validate_username
from dspot_spotify.catalog._entries import (
    AddToPlaylist,
    ChangePassword,
    CreateAlbum,
    CreateArtist,
    CreatePlaylist,
    CreateSong,
    DeleteAlbum,
    DeleteArtist,
    DeletePlaylist,
    DeleteSong,
    Entry,
    InvalidEntry,
    LikeAlbum,
    LikeArtist,
    LikeSong,
    MovePlaylistItem,
    RecordPlay,
    RegisterUser,
    RemoveFromPlaylist,
    RenamePlaylist,
    RevokeToken,
    SetSubsonicCredentials,
    SetUserRole,
    UnlikeAlbum,
    UnlikeArtist,
    UnlikeSong,
    UpdateAlbum,
    UpdateArtist,
    UpdateSong,
    decode_entry,
)
from dspot_spotify.catalog._sql import Tx
from dspot_spotify.catalog._sql import exec_ as _exec
from dspot_spotify.catalog._sql import one as _one
from dspot_spotify.catalog._sql import scalar as _scalar

# --------------------------------------------------------------------------- schema

SCHEMA: Final[tuple[str, ...]] = (
    """CREATE TABLE IF NOT EXISTS catalog_meta (
        key TEXT PRIMARY KEY, value INTEGER NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS users (
        n INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,
        username TEXT NOT NULL UNIQUE COLLATE NOCASE, password_hash TEXT NOT NULL,
        role TEXT NOT NULL, created_at INTEGER NOT NULL,
        tokens_valid_after INTEGER NOT NULL DEFAULT 0)""",
    # Subsonic API credentials: the password sealed, the API key as a keyed hash (auth.py).
    """CREATE TABLE IF NOT EXISTS subsonic_credentials (
        user_id TEXT PRIMARY KEY, password TEXT NOT NULL, api_key TEXT NOT NULL UNIQUE,
        updated_at INTEGER NOT NULL)""",
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


def create_schema(tx: Tx) -> None:
    """Create the catalog tables if missing (idempotent; run inside a transaction)."""
    for stmt in SCHEMA:
        _exec(tx, stmt)


@attrs.frozen(order=True)
class LogPosition:
    """A log entry's place: ``(epoch, seq)``, compared lexicographically."""

    epoch: int
    seq: int


RejectCode = Literal["invalid", "unauthenticated", "forbidden", "not_found", "conflict"]
#: HTTP status for each rejection code.
REJECT_STATUS: Final[Mapping[str, int]] = {
    "invalid": 422,
    "unauthenticated": 401,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
}


@attrs.frozen
class ApplyResult:
    """What :func:`apply` did: ``applied``, ``rejected`` (with a reason and a code) or
    ``skipped``. ``REJECT_STATUS[code]`` is the HTTP status to answer a rejected write with.
    """

    status: Literal["applied", "rejected", "skipped"]
    reason: str | None = None
    code: RejectCode | None = None

    @property
    def ok(self) -> bool:
        """True when the entry took effect now or at an earlier application."""
        return self.status != "rejected"


class _Reject(Exception):
    def __init__(self, reason: str, code: RejectCode = "invalid") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code: RejectCode = code


def applied_position(tx: Tx) -> LogPosition | None:
    """The position of the last entry applied (or rejected), None before the first."""
    rows = {
        str(r[0]): int(r[1])
        for r in _exec(
            tx,
            "SELECT key, value FROM catalog_meta WHERE key IN (?, ?)",
            ("applied_epoch", "applied_seq"),
        )
    }
    if len(rows) < 2:
        return None
    return LogPosition(rows["applied_epoch"], rows["applied_seq"])


def _set_position(tx: Tx, pos: LogPosition) -> None:
    for key, value in (("applied_epoch", pos.epoch), ("applied_seq", pos.seq)):
        _exec(
            tx,
            "INSERT INTO catalog_meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )


def apply(tx: Tx, position: LogPosition, entry: Entry) -> ApplyResult:
    """Apply ``entry`` at ``position`` inside the caller's transaction.

    Skips positions at or below the last applied one; records a rejection (and changes
    nothing else) when the entry is invalid or not permitted. The caller must have opened
    the transaction (``BEGIN``): the entry runs in a ``SAVEPOINT`` nested in it, rolled
    back on rejection. Commit the caller's transaction to make the position durable.
    """
    current = applied_position(tx)
    if current is not None and position <= current:
        return ApplyResult("skipped")
    handler = _HANDLERS.get(type(entry))
    _exec(tx, "SAVEPOINT catalog_apply")
    try:
        if handler is None:
            raise _Reject(f"unknown entry type {type(entry).__name__}")
        _check_common(entry)
        handler(tx, entry)
    except _Reject as rej:
        _exec(tx, "ROLLBACK TO catalog_apply")
        _exec(tx, "RELEASE catalog_apply")
        _record_rejection(
            tx, position, entry.kind or type(entry).__name__, entry.actor, rej.reason, rej.code
        )
        _set_position(tx, position)
        return ApplyResult("rejected", rej.reason, rej.code)
    _exec(tx, "RELEASE catalog_apply")
    _set_position(tx, position)
    return ApplyResult("applied")


def apply_encoded(tx: Tx, position: LogPosition, data: bytes) -> ApplyResult:
    """Decode and apply; bytes that do not decode are recorded as a rejection."""
    try:
        entry = decode_entry(data)
    except InvalidEntry as exc:
        current = applied_position(tx)
        if current is not None and position <= current:
            return ApplyResult("skipped")
        _record_rejection(tx, position, "invalid", None, str(exc)[:500], "invalid")
        _set_position(tx, position)
        return ApplyResult("rejected", str(exc)[:500], "invalid")
    return apply(tx, position, entry)


def _record_rejection(
    tx: Tx, pos: LogPosition, kind: str, actor: str | None, reason: str, code: RejectCode
) -> None:
    _exec(
        tx,
        "INSERT OR REPLACE INTO rejections (epoch, seq, kind, actor, reason, code) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (pos.epoch, pos.seq, kind, actor, reason, code),
    )


# --------------------------------------------------------------------------- validation

_SHA256_RE: Final = re.compile(r"^[0-9a-f]{64}$")
_ID_MAX: Final = 64
NAME_MAX: Final = 200
GENRE_MAX: Final = 60
GENRES_MAX: Final = 10
PLAYLIST_ITEMS_MAX: Final = 10_000


def _check_common(entry: Entry) -> None:
    if not isinstance(entry.at, int) or entry.at < 0:
        raise _Reject("timestamp must be a non-negative integer")
    if entry.actor is not None:
        _check_id(entry.actor, "actor")


def _check_id(value: str, what: str) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= _ID_MAX or not value.isprintable():
        raise _Reject(f"{what} must be 1-{_ID_MAX} printable characters")
    return value


def _check_name(value: str, what: str) -> str:
    text = " ".join(value.split()) if isinstance(value, str) else ""
    if not text:
        raise _Reject(f"{what} must not be empty")
    if len(text) > NAME_MAX:
        raise _Reject(f"{what} must have at most {NAME_MAX} characters")
    return text


def _check_sha(value: str | None, what: str) -> None:
    if value is not None and not _SHA256_RE.match(value):
        raise _Reject(f"{what} must be 64 lowercase hex digits")


def _check_year(year: int | None) -> None:
    if year is not None and not 1 <= year <= 9999:
        raise _Reject("year must be between 1 and 9999")


def _check_track(track: int | None) -> None:
    if track is not None and not 0 <= track <= 9999:
        raise _Reject("track number must be between 0 and 9999")


def _check_genres(values: Sequence[str]) -> tuple[str, ...]:
    out: list[str] = []
    seen: set[str] = set()
    for g in values:
        text = " ".join(g.split())
        if not text:
            continue
        if len(text) > GENRE_MAX:
            raise _Reject(f"genre must have at most {GENRE_MAX} characters")
        if text.casefold() not in seen:
            seen.add(text.casefold())
            out.append(text)
    if len(out) > GENRES_MAX:
        raise _Reject(f"at most {GENRES_MAX} genres")
    return tuple(out)


@attrs.frozen
class _Actor:
    id: str
    role: str

    @property
    def admin(self) -> bool:
        return self.role == "admin"


def _actor(tx: Tx, entry: Entry) -> _Actor:
    if entry.actor is None:
        raise _Reject("sign in required", "unauthenticated")
    row = _one(tx, "SELECT role FROM users WHERE id = ?", (entry.actor,))
    if row is None:
        raise _Reject("unknown actor", "unauthenticated")
    return _Actor(entry.actor, str(row[0]))


def _may_edit(actor: _Actor, created_by: str | None, what: str) -> None:
    if not actor.admin and actor.id != created_by:
        raise _Reject(f"only the {what}'s creator or an admin may change it", "forbidden")


def _exists(tx: Tx, table: str, id_: str) -> bool:
    return _one(tx, f"SELECT 1 FROM {table} WHERE id = ?", (id_,)) is not None


def _id_free(tx: Tx, table: str, id_: str, what: str) -> None:
    _check_id(id_, f"{what} id")
    if _exists(tx, table, id_):
        raise _Reject(f"{what} id already exists", "conflict")


def _owner(tx: Tx, table: str, id_: str, what: str) -> str | None:
    row = _one(tx, f"SELECT created_by FROM {table} WHERE id = ?", (id_,))
    if row is None:
        raise _Reject(f"unknown {what}", "not_found")
    return None if row[0] is None else str(row[0])


# --------------------------------------------------------------------------- handlers: users


def _register_user(tx: Tx, e: RegisterUser) -> None:
    _check_id(e.user_id, "user id")
    try:
        username = validate_username(e.username)
    except CredentialError as exc:
        raise _Reject(str(exc)) from None
    if e.role not in ("admin", "user"):
        raise _Reject("role must be admin or user")
    if not is_password_hash(e.password_hash):
        raise _Reject("password hash is not a valid scrypt hash")
    users = int(_scalar(tx, "SELECT COUNT(*) FROM users"))
    if users and e.actor is None:
        if e.role != "user":
            raise _Reject("only an admin may register admins", "forbidden")
    elif users:
        if not _actor(tx, e).admin:
            raise _Reject("only an admin may register users for others", "forbidden")
    elif e.actor is not None:
        raise _Reject("unknown actor", "unauthenticated")
    if _exists(tx, "users", e.user_id):
        raise _Reject("user id already exists", "conflict")
    if _one(tx, "SELECT 1 FROM users WHERE username = ?", (username,)) is not None:
        raise _Reject("username is taken", "conflict")
    _exec(
        tx,
        "INSERT INTO users (id, username, password_hash, role, created_at) VALUES (?, ?, ?, ?, ?)",
        (e.user_id, username, e.password_hash, e.role, e.at),
    )


def _set_user_role(tx: Tx, e: SetUserRole) -> None:
    actor = _actor(tx, e)
    if not actor.admin:
        raise _Reject("only an admin may change roles", "forbidden")
    if e.role not in ("admin", "user"):
        raise _Reject("role must be admin or user")
    row = _one(tx, "SELECT role FROM users WHERE id = ?", (e.user_id,))
    if row is None:
        raise _Reject("unknown user", "not_found")
    if row[0] == "admin" and e.role == "user":
        admins = int(_scalar(tx, "SELECT COUNT(*) FROM users WHERE role = 'admin'"))
        if admins <= 1:
            raise _Reject("cannot demote the last admin", "conflict")
    _exec(tx, "UPDATE users SET role = ? WHERE id = ?", (e.role, e.user_id))


def _change_password(tx: Tx, e: ChangePassword) -> None:
    actor = _actor(tx, e)
    if actor.id != e.user_id and not actor.admin:
        raise _Reject("only the user or an admin may change a password", "forbidden")
    if not _exists(tx, "users", e.user_id):
        raise _Reject("unknown user", "not_found")
    if not is_password_hash(e.password_hash):
        raise _Reject("password hash is not a valid scrypt hash")
    _exec(
        tx,
        "UPDATE users SET password_hash = ?, tokens_valid_after = ? WHERE id = ?",
        (e.password_hash, e.at, e.user_id),
    )


_SUBSONIC_SECRET_RE: Final = re.compile(r"^[A-Za-z0-9_-]{16,128}$")


def _set_subsonic_credentials(tx: Tx, e: SetSubsonicCredentials) -> None:
    actor = _actor(tx, e)
    if actor.id != e.user_id and not actor.admin:
        raise _Reject("only the user or an admin may set Subsonic credentials", "forbidden")
    if not _exists(tx, "users", e.user_id):
        raise _Reject("unknown user", "not_found")
    for value, what in ((e.password, "Subsonic password"), (e.api_key, "API key")):
        if not _SUBSONIC_SECRET_RE.match(value):
            raise _Reject(f"{what} must be 16-128 characters of A-Z, a-z, 0-9, '-' and '_'")
    if _one(
        tx,
        "SELECT 1 FROM subsonic_credentials WHERE api_key = ? AND user_id != ?",
        (e.api_key, e.user_id),
    ):
        raise _Reject("API key already in use", "conflict")
    _exec(
        tx,
        "INSERT INTO subsonic_credentials (user_id, password, api_key, updated_at) "
        "VALUES (?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET password = excluded.password, "
        "api_key = excluded.api_key, updated_at = excluded.updated_at",
        (e.user_id, e.password, e.api_key, e.at),
    )


def _revoke_token(tx: Tx, e: RevokeToken) -> None:
    actor = _actor(tx, e)
    if actor.id != e.user_id and not actor.admin:
        raise _Reject("only the token's user or an admin may revoke it", "forbidden")
    _check_id(e.token_id, "token id")
    _exec(tx, "DELETE FROM revoked_tokens WHERE expires_at <= ?", (e.at,))  # prune
    if e.expires_at > e.at:
        _exec(
            tx,
            "INSERT OR IGNORE INTO revoked_tokens (token_id, user_id, expires_at) VALUES (?, ?, ?)",
            (e.token_id, e.user_id, e.expires_at),
        )


# --------------------------------------------------------------------------- handlers: music


def _reindex_artist(tx: Tx, artist_id: str) -> None:
    row = _one(tx, "SELECT n, name FROM artists WHERE id = ?", (artist_id,))
    if row is None:
        return
    _exec(tx, "DELETE FROM artists_fts WHERE rowid = ?", (row[0],))
    _exec(tx, "INSERT INTO artists_fts (rowid, name) VALUES (?, ?)", (row[0], row[1]))


def _reindex_album(tx: Tx, album_id: str) -> None:
    row = _one(
        tx,
        "SELECT al.n, al.title, ar.name FROM albums al "
        "JOIN artists ar ON ar.id = al.artist_id WHERE al.id = ?",
        (album_id,),
    )
    if row is None:
        return
    _exec(tx, "DELETE FROM albums_fts WHERE rowid = ?", (row[0],))
    _exec(tx, "INSERT INTO albums_fts (rowid, title, artist) VALUES (?, ?, ?)", tuple(row))


def _reindex_song(tx: Tx, song_id: str) -> None:
    row = _one(
        tx,
        "SELECT s.n, s.title, ar.name, COALESCE(al.title, '') FROM songs s "
        "JOIN artists ar ON ar.id = s.artist_id LEFT JOIN albums al ON al.id = s.album_id "
        "WHERE s.id = ?",
        (song_id,),
    )
    if row is None:
        return
    _exec(tx, "DELETE FROM songs_fts WHERE rowid = ?", (row[0],))
    _exec(tx, "INSERT INTO songs_fts (rowid, title, artist, album) VALUES (?, ?, ?, ?)", tuple(row))


def _create_artist(tx: Tx, e: CreateArtist) -> None:
    actor = _actor(tx, e)
    _id_free(tx, "artists", e.artist_id, "artist")
    name = _check_name(e.name, "artist name")
    _exec(
        tx,
        "INSERT INTO artists (id, name, created_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
        (e.artist_id, name, actor.id, e.at, e.at),
    )
    _reindex_artist(tx, e.artist_id)


def _update_artist(tx: Tx, e: UpdateArtist) -> None:
    actor = _actor(tx, e)
    _may_edit(actor, _owner(tx, "artists", e.artist_id, "artist"), "artist")
    name = _check_name(e.name, "artist name")
    _exec(tx, "UPDATE artists SET name = ?, updated_at = ? WHERE id = ?", (name, e.at, e.artist_id))
    _reindex_artist(tx, e.artist_id)
    for (album_id,) in _exec(tx, "SELECT id FROM albums WHERE artist_id = ?", (e.artist_id,)):
        _reindex_album(tx, album_id)
    for (song_id,) in _exec(tx, "SELECT id FROM songs WHERE artist_id = ?", (e.artist_id,)):
        _reindex_song(tx, song_id)


def _delete_artist(tx: Tx, e: DeleteArtist) -> None:
    actor = _actor(tx, e)
    _may_edit(actor, _owner(tx, "artists", e.artist_id, "artist"), "artist")
    if _one(tx, "SELECT 1 FROM albums WHERE artist_id = ?", (e.artist_id,)):
        raise _Reject("artist still has albums", "conflict")
    if _one(tx, "SELECT 1 FROM songs WHERE artist_id = ?", (e.artist_id,)):
        raise _Reject("artist still has songs", "conflict")
    n = _scalar(tx, "SELECT n FROM artists WHERE id = ?", (e.artist_id,))
    _exec(tx, "DELETE FROM artist_likes WHERE artist_id = ?", (e.artist_id,))
    _exec(tx, "DELETE FROM artists_fts WHERE rowid = ?", (n,))
    _exec(tx, "DELETE FROM artists WHERE id = ?", (e.artist_id,))


def _check_album_fields(tx: Tx, e: CreateAlbum | UpdateAlbum) -> str:
    title = _check_name(e.title, "album title")
    if not _exists(tx, "artists", e.artist_id):
        raise _Reject("unknown artist", "not_found")
    _check_year(e.year)
    _check_sha(e.cover_sha256, "cover")
    return title


def _create_album(tx: Tx, e: CreateAlbum) -> None:
    actor = _actor(tx, e)
    _id_free(tx, "albums", e.album_id, "album")
    title = _check_album_fields(tx, e)
    _exec(
        tx,
        "INSERT INTO albums (id, title, artist_id, year, cover_sha256, created_by, "
        "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (e.album_id, title, e.artist_id, e.year, e.cover_sha256, actor.id, e.at, e.at),
    )
    _reindex_album(tx, e.album_id)


def _update_album(tx: Tx, e: UpdateAlbum) -> None:
    actor = _actor(tx, e)
    _may_edit(actor, _owner(tx, "albums", e.album_id, "album"), "album")
    title = _check_album_fields(tx, e)
    _exec(
        tx,
        "UPDATE albums SET title = ?, artist_id = ?, year = ?, cover_sha256 = ?, "
        "updated_at = ? WHERE id = ?",
        (title, e.artist_id, e.year, e.cover_sha256, e.at, e.album_id),
    )
    _reindex_album(tx, e.album_id)
    for (song_id,) in _exec(tx, "SELECT id FROM songs WHERE album_id = ?", (e.album_id,)):
        _reindex_song(tx, song_id)


def _delete_album(tx: Tx, e: DeleteAlbum) -> None:
    actor = _actor(tx, e)
    _may_edit(actor, _owner(tx, "albums", e.album_id, "album"), "album")
    if _one(tx, "SELECT 1 FROM songs WHERE album_id = ?", (e.album_id,)):
        raise _Reject("album still has songs", "conflict")
    n = _scalar(tx, "SELECT n FROM albums WHERE id = ?", (e.album_id,))
    _exec(tx, "DELETE FROM album_likes WHERE album_id = ?", (e.album_id,))
    _exec(tx, "DELETE FROM albums_fts WHERE rowid = ?", (n,))
    _exec(tx, "DELETE FROM albums WHERE id = ?", (e.album_id,))


def _check_song_fields(tx: Tx, e: CreateSong | UpdateSong) -> tuple[str, tuple[str, ...]]:
    title = _check_name(e.title, "song title")
    if not _exists(tx, "artists", e.artist_id):
        raise _Reject("unknown artist", "not_found")
    if e.album_id is not None and not _exists(tx, "albums", e.album_id):
        raise _Reject("unknown album", "not_found")
    _check_track(e.track)
    _check_year(e.year)
    return title, _check_genres(e.genres)


def _set_genres(tx: Tx, song_id: str, genres: tuple[str, ...]) -> None:
    _exec(tx, "DELETE FROM song_genres WHERE song_id = ?", (song_id,))
    for i, g in enumerate(genres):
        _exec(
            tx,
            "INSERT INTO song_genres (song_id, position, genre) VALUES (?, ?, ?)",
            (song_id, i, g),
        )


def _create_song(tx: Tx, e: CreateSong) -> None:
    actor = _actor(tx, e)
    _id_free(tx, "songs", e.song_id, "song")
    title, genres = _check_song_fields(tx, e)
    if not (isinstance(e.duration, int | float) and math.isfinite(e.duration) and e.duration >= 0):
        raise _Reject("duration must be a finite, non-negative number of seconds")
    _check_sha(e.blob_sha256, "blob")
    _check_sha(e.cover_sha256, "cover")
    if not e.mime or len(e.mime) > 100 or "/" not in e.mime:
        raise _Reject("mime must be a MIME type")
    if e.size < 0:
        raise _Reject("size must not be negative")
    _exec(
        tx,
        "INSERT INTO songs (id, title, artist_id, album_id, track, year, duration, "
        "blob_sha256, mime, size, cover_sha256, created_by, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            e.song_id,
            title,
            e.artist_id,
            e.album_id,
            e.track,
            e.year,
            float(e.duration),
            e.blob_sha256,
            e.mime,
            e.size,
            e.cover_sha256,
            actor.id,
            e.at,
            e.at,
        ),
    )
    _set_genres(tx, e.song_id, genres)
    _reindex_song(tx, e.song_id)


def _update_song(tx: Tx, e: UpdateSong) -> None:
    actor = _actor(tx, e)
    _may_edit(actor, _owner(tx, "songs", e.song_id, "song"), "song")
    title, genres = _check_song_fields(tx, e)
    _exec(
        tx,
        "UPDATE songs SET title = ?, artist_id = ?, album_id = ?, track = ?, year = ?, "
        "updated_at = ? WHERE id = ?",
        (title, e.artist_id, e.album_id, e.track, e.year, e.at, e.song_id),
    )
    _set_genres(tx, e.song_id, genres)
    _reindex_song(tx, e.song_id)


def _delete_song(tx: Tx, e: DeleteSong) -> None:
    actor = _actor(tx, e)
    _may_edit(actor, _owner(tx, "songs", e.song_id, "song"), "song")
    playlists = [
        r[0]
        for r in _exec(
            tx,
            "SELECT DISTINCT playlist_id FROM playlist_items WHERE song_id = ? "
            "ORDER BY playlist_id",
            (e.song_id,),
        )
    ]
    _exec(tx, "DELETE FROM playlist_items WHERE song_id = ?", (e.song_id,))
    for pid in playlists:
        _renumber(tx, pid, _items(tx, pid))
    _exec(tx, "DELETE FROM likes WHERE song_id = ?", (e.song_id,))
    _exec(tx, "DELETE FROM plays WHERE song_id = ?", (e.song_id,))
    _exec(tx, "DELETE FROM song_genres WHERE song_id = ?", (e.song_id,))
    n = _scalar(tx, "SELECT n FROM songs WHERE id = ?", (e.song_id,))
    _exec(tx, "DELETE FROM songs_fts WHERE rowid = ?", (n,))
    _exec(tx, "DELETE FROM songs WHERE id = ?", (e.song_id,))


# --------------------------------------------------------------------------- handlers: playlists


def _playlist_owner(tx: Tx, playlist_id: str) -> str:
    row = _one(tx, "SELECT owner_id FROM playlists WHERE id = ?", (playlist_id,))
    if row is None:
        raise _Reject("unknown playlist", "not_found")
    return str(row[0])


def _own_playlist(tx: Tx, e: Entry, playlist_id: str) -> _Actor:
    actor = _actor(tx, e)
    if _playlist_owner(tx, playlist_id) != actor.id:
        raise _Reject("only the playlist's owner may edit it", "forbidden")
    return actor


def _items(tx: Tx, playlist_id: str) -> list[str]:
    return [
        str(r[0])
        for r in _exec(
            tx,
            "SELECT item_id FROM playlist_items WHERE playlist_id = ? ORDER BY position, item_id",
            (playlist_id,),
        )
    ]


def _renumber(tx: Tx, playlist_id: str, order: list[str]) -> None:
    current = {
        str(r[0]): int(r[1])
        for r in _exec(
            tx, "SELECT item_id, position FROM playlist_items WHERE playlist_id = ?", (playlist_id,)
        )
    }
    for pos, item in enumerate(order):
        if current.get(item) != pos:
            _exec(tx, "UPDATE playlist_items SET position = ? WHERE item_id = ?", (pos, item))


def _insert_at(order: list[str], item: str, before: str | None) -> list[str]:
    if before is None:
        return [*order, item]
    i = order.index(before)
    return [*order[:i], item, *order[i:]]


def _touch_playlist(tx: Tx, playlist_id: str, at: int) -> None:
    _exec(tx, "UPDATE playlists SET updated_at = ? WHERE id = ?", (at, playlist_id))


def _create_playlist(tx: Tx, e: CreatePlaylist) -> None:
    actor = _actor(tx, e)
    _id_free(tx, "playlists", e.playlist_id, "playlist")
    name = _check_name(e.name, "playlist name")
    _exec(
        tx,
        "INSERT INTO playlists (id, owner_id, name, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
        (e.playlist_id, actor.id, name, e.at, e.at),
    )


def _rename_playlist(tx: Tx, e: RenamePlaylist) -> None:
    _own_playlist(tx, e, e.playlist_id)
    name = _check_name(e.name, "playlist name")
    _exec(
        tx,
        "UPDATE playlists SET name = ?, updated_at = ? WHERE id = ?",
        (name, e.at, e.playlist_id),
    )


def _delete_playlist(tx: Tx, e: DeletePlaylist) -> None:
    actor = _actor(tx, e)
    if _playlist_owner(tx, e.playlist_id) != actor.id and not actor.admin:
        raise _Reject("only the playlist's owner or an admin may delete it", "forbidden")
    _exec(tx, "DELETE FROM playlist_items WHERE playlist_id = ?", (e.playlist_id,))
    _exec(tx, "DELETE FROM playlists WHERE id = ?", (e.playlist_id,))


def _add_to_playlist(tx: Tx, e: AddToPlaylist) -> None:
    _own_playlist(tx, e, e.playlist_id)
    _check_id(e.item_id, "item id")
    if not _exists(tx, "songs", e.song_id):
        raise _Reject("unknown song", "not_found")
    if _one(tx, "SELECT 1 FROM playlist_items WHERE item_id = ?", (e.item_id,)):
        raise _Reject("item id already exists", "conflict")
    order = _items(tx, e.playlist_id)
    if len(order) >= PLAYLIST_ITEMS_MAX:
        raise _Reject(f"a playlist holds at most {PLAYLIST_ITEMS_MAX} songs", "conflict")
    if e.before_item_id is not None and e.before_item_id not in order:
        raise _Reject("unknown item to insert before", "not_found")
    _exec(
        tx,
        "INSERT INTO playlist_items (item_id, playlist_id, position, song_id, added_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (e.item_id, e.playlist_id, len(order), e.song_id, e.at),
    )
    _renumber(tx, e.playlist_id, _insert_at(order, e.item_id, e.before_item_id))
    _touch_playlist(tx, e.playlist_id, e.at)


def _remove_from_playlist(tx: Tx, e: RemoveFromPlaylist) -> None:
    _own_playlist(tx, e, e.playlist_id)
    order = _items(tx, e.playlist_id)
    if e.item_id not in order:
        raise _Reject("unknown playlist item", "not_found")
    _exec(tx, "DELETE FROM playlist_items WHERE item_id = ?", (e.item_id,))
    order.remove(e.item_id)
    _renumber(tx, e.playlist_id, order)
    _touch_playlist(tx, e.playlist_id, e.at)


def _move_playlist_item(tx: Tx, e: MovePlaylistItem) -> None:
    _own_playlist(tx, e, e.playlist_id)
    order = _items(tx, e.playlist_id)
    if e.item_id not in order:
        raise _Reject("unknown playlist item", "not_found")
    if e.before_item_id is not None and e.before_item_id not in order:
        raise _Reject("unknown item to move before", "not_found")
    if e.before_item_id == e.item_id:
        return
    order.remove(e.item_id)
    _renumber(tx, e.playlist_id, _insert_at(order, e.item_id, e.before_item_id))
    _touch_playlist(tx, e.playlist_id, e.at)


# --------------------------------------------------------------------------- handlers: activity


def _like(tx: Tx, e: LikeSong) -> None:
    actor = _actor(tx, e)
    if not _exists(tx, "songs", e.song_id):
        raise _Reject("unknown song", "not_found")
    if _one(tx, "SELECT 1 FROM likes WHERE user_id = ? AND song_id = ?", (actor.id, e.song_id)):
        return
    _exec(
        tx, "INSERT INTO likes (user_id, song_id, at) VALUES (?, ?, ?)", (actor.id, e.song_id, e.at)
    )
    _exec(tx, "UPDATE songs SET like_count = like_count + 1 WHERE id = ?", (e.song_id,))


def _unlike(tx: Tx, e: UnlikeSong) -> None:
    actor = _actor(tx, e)
    if not _exists(tx, "songs", e.song_id):
        raise _Reject("unknown song", "not_found")
    if not _one(tx, "SELECT 1 FROM likes WHERE user_id = ? AND song_id = ?", (actor.id, e.song_id)):
        return
    _exec(tx, "DELETE FROM likes WHERE user_id = ? AND song_id = ?", (actor.id, e.song_id))
    _exec(tx, "UPDATE songs SET like_count = like_count - 1 WHERE id = ?", (e.song_id,))


# Album and artist likes: (entry types, table, id column, the catalog table, its noun).
_LIKE_TARGETS: Final[Mapping[type[Entry], tuple[str, str, str, str]]] = {
    LikeAlbum: ("album_likes", "album_id", "albums", "album"),
    UnlikeAlbum: ("album_likes", "album_id", "albums", "album"),
    LikeArtist: ("artist_likes", "artist_id", "artists", "artist"),
    UnlikeArtist: ("artist_likes", "artist_id", "artists", "artist"),
}


def _set_like(tx: Tx, e: LikeAlbum | UnlikeAlbum | LikeArtist | UnlikeArtist) -> None:
    """Add (``Like*``) or drop (``Unlike*``) the actor's like of an album or artist."""
    actor = _actor(tx, e)
    table, column, target, noun = _LIKE_TARGETS[type(e)]
    target_id = e.album_id if isinstance(e, LikeAlbum | UnlikeAlbum) else e.artist_id
    if not _exists(tx, target, target_id):
        raise _Reject(f"unknown {noun}", "not_found")
    if isinstance(e, LikeAlbum | LikeArtist):
        _exec(
            tx,
            f"INSERT INTO {table} (user_id, {column}, at) VALUES (?, ?, ?) "
            f"ON CONFLICT (user_id, {column}) DO NOTHING",
            (actor.id, target_id, e.at),
        )
    else:
        _exec(tx, f"DELETE FROM {table} WHERE user_id = ? AND {column} = ?", (actor.id, target_id))


def _record_play(tx: Tx, e: RecordPlay) -> None:
    actor = _actor(tx, e)
    if not _exists(tx, "songs", e.song_id):
        raise _Reject("unknown song", "not_found")
    if not 1 <= e.count <= 10_000:
        raise _Reject("play count must be between 1 and 10000")
    _exec(
        tx,
        "INSERT INTO plays (user_id, song_id, count, last_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (user_id, song_id) DO UPDATE SET count = count + excluded.count, "
        "last_at = max(last_at, excluded.last_at)",
        (actor.id, e.song_id, e.count, e.at),
    )
    _exec(tx, "UPDATE songs SET play_count = play_count + ? WHERE id = ?", (e.count, e.song_id))


_HANDLERS: Final[Mapping[type[Entry], Any]] = {
    RegisterUser: _register_user,
    SetUserRole: _set_user_role,
    ChangePassword: _change_password,
    SetSubsonicCredentials: _set_subsonic_credentials,
    RevokeToken: _revoke_token,
    CreateArtist: _create_artist,
    UpdateArtist: _update_artist,
    DeleteArtist: _delete_artist,
    CreateAlbum: _create_album,
    UpdateAlbum: _update_album,
    DeleteAlbum: _delete_album,
    CreateSong: _create_song,
    UpdateSong: _update_song,
    DeleteSong: _delete_song,
    CreatePlaylist: _create_playlist,
    RenamePlaylist: _rename_playlist,
    DeletePlaylist: _delete_playlist,
    AddToPlaylist: _add_to_playlist,
    RemoveFromPlaylist: _remove_from_playlist,
    MovePlaylistItem: _move_playlist_item,
    LikeSong: _like,
    UnlikeSong: _unlike,
    LikeAlbum: _set_like,
    UnlikeAlbum: _set_like,
    LikeArtist: _set_like,
    UnlikeArtist: _set_like,
    RecordPlay: _record_play,
}
