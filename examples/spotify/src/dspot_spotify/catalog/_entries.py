"""Catalog log entries and their canonical JSON encoding."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar, Final, Literal

import attrs
import cattrs

from dspot_spotify.catalog._schema import LikeTarget
from dspot_spotify.strictjson import make_strict


class InvalidEntry(ValueError):
    """Bytes that do not decode to a known entry, or an entry that cannot be encoded."""


# --------------------------------------------------------------------------- entries

Role = Literal["admin", "user"]


@attrs.frozen(kw_only=True)
class Entry:
    """Base of every log entry: who asks (``actor``, a user id; None = anonymous) and when."""

    kind: ClassVar[str] = ""
    actor: str | None = None
    at: int = 0


@attrs.frozen(kw_only=True)
class RegisterUser(Entry):
    """A new account. ``password_hash`` comes from :func:`dspot_spotify.auth.hash_password`;
    ``sealed_password`` is the password sealed for Subsonic's token auth (see
    :class:`SealPassword`), dropped while the cluster requires app passwords."""

    kind: ClassVar[str] = "user.register"
    user_id: str
    username: str
    password_hash: str = attrs.field(repr=False)
    role: Role = "user"
    sealed_password: str | None = attrs.field(default=None, repr=False)


@attrs.frozen(kw_only=True)
class SetUserRole(Entry):
    """Make a user admin or plain user (admins only; the last admin cannot be demoted)."""

    kind: ClassVar[str] = "user.set_role"
    user_id: str
    role: Role


@attrs.frozen(kw_only=True)
class ChangePassword(Entry):
    """New password hash (the user, or an admin setting one); raises the user's token
    generation, so every token and Subsonic app credential of the user stops working.
    ``sealed_password`` as in :class:`RegisterUser`."""

    kind: ClassVar[str] = "user.change_password"
    user_id: str
    password_hash: str = attrs.field(repr=False)
    sealed_password: str | None = attrs.field(default=None, repr=False)


@attrs.frozen(kw_only=True)
class UpdateUser(Entry):
    """An admin changes a user's ``role`` and/or ``disabled`` state (None: unchanged).

    Disabling raises the user's token generation (every session ends); a disabled user
    cannot sign in or use Subsonic. The last enabled admin can be neither demoted nor
    disabled, and no admin disables their own account.
    """

    kind: ClassVar[str] = "user.update"
    user_id: str
    role: Role | None = None
    disabled: bool | None = None


@attrs.frozen(kw_only=True)
class SealPassword(Entry):
    """Keep the user's account password sealed (with the cluster's credential key) so that
    Subsonic's token auth (``t = md5(password + salt)``) can check it: written after the
    user proved the password, for an account that has no sealed copy yet. Rejected when the
    user's token ``generation`` changed since (the password may have changed) or when the
    cluster requires app passwords."""

    kind: ClassVar[str] = "user.seal_password"
    user_id: str
    generation: int
    sealed_password: str = attrs.field(repr=False)


@attrs.frozen(kw_only=True)
class SetSubsonicAccountPassword(Entry):
    """Whether Subsonic apps may sign in with account passwords (admins only). Turning it
    off also forgets every sealed account password: only app passwords and API keys work."""

    kind: ClassVar[str] = "settings.subsonic_account_password"
    allowed: bool


@attrs.frozen(kw_only=True)
class SetSubsonicCredentials(Entry):
    """Give a user a new Subsonic password and API key (the user or an admin).

    Subsonic's token scheme (``t = md5(password + salt)``) needs the plain password on every
    node, so the writer stores it *sealed* with the cluster's credential key
    (:class:`dspot_spotify.auth.CredentialBox`) and ``api_key`` is only a keyed hash of the
    key; the log checks their shape and keeps them as given. They replace the previous
    pair, which stops working.
    """

    kind: ClassVar[str] = "user.subsonic_credentials"
    user_id: str
    password: str = attrs.field(repr=False)
    api_key: str = attrs.field(repr=False)
    first: bool = False
    """Made on first use: refused (``conflict``) if the user has working ones already, so
    two nodes asked at once both answer with the one pair that was stored first."""


@attrs.frozen(kw_only=True)
class RevokeToken(Entry):
    """Log out one token (kept on the revocation list until ``expires_at``)."""

    kind: ClassVar[str] = "token.revoke"
    token_id: str
    user_id: str
    expires_at: int


@attrs.frozen(kw_only=True)
class CreateArtist(Entry):
    """A new artist."""

    kind: ClassVar[str] = "artist.create"
    artist_id: str
    name: str


@attrs.frozen(kw_only=True)
class UpdateArtist(Entry):
    """Rename an artist."""

    kind: ClassVar[str] = "artist.update"
    artist_id: str
    name: str


@attrs.frozen(kw_only=True)
class DeleteArtist(Entry):
    """Delete an artist that has no albums and no songs left; it also leaves every like list."""

    kind: ClassVar[str] = "artist.delete"
    artist_id: str


@attrs.frozen(kw_only=True)
class CreateAlbum(Entry):
    """A new album by an existing artist."""

    kind: ClassVar[str] = "album.create"
    album_id: str
    title: str
    artist_id: str
    year: int | None = None
    cover_sha256: str | None = None


@attrs.frozen(kw_only=True)
class UpdateAlbum(Entry):
    """Replace an album's editable fields (all of them: read, modify, write)."""

    kind: ClassVar[str] = "album.update"
    album_id: str
    title: str
    artist_id: str
    year: int | None = None
    cover_sha256: str | None = None


