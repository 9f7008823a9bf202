"""The catalog as a replicated log applied to SQLite.

Every change to the catalog — artists, albums, songs, users, playlists, likes, plays,
token revocations — is an :class:`Entry`. Writers build entries (choosing the GUIDs, the
``actor`` who asks and the timestamp ``at``), :func:`encode_entry` turns them into bytes for
the token-ring log, and every replica feeds the log, in order, to :func:`apply`.

:func:`apply` is the whole state machine:

* **deterministic** — it reads nothing but the database and the entry (no clock, no
  randomness), so every replica ends with the same state;
* **idempotent by position** — the last applied ``(epoch, seq)`` is stored in the same
  transaction; an entry at or below it is skipped;
* **validating** — an entry that names unknown ids, breaks a rule or lacks permission is
  *rejected*: recorded in ``rejections`` with its reason, changing nothing else. Rejection
  is a decision every replica makes identically, never an exception. Any exception that
  does escape is a bug (or a broken database): the caller must roll back and stop applying.

Permissions: any registered user may create artists, albums and songs; their creator or an
admin may edit or delete them. A user edits only their own playlists (an admin may delete
any). The first user may register as admin; later admins are made by admins.

Timestamps (``at``, token times) are integer milliseconds since the Unix epoch, chosen by
the writer. Queries (``list_*``, ``get_*``) take anything with the same ``execute`` method.
"""

from __future__ import annotations

from dspot_spotify.catalog._apply import (
    REJECT_STATUS,
    SCHEMA,
    ApplyResult,
    LogPosition,
    RejectCode,
    applied_position,
    apply,
    apply_encoded,
    create_schema,
)
from dspot_spotify.catalog._entries import (
    ENTRY_TYPES,
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
    LikeSong,
    MovePlaylistItem,
    RecordPlay,
    RegisterUser,
    RemoveFromPlaylist,
    RenamePlaylist,
    RevokeToken,
    Role,
    SetSubsonicCredentials,
    SetUserRole,
    UnlikeSong,
    UpdateAlbum,
    UpdateArtist,
    UpdateSong,
    decode_entry,
    encode_entry,
    entry_changes,
)
from dspot_spotify.catalog._queries import (
    MAX_LIMIT,
    AlbumDetail,
    AlbumView,
    ArtistDetail,
    ArtistView,
    Page,
    PlaylistDetail,
    PlaylistItemView,
    PlaylistView,
    Rejection,
    SearchResults,
    SongSort,
    SongView,
    SubsonicCredentials,
    UserRecord,
    blob_references,
    genres,
    get_album,
    get_artist,
    get_playlist,
    get_song,
    get_user,
    get_user_by_username,
    is_token_revoked,
    liked_songs,
    list_albums,
    list_artists,
    list_songs,
    list_users,
    rejection_at,
    rejections,
    search,
    subsonic_credentials,
    subsonic_credentials_by_api_key,
    user_playlists,
)
from dspot_spotify.catalog._sql import (
    Tx,
)

__all__ = [
    "ENTRY_TYPES",
    "MAX_LIMIT",
    "REJECT_STATUS",
    "SCHEMA",
    "AddToPlaylist",
    "AlbumDetail",
    "AlbumView",
    "ApplyResult",
    "ArtistDetail",
    "ArtistView",
    "ChangePassword",
    "CreateAlbum",
    "CreateArtist",
    "CreatePlaylist",
    "CreateSong",
    "DeleteAlbum",
    "DeleteArtist",
    "DeletePlaylist",
    "DeleteSong",
    "Entry",
    "InvalidEntry",
    "LikeSong",
    "LogPosition",
    "MovePlaylistItem",
    "Page",
    "PlaylistDetail",
    "PlaylistItemView",
    "PlaylistView",
    "RecordPlay",
    "RegisterUser",
    "RejectCode",
    "Rejection",
    "RemoveFromPlaylist",
    "RenamePlaylist",
    "RevokeToken",
    "Role",
    "SearchResults",
    "SetSubsonicCredentials",
    "SetUserRole",
    "SongSort",
    "SongView",
    "SubsonicCredentials",
    "Tx",
    "UnlikeSong",
    "UpdateAlbum",
    "UpdateArtist",
    "UpdateSong",
    "UserRecord",
    "applied_position",
    "apply",
    "apply_encoded",
    "blob_references",
    "create_schema",
    "decode_entry",
    "encode_entry",
    "entry_changes",
    "genres",
    "get_album",
    "get_artist",
    "get_playlist",
    "get_song",
    "get_user",
    "get_user_by_username",
    "is_token_revoked",
    "liked_songs",
    "list_albums",
    "list_artists",
    "list_songs",
    "list_users",
    "rejection_at",
    "rejections",
    "search",
    "subsonic_credentials",
    "subsonic_credentials_by_api_key",
    "user_playlists",
]
