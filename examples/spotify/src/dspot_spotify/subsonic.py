"""The Subsonic / OpenSubsonic API of a node, so existing music players can use the cluster.

Served under ``/rest/NAME`` and ``/rest/NAME.view``, GET or form POST
(``application/x-www-form-urlencoded``; query and body parameters are merged, a name may
repeat). Answers are XML by default (namespace ``http://subsonic.org/restapi``), JSON with
``f=json`` (``{"subsonic-response": {...}}``) and JSONP with ``f=jsonp&callback=NAME``.
Errors answer HTTP 200 with ``status="failed"`` and the specification's code; binary
endpoints (``stream``, ``download``, ``getCoverArt``) answer bytes on success.

Authentication (every endpoint but ``getOpenSubsonicExtensions``):

* ``u`` + ``p`` (plain or ``enc:`` + hex): the user's *Subsonic password* or their web
  password (checked with scrypt);
* ``u`` + ``t`` + ``s`` with ``t = md5(password + s)``: only with the Subsonic password,
  since web passwords are stored as scrypt hashes and cannot be recomputed;
* ``apiKey`` (OpenSubsonic): the user's API key.

The Subsonic password and API key are random strings the server makes for each user
(``GET /api/me/subsonic`` shows them, creating them on first use;
``POST /api/me/subsonic/rotate`` replaces them). They are stored in the replicated catalog
through a :class:`~dspot_spotify.catalog.SetSubsonicCredentials` entry, so every replica can
check them. Ids are the catalog's ids; a cover-art id is a song or album id.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import unicodedata
import xml.etree.ElementTree as ET
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Concatenate, Final, ParamSpec, TypeVar
from urllib.parse import parse_qsl

import attrs
from dspot.blobstore import BlobStoreError
from dspot.http import HTTPError, Request, Response, Router

from dspot_spotify import __version__, accounts, catalog
from dspot_spotify.auth import SealedValueError
from dspot_spotify.node import SpotifyNode
from dspot_spotify.tags import sniff_image_mime

if TYPE_CHECKING:  # api imports this module
    from dspot_spotify.api import Api

__all__ = [
    "API_VERSION",
    "EXTENSIONS",
    "XMLNS",
    "SubsonicError",
    "add_routes",
]

P = ParamSpec("P")
T = TypeVar("T")

API_VERSION: Final = "1.16.1"
XMLNS: Final = "http://subsonic.org/restapi"
SERVER_TYPE: Final = "dspot"
IGNORED_ARTICLES: Final = ("The", "El", "La", "Los", "Las", "Le", "Les")
EXTENSIONS: Final[Mapping[str, tuple[int, ...]]] = {
    "apiKeyAuthentication": (1,),
    "formPost": (1,),
}
"""The OpenSubsonic extensions served, with their versions."""

MUSIC_FOLDER_ID: Final = 1
MAX_LIST: Final = 500
_FORM: Final = "application/x-www-form-urlencoded"
_SECRET_BYTES: Final = 18  # 24 base64url characters for the Subsonic password
_WEB_PASSWORD_CACHE: Final = 256


class SubsonicError(Exception):
    """A failed Subsonic call: the specification's error ``code`` and a message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


GENERIC: Final = 0
MISSING_PARAMETER: Final = 10
CLIENT_MUST_UPGRADE: Final = 20
SERVER_MUST_UPGRADE: Final = 30
WRONG_CREDENTIALS: Final = 40
TOKEN_AUTH_UNSUPPORTED: Final = 41
AUTH_MECHANISM_UNSUPPORTED: Final = 42
CONFLICTING_AUTH: Final = 43
INVALID_API_KEY: Final = 44
NOT_AUTHORIZED: Final = 50
NOT_FOUND: Final = 70

# -- parameters --------------------------------------------------------------------------------


@attrs.frozen
class Params:
    """A call's parameters (query string and form body), in order; names may repeat."""

    pairs: tuple[tuple[str, str], ...]

    def get(self, name: str) -> str | None:
        """The first value of ``name``, or None."""
        for key, value in self.pairs:
            if key == name:
                return value
        return None

    def all(self, name: str) -> list[str]:
        """Every value of ``name``, in order."""
        return [value for key, value in self.pairs if key == name]

    def require(self, name: str) -> str:
        """The value of ``name``; error 10 if it is missing or empty."""
        value = self.get(name)
        if value is None or value == "":
            raise SubsonicError(MISSING_PARAMETER, f"required parameter is missing: {name}")
        return value

    def number(self, name: str, default: int, *, low: int = 0, high: int | None = None) -> int:
        """An integer parameter, clamped to ``high``; error 0 if it is not an integer
        or below ``low``."""
        value = self.get(name)
        if value is None or value == "":
            return default
        try:
            number = int(value)
        except ValueError:
            raise SubsonicError(GENERIC, f"parameter {name} must be an integer") from None
        if number < low:
            raise SubsonicError(GENERIC, f"parameter {name} must be {low} or more")
        return number if high is None else min(number, high)

    def optional_int(self, name: str) -> int | None:
        """An integer parameter, or None when absent."""
        if self.get(name) in (None, ""):
            return None
        return self.number(name, 0, low=-(2**31))

    def flag(self, name: str, default: bool) -> bool:
        """A ``true``/``false`` parameter."""
        value = self.get(name)
        if value is None or value == "":
            return default
        return value.strip().lower() in ("true", "1", "yes")


async def read_params(request: Request) -> Params:
    """The query parameters, plus the form body of a POST (OpenSubsonic ``formPost``)."""
    pairs = parse_qsl(request.query_string, keep_blank_values=True)
    if request.method == "POST":
        request.max_body_size = 1024 * 1024
        body = await request.body()
        ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
        if body and ctype != _FORM:
            raise SubsonicError(GENERIC, f"a POST body must be {_FORM}")
        if body:
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                raise SubsonicError(GENERIC, "the form body is not UTF-8") from None
            pairs += parse_qsl(text, keep_blank_values=True)
    return Params(tuple(pairs))


# -- rendering ---------------------------------------------------------------------------------


def _strip_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_none(v) for v in value]
    return value


def _xml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _xml_fill(element: ET.Element, payload: Mapping[str, Any]) -> None:
    for key, value in payload.items():
        if value is None:
            continue
        if key == "value" and not isinstance(value, dict | list):
            element.text = _xml_scalar(value)
        elif isinstance(value, dict):
            _xml_fill(ET.SubElement(element, key), value)
        elif isinstance(value, list):
            for item in value:
                child = ET.SubElement(element, key)
                if isinstance(item, dict):
                    _xml_fill(child, item)
                else:
                    child.text = _xml_scalar(item)
        else:
            element.set(key, _xml_scalar(value))