@attrs.frozen(kw_only=True)
class DeleteAlbum(Entry):
    """Delete an album that has no songs left; it also leaves every like list."""

    kind: ClassVar[str] = "album.delete"
    album_id: str


@attrs.frozen(kw_only=True)
class CreateSong(Entry):
    """A new song whose audio is the blob ``blob_sha256`` (already stored and replicated)."""

    kind: ClassVar[str] = "song.create"
    song_id: str
    title: str
    artist_id: str
    album_id: str | None = None
    track: int | None = None
    year: int | None = None
    genres: tuple[str, ...] = ()
    duration: float
    blob_sha256: str
    mime: str
    size: int
    cover_sha256: str | None = None
    lyrics: str | None = attrs.field(default=None, repr=False)
    """Unsynchronised lyrics from the tags (LRC time stamps kept as they are)."""


@attrs.frozen(kw_only=True)
class UpdateSong(Entry):
    """Replace a song's editable fields (the audio itself is immutable)."""

    kind: ClassVar[str] = "song.update"
    song_id: str
    title: str
    artist_id: str
    album_id: str | None = None
    track: int | None = None
    year: int | None = None
    genres: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class DeleteSong(Entry):
    """Delete a song; it also leaves every playlist and like list."""

    kind: ClassVar[str] = "song.delete"
    song_id: str


@attrs.frozen(kw_only=True)
class CreatePlaylist(Entry):
    """A new, empty playlist owned by the actor."""

    kind: ClassVar[str] = "playlist.create"
    playlist_id: str
    name: str


@attrs.frozen(kw_only=True)
class RenamePlaylist(Entry):
    """Rename a playlist (owner only)."""

    kind: ClassVar[str] = "playlist.rename"
    playlist_id: str
    name: str


@attrs.frozen(kw_only=True)
class DeletePlaylist(Entry):
    """Delete a playlist (owner or admin)."""

    kind: ClassVar[str] = "playlist.delete"
    playlist_id: str


@attrs.frozen(kw_only=True)
class AddToPlaylist(Entry):
    """Insert a song as item ``item_id`` before ``before_item_id`` (None: at the end).

    Items have their own ids so concurrent edits name what they mean, not a stale index.
    """

    kind: ClassVar[str] = "playlist.add"
    playlist_id: str
    item_id: str
    song_id: str
    before_item_id: str | None = None


@attrs.frozen(kw_only=True)
class RemoveFromPlaylist(Entry):
    """Remove one item from a playlist."""

    kind: ClassVar[str] = "playlist.remove"
    playlist_id: str
    item_id: str


@attrs.frozen(kw_only=True)
class MovePlaylistItem(Entry):
    """Move an item before ``before_item_id`` (None: to the end)."""

    kind: ClassVar[str] = "playlist.move"
    playlist_id: str
    item_id: str
    before_item_id: str | None = None


@attrs.frozen(kw_only=True)
class Like(Entry):
    """The actor likes (``liked``) or no longer likes a song, album or artist; liking twice,
    or unliking what is not liked, changes nothing.

    On the wire it keeps the form it always had: ``song.like`` / ``song.unlike`` with a
    ``song_id`` (``album.*`` with ``album_id``, ``artist.*`` with ``artist_id``).
    """

    kind: ClassVar[str] = "like"
    target: LikeTarget
    target_id: str
    liked: bool = True


@attrs.frozen(kw_only=True)
class RecordPlay(Entry):
    """The actor played a song ``count`` times (a gateway may batch plays)."""

    kind: ClassVar[str] = "song.play"
    song_id: str
    count: int = 1


@attrs.frozen(kw_only=True)
class Rate(Entry):
    """The actor rates a song, album or artist from 1 to 5 stars; 0 removes the rating."""

    kind: ClassVar[str] = "rating.set"
    target: LikeTarget
    target_id: str
    rating: int


