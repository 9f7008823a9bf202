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
the writer. Queries (``list_*``, ``get_*``) take anything with the same ``execute`` method;
every SQL statement of the service is in this package.

This module only re-exports. Inside: ``_entries`` (entry types and their JSON), ``_schema``
(tables, positions), ``_apply`` with its handlers by subject (``_users``, ``_music``,
``_lists``) over shared ``_rules``; the read side: ``_views``, ``_queries`` (music),
``_people`` (users, playlists, likes, log records) and ``_subsonic`` (what only the Subsonic
API asks). One public submodule is not re-exported here: :mod:`dspot_spotify.catalog.snapshot`
(the catalog's tables as one unit, for token-ring snapshots).
"""

from __future__ import annotations

from dspot_spotify.catalog._apply import (
    HANDLERS,
    applied_position,
    apply,
    apply_encoded,
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
    Like,
    MovePlaylistItem,
    RecordPlay,
    RegisterUser,
    RemoveFromPlaylist,
    RenamePlaylist,
    RevokeToken,
    Role,
    SetSubsonicCredentials,
    SetUserRole,
    UpdateAlbum,
    UpdateArtist,
    UpdateSong,
    decode_entry,
    encode_entry,
    entry_type,
)
from dspot_spotify.catalog._people import (
    blob_references,
    get_playlist,
    get_user,
    get_user_by_username,
    is_token_revoked,
    liked_albums,
    liked_artists,
    liked_songs,
    list_users,
    rejection_at,
    rejections,
    subsonic_credentials,
    subsonic_credentials_by_api_key,
    user_count,
    user_playlists,
)
from dspot_spotify.catalog._queries import (
    SongSort,
    find_album,
    find_artist,
    genres,
    get_album,
    get_artist,
    get_song,
    list_albums,
    list_artists,
    list_songs,
    search,
    song_blobs,
    song_with_blob,
)
from dspot_spotify.catalog._schema import (
    LIKE_TABLES,
    REJECT_STATUS,
    SCHEMA,
    ApplyResult,
    LikeTarget,
    LogPosition,
    RejectCode,
    create_schema,
)
from dspot_spotify.catalog._sql import (
    Tx,
)
from dspot_spotify.catalog._subsonic import (
    ALBUM_LISTS,
    AlbumRow,
    ArtistEntry,
    album_ids,
    album_list,
    album_row,
    album_rows,
    artist_album_rows,
    artist_entries,
    exists,
    last_modified,
    liked_song_ids,
    song_ids,
    starred_album_rows,
    starred_artists,
    stars,
)
from dspot_spotify.catalog._views import (
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
    SongView,
    SubsonicCredentials,
    UserRecord,
)

__all__ = [
    "ALBUM_LISTS",
    "ENTRY_TYPES",
    "HANDLERS",
    "LIKE_TABLES",
    "MAX_LIMIT",
    "REJECT_STATUS",
    "SCHEMA",
    "AddToPlaylist",
    "AlbumDetail",
    "AlbumRow",
    "AlbumView",
    "ApplyResult",
    "ArtistDetail",
    "ArtistEntry",
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
    "Like",
    "LikeTarget",
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
    "UpdateAlbum",
    "UpdateArtist",
    "UpdateSong",
    "UserRecord",
    "album_ids",
    "album_list",
    "album_row",
    "album_rows",
    "applied_position",
    "apply",
    "apply_encoded",
    "artist_album_rows",
    "artist_entries",
    "blob_references",
    "create_schema",
    "decode_entry",
    "encode_entry",
    "entry_type",
    "exists",
    "find_album",
    "find_artist",
    "genres",
    "get_album",
    "get_artist",
    "get_playlist",
    "get_song",
    "get_user",
    "get_user_by_username",
    "is_token_revoked",
    "last_modified",
    "liked_albums",
    "liked_artists",
    "liked_song_ids",
    "liked_songs",
    "list_albums",
    "list_artists",
    "list_songs",
    "list_users",
    "rejection_at",
    "rejections",
    "search",
    "song_blobs",
    "song_ids",
    "song_with_blob",
    "starred_album_rows",
    "starred_artists",
    "stars",
    "subsonic_credentials",
    "subsonic_credentials_by_api_key",
    "user_count",
    "user_playlists",
]
