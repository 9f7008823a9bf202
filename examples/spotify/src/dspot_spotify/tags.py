# mutagen ships py.typed but leaves many functions unannotated:
# mypy: disable-error-code="no-untyped-call"
"""Read an audio file's tags: format sniffed from content, parsed with mutagen.

:func:`read_tags` accepts a path or a seekable binary file object (an upload spooled to a
temporary file). It never trusts the file name's extension: the first bytes decide the
format, then the matching mutagen class parses it. Missing tags fall back to what the file
name says (``"03 - Artist - Title.mp3"``).

WAV files may carry an ``id3 `` chunk (read by mutagen) and/or a RIFF ``LIST``/``INFO``
chunk (read here); ID3 wins where both have a field.

Errors are two, each mapping to one HTTP status:

* :class:`UnsupportedMedia` (415): not an audio format we serve (text, images, random
  bytes, an empty file, Ogg Speex...), including a file too short (< 12 bytes) to identify.
* :class:`CorruptMedia` (422): its first bytes claim a supported format but mutagen cannot
  parse it (a truncated header, an MP4 cut before its ``moov`` box, a broken FLAC metadata
  block, an MP3 with no MPEG frame, an Ogg stream cut before its headers end, no audio).

A truncation inside the audio frames is *not* an error where the header carries the length
(FLAC, WAV, MP3 with a Xing/Info frame): tags are metadata, and only a decoder would notice.
A cut Ogg file reports the shorter length of what is left. Raw ADTS AAC carries no length:
mutagen estimates it from the bitrate of the first frames (often off by 10-30 %).
"""

from __future__ import annotations

import base64
import binascii
import math
import os
import re
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import PurePath
from typing import IO, Any, Final

import attrs
import mutagen
from mutagen.aac import AAC
from mutagen.flac import FLAC, Picture
from mutagen.id3 import ID3
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4, MP4Cover
from mutagen.oggflac import OggFLAC
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE

__all__ = [
    "AUDIO_MIME",
    "MAX_COVER_BYTES",
    "CorruptMedia",
    "Cover",
    "MediaError",
    "TrackTags",
    "UnsupportedMedia",
    "parse_filename",
    "read_tags",
    "sniff_format",
    "sniff_image_mime",
]

#: Format name → MIME type used when serving the audio.
AUDIO_MIME: Final[Mapping[str, str]] = {
    "mp3": "audio/mpeg",
    "flac": "audio/flac",
    "ogg-vorbis": "audio/ogg",
    "ogg-opus": "audio/ogg",
    "ogg-flac": "audio/ogg",
    "m4a": "audio/mp4",
    "aac": "audio/aac",
    "wav": "audio/wav",
}

#: Embedded cover art above this size is ignored (the upload itself is limited elsewhere).
MAX_COVER_BYTES: Final = 16 * 1024 * 1024
_SUPPORTED_TEXT = "MP3, FLAC, Ogg Vorbis, Ogg Opus, M4A/AAC or WAV"
_SNIFF_BYTES = 4096


class MediaError(ValueError):
    """A file that cannot become a song. ``status`` is the HTTP status to answer with."""

    status: int = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnsupportedMedia(MediaError):
    """Not an audio format this service accepts (HTTP 415)."""

    status = 415


class CorruptMedia(MediaError):
    """A supported audio format whose content cannot be parsed (HTTP 422)."""

    status = 422


@attrs.frozen
class Cover:
    """Embedded cover art: raw image bytes and their MIME type."""

    data: bytes = attrs.field(repr=lambda d: f"<{len(d)} bytes>")
    mime: str


@attrs.frozen(kw_only=True)
class TrackTags:
    """What a file says about itself, with file-name fallbacks already applied.

    ``title`` is never empty. ``mime`` is the type to serve the audio with; ``format`` is
    the finer name (``ogg-opus``, ``m4a``...).
    """

    title: str
    artist: str | None = None
    album_artist: str | None = None
    album: str | None = None
    track: int | None = None
    disc: int | None = None
    year: int | None = None
    genres: tuple[str, ...] = ()
    duration: float = 0.0
    format: str
    mime: str
    sample_rate: int | None = None
    channels: int | None = None
    bitrate: int | None = None
    cover: Cover | None = None

    @property
    def genre(self) -> str | None:
        """The first genre, if any."""
        return self.genres[0] if self.genres else None