def render(
    payload: Mapping[str, Any],
    params: Params,
    *,
    status: str = "ok",
) -> Response:
    """A ``subsonic-response`` in the format the call asked for (``f``): XML by default.

    ``payload`` maps names to scalars (XML attributes), dicts (child elements) or lists
    (repeated child elements); the key ``value`` is an element's text.
    """
    head: dict[str, Any] = {
        "status": status,
        "version": API_VERSION,
        "type": SERVER_TYPE,
        "serverVersion": __version__,
        "openSubsonic": True,
    }
    fmt = (params.get("f") or "xml").lower()
    if fmt in ("json", "jsonp"):
        body = json.dumps(
            {"subsonic-response": _strip_none({**head, **payload})},
            ensure_ascii=False,
            separators=(",", ":"),
        )
        if fmt == "jsonp":
            callback = params.get("callback") or ""
            if not re.fullmatch(r"[A-Za-z_$][\w$.]{0,99}", callback):
                callback = "callback"
            return Response.text(f"{callback}({body});", content_type="text/javascript")
        return Response.text(body, content_type="application/json; charset=utf-8")
    root = ET.Element("subsonic-response", {"xmlns": XMLNS})
    _xml_fill(root, {**head, **payload})
    data = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return Response(200, [("content-type", "text/xml; charset=utf-8")], data)


def render_error(error: SubsonicError, params: Params) -> Response:
    """The failed response for ``error`` (HTTP 200, as the specification says)."""
    return render(
        {"error": {"code": error.code, "message": error.message}}, params, status="failed"
    )


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


_SUFFIXES: Final[Mapping[str, str]] = {
    "audio/mpeg": "mp3",
    "audio/flac": "flac",
    "audio/x-flac": "flac",
    "audio/ogg": "ogg",
    "audio/opus": "opus",
    "audio/mp4": "m4a",
    "audio/x-m4a": "m4a",
    "audio/aac": "aac",
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
}


def _suffix(mime: str) -> str:
    return _SUFFIXES.get(mime.lower(), mime.rsplit("/", 1)[-1].removeprefix("x-") or "bin")


def _path_part(text: str) -> str:
    return re.sub(r"[/\\\x00-\x1f]", "_", text).strip() or "_"


def song_child(song: catalog.SongView, starred: int | None) -> dict[str, Any]:
    """A song as a Subsonic ``Child`` (with OpenSubsonic's ``mediaType`` and ``genres``)."""
    suffix = _suffix(song.mime)
    seconds = round(song.duration)
    folder = [_path_part(song.artist_name)]
    if song.album_title:
        folder.append(_path_part(song.album_title))
    number = f"{song.track:02d} " if song.track is not None else ""
    return {
        "id": song.id,
        "parent": song.album_id or song.artist_id,
        "isDir": False,
        "title": song.title,
        "album": song.album_title,
        "artist": song.artist_name,
        "track": song.track,
        "year": song.year,
        "genre": song.genres[0] if song.genres else None,
        "coverArt": song.id if song.cover_sha256 else None,
        "size": song.size,
        "contentType": song.mime,
        "suffix": suffix,
        "duration": seconds,
        "bitRate": round(song.size * 8 / song.duration / 1000) if song.duration > 0 else None,
        "path": "/".join([*folder, f"{number}{_path_part(song.title)}.{suffix}"]),
        "isVideo": False,
        "playCount": song.play_count,
        "created": _iso(song.created_at),
        "starred": _iso(starred),
        "albumId": song.album_id,
        "artistId": song.artist_id,
        "type": "music",
        "mediaType": "song",
        "genres": [{"name": g} for g in song.genres],
    }


# -- catalog reads (synchronous, inside one replica transaction) --------------------------------


@attrs.frozen(kw_only=True)
class AlbumRow:
    """An album with what Subsonic shows of it."""

    id: str
    title: str
    artist_id: str
    artist_name: str
    year: int | None
    cover_sha256: str | None
    """The album's cover, else the first cover among its tracks."""
    created_at: int
    song_count: int
    duration: float
    play_count: int
    genre: str | None


_ALBUM_COVER: Final = (
    "COALESCE(al.cover_sha256, (SELECT s.cover_sha256 FROM songs s WHERE s.album_id = al.id "
    "AND s.cover_sha256 IS NOT NULL ORDER BY s.track IS NULL, s.track, s.id LIMIT 1))"
)
_ALBUM_SELECT: Final = (
    f"SELECT al.id, al.title, al.artist_id, ar.name, al.year, {_ALBUM_COVER}, al.created_at, "
    "(SELECT COUNT(*) FROM songs s WHERE s.album_id = al.id), "
    "(SELECT COALESCE(SUM(s.duration), 0) FROM songs s WHERE s.album_id = al.id), "
    "(SELECT COALESCE(SUM(s.play_count), 0) FROM songs s WHERE s.album_id = al.id), "
    "(SELECT g.genre FROM songs s JOIN song_genres g ON g.song_id = s.id "
    "WHERE s.album_id = al.id ORDER BY s.track IS NULL, s.track, g.position LIMIT 1) "
    "FROM albums al JOIN artists ar ON ar.id = al.artist_id"
)


def _album_row(r: Sequence[Any]) -> AlbumRow:
    return AlbumRow(
        id=r[0],
        title=r[1],
        artist_id=r[2],
        artist_name=r[3],
        year=r[4],
        cover_sha256=r[5],
        created_at=int(r[6]),
        song_count=int(r[7]),
        duration=float(r[8]),
        play_count=int(r[9]),
        genre=r[10],
    )


def album_id3(album: AlbumRow, starred: int | None = None) -> dict[str, Any]:
    """An album as a Subsonic ``AlbumID3`` (``starred``: when the caller starred it)."""
    return {
        "id": album.id,
        "name": album.title,
        "artist": album.artist_name,
        "artistId": album.artist_id,
        "coverArt": album.id if album.cover_sha256 else None,
        "songCount": album.song_count,
        "duration": round(album.duration),
        "playCount": album.play_count,
        "created": _iso(album.created_at),
        "year": album.year,
        "genre": album.genre,
        "genres": [{"name": album.genre}] if album.genre else [],
        "starred": _iso(starred),
    }


def _albums(tx: catalog.Tx, where: str = "", params: Sequence[Any] = ()) -> list[AlbumRow]:
    return [_album_row(r) for r in tx.execute(f"{_ALBUM_SELECT} {where}", params)]


def _album(tx: catalog.Tx, album_id: str) -> AlbumRow | None:
    rows = _albums(tx, "WHERE al.id = ?", (album_id,))
    return rows[0] if rows else None


