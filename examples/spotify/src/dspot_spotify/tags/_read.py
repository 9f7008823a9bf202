# mutagen ships py.typed but leaves many functions unannotated:
# mypy: disable-error-code="no-untyped-call"
"""Reading an audio file: sniff, parse with the matching mutagen class, check, combine
with what the file name says."""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Callable, Mapping
from typing import IO, Any, Final

import mutagen
from mutagen.aac import AAC
from mutagen.flac import FLAC
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4
from mutagen.oggflac import OggFLAC
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE

from dspot_spotify.tags._formats import extract, int_or_none, merge_riff_info, riff_info
from dspot_spotify.tags._model import (
    AUDIO_MIME,
    MAX_COVER_BYTES,
    MAX_LYRICS,
    SNIFF_BYTES,
    SUPPORTED_TEXT,
    CorruptMedia,
    FilenameGuess,
    TrackTags,
    UnsupportedMedia,
    is_adts,
    parse_filename,
    sniff_format,
    syncsafe,
)

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
    head = f.read(SNIFF_BYTES)
    fmt = sniff_format(head)
    if fmt == "mp3" and head.startswith(b"ID3") and len(head) >= 10:
        end = syncsafe(head[6:10]) + 10 + (10 if head[5] & 0x10 else 0)
        if end + 4 > len(head):
            f.seek(end)
            after = f.read(16)
            if after.startswith(b"fLaC"):
                fmt = "flac"
            elif len(after) >= 2 and is_adts(after):
                fmt = "aac"
    return head, fmt


def _read(f: IO[bytes], filename: str | None, max_cover_bytes: int) -> TrackTags:
    head, fmt = _sniff_file(f)
    if not head:
        raise UnsupportedMedia("the file is empty")
    if fmt is None:
        raise UnsupportedMedia(f"not a supported audio file (expected {SUPPORTED_TEXT})")
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
    raw = extract(audio)
    if fmt == "wav":
        merge_riff_info(raw, riff_info(f))
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
            else int_or_none(getattr(info, "sample_rate", None))
        ),
        channels=int_or_none(getattr(info, "channels", None)),
        bitrate=int_or_none(getattr(info, "bitrate", None)) or None,
        cover=raw.cover if raw.cover and len(raw.cover.data) <= max_cover_bytes else None,
        lyrics=raw.lyrics if raw.lyrics and len(raw.lyrics) <= MAX_LYRICS else None,
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
