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

This module only re-exports: ``_model`` (results, errors, sniffing, file names), ``_read``
(:func:`read_tags`) and ``_formats`` (tags out of each container).
"""

from __future__ import annotations

from dspot_spotify.tags._model import (
    AUDIO_MIME,
    MAX_COVER_BYTES,
    MAX_LYRICS,
    CorruptMedia,
    Cover,
    FilenameGuess,
    MediaError,
    TrackTags,
    UnsupportedMedia,
    parse_filename,
    sniff_format,
    sniff_image_mime,
)
from dspot_spotify.tags._read import Source, read_tags

__all__ = [
    "AUDIO_MIME",
    "MAX_COVER_BYTES",
    "MAX_LYRICS",
    "CorruptMedia",
    "Cover",
    "FilenameGuess",
    "MediaError",
    "Source",
    "TrackTags",
    "UnsupportedMedia",
    "parse_filename",
    "read_tags",
    "sniff_format",
    "sniff_image_mime",
]