# What a star can name: the like table and its id column, per kind.
_LIKE_TABLES: Final[Mapping[str, tuple[str, str]]] = {
    "song": ("likes", "song_id"),
    "album": ("album_likes", "album_id"),
    "artist": ("artist_likes", "artist_id"),
}


def _stars(tx: catalog.Tx, user_id: str, ids: Sequence[str], kind: str = "song") -> dict[str, int]:
    """When ``user_id`` starred (liked) each of the songs (albums, artists) ``ids`` they like."""
    table, column = _LIKE_TABLES[kind]
    out: dict[str, int] = {}
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), 500):
        chunk = unique[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for item_id, at in tx.execute(
            f"SELECT {column}, at FROM {table} WHERE user_id = ? AND {column} IN ({marks})",
            [user_id, *chunk],
        ):
            out[str(item_id)] = int(at)
    return out


def _album_elements(tx: catalog.Tx, user_id: str, albums: Sequence[AlbumRow]) -> list[Any]:
    """``albums`` as ``AlbumID3`` elements, starred as ``user_id`` starred them."""
    stars = _stars(tx, user_id, [a.id for a in albums], "album")
    return [album_id3(a, stars.get(a.id)) for a in albums]


def _children(tx: catalog.Tx, user_id: str, songs: Sequence[catalog.SongView]) -> list[Any]:
    stars = _stars(tx, user_id, [s.id for s in songs])
    return [song_child(s, stars.get(s.id)) for s in songs]


def _songs_by_id(tx: catalog.Tx, ids: Sequence[str]) -> list[catalog.SongView]:
    songs = (catalog.get_song(tx, i) for i in ids)
    return [s for s in songs if s is not None]


def _index_letter(name: str) -> str:
    words = name.split()
    if len(words) > 1 and words[0].casefold() in {a.casefold() for a in IGNORED_ARTICLES}:
        name = " ".join(words[1:])
    first = unicodedata.normalize("NFKD", name[:1])[:1].upper()
    return first if first.isalpha() and first.isascii() else "#"


def _sort_key(name: str) -> str:
    words = name.split()
    if len(words) > 1 and words[0].casefold() in {a.casefold() for a in IGNORED_ARTICLES}:
        words = words[1:]
    return " ".join(words).casefold()


def _artist_index(tx: catalog.Tx, user_id: str) -> list[dict[str, Any]]:
    rows = list(
        tx.execute(
            "SELECT ar.id, ar.name, (SELECT COUNT(*) FROM albums al WHERE al.artist_id = ar.id), "
            "(SELECT l.at FROM artist_likes l WHERE l.user_id = ? AND l.artist_id = ar.id) "
            "FROM artists ar",
            (user_id,),
        )
    )
    groups: dict[str, list[dict[str, Any]]] = {}
    for artist_id, name, albums, starred in sorted(rows, key=lambda r: (_sort_key(r[1]), r[0])):
        groups.setdefault(_index_letter(name), []).append(
            {
                "id": artist_id,
                "name": name,
                "albumCount": int(albums),
                "starred": _iso(None if starred is None else int(starred)),
            }
        )
    return [
        {"name": letter, "artist": groups[letter]}
        for letter in sorted(groups, key=lambda k: (k == "#", k))
    ]


def _last_modified(tx: catalog.Tx) -> int:
    """When an artist, album or song was last created or edited (deletions not seen)."""
    [(value,)] = list(
        tx.execute(
            "SELECT MAX(COALESCE((SELECT MAX(updated_at) FROM artists), 0), "
            "COALESCE((SELECT MAX(updated_at) FROM albums), 0), "
            "COALESCE((SELECT MAX(updated_at) FROM songs), 0))"
        )
    )
    return int(value)


def _window(
    query: Callable[..., catalog.Page[Any]], tx: catalog.Tx, offset: int, count: int, **kw: Any
) -> list[Any]:
    """``count`` items from ``offset`` of a paged catalog listing."""
    if count <= 0:
        return []
    size = catalog.MAX_LIMIT
    out: list[Any] = []
    first = offset // size + 1
    last = (offset + count - 1) // size + 1
    for page in range(first, last + 1):
        result = query(tx, page=page, limit=size, **kw)
        out.extend(result.items)
        if len(result.items) < size:
            break
    skip = offset - (first - 1) * size
    return out[skip : skip + count]


def _search_text(raw: str | None) -> str:
    text = (raw or "").strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1].strip()
    return text


_ALBUM_LISTS: Final[Mapping[str, str]] = {
    "newest": "ORDER BY al.created_at DESC, al.id",
    "alphabeticalByName": "ORDER BY al.title COLLATE NOCASE, al.id",
    "alphabeticalByArtist": "ORDER BY ar.name COLLATE NOCASE, al.title COLLATE NOCASE, al.id",
    "frequent": "ORDER BY (SELECT COALESCE(SUM(s.play_count), 0) FROM songs s "
    "WHERE s.album_id = al.id) DESC, al.id",
    "highest": "ORDER BY (SELECT COALESCE(SUM(s.like_count), 0) FROM songs s "
    "WHERE s.album_id = al.id) DESC, al.id",
}


# -- the API -----------------------------------------------------------------------------------

Handler = Callable[["Call"], Awaitable[Mapping[str, Any] | Response]]


@attrs.frozen
class Call:
    """One authenticated call: the request, its parameters and the user."""

    request: Request
    params: Params
    user: catalog.UserRecord | None
    written: list[catalog.LogPosition] = attrs.field(factory=list)
    """Log positions of the call's writes (the last one goes out in ``X-Log-Position``)."""

    @property
    def me(self) -> catalog.UserRecord:
        """The authenticated user."""
        if self.user is None:  # only getOpenSubsonicExtensions runs without one
            raise SubsonicError(WRONG_CREDENTIALS, "authentication required")
        return self.user