@attrs.frozen(kw_only=True)
class SetBookmark(Entry):
    """The actor's bookmark in a song: ``position`` in milliseconds, an optional comment
    (one bookmark per song: a new one replaces it)."""

    kind: ClassVar[str] = "bookmark.set"
    song_id: str
    position: int
    comment: str | None = None


@attrs.frozen(kw_only=True)
class DeleteBookmark(Entry):
    """Remove the actor's bookmark in a song."""

    kind: ClassVar[str] = "bookmark.delete"
    song_id: str


@attrs.frozen(kw_only=True)
class SavePlayQueue(Entry):
    """The actor's play queue, to resume on another device: the songs in order, the current
    one and ``position`` (milliseconds) in it, and which ``client`` saved it. No songs
    clears it."""

    kind: ClassVar[str] = "player.save_queue"
    song_ids: tuple[str, ...]
    current: str | None = None
    position: int = 0
    client: str


@attrs.frozen(kw_only=True)
class NowPlaying(Entry):
    """The actor's ``client`` started playing a song (Subsonic's "now playing")."""

    kind: ClassVar[str] = "player.now_playing"
    song_id: str
    client: str


_LIKE_KINDS: Final[Mapping[str, tuple[LikeTarget, bool]]] = {
    f"{target}.{verb}": (target, verb == "like")
    for target in ("song", "album", "artist")
    for verb in ("like", "unlike")
}

ENTRY_TYPES: Final[Mapping[str, type[Entry]]] = {
    **{
        cls.kind: cls
        for cls in (
            RegisterUser,
            SetUserRole,
            ChangePassword,
            UpdateUser,
            SealPassword,
            SetSubsonicAccountPassword,
            SetSubsonicCredentials,
            RevokeToken,
            CreateArtist,
            UpdateArtist,
            DeleteArtist,
            CreateAlbum,
            UpdateAlbum,
            DeleteAlbum,
            CreateSong,
            UpdateSong,
            DeleteSong,
            CreatePlaylist,
            RenamePlaylist,
            DeletePlaylist,
            AddToPlaylist,
            RemoveFromPlaylist,
            MovePlaylistItem,
            RecordPlay,
            Rate,
            SetBookmark,
            DeleteBookmark,
            SavePlayQueue,
            NowPlaying,
        )
    },
    **{kind: Like for kind in _LIKE_KINDS},
}
"""Every entry type by its ``type`` on the wire."""


def entry_type(entry: Entry) -> str:
    """The entry's ``type`` on the wire (``"song.like"``, ``"playlist.add"``...)."""
    if isinstance(entry, Like):
        return f"{entry.target}.{'like' if entry.liked else 'unlike'}"
    return entry.kind


# Strict scalars: "3" is not 3 and 1.5 is not 1, so one entry has one JSON spelling.
_converter = make_strict(cattrs.Converter(forbid_extra_keys=True))


def encode_entry(entry: Entry) -> bytes:
    """Canonical JSON bytes: ``{"type": kind, ...fields}``, sorted keys, no NaN."""
    if type(entry) not in ENTRY_TYPES.values():
        raise InvalidEntry(f"not a catalog entry type: {type(entry).__name__}")
    data: dict[str, Any] = _converter.unstructure(entry)
    if isinstance(entry, Like):
        del data["target"], data["liked"]
        data[f"{entry.target}_id"] = data.pop("target_id")
    data["type"] = entry_type(entry)
    try:
        text = json.dumps(
            data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
        return text.encode("utf-8")
    except (ValueError, UnicodeError) as exc:
        raise InvalidEntry(f"cannot encode entry: {exc}") from exc


def decode_entry(data: bytes) -> Entry:
    """Parse bytes from :func:`encode_entry`; :class:`InvalidEntry` if they are not one."""
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidEntry(f"entry is not JSON: {exc}") from exc
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        raise InvalidEntry("entry has no type")
    kind = obj.pop("type")
    cls = ENTRY_TYPES.get(kind)
    if cls is None:
        raise InvalidEntry(f"unknown entry type {kind!r}")
    if cls is Like:
        target, liked = _LIKE_KINDS[kind]
        id_key = f"{target}_id"
        extra = sorted(set(obj) - {"actor", "at", id_key})
        if extra or id_key not in obj:
            raise InvalidEntry(f"malformed {kind} entry: needs {id_key}, not {extra}")
        target_id = obj.pop(id_key)
        obj = {**obj, "target": target, "liked": liked, "target_id": target_id}
    try:
        return _converter.structure(obj, cls)
    except Exception as exc:  # cattrs raises exception groups of many kinds
        raise InvalidEntry(f"malformed {kind} entry: {exc}") from exc