# --------------------------------------------------------------------------- sniffing


def sniff_format(head: bytes) -> str | None:
    """The audio format of a file starting with ``head`` (a few KiB), or ``None``."""
    if head.startswith(b"ID3") and len(head) >= 10:
        # An ID3v2 tag prefixes MP3 (and sometimes ADTS AAC or FLAC); look past it.
        size = _syncsafe(head[6:10]) + 10 + (10 if head[5] & 0x10 else 0)
        rest = head[size:]
        if rest.startswith(b"fLaC"):
            return "flac"
        if len(rest) >= 2 and _is_adts(rest):
            return "aac"
        # The tag may be larger than the sniffed head (big cover art): trust the ID3 prefix.
        return "mp3"
    if head.startswith(b"fLaC"):
        return "flac"
    if head.startswith(b"OggS"):
        return _sniff_ogg(head)
    if len(head) >= 12 and head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return "wav"
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return "m4a"
    if len(head) >= 4 and _is_adts(head):
        return "aac"
    if len(head) >= 4 and _is_mpeg_audio(head):
        return "mp3"
    return None


def _syncsafe(b: bytes) -> int:
    return (b[0] & 0x7F) << 21 | (b[1] & 0x7F) << 14 | (b[2] & 0x7F) << 7 | (b[3] & 0x7F)


def _is_adts(b: bytes) -> bool:
    return b[0] == 0xFF and (b[1] & 0xF6) == 0xF0


def _is_mpeg_audio(b: bytes) -> bool:
    """An MPEG audio frame header: sync, a valid version, layer, bitrate and sample rate."""
    if b[0] != 0xFF or (b[1] & 0xE0) != 0xE0:
        return False
    version = (b[1] >> 3) & 0x3
    layer = (b[1] >> 1) & 0x3
    bitrate = b[2] >> 4
    rate = (b[2] >> 2) & 0x3
    return version != 1 and layer != 0 and bitrate not in (0, 15) and rate != 3


def _sniff_ogg(head: bytes) -> str | None:
    """Identify the codec of an Ogg stream from its first packet."""
    if len(head) < 27:
        return "ogg-vorbis"  # too short to tell; mutagen will call it corrupt
    nsegs = head[26]
    packet = head[27 + nsegs : 27 + nsegs + 16]
    if packet.startswith(b"\x01vorbis"):
        return "ogg-vorbis"
    if packet.startswith(b"OpusHead"):
        return "ogg-opus"
    if packet.startswith(b"\x7fFLAC"):
        return "ogg-flac"
    return None