class SubsonicApi:
    """The Subsonic endpoints of one node; writes go through ``api`` (the token ring)."""

    def __init__(self, node: SpotifyNode, api: Api) -> None:
        self.node = node
        self.api = api
        self._web_ok: OrderedDict[tuple[str, str, bytes], None] = OrderedDict()
        self.endpoints: dict[str, Handler] = {
            "ping": self.ping,
            "getLicense": self.get_license,
            "getOpenSubsonicExtensions": self.get_extensions,
            "tokenInfo": self.token_info,
            "getMusicFolders": self.get_music_folders,
            "getIndexes": self.get_indexes,
            "getArtists": self.get_artists,
            "getArtist": self.get_artist,
            "getAlbum": self.get_album,
            "getSong": self.get_song,
            "getAlbumList2": self.get_album_list2,
            "getRandomSongs": self.get_random_songs,
            "search3": self.search3,
            "stream": self.stream,
            "download": self.download,
            "getCoverArt": self.get_cover_art,
            "star": self.star,
            "unstar": self.unstar,
            "getStarred2": self.get_starred2,
            "scrobble": self.scrobble,
            "getPlaylists": self.get_playlists,
            "getPlaylist": self.get_playlist,
            "createPlaylist": self.create_playlist,
            "updatePlaylist": self.update_playlist,
            "deletePlaylist": self.delete_playlist,
            "getUser": self.get_user,
        }

    # -- dispatch ------------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        """Answer ``/rest/NAME[.view]``: authenticate, run the endpoint, render."""
        name = request.path_params["endpoint"].removesuffix(".view")
        params = Params(tuple(parse_qsl(request.query_string, keep_blank_values=True)))
        written: list[catalog.LogPosition] = []
        try:
            params = await read_params(request)
            handler = self.endpoints.get(name)
            if handler is None:
                raise SubsonicError(GENERIC, f"not implemented: {name}")
            _check_version(params.get("v"))
            # Read your writes, for a client (or proxy) that sends X-Log-Position back.
            await self.api.catch_up(request)
            user = None
            if name != "getOpenSubsonicExtensions":  # public by the OpenSubsonic spec
                user = await self.authenticate(params)
            result = await handler(Call(request, params, user, written))
            response = result if isinstance(result, Response) else render(result, params)
        except SubsonicError as e:
            response = render_error(e, params)
        except HTTPError as e:
            if e.status in (304, 412, 416):  # the HTTP answers of a byte-range request
                raise
            response = render_error(_from_http(e), params)
        if written:  # also after a failure part-way through a call of several writes
            from dspot_spotify.api import LOG_POSITION_HEADER, format_position  # imports us

            position = format_position(max(written))
            response = attrs.evolve(
                response, headers=response.headers.set(LOG_POSITION_HEADER, position)
            )
        return response

    async def commit(self, call: Call, entry: catalog.Entry) -> None:
        """Commit one write of ``call`` through the token ring and wait for its outcome."""
        call.written.append(await self.api.commit(entry))

    async def read(
        self, fn: Callable[Concatenate[catalog.Tx, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """A catalog read on this node's replica."""
        return await self.node.replica.read(fn, *args, **kwargs)

    # -- authentication ------------------------------------------------------------------------

    async def authenticate(self, params: Params) -> catalog.UserRecord:
        """The user the call's credentials name, or the specification's auth error."""
        api_key = params.get("apiKey")
        username, password = params.get("u"), params.get("p")
        token, salt = params.get("t"), params.get("s")
        if api_key is not None:
            if any(v is not None for v in (username, password, token, salt)):
                raise SubsonicError(CONFLICTING_AUTH, "apiKey cannot be combined with u, p, t or s")
            tag = self.node.credentials.tag(api_key)
            creds = await self.read(catalog.subsonic_credentials_by_api_key, tag)
            user = None if creds is None else await self.read(catalog.get_user, creds.user_id)
            if user is None:
                raise SubsonicError(INVALID_API_KEY, "invalid API key")
            return user
        if not username:
            raise SubsonicError(MISSING_PARAMETER, "required parameter is missing: u (or apiKey)")
        if password is not None and (token is not None or salt is not None):
            raise SubsonicError(CONFLICTING_AUTH, "give either p, or t and s, not both")
        if password is not None:
            return await self._password_login(username, _decode_password(password))
        if token is None and salt is None:
            raise SubsonicError(
                MISSING_PARAMETER, "required parameter is missing: p, or t and s, or apiKey"
            )
        if not token or not salt:
            missing = "s" if token else "t"
            raise SubsonicError(MISSING_PARAMETER, f"required parameter is missing: {missing}")
        user = await self.read(catalog.get_user_by_username, username)
        creds = None if user is None else await self.read(catalog.subsonic_credentials, user.id)
        if user is None or creds is None:
            raise SubsonicError(
                TOKEN_AUTH_UNSUPPORTED,
                "token authentication (t, s) needs the user's Subsonic password "
                "(GET /api/me/subsonic); none is set for this user",
            )
        plain = self._password_of(creds)
        if plain is None:
            raise SubsonicError(WRONG_CREDENTIALS, "wrong username or password")
        expected = hashlib.md5((plain + salt).encode(), usedforsecurity=False)
        if not hmac.compare_digest(expected.hexdigest().encode(), token.lower().encode()):
            raise SubsonicError(WRONG_CREDENTIALS, "wrong username or password")
        return user

    async def _password_login(self, username: str, password: str) -> catalog.UserRecord:
        user = await self.read(catalog.get_user_by_username, username)
        if user is not None:
            creds = await self.read(catalog.subsonic_credentials, user.id)
            plain = None if creds is None else self._password_of(creds)
            if plain is not None and hmac.compare_digest(plain.encode(), password.encode()):
                return user
            # A web password costs an scrypt hash (~50 ms); remember recent successes.
            key = (user.id, user.password_hash, hashlib.sha256(password.encode()).digest())
            if key in self._web_ok:
                self._web_ok.move_to_end(key)
                return user
        try:
            user = await self.read(accounts.check_login, username, password)
        except accounts.InvalidCredentials:
            raise SubsonicError(WRONG_CREDENTIALS, "wrong username or password") from None
        key = (user.id, user.password_hash, hashlib.sha256(password.encode()).digest())
        self._web_ok[key] = None
        while len(self._web_ok) > _WEB_PASSWORD_CACHE:
            self._web_ok.popitem(last=False)
        return user

    # -- system --------------------------------------------------------------------------------

    async def ping(self, call: Call) -> Mapping[str, Any]:
        return {}

    async def get_license(self, call: Call) -> Mapping[str, Any]:
        return {"license": {"valid": True}}

    async def get_extensions(self, call: Call) -> Mapping[str, Any]:
        return {
            "openSubsonicExtensions": [
                {"name": name, "versions": list(versions)} for name, versions in EXTENSIONS.items()
            ]
        }

    async def token_info(self, call: Call) -> Mapping[str, Any]:
        return {"tokenInfo": {"username": call.me.username}}

    async def get_music_folders(self, call: Call) -> Mapping[str, Any]:
        return {"musicFolders": {"musicFolder": [{"id": MUSIC_FOLDER_ID, "name": "Music"}]}}

    async def get_user(self, call: Call) -> Mapping[str, Any]:
        user = await self._visible_user(call, call.params.require("username"))
        admin = user.role == "admin"
        return {
            "user": {
                "username": user.username,
                "scrobblingEnabled": True,
                "adminRole": admin,
                "settingsRole": True,
                "downloadRole": True,
                "uploadRole": True,
                "playlistRole": True,
                "coverArtRole": False,
                "commentRole": False,
                "podcastRole": False,
                "streamRole": True,
                "jukeboxRole": False,
                "shareRole": False,
                "videoConversionRole": False,
                "folder": [MUSIC_FOLDER_ID],
            }
        }

    async def _visible_user(self, call: Call, username: str) -> catalog.UserRecord:
        """The user named ``username``: oneself, or anyone for an admin (50 otherwise)."""
        me = call.me
        if me.role != "admin" and username.strip().lower() != me.username:
            raise SubsonicError(NOT_AUTHORIZED, "only admins may look at other users")
        user: catalog.UserRecord | None = await self.read(catalog.get_user_by_username, username)
        if user is None:
            raise SubsonicError(NOT_FOUND, f"no user {username}")
        return user

    # -- browsing ------------------------------------------------------------------------------

    async def get_indexes(self, call: Call) -> Mapping[str, Any]:
        # ifModifiedSince is not honoured: deletions leave no timestamp behind, so "unchanged"
        # cannot be told reliably; the full index is always a correct answer.
        me = call.me

        def query(tx: catalog.Tx) -> Mapping[str, Any]:
            index = [
                {
                    "name": g["name"],
                    "artist": [
                        {"id": a["id"], "name": a["name"], "starred": a["starred"]}
                        for a in g["artist"]
                    ],
                }
                for g in _artist_index(tx, me.id)
            ]
            return {
                "indexes": {
                    "lastModified": _last_modified(tx),
                    "ignoredArticles": " ".join(IGNORED_ARTICLES),
                    "index": index,
                }
            }

        result: Mapping[str, Any] = await self.read(query)
        return result

    async def get_artists(self, call: Call) -> Mapping[str, Any]:
        index = await self.read(_artist_index, call.me.id)
        return {"artists": {"ignoredArticles": " ".join(IGNORED_ARTICLES), "index": index}}

    async def get_artist(self, call: Call) -> Mapping[str, Any]:
        artist_id = call.params.require("id")
        me = call.me

        def query(tx: catalog.Tx) -> Mapping[str, Any] | None:
            detail = catalog.get_artist(tx, artist_id)
            if detail is None:
                return None
            albums = _albums(
                tx,
                "WHERE al.artist_id = ? ORDER BY al.year IS NULL, al.year, "
                "al.title COLLATE NOCASE, al.id",
                (artist_id,),
            )
            return {
                "artist": {
                    "id": detail.artist.id,
                    "name": detail.artist.name,
                    "albumCount": len(albums),
                    "starred": _iso(_stars(tx, me.id, [artist_id], "artist").get(artist_id)),
                    "album": _album_elements(tx, me.id, albums),
                }
            }

        result: Mapping[str, Any] | None = await self.read(query)
        if result is None:
            raise SubsonicError(NOT_FOUND, f"no artist {artist_id}")
        return result

    async def get_album(self, call: Call) -> Mapping[str, Any]:
        album_id = call.params.require("id")
        me = call.me

        def query(tx: catalog.Tx) -> Mapping[str, Any] | None:
            album = _album(tx, album_id)
            detail = catalog.get_album(tx, album_id)
            if album is None or detail is None:
                return None
            starred = _stars(tx, me.id, [album_id], "album").get(album_id)
            return {
                "album": {
                    **album_id3(album, starred),
                    "song": _children(tx, me.id, detail.tracks),
                }
            }

        result: Mapping[str, Any] | None = await self.read(query)
        if result is None:
            raise SubsonicError(NOT_FOUND, f"no album {album_id}")
        return result

    async def get_song(self, call: Call) -> Mapping[str, Any]:
        song_id = call.params.require("id")
        me = call.me

        def query(tx: catalog.Tx) -> Mapping[str, Any] | None:
            song = catalog.get_song(tx, song_id)
            return None if song is None else {"song": _children(tx, me.id, [song])[0]}

        result: Mapping[str, Any] | None = await self.read(query)
        if result is None:
            raise SubsonicError(NOT_FOUND, f"no song {song_id}")
        return result

    async def get_album_list2(self, call: Call) -> Mapping[str, Any]:
        p = call.params
        kind = p.require("type")
        size = p.number("size", 10, high=MAX_LIST)
        offset = p.number("offset", 0)
        me = call.me
        where: list[str] = []
        args: list[Any] = []
        if kind == "byYear":
            p.require("fromYear")
            p.require("toYear")
            start, end = p.number("fromYear", 0, low=-(2**31)), p.number("toYear", 0, low=-(2**31))
            low, high = sorted((start, end))
            where.append("al.year BETWEEN ? AND ?")
            args += [low, high]
            order = "ORDER BY al.year " + ("DESC" if start > end else "ASC") + ", al.id"
        elif kind == "byGenre":
            where.append(
                "al.id IN (SELECT s.album_id FROM songs s JOIN song_genres g "
                "ON g.song_id = s.id WHERE g.genre = ?)"
            )
            args.append(" ".join(p.require("genre").split()))
            order = "ORDER BY al.title COLLATE NOCASE, al.id"
        elif kind == "starred":
            where.append("al.id IN (SELECT l.album_id FROM album_likes l WHERE l.user_id = ?)")
            args.append(me.id)
            order = "ORDER BY al.title COLLATE NOCASE, al.id"
        elif kind == "recent":
            where.append(
                "al.id IN (SELECT s.album_id FROM plays pl JOIN songs s ON s.id = pl.song_id "
                "WHERE pl.user_id = ?)"
            )
            args.append(me.id)
            order = (
                "ORDER BY (SELECT MAX(pl.last_at) FROM plays pl JOIN songs s ON s.id = pl.song_id "
                "WHERE pl.user_id = ? AND s.album_id = al.id) DESC, al.id"
            )
            args.append(me.id)
        elif kind == "random":
            order = ""
        elif kind in _ALBUM_LISTS:
            order = _ALBUM_LISTS[kind]
        else:
            raise SubsonicError(GENERIC, f"unknown album list type: {kind}")
        cond = ("WHERE " + " AND ".join(where)) if where else ""
        rng = self.node.env.rng

        def query(tx: catalog.Tx) -> list[AlbumRow]:
            if kind == "random":
                ids = [str(r[0]) for r in tx.execute("SELECT id FROM albums ORDER BY id")]
                chosen = rng.sample(ids, min(size, len(ids)))
                found = {a.id: a for a in _albums(tx, f"WHERE al.id IN ({_marks(chosen)})", chosen)}
                return [found[i] for i in chosen if i in found]
            return _albums(tx, f"{cond} {order} LIMIT ? OFFSET ?", [*args, size, offset])

        def elements(tx: catalog.Tx) -> list[Any]:
            return _album_elements(tx, me.id, query(tx))

        return {"albumList2": {"album": await self.read(elements)}}

    async def get_random_songs(self, call: Call) -> Mapping[str, Any]:
        p = call.params
        size = p.number("size", 10, high=MAX_LIST)
        where: list[str] = []
        args: list[Any] = []
        if genre := p.get("genre"):
            where.append("id IN (SELECT song_id FROM song_genres WHERE genre = ?)")
            args.append(" ".join(genre.split()))
        if (start := p.optional_int("fromYear")) is not None:
            where.append("year >= ?")
            args.append(start)
        if (end := p.optional_int("toYear")) is not None:
            where.append("year <= ?")
            args.append(end)
        cond = ("WHERE " + " AND ".join(where)) if where else ""
        rng = self.node.env.rng
        me = call.me

        def query(tx: catalog.Tx) -> list[Any]:
            ids = [str(r[0]) for r in tx.execute(f"SELECT id FROM songs {cond} ORDER BY id", args)]
            chosen = rng.sample(ids, min(size, len(ids)))
            return _children(tx, me.id, _songs_by_id(tx, chosen))

        return {"randomSongs": {"song": await self.read(query)}}

    async def search3(self, call: Call) -> Mapping[str, Any]:
        p = call.params
        if p.get("query") is None:
            raise SubsonicError(MISSING_PARAMETER, "required parameter is missing: query")
        text = _search_text(p.get("query"))
        q = text or None  # OpenSubsonic: an empty query lists everything
        counts = {
            kind: (p.number(f"{kind}Count", 20, high=MAX_LIST), p.number(f"{kind}Offset", 0))
            for kind in ("artist", "album", "song")
        }
        me = call.me

        def query(tx: catalog.Tx) -> Mapping[str, Any]:
            artists = _window(
                catalog.list_artists, tx, counts["artist"][1], counts["artist"][0], q=q
            )
            album_views = _window(
                catalog.list_albums, tx, counts["album"][1], counts["album"][0], q=q
            )
            songs = _window(catalog.list_songs, tx, counts["song"][1], counts["song"][0], q=q)
            ids = [a.id for a in album_views]
            rows = {a.id: a for a in _albums(tx, f"WHERE al.id IN ({_marks(ids)})", ids)}
            artist_stars = _stars(tx, me.id, [a.id for a in artists], "artist")
            return {
                "searchResult3": {
                    "artist": [
                        {
                            "id": a.id,
                            "name": a.name,
                            "albumCount": a.album_count,
                            "starred": _iso(artist_stars.get(a.id)),
                        }
                        for a in artists
                    ],
                    "album": _album_elements(tx, me.id, [rows[i] for i in ids if i in rows]),
                    "song": _children(tx, me.id, songs),
                }
            }

        result: Mapping[str, Any] = await self.read(query)
        return result

    # -- media ---------------------------------------------------------------------------------

    async def _song(self, song_id: str) -> catalog.SongView:
        song: catalog.SongView | None = await self.read(catalog.get_song, song_id)
        if song is None:
            raise SubsonicError(NOT_FOUND, f"no song {song_id}")
        return song

    def _audio(self, request: Request, song: catalog.SongView, *extra: tuple[str, str]) -> Response:
        from dspot_spotify.api import song_audio  # api imports this module

        return song_audio(self.node, request, song, *extra)

    async def stream(self, call: Call) -> Response:
        song = await self._song(call.params.require("id"))
        return self._audio(call.request, song)

    async def download(self, call: Call) -> Response:
        song = await self._song(call.params.require("id"))
        name = f"{song.title}.{_suffix(song.mime)}"
        ascii_name = re.sub(r"[^A-Za-z0-9 ._-]", "_", name)
        disposition = f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''" + "".join(
            c
            if (c.isalnum() and c.isascii()) or c in "._-"
            else "%" + "%".join(f"{b:02X}" for b in c.encode())
            for c in name
        )
        return self._audio(call.request, song, ("content-disposition", disposition))

    async def get_cover_art(self, call: Call) -> Response:
        art_id = call.params.require("id")

        def query(tx: catalog.Tx) -> str | None:
            song = catalog.get_song(tx, art_id)
            if song is not None:
                return song.cover_sha256
            album = _album(tx, art_id)
            return None if album is None else album.cover_sha256

        sha: str | None = await self.read(query)
        if sha is None:
            raise SubsonicError(NOT_FOUND, f"no cover art {art_id}")
        try:
            data = await self.node.blobs.read(sha)
        except BlobStoreError as e:
            raise SubsonicError(GENERIC, f"cover unavailable: {e}") from None
        return Response(
            200,
            [
                ("content-type", sniff_image_mime(data) or "application/octet-stream"),
                ("etag", f'"{sha}"'),
                ("cache-control", "private, max-age=31536000, immutable"),
            ],
            data,
        )

    # -- stars and plays -----------------------------------------------------------------------

    async def _star(self, call: Call, *, like: bool) -> Mapping[str, Any]:
        """Star or unstar every ``id`` (a song, album or artist id), ``albumId`` and
        ``artistId``; all are checked before the first is written."""
        p = call.params
        named = [
            *((i, None) for i in p.all("id") if i),
            *((i, "album") for i in p.all("albumId") if i),
            *((i, "artist") for i in p.all("artistId") if i),
        ]
        if not named:
            raise SubsonicError(MISSING_PARAMETER, "required parameter is missing: id")

        def resolve(tx: catalog.Tx) -> list[tuple[str | None, str, str | None]]:
            """(the kind found or None, the id, the kind asked for) for each named id."""
            out: list[tuple[str | None, str, str | None]] = []
            for item_id, wanted in named:
                kinds = [wanted] if wanted else ["song", "album", "artist"]
                out.append(
                    (next((k for k in kinds if _exists(tx, k, item_id)), None), item_id, wanted)
                )
            return out

        targets: list[tuple[str, str]] = []
        for kind, item_id, wanted in await self.read(resolve):
            if kind is None:
                raise SubsonicError(NOT_FOUND, f"no {wanted or 'song, album or artist'} {item_id}")
            targets.append((kind, item_id))
        me, now = call.me, self.node.now_ms
        for kind, item_id in dict.fromkeys(targets):
            entry: catalog.Entry
            if kind == "song":
                song_entry = catalog.LikeSong if like else catalog.UnlikeSong
                entry = song_entry(actor=me.id, at=now(), song_id=item_id)
            elif kind == "album":
                album_entry = catalog.LikeAlbum if like else catalog.UnlikeAlbum
                entry = album_entry(actor=me.id, at=now(), album_id=item_id)
            else:
                artist_entry = catalog.LikeArtist if like else catalog.UnlikeArtist
                entry = artist_entry(actor=me.id, at=now(), artist_id=item_id)
            await self.commit(call, entry)
        return {}

    async def star(self, call: Call) -> Mapping[str, Any]:
        return await self._star(call, like=True)

    async def unstar(self, call: Call) -> Mapping[str, Any]:
        return await self._star(call, like=False)

    async def get_starred2(self, call: Call) -> Mapping[str, Any]:
        me = call.me

        def query(tx: catalog.Tx) -> Mapping[str, Any]:
            artists = [
                {"id": r[0], "name": r[1], "albumCount": int(r[2]), "starred": _iso(int(r[3]))}
                for r in tx.execute(
                    "SELECT ar.id, ar.name, (SELECT COUNT(*) FROM albums al "
                    "WHERE al.artist_id = ar.id), l.at FROM artist_likes l "
                    "JOIN artists ar ON ar.id = l.artist_id WHERE l.user_id = ? "
                    "ORDER BY l.at DESC, ar.id",
                    (me.id,),
                )
            ]
            albums = _albums(
                tx,
                "JOIN album_likes l ON l.album_id = al.id WHERE l.user_id = ? "
                "ORDER BY l.at DESC, al.id",
                (me.id,),
            )
            song_ids = [
                str(r[0])
                for r in tx.execute(
                    "SELECT song_id FROM likes WHERE user_id = ? ORDER BY at DESC, song_id",
                    (me.id,),
                )
            ]
            return {
                "starred2": {
                    "artist": artists,
                    "album": _album_elements(tx, me.id, albums),
                    "song": _children(tx, me.id, _songs_by_id(tx, song_ids)),
                }
            }

        result: Mapping[str, Any] = await self.read(query)
        return result

    async def scrobble(self, call: Call) -> Mapping[str, Any]:
        p = call.params
        ids = [i for i in p.all("id") if i]
        if not ids:
            raise SubsonicError(MISSING_PARAMETER, "required parameter is missing: id")
        for song_id in dict.fromkeys(ids):
            await self._song(song_id)
        if not p.flag("submission", True):
            return {}  # a "now playing" notification: nothing is recorded
        for song_id, count in Counter(ids).items():
            entry = catalog.RecordPlay(
                actor=call.me.id, at=self.node.now_ms(), song_id=song_id, count=count
            )
            await self.commit(call, entry)
        return {}

    # -- playlists -----------------------------------------------------------------------------

    async def _playlist(self, playlist_id: str) -> catalog.PlaylistDetail:
        playlist: catalog.PlaylistDetail | None = await self.read(catalog.get_playlist, playlist_id)
        if playlist is None:
            raise SubsonicError(NOT_FOUND, f"no playlist {playlist_id}")
        return playlist

    async def _own_playlist(self, call: Call, playlist_id: str) -> catalog.PlaylistDetail:
        playlist = await self._playlist(playlist_id)
        if playlist.playlist.owner_id != call.me.id:
            raise SubsonicError(NOT_AUTHORIZED, "only the playlist's owner may edit it")
        return playlist

    async def _playlist_json(
        self, me: catalog.UserRecord, view: catalog.PlaylistView, *, entries: bool
    ) -> dict[str, Any]:
        def query(tx: catalog.Tx) -> dict[str, Any]:
            owner = catalog.get_user(tx, view.owner_id)
            out: dict[str, Any] = {
                "id": view.id,
                "name": view.name,
                "owner": owner.username if owner else None,
                "public": False,
                "songCount": view.song_count,
                "duration": round(view.duration),
                "created": _iso(view.created_at),
                "changed": _iso(view.updated_at),
            }
            if entries:
                detail = catalog.get_playlist(tx, view.id)
                songs = [i.song for i in detail.items] if detail else []
                out["entry"] = _children(tx, me.id, songs)
                cover = next((s.id for s in songs if s.cover_sha256), None)
                out["coverArt"] = cover
            return out

        result: dict[str, Any] = await self.read(query)
        return result

    async def get_playlists(self, call: Call) -> Mapping[str, Any]:
        me = call.me
        name = call.params.get("username")
        owner = await self._visible_user(call, name) if name else me
        views: list[catalog.PlaylistView] = await self.read(catalog.user_playlists, owner.id)
        items = [await self._playlist_json(me, v, entries=False) for v in views]
        return {"playlists": {"playlist": items}}

    async def get_playlist(self, call: Call) -> Mapping[str, Any]:
        detail = await self._playlist(call.params.require("id"))
        return {"playlist": await self._playlist_json(call.me, detail.playlist, entries=True)}

    async def _add_songs(self, call: Call, playlist_id: str, song_ids: Sequence[str]) -> None:
        for song_id in song_ids:
            await self._song(song_id)
        for song_id in song_ids:
            entry = catalog.AddToPlaylist(
                actor=call.me.id,
                at=self.node.now_ms(),
                playlist_id=playlist_id,
                item_id=self.node.env.ids(),
                song_id=song_id,
            )
            await self.commit(call, entry)

    async def _remove_items(self, call: Call, playlist_id: str, item_ids: Sequence[str]) -> None:
        for item_id in item_ids:
            entry = catalog.RemoveFromPlaylist(
                actor=call.me.id, at=self.node.now_ms(), playlist_id=playlist_id, item_id=item_id
            )
            await self.commit(call, entry)

    async def create_playlist(self, call: Call) -> Mapping[str, Any]:
        p = call.params
        song_ids = [s for s in p.all("songId") if s]
        playlist_id = p.get("playlistId")
        name = p.get("name")
        if playlist_id:  # replace an existing playlist's songs
            detail = await self._own_playlist(call, playlist_id)
            if name:
                await self.commit(
                    call,
                    catalog.RenamePlaylist(
                        actor=call.me.id, at=self.node.now_ms(), playlist_id=playlist_id, name=name
                    ),
                )
            await self._remove_items(call, playlist_id, [i.item_id for i in detail.items])
        else:
            if not name:
                raise SubsonicError(
                    MISSING_PARAMETER, "required parameter is missing: name or playlistId"
                )
            for song_id in song_ids:
                await self._song(song_id)
            playlist_id = self.node.env.ids()
            await self.commit(
                call,
                catalog.CreatePlaylist(
                    actor=call.me.id, at=self.node.now_ms(), playlist_id=playlist_id, name=name
                ),
            )
        await self._add_songs(call, playlist_id, song_ids)
        detail = await self._playlist(playlist_id)
        return {"playlist": await self._playlist_json(call.me, detail.playlist, entries=True)}

    async def update_playlist(self, call: Call) -> Mapping[str, Any]:
        p = call.params
        playlist_id = p.require("playlistId")
        detail = await self._own_playlist(call, playlist_id)
        remove: list[int] = []
        for text in p.all("songIndexToRemove"):
            try:
                index = int(text)
            except ValueError:
                raise SubsonicError(GENERIC, "songIndexToRemove must be an integer") from None
            if not 0 <= index < len(detail.items):
                raise SubsonicError(NOT_FOUND, f"no song at index {index} of the playlist")
            remove.append(index)
        add = [s for s in p.all("songIdToAdd") if s]
        for song_id in add:
            await self._song(song_id)
        name = p.get("name")
        if name:
            await self.commit(
                call,
                catalog.RenamePlaylist(
                    actor=call.me.id, at=self.node.now_ms(), playlist_id=playlist_id, name=name
                ),
            )
        items = [detail.items[i].item_id for i in sorted(set(remove))]
        await self._remove_items(call, playlist_id, items)
        await self._add_songs(call, playlist_id, add)
        return {}

    async def delete_playlist(self, call: Call) -> Mapping[str, Any]:
        playlist_id = call.params.require("id")
        await self._playlist(playlist_id)
        await self.commit(
            call,
            catalog.DeletePlaylist(
                actor=call.me.id, at=self.node.now_ms(), playlist_id=playlist_id
            ),
        )
        return {}

    # -- the web API's credential endpoints ----------------------------------------------------

    async def my_credentials(self, request: Request) -> Response:
        """``GET /api/me/subsonic``: my Subsonic username, password and API key (made on
        first use; then the answer carries the write's ``X-Log-Position``)."""
        claims = await self.api.authenticate(request)
        creds = await self.read(catalog.subsonic_credentials, claims.user_id)
        password = None if creds is None else self._password_of(creds)
        if creds is not None and password is not None:
            return Response.json(self._credentials_json(creds, password))
        return await self._new_credentials(claims.user_id)

    async def rotate_credentials(self, request: Request) -> Response:
        """``POST /api/me/subsonic/rotate``: a new Subsonic password and API key (the old
        ones stop working)."""
        claims = await self.api.authenticate(request)
        return await self._new_credentials(claims.user_id)

    async def _new_credentials(self, user_id: str) -> Response:
        from dspot_spotify.api import LOG_POSITION_HEADER, format_position  # imports us

        env = self.node.env
        box = self.node.credentials
        password = _token(env.secure_token(_SECRET_BYTES))
        # The log and every replica hold the password sealed and only a keyed hash of the
        # API key (which is derived from the password, so it can be shown again).
        entry = catalog.SetSubsonicCredentials(
            actor=user_id,
            at=self.node.now_ms(),
            user_id=user_id,
            password=box.seal(password, owner=user_id, nonce=env.secure_token(12)),
            api_key=box.tag(self._api_key(user_id, password)),
        )
        position = await self.api.commit(entry)
        creds: catalog.SubsonicCredentials | None = await self.read(
            catalog.subsonic_credentials, user_id
        )
        if creds is None:  # committed and applied above, so this is a broken replica
            raise HTTPError(500, "Subsonic credentials vanished after they were stored")
        return Response.json(
            self._credentials_json(creds, password),
            headers=[(LOG_POSITION_HEADER, format_position(position))],
        )

    def _password_of(self, creds: catalog.SubsonicCredentials) -> str | None:
        """The Subsonic password in clear (opened with the cluster's credential key), or
        None when it does not open (sealed under another cluster secret)."""
        try:
            return self.node.credentials.open(creds.password, owner=creds.user_id)
        except SealedValueError:
            self.node.env.log(30, "subsonic.credentials_unreadable", user=creds.user_id)
            return None

    def _api_key(self, user_id: str, password: str) -> str:
        """The user's API key: a keyed hash of their Subsonic password (rotates with it)."""
        return self.node.credentials.tag(f"api-key\0{user_id}\0{password}")

    def _credentials_json(
        self, creds: catalog.SubsonicCredentials, password: str
    ) -> dict[str, Any]:
        return {
            "username": creds.username,
            "password": password,
            "api_key": self._api_key(creds.user_id, password),
            "updated_at": creds.updated_at,
            "path": "/rest",
        }


def _token(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _exists(tx: catalog.Tx, kind: str, item_id: str) -> bool:
    """Whether a song, album or artist (``kind``) with id ``item_id`` exists."""
    table = {"song": "songs", "album": "albums", "artist": "artists"}[kind]
    return bool(list(tx.execute(f"SELECT 1 FROM {table} WHERE id = ?", (item_id,))))


def _marks(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values)) or "NULL"


def _decode_password(value: str) -> str:
    if not value.startswith("enc:"):
        return value
    try:
        return bytes.fromhex(value[4:]).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise SubsonicError(WRONG_CREDENTIALS, "wrong username or password") from None


_VERSION_RE: Final = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?$")


def _check_version(client: str | None) -> None:
    """Errors 20/30 when the client speaks an incompatible protocol version."""
    if client is None or client == "":
        return
    match = _VERSION_RE.match(client.strip())
    if match is None:
        raise SubsonicError(GENERIC, f"malformed protocol version v={client}")
    major, minor = int(match.group(1)), int(match.group(2))
    patch = int(match.group(3) or 0)
    ours = tuple(int(x) for x in API_VERSION.split("."))
    if major < ours[0]:
        raise SubsonicError(
            CLIENT_MUST_UPGRADE, f"client must upgrade: server speaks {API_VERSION}"
        )
    if (major, minor, patch) > ours:
        raise SubsonicError(SERVER_MUST_UPGRADE, f"server must upgrade: it speaks {API_VERSION}")


def _from_http(error: HTTPError) -> SubsonicError:
    """A problem raised by the shared write path, as a Subsonic error."""
    detail = error.problem.detail or error.problem.title
    code = {401: WRONG_CREDENTIALS, 403: NOT_AUTHORIZED, 404: NOT_FOUND}.get(error.status, GENERIC)
    return SubsonicError(code, detail)


def add_routes(router: Router, node: SpotifyNode, api: Api) -> SubsonicApi:
    """Register ``/rest/{endpoint}`` (GET, POST) and the web API's ``/api/me/subsonic``
    routes on ``router``."""
    subsonic = SubsonicApi(node, api)
    router.add(["GET", "POST"], "/rest/{endpoint}", subsonic.handle)
    router.add("GET", "/api/me/subsonic", subsonic.my_credentials)
    router.add("POST", "/api/me/subsonic/rotate", subsonic.rotate_credentials)
    return subsonic
