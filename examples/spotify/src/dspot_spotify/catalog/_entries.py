"""Catalog log entries and their canonical JSON encoding."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any, ClassVar, Final, Literal

import attrs
import cattrs


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
    """A new account. ``password_hash`` comes from :func:`dspot_spotify.auth.hash_password`."""

    kind: ClassVar[str] = "user.register"
    user_id: str
    username: str
    password_hash: str = attrs.field(repr=False)
    role: Role = "user"


@attrs.frozen(kw_only=True)
class SetUserRole(Entry):
    """Make a user admin or plain user (admins only; the last admin cannot be demoted)."""

    kind: ClassVar[str] = "user.set_role"
    user_id: str
    role: Role


@attrs.frozen(kw_only=True)
class ChangePassword(Entry):
    """New password hash; revokes every token issued before ``at``."""

    kind: ClassVar[str] = "user.change_password"
    user_id: str
    password_hash: str = attrs.field(repr=False)


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
class LikeSong(Entry):
    """The actor likes a song (liking twice is harmless)."""

    kind: ClassVar[str] = "song.like"
    song_id: str


@attrs.frozen(kw_only=True)
class UnlikeSong(Entry):
    """The actor no longer likes a song."""

    kind: ClassVar[str] = "song.unlike"
    song_id: str


@attrs.frozen(kw_only=True)
class LikeAlbum(Entry):
    """The actor likes (stars) an album (liking twice is harmless)."""

    kind: ClassVar[str] = "album.like"
    album_id: str


@attrs.frozen(kw_only=True)
class UnlikeAlbum(Entry):
    """The actor no longer likes an album."""

    kind: ClassVar[str] = "album.unlike"
    album_id: str


@attrs.frozen(kw_only=True)
class LikeArtist(Entry):
    """The actor likes (stars) an artist (liking twice is harmless)."""

    kind: ClassVar[str] = "artist.like"
    artist_id: str


@attrs.frozen(kw_only=True)
class UnlikeArtist(Entry):
    """The actor no longer likes an artist."""

    kind: ClassVar[str] = "artist.unlike"
    artist_id: str


@attrs.frozen(kw_only=True)
class RecordPlay(Entry):
    """The actor played a song ``count`` times (a gateway may batch plays)."""

    kind: ClassVar[str] = "song.play"
    song_id: str
    count: int = 1


ENTRY_TYPES: Final[Mapping[str, type[Entry]]] = {
    cls.kind: cls
    for cls in (
        RegisterUser,
        SetUserRole,
        ChangePassword,
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
        LikeSong,
        UnlikeSong,
        LikeAlbum,
        UnlikeAlbum,
        LikeArtist,
        UnlikeArtist,
        RecordPlay,
    )
}

_converter = cattrs.Converter(forbid_extra_keys=True)


def _strict(kind: type[Any], *accept: type[Any]) -> Any:
    """A structure hook that accepts only JSON values of the right type (no coercion)."""

    def hook(value: Any, _: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, accept or (kind,)):
            raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
        return kind(value)

    return hook


# Strict scalars: "3" is not 3 and 1.5 is not 1, so one entry has one JSON spelling.
_converter.register_structure_hook(int, _strict(int))
_converter.register_structure_hook(float, _strict(float, int, float))
_converter.register_structure_hook(str, _strict(str))


def _str_tuple(value: Any, _: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError("expected a list of strings")
    return tuple(value)


_converter.register_structure_hook_func(lambda t: t == tuple[str, ...], _str_tuple)


def encode_entry(entry: Entry) -> bytes:
    """Canonical JSON bytes: ``{"type": kind, ...fields}``, sorted keys, no NaN."""
    if type(entry) not in ENTRY_TYPES.values():
        raise InvalidEntry(f"not a catalog entry type: {type(entry).__name__}")
    data: dict[str, Any] = _converter.unstructure(entry)
    data["type"] = entry.kind
    try:
        text = json.dumps(
            data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except ValueError as exc:
        raise InvalidEntry(f"cannot encode entry: {exc}") from exc
    return text.encode("utf-8")


def decode_entry(data: bytes) -> Entry:
    """Parse bytes from :func:`encode_entry`; :class:`InvalidEntry` if they are not one."""
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidEntry(f"entry is not JSON: {exc}") from exc
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        raise InvalidEntry("entry has no type")
    kind = obj.pop("type")
    cls = ENTRY_TYPES.get(kind)
    if cls is None:
        raise InvalidEntry(f"unknown entry type {kind!r}")
    try:
        return _converter.structure(obj, cls)
    except Exception as exc:  # cattrs raises exception groups of many kinds
        raise InvalidEntry(f"malformed {kind} entry: {exc}") from exc


def entry_changes(cls: type[Entry], changes: object, editable: Collection[str]) -> dict[str, Any]:
    """Check a partial update of some of ``cls``'s ``editable`` fields, given as parsed JSON.

    Returns the changes structured with the log's strict rules (``"3"`` is not 3, a list of
    genres becomes a tuple); an absent field is no change, ``null`` clears an optional one.
    Raises :class:`InvalidEntry` naming the offending field: not an object, a field that is
    unknown or not editable, or a value of the wrong type.
    """
    if not isinstance(changes, dict):
        raise InvalidEntry("expected a JSON object of fields to change")
    fields = {f.name: f for f in attrs.fields(attrs.resolve_types(cls)) if f.name in editable}
    unknown = sorted(str(k) for k in changes if k not in fields)
    if unknown:
        raise InvalidEntry(
            f"unknown or read-only field(s): {', '.join(unknown)} (editable: {', '.join(fields)})"
        )
    out: dict[str, Any] = {}
    for name, value in changes.items():
        try:
            out[name] = _converter.structure(value, fields[name].type)
        except Exception as exc:  # the strict hooks raise TypeError, cattrs its own groups
            raise InvalidEntry(f"{name}: {exc}") from None
    return out