def sniff_image_mime(data: bytes, declared: str | None = None) -> str:
    """The MIME type of image bytes by content, else the declared one, else a generic type."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith(b"BM"):
        return "image/bmp"
    if declared:
        low = declared.strip().lower()
        if "/" not in low:
            low = "image/" + low
        return {"image/jpg": "image/jpeg"}.get(low, low)
    return "application/octet-stream"


# --------------------------------------------------------------------------- file names

_NUM_ARTIST_TITLE = re.compile(r"^(\d{1,3})\s*[-._)]\s*(.+?)\s+-\s+(.+)$")
_NUM_TITLE = re.compile(r"^(\d{1,3})\s*(?:[-._)]\s*|\s+)(.+)$")
_ARTIST_TITLE = re.compile(r"^(.+?)\s+-\s+(.+)$")


@attrs.frozen
class FilenameGuess:
    """What a file name says: always a title, maybe a track number and an artist."""

    title: str
    track: int | None = None
    artist: str | None = None


def parse_filename(name: str) -> FilenameGuess:
    """Guess track, artist and title from a file name.

    ``"03 - Artist - Title.mp3"`` → (3, Artist, Title); ``"03. Title.flac"`` → (3, Title);
    ``"Artist - Title.ogg"`` → (Artist, Title); anything else → title = the stem.
    """
    stem = PurePath(name.replace("\\", "/")).name
    if "." in stem.lstrip("."):
        stem = stem.rsplit(".", 1)[0]
    if " " not in stem and "_" in stem:
        stem = stem.replace("_", " ")
    stem = " ".join(stem.split())
    if not stem:
        return FilenameGuess(title="Untitled")
    m = _NUM_ARTIST_TITLE.match(stem)
    if m:
        return FilenameGuess(title=m[3].strip(), track=int(m[1]), artist=m[2].strip())
    m = _NUM_TITLE.match(stem)
    if m and not m[2].strip().isdigit():
        return FilenameGuess(title=m[2].strip(), track=int(m[1]))
    m = _ARTIST_TITLE.match(stem)
    if m:
        return FilenameGuess(title=m[2].strip(), artist=m[1].strip())
    return FilenameGuess(title=stem)


# --------------------------------------------------------------------------- reading

Source = str | os.PathLike[str] | IO[bytes]

_PARSERS: Final[Mapping[str, Callable[[Any], mutagen.FileType]]] = {
    "mp3": MP3,
    "flac": FLAC,
    "ogg-vorbis": OggVorbis,
    "ogg-opus": OggOpus,
    "ogg-flac": OggFLAC,
    "m4a": MP4,
    "aac": AAC,
    "wav": WAVE,
}


def read_tags(
    source: Source, *, filename: str | None = None, max_cover_bytes: int = MAX_COVER_BYTES
) -> TrackTags:
    """Detect the format of ``source`` by content and read its tags and stream info.

    ``source`` is a path or a seekable binary file object (read from its start; left at
    position 0). ``filename`` is the name to fall back on for missing tags (for an upload,
    the client's file name); a path source defaults to its own name. Cover art larger than
    ``max_cover_bytes`` is ignored.

    Raises :class:`UnsupportedMedia` or :class:`CorruptMedia`.
    """
    if isinstance(source, str | os.PathLike):
        path = os.fspath(source)
        with open(path, "rb") as f:
            name = filename if filename is not None else os.path.basename(path)
            return _read(f, name, max_cover_bytes)
    if not source.seekable():
        raise TypeError("read_tags needs a seekable file object; spool the upload first")
    try:
        return _read(source, filename, max_cover_bytes)
    finally:
        source.seek(0)


def _sniff_file(f: IO[bytes]) -> tuple[bytes, str | None]:
    """The file's first bytes and format; looks past an ID3v2 tag bigger than the head."""
    f.seek(0)
    head = f.read(_SNIFF_BYTES)
    fmt = sniff_format(head)
    if fmt == "mp3" and head.startswith(b"ID3") and len(head) >= 10:
        end = _syncsafe(head[6:10]) + 10 + (10 if head[5] & 0x10 else 0)
        if end + 4 > len(head):
            f.seek(end)
            after = f.read(16)
            if after.startswith(b"fLaC"):
                fmt = "flac"
            elif len(after) >= 2 and _is_adts(after):
                fmt = "aac"
    return head, fmt


def _read(f: IO[bytes], filename: str | None, max_cover_bytes: int) -> TrackTags:
    head, fmt = _sniff_file(f)
    if not head:
        raise UnsupportedMedia("the file is empty")
    if fmt is None:
        raise UnsupportedMedia(f"not a supported audio file (expected {_SUPPORTED_TEXT})")
    if fmt.startswith("ogg") and len(head) < 28:
        raise CorruptMedia("corrupt or truncated Ogg file: it ends inside its first page")
    f.seek(0)
    try:
        audio = _PARSERS[fmt](f)
    except (
        mutagen.MutagenError,
        struct.error,
        EOFError,
        ValueError,
        IndexError,
        KeyError,
        OverflowError,
    ) as exc:
        raise CorruptMedia(f"corrupt or truncated {_label(fmt)} file: {_reason(exc)}") from exc
    info = audio.info
    length = float(getattr(info, "length", 0.0) or 0.0)
    if not (math.isfinite(length) and length > 0.0):
        raise CorruptMedia(f"corrupt {_label(fmt)} file: no audio in it")
    if fmt == "m4a" and not str(getattr(info, "codec", "")).startswith(
        ("mp4a", "alac", "ac-3", "ec-3", "fLaC", "Opus")
    ):
        raise UnsupportedMedia("the MP4 file has no audio track this service can play")
    raw = _extract(audio)
    if fmt == "wav":
        _merge_riff_info(raw, _riff_info(f))
    guess = parse_filename(filename) if filename else FilenameGuess(title="Untitled")
    return TrackTags(
        title=raw.title or guess.title,
        artist=raw.artist or guess.artist or raw.album_artist,
        album_artist=raw.album_artist,
        album=raw.album,
        track=raw.track if raw.track is not None else guess.track,
        disc=raw.disc,
        year=raw.year,
        genres=raw.genres,
        duration=length,
        format=fmt,
        mime=AUDIO_MIME[fmt],
        sample_rate=(
            48000
            if fmt == "ogg-opus"  # Opus always decodes at 48 kHz
            else _int_or_none(getattr(info, "sample_rate", None))
        ),
        channels=_int_or_none(getattr(info, "channels", None)),
        bitrate=_int_or_none(getattr(info, "bitrate", None)) or None,
        cover=raw.cover if raw.cover and len(raw.cover.data) <= max_cover_bytes else None,
    )


def _label(fmt: str) -> str:
    return {
        "m4a": "M4A",
        "aac": "AAC",
        "wav": "WAV",
        "mp3": "MP3",
        "flac": "FLAC",
        "ogg-vorbis": "Ogg Vorbis",
        "ogg-opus": "Ogg Opus",
        "ogg-flac": "Ogg FLAC",
    }[fmt]


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return (text[:200] + "…" if len(text) > 200 else text) or type(exc).__name__


def _int_or_none(v: object) -> int | None:
    return int(v) if isinstance(v, int | float) and v == v else None


@attrs.define
class _Raw:
    title: str | None = None
    artist: str | None = None
    album_artist: str | None = None
    album: str | None = None
    track: int | None = None
    disc: int | None = None
    year: int | None = None
    genres: tuple[str, ...] = ()
    cover: Cover | None = None


def _extract(audio: mutagen.FileType) -> _Raw:
    tags = audio.tags
    if tags is None:
        return _Raw()
    if isinstance(tags, ID3):
        return _from_id3(tags)
    if isinstance(audio, MP4):
        return _from_mp4(tags)
    if isinstance(audio, FLAC):
        raw = _from_vorbis(tags)
        if audio.pictures:
            raw.cover = _pick_flac_picture(audio.pictures) or raw.cover
        return raw
    return _from_vorbis(tags)


def _clean(values: Iterable[object]) -> list[str]:
    out: list[str] = []
    for v in values:
        s = str(v).replace("\x00", "").strip()
        if s and s not in out:
            out.append(s)
    return out


def _first(values: Iterable[object]) -> str | None:
    cleaned = _clean(values)
    return cleaned[0] if cleaned else None


def _number(text: str | None) -> int | None:
    """``"3"``, ``"03/12"``, ``"3 of 12"`` → 3."""
    if not text:
        return None
    m = re.match(r"\s*(\d{1,4})", text)
    return int(m[1]) if m and int(m[1]) > 0 else None


def _year(text: str | None) -> int | None:
    """``"2021"``, ``"2021-05-01"``, ``"2021-05-01T10:00"`` → 2021."""
    if not text:
        return None
    m = re.search(r"(?<!\d)(\d{4})(?!\d)", text)
    return int(m[1]) if m and 1000 <= int(m[1]) <= 2999 else None


def _split_genres(values: Iterable[str]) -> tuple[str, ...]:
    out: list[str] = []
    for v in values:
        for part in re.split(r"\s*;\s*|\x00", v):
            part = part.strip()
            if part and part not in out:
                out.append(part)
    return tuple(out)


def _from_id3(tags: ID3) -> _Raw:
    def text(frame_id: str) -> str | None:
        frames = tags.getall(frame_id)
        return _first(t for fr in frames for t in getattr(fr, "text", []))

    genres: list[str] = []
    for fr in tags.getall("TCON"):
        genres.extend(fr.genres)
    year_text = text("TDRC") or text("TYER") or text("TDOR") or text("TORY")
    cover: Cover | None = None
    pics = [p for p in tags.getall("APIC") if p.mime != "-->" and p.data]
    if pics:
        best = next((p for p in pics if p.type == 3), pics[0])
        cover = Cover(bytes(best.data), sniff_image_mime(best.data, best.mime))
    return _Raw(
        title=text("TIT2"),
        artist=text("TPE1"),
        album_artist=text("TPE2"),
        album=text("TALB"),
        track=_number(text("TRCK")),
        disc=_number(text("TPOS")),
        year=_year(year_text),
        genres=_split_genres(_clean(genres)),
        cover=cover,
    )


def _from_vorbis(tags: Any) -> _Raw:
    def get(*keys: str) -> list[str]:
        out: list[str] = []
        for k in keys:
            try:
                out.extend(tags[k])
            except KeyError:
                continue
        return _clean(out)

    def one(*keys: str) -> str | None:
        vals = get(*keys)
        return vals[0] if vals else None

    return _Raw(
        title=one("title"),
        artist=one("artist"),
        album_artist=one("albumartist", "album artist", "album_artist"),
        album=one("album"),
        track=_number(one("tracknumber", "track")),
        disc=_number(one("discnumber")),
        year=_year(one("date", "year", "originaldate")),
        genres=_split_genres(get("genre")),
        cover=_vorbis_cover(get("metadata_block_picture"), get("coverart"), one("coverartmime")),
    )


def _vorbis_cover(
    blocks: Sequence[str], legacy: Sequence[str], legacy_mime: str | None
) -> Cover | None:
    pictures: list[Picture] = []
    for b in blocks:
        try:
            pictures.append(Picture(base64.b64decode(b)))
        except (binascii.Error, ValueError, struct.error, mutagen.MutagenError, IndexError):
            continue
    picked = _pick_flac_picture(pictures)
    if picked is not None:
        return picked
    for b in legacy:
        try:
            data = base64.b64decode(b)
        except (binascii.Error, ValueError):
            continue
        if data:
            return Cover(data, sniff_image_mime(data, legacy_mime))
    return None


def _pick_flac_picture(pictures: Sequence[Picture]) -> Cover | None:
    usable = [p for p in pictures if p.data and p.mime != "-->"]
    if not usable:
        return None
    best = next((p for p in usable if p.type == 3), usable[0])
    return Cover(bytes(best.data), sniff_image_mime(best.data, best.mime))


_RIFF_INFO_KEYS: Final[Mapping[bytes, str]] = {
    b"INAM": "title",
    b"IART": "artist",
    b"IPRD": "album",
    b"ICRD": "date",
    b"IGNR": "genre",
    b"ITRK": "track",
    b"IPRT": "track",
}


def _riff_info(f: IO[bytes]) -> dict[str, str]:
    """The RIFF ``LIST``/``INFO`` chunk of a WAV file (tags many tools write instead of ID3)."""
    out: dict[str, str] = {}
    f.seek(12)
    for _ in range(64):  # chunks are few; bound the walk on hostile files
        header = f.read(8)
        if len(header) < 8:
            break
        cid, size = header[:4], struct.unpack("<I", header[4:])[0]
        if cid == b"LIST" and 4 <= size <= 1 << 20:
            body = f.read(size)
            if body[:4] == b"INFO":
                pos = 4
                while pos + 8 <= len(body):
                    sid = body[pos : pos + 4]
                    (ssize,) = struct.unpack("<I", body[pos + 4 : pos + 8])
                    value = body[pos + 8 : pos + 8 + ssize].split(b"\x00", 1)[0]
                    key = _RIFF_INFO_KEYS.get(sid)
                    if key and value:
                        try:
                            text = value.decode("utf-8")
                        except UnicodeDecodeError:
                            text = value.decode("latin-1")
                        out.setdefault(key, text.strip())
                    pos += 8 + ssize + (ssize & 1)
            if size & 1:
                f.seek(1, os.SEEK_CUR)
        else:
            f.seek(size + (size & 1), os.SEEK_CUR)
    return out


def _merge_riff_info(raw: _Raw, info: Mapping[str, str]) -> None:
    """Fill fields the ID3 chunk left empty from RIFF INFO."""
    raw.title = raw.title or info.get("title") or None
    raw.artist = raw.artist or info.get("artist") or None
    raw.album = raw.album or info.get("album") or None
    if raw.track is None:
        raw.track = _number(info.get("track"))
    if raw.year is None:
        raw.year = _year(info.get("date"))
    if not raw.genres and info.get("genre"):
        raw.genres = _split_genres([info["genre"]])


_ID3V1_GENRES: Final[tuple[str, ...]] = (
    "Blues",
    "Classic Rock",
    "Country",
    "Dance",
    "Disco",
    "Funk",
    "Grunge",
    "Hip-Hop",
    "Jazz",
    "Metal",
    "New Age",
    "Oldies",
    "Other",
    "Pop",
    "R&B",
    "Rap",
    "Reggae",
    "Rock",
    "Techno",
    "Industrial",
    "Alternative",
    "Ska",
    "Death Metal",
    "Pranks",
    "Soundtrack",
    "Euro-Techno",
    "Ambient",
    "Trip-Hop",
    "Vocal",
    "Jazz+Funk",
    "Fusion",
    "Trance",
    "Classical",
    "Instrumental",
    "Acid",
    "House",
    "Game",
    "Sound Clip",
    "Gospel",
    "Noise",
    "Alternative Rock",
    "Bass",
    "Soul",
    "Punk",
    "Space",
    "Meditative",
    "Instrumental Pop",
    "Instrumental Rock",
    "Ethnic",
    "Gothic",
    "Darkwave",
    "Techno-Industrial",
    "Electronic",
    "Pop-Folk",
    "Eurodance",
    "Dream",
    "Southern Rock",
    "Comedy",
    "Cult",
    "Gangsta",
    "Top 40",
    "Christian Rap",
    "Pop/Funk",
    "Jungle",
    "Native American",
    "Cabaret",
    "New Wave",
    "Psychedelic",
    "Rave",
    "Showtunes",
    "Trailer",
    "Lo-Fi",
    "Tribal",
    "Acid Punk",
    "Acid Jazz",
    "Polka",
    "Retro",
    "Musical",
    "Rock & Roll",
    "Hard Rock",
)


def _from_mp4(tags: Any) -> _Raw:
    def text(key: str) -> str | None:
        return _first(tags.get(key, []))

    def pair(key: str) -> int | None:
        vals = tags.get(key) or []
        if vals and isinstance(vals[0], tuple) and vals[0] and vals[0][0]:
            return int(vals[0][0])
        return None

    genres = _clean(tags.get("\xa9gen", []))
    for g in tags.get("gnre", []):  # ID3v1 genre index, 1-based
        if isinstance(g, int) and 1 <= g <= len(_ID3V1_GENRES):
            genres.append(_ID3V1_GENRES[g - 1])
    cover: Cover | None = None
    covers = tags.get("covr") or []
    if covers:
        c = covers[0]
        declared = (
            "image/png"
            if getattr(c, "imageformat", None) == MP4Cover.FORMAT_PNG
            else ("image/jpeg")
        )
        cover = Cover(bytes(c), sniff_image_mime(bytes(c), declared))
    return _Raw(
        title=text("\xa9nam"),
        artist=text("\xa9ART"),
        album_artist=text("aART"),
        album=text("\xa9alb"),
        track=pair("trkn"),
        disc=pair("disk"),
        year=_year(text("\xa9day")),
        genres=_split_genres(genres),
        cover=cover,
    )
