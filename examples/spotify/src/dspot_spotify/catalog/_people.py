"""Queries over people and what they keep: users, credentials, token revocations,
playlists, likes; and the log's own records (rejections, blob references)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from dspot_spotify.auth import CredentialError, validate_username
from dspot_spotify.catalog._queries import (
    ALBUM_SELECT,
    ARTIST_SELECT,
    SONG_COLUMNS,
    album_view,
    artist_view,
    paging,
    rows_page,
    song_views,
)
from dspot_spotify.catalog._schema import SETTINGS, LogPosition
from dspot_spotify.catalog._sql import Tx
from dspot_spotify.catalog._sql import exec_ as _exec
from dspot_spotify.catalog._sql import one as _one
from dspot_spotify.catalog._sql import scalar as _scalar
from dspot_spotify.catalog._views import (
    AlbumView,
    ArtistView,
    Page,
    PlaylistDetail,
    PlaylistItemView,
    PlaylistView,
    Rejection,
    SongView,
    SubsonicCredentials,
    UserRecord,
)


def user_count(tx: Tx) -> int:
    """How many users there are (0: the next one registers as the admin)."""
    return int(_scalar(tx, "SELECT COUNT(*) FROM users"))


_USER_SELECT: Final = (
    "SELECT id, username, role, created_at, password_hash, tokens_valid_after, disabled, "
    "token_generation, sealed_password FROM users"
)


def _user(r: Sequence[Any]) -> UserRecord:
    return UserRecord(
        id=r[0],
        username=r[1],
        role=r[2],
        created_at=int(r[3]),
        password_hash=r[4],
        tokens_valid_after=int(r[5]),
        disabled=bool(r[6]),
        token_generation=int(r[7]),
        sealed_password=r[8],
    )


def list_users(tx: Tx, *, page: int = 1, limit: int = 50) -> Page[UserRecord]:
    """Every user, by username (for admins)."""
    page, limit = paging(page, limit)
    users = f"{_USER_SELECT} ORDER BY username"
    return rows_page(tx, "SELECT COUNT(*) FROM users", users, (), page, limit).map(_user)


def all_users(tx: Tx) -> list[UserRecord]:
    """Every user, by username (for the admins' user list: a self-hosted server has few)."""
    return [_user(r) for r in _exec(tx, f"{_USER_SELECT} ORDER BY username, id")]


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


_SUBSONIC_SELECT: Final = (
    "SELECT c.user_id, u.username, c.password, c.api_key, c.updated_at, "
    "c.generation >= u.token_generation "
    "FROM subsonic_credentials c JOIN users u ON u.id = c.user_id"
)


def _subsonic(r: Sequence[Any]) -> SubsonicCredentials:
    return SubsonicCredentials(
        user_id=r[0],
        username=r[1],
        password=r[2],
        api_key=r[3],
        updated_at=int(r[4]),
        current=bool(r[5]),
    )


def subsonic_credentials(tx: Tx, user_id: str) -> SubsonicCredentials | None:
    """A user's Subsonic credentials, or None if they have none yet."""
    row = _one(tx, f"{_SUBSONIC_SELECT} WHERE c.user_id = ?", (user_id,))
    return None if row is None else _subsonic(row)


def subsonic_credentials_by_api_key(tx: Tx, api_key: str) -> SubsonicCredentials | None:
    """Whose API key this is, or None."""
    row = _one(tx, f"{_SUBSONIC_SELECT} WHERE c.api_key = ?", (api_key,))
    return None if row is None else _subsonic(row)


def is_token_revoked(
    tx: Tx, *, token_id: str, user_id: str, issued_at: int, generation: int = 0
) -> bool:
    """Whether a (signature-checked) token was revoked, its user unknown here or disabled,
    or it is of an older token generation than the user's (a password change, a disabling
    since). :func:`token_revoked` tells an unknown user apart.

    A token of a *newer* generation than this replica knows was issued by a replica further
    along the log: it is genuine, and this one simply has not applied the change yet.
    """
    revoked = token_revoked(
        tx, token_id=token_id, user_id=user_id, issued_at=issued_at, generation=generation
    )
    return revoked is not False


def token_revoked(
    tx: Tx, *, token_id: str, user_id: str, issued_at: int, generation: int = 0
) -> bool | None:
    """As :func:`is_token_revoked`, but None when this replica has no such user (users are
    never deleted: it has not applied the sign-up yet)."""
    row = _one(
        tx,
        "SELECT tokens_valid_after, disabled, token_generation FROM users WHERE id = ?",
        (user_id,),
    )
    if row is None:
        return None
    if issued_at < int(row[0]) or row[1] or generation < int(row[2]):
        return True
    return _one(tx, "SELECT 1 FROM revoked_tokens WHERE token_id = ?", (token_id,)) is not None


def setting(tx: Tx, key: str) -> int:
    """A cluster setting's value (its default from ``SETTINGS`` until an admin changed it)."""
    row = _one(tx, "SELECT value FROM settings WHERE key = ?", (key,))
    return SETTINGS[key] if row is None else int(row[0])


def subsonic_account_password(tx: Tx) -> bool:
    """Whether Subsonic apps may sign in with account passwords (else app passwords only)."""
    return bool(setting(tx, "subsonic_account_password"))


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
        f"SELECT i.item_id, i.position, {SONG_COLUMNS} FROM playlist_items i "
        "JOIN songs s ON s.id = i.song_id JOIN artists ar ON ar.id = s.artist_id "
        "LEFT JOIN albums al ON al.id = s.album_id WHERE i.playlist_id = ? "
        "ORDER BY i.position, i.item_id",
        (playlist_id,),
    )
    songs = song_views(tx, [r[2:] for r in rows])
    items = tuple(
        PlaylistItemView(item_id=str(r[0]), position=int(r[1]), song=s)
        for r, s in zip(rows, songs, strict=True)
    )
    return PlaylistDetail(playlist=_playlist_view(row), items=items)


