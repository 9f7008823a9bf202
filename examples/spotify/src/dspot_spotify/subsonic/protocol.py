"""The Subsonic protocol: error codes, call parameters, XML/JSON/JSONP rendering, protocol
versions, and how songs and albums look to a Subsonic client."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import parse_qsl

import attrs
from dspot.http import HTTPError, Request, Response

from dspot_spotify import __version__, catalog
from dspot_spotify.throttle import Throttled

API_VERSION: Final = "1.16.1"
XMLNS: Final = "http://subsonic.org/restapi"
SERVER_TYPE: Final = "dspot"
IGNORED_ARTICLES: Final = ("The", "El", "La", "Los", "Las", "Le", "Les")
EXTENSIONS: Final[Mapping[str, tuple[int, ...]]] = {
    "apiKeyAuthentication": (1,),
    "formPost": (1,),
    "songLyrics": (1,),
}
"""The OpenSubsonic extensions served, with their versions."""

WRITES: Final = frozenset(
    {
        "star",
        "unstar",
        "scrobble",
        "setRating",
        "createPlaylist",
        "updatePlaylist",
        "deletePlaylist",
        "savePlayQueue",
        "createBookmark",
        "deleteBookmark",
    }
)
"""Endpoints that change the catalog. Clients send them as GET as often as POST, so a proxy
cannot tell them from reads by the method: a gateway sends one to a second node only when
the first certainly did nothing (it would otherwise answer for a write whose outcome it
cannot know). A write from an endpoint not listed here is refused as a bug (:class:`Call`).
"""


def endpoint_name(path: str) -> str | None:
    """The endpoint a ``/rest/NAME`` or ``/rest/NAME.view`` path calls, else None."""
    if not path.startswith("/rest/"):
        return None
    name = path[len("/rest/") :].removesuffix(".view")
    return name if name and "/" not in name else None


MUSIC_FOLDER_ID: Final = 1
MAX_LIST: Final = 500
MAX_NUMBER: Final = 2**31 - 1
"""Largest integer parameter accepted (Subsonic's ints are 32-bit); beyond is error 0."""
FORM: Final = "application/x-www-form-urlencoded"


class SubsonicError(Exception):
    """A failed Subsonic call: the specification's error ``code`` and a message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class SubsonicThrottled(SubsonicError):
    """Too many failed sign-ins for this username or client: the generic error (0), in an
    HTTP 200 as the specification wants, with ``Retry-After`` for clients that look."""

    def __init__(self, message: str, throttled: Throttled) -> None:
        super().__init__(GENERIC, message)
        self.retry_after = throttled.retry_after_header


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
        """An integer parameter, clamped to ``high``; error 0 if it is not an integer, is
        below ``low`` or beyond :data:`MAX_NUMBER` either way."""
        value = self.get(name)
        if value is None or value == "":
            return default
        if not re.fullmatch(r"\s*[+-]?[0-9]{1,12}\s*", value):
            raise SubsonicError(GENERIC, f"parameter {name} must be an integer")
        number = int(value)
        if abs(number) > MAX_NUMBER:
            raise SubsonicError(GENERIC, f"parameter {name} is out of range")
        if number < low:
            raise SubsonicError(GENERIC, f"parameter {name} must be {low} or more")
        return number if high is None else min(number, high)

    def optional_int(self, name: str) -> int | None:
        """An integer parameter, or None when absent."""
        if self.get(name) in (None, ""):
            return None
        return self.number(name, 0, low=-MAX_NUMBER)

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
        if body and ctype != FORM:
            raise SubsonicError(GENERIC, f"a POST body must be {FORM}")
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
    response = render(
        {"error": {"code": error.code, "message": error.message}}, params, status="failed"
    )
    if isinstance(error, SubsonicThrottled):
        response = attrs.evolve(
            response, headers=response.headers.set("retry-after", error.retry_after)
        )
    return response


def iso(ms: int | None) -> str | None:
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


def suffix(mime: str) -> str:
    return _SUFFIXES.get(mime.lower(), mime.rsplit("/", 1)[-1].removeprefix("x-") or "bin")


def _path_part(text: str) -> str:
    return re.sub(r"[/\\\x00-\x1f]", "_", text).strip() or "_"


def song_child(
    song: catalog.SongView, starred: int | None, rating: int | None = None
) -> dict[str, Any]:
    """A song as a Subsonic ``Child`` (with OpenSubsonic's ``mediaType`` and ``genres``);
    ``starred`` and ``rating`` are the caller's."""
    ext = suffix(song.mime)
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
        "suffix": ext,
        "duration": seconds,
        "bitRate": round(song.size * 8 / song.duration / 1000) if song.duration > 0 else None,
        "path": "/".join([*folder, f"{number}{_path_part(song.title)}.{ext}"]),
        "isVideo": False,
        "playCount": song.play_count,
        "created": iso(song.created_at),
        "starred": iso(starred),
        "userRating": rating,
        "albumId": song.album_id,
        "artistId": song.artist_id,
        "type": "music",
        "mediaType": "song",
        "genres": [{"name": g} for g in song.genres],
    }


def album_id3(
    album: catalog.AlbumRow, starred: int | None = None, rating: int | None = None
) -> dict[str, Any]:
    """An album as a Subsonic ``AlbumID3`` (``starred``, ``rating``: the caller's)."""
    return {
        "id": album.id,
        "name": album.title,
        "artist": album.artist_name,
        "artistId": album.artist_id,
        "coverArt": album.id if album.cover_sha256 else None,
        "songCount": album.song_count,
        "duration": round(album.duration),
        "playCount": album.play_count,
        "created": iso(album.created_at),
        "year": album.year,
        "genre": album.genre,
        "genres": [{"name": album.genre}] if album.genre else [],
        "starred": iso(starred),
        "userRating": rating,
    }


def album_dir(
    album: catalog.AlbumRow, starred: int | None = None, rating: int | None = None
) -> dict[str, Any]:
    """An album as a directory ``Child`` (the non-ID3 forms: ``getAlbumList``,
    ``getStarred``, ``getMusicDirectory`` of an artist)."""
    return {
        "id": album.id,
        "parent": album.artist_id,
        "isDir": True,
        "title": album.title,
        "name": album.title,
        "album": album.title,
        "artist": album.artist_name,
        "artistId": album.artist_id,
        "year": album.year,
        "genre": album.genre,
        "coverArt": album.id if album.cover_sha256 else None,
        "duration": round(album.duration),
        "songCount": album.song_count,
        "playCount": album.play_count,
        "created": iso(album.created_at),
        "starred": iso(starred),
        "userRating": rating,
        "mediaType": "album",
    }


def artist_element(artist: catalog.ArtistEntry, *, id3: bool = True) -> dict[str, Any]:
    """An artist as an ``ArtistID3`` (or, ``id3=False``, the folder-based ``Artist``)."""
    out: dict[str, Any] = {"id": artist.id, "name": artist.name, "starred": iso(artist.starred)}
    if id3:
        out["albumCount"] = artist.album_count
    return out


def decode_password(value: str) -> str:
    """A ``p`` parameter in clear (``enc:`` + hex decoded)."""
    if not value.startswith("enc:"):
        return value
    try:
        return bytes.fromhex(value[4:]).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise SubsonicError(WRONG_CREDENTIALS, "wrong username or password") from None


_VERSION_RE: Final = re.compile(r"^([0-9]{1,6})\.([0-9]{1,6})(?:\.([0-9]{1,6}))?$")


def check_version(client: str | None) -> None:
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


def from_http(error: HTTPError) -> SubsonicError:
    """A problem raised by the shared write path, as a Subsonic error."""
    detail = error.problem.detail or error.problem.title
    code = {401: WRONG_CREDENTIALS, 403: NOT_AUTHORIZED, 404: NOT_FOUND}.get(error.status, GENERIC)
    return SubsonicError(code, detail)
