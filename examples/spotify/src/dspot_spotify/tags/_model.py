"""The tag reader's results and errors, and what it knows without parsing: the format from
the first bytes, an image's type, and what a file name says."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import PurePath
from typing import Final

import attrs

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
#: Lyrics longer than this many characters are ignored (the catalog refuses longer ones).
MAX_LYRICS: Final = 64 * 1024
SUPPORTED_TEXT = "MP3, FLAC, Ogg Vorbis, Ogg Opus, M4A/AAC or WAV"
SNIFF_BYTES = 4096


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
    lyrics: str | None = attrs.field(default=None, repr=False)
    """Unsynchronised lyrics (USLT, ``LYRICS``, ``©lyr``), LRC time stamps as written."""

    @property
    def genre(self) -> str | None:
        """The first genre, if any."""
        return self.genres[0] if self.genres else None


# --------------------------------------------------------------------------- sniffing


def sniff_format(head: bytes) -> str | None:
    """The audio format of a file starting with ``head`` (a few KiB), or ``None``."""
    if head.startswith(b"ID3") and len(head) >= 10:
        # An ID3v2 tag prefixes MP3 (and sometimes ADTS AAC or FLAC); look past it.
        size = syncsafe(head[6:10]) + 10 + (10 if head[5] & 0x10 else 0)
        rest = head[size:]
        if rest.startswith(b"fLaC"):
            return "flac"
        if len(rest) >= 2 and is_adts(rest):
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
    if len(head) >= 4 and is_adts(head):
        return "aac"
    if len(head) >= 4 and _is_mpeg_audio(head):
        return "mp3"
    return None


def syncsafe(b: bytes) -> int:
    return (b[0] & 0x7F) << 21 | (b[1] & 0x7F) << 14 | (b[2] & 0x7F) << 7 | (b[3] & 0x7F)


def is_adts(b: bytes) -> bool:
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