def _liked(
    tx: Tx, likes: str, rows_sql: str, user_id: str, page: int, limit: int
) -> Page[Sequence[Any]]:
    """Page ``page`` of a user's rows of the ``likes`` table as ``rows_sql`` selects them
    (``?``: the user; most recently liked first)."""
    page, limit = paging(page, limit)
    count = f"SELECT COUNT(*) FROM {likes} WHERE user_id = ?"
    return rows_page(tx, count, rows_sql, (user_id,), page, limit)


def liked_songs(tx: Tx, user_id: str, *, page: int = 1, limit: int = 50) -> Page[SongView]:
    """Songs a user likes, most recently liked first."""
    found = _liked(
        tx,
        "likes",
        f"SELECT {SONG_COLUMNS} FROM likes l JOIN songs s ON s.id = l.song_id "
        "JOIN artists ar ON ar.id = s.artist_id LEFT JOIN albums al "
        "ON al.id = s.album_id WHERE l.user_id = ? ORDER BY l.at DESC, s.id",
        user_id,
        page,
        limit,
    )
    return Page(song_views(tx, found.items), found.page, found.limit, found.total)


def liked_albums(tx: Tx, user_id: str, *, page: int = 1, limit: int = 50) -> Page[AlbumView]:
    """Albums a user likes, most recently liked first."""
    rows = (
        f"{ALBUM_SELECT} JOIN album_likes l ON l.album_id = al.id WHERE l.user_id = ? "
        "ORDER BY l.at DESC, al.id"
    )
    return _liked(tx, "album_likes", rows, user_id, page, limit).map(album_view)


def liked_artists(tx: Tx, user_id: str, *, page: int = 1, limit: int = 50) -> Page[ArtistView]:
    """Artists a user likes, most recently liked first."""
    rows = (
        f"{ARTIST_SELECT} JOIN artist_likes l ON l.artist_id = ar.id WHERE l.user_id = ? "
        "ORDER BY l.at DESC, ar.id"
    )
    return _liked(tx, "artist_likes", rows, user_id, page, limit).map(artist_view)


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
