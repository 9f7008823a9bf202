# mutagen ships py.typed but leaves many functions unannotated:
# mypy: disable-error-code="no-untyped-call"
"""Tags out of each container: ID3 (MP3, WAV, AAC), Vorbis comments (FLAC, Ogg), MP4 atoms
and RIFF INFO chunks; each into the same raw record."""

from __future__ import annotations

import base64
import binascii
import os
import re
import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any, Final

import attrs
import mutagen
from mutagen.flac import FLAC, Picture
from mutagen.id3 import ID3
from mutagen.mp4 import MP4, MP4Cover

from dspot_spotify.tags._model import Cover, sniff_image_mime


def int_or_none(v: object) -> int | None:
    return int(v) if isinstance(v, int | float) and v == v else None


@attrs.define
class RawTags:
    """What one container's tags say (None / empty: nothing)."""

    title: str | None = None
    artist: str | None = None
    album_artist: str | None = None
    album: str | None = None
    track: int | None = None
    disc: int | None = None
    year: int | None = None
    genres: tuple[str, ...] = ()
    cover: Cover | None = None
    lyrics: str | None = None


def extract(audio: mutagen.FileType) -> RawTags:
    """The tags of a parsed file, whatever its container."""
    tags = audio.tags
    if tags is None:
        return RawTags()
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


def _from_id3(tags: ID3) -> RawTags:
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
    return RawTags(
        title=text("TIT2"),
        artist=text("TPE1"),
        album_artist=text("TPE2"),
        album=text("TALB"),
        track=_number(text("TRCK")),
        disc=_number(text("TPOS")),
        year=_year(year_text),
        genres=_split_genres(_clean(genres)),
        cover=cover,
        lyrics=_first(fr.text for fr in tags.getall("USLT")),  # USLT's text is one string
    )


def _from_vorbis(tags: Any) -> RawTags:
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

    return RawTags(
        title=one("title"),
        artist=one("artist"),
        album_artist=one("albumartist", "album artist", "album_artist"),
        album=one("album"),
        track=_number(one("tracknumber", "track")),
        disc=_number(one("discnumber")),
        year=_year(one("date", "year", "originaldate")),
        genres=_split_genres(get("genre")),
        cover=_vorbis_cover(get("metadata_block_picture"), get("coverart"), one("coverartmime")),
        lyrics=one("lyrics", "unsyncedlyrics", "unsynced lyrics"),
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


def riff_info(f: IO[bytes]) -> dict[str, str]:
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


def merge_riff_info(raw: RawTags, info: Mapping[str, str]) -> None:
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


def _from_mp4(tags: Any) -> RawTags:
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
    return RawTags(
        title=text("\xa9nam"),
        artist=text("\xa9ART"),
        album_artist=text("aART"),
        album=text("\xa9alb"),
        track=pair("trkn"),
        disc=pair("disk"),
        year=_year(text("\xa9day")),
        genres=_split_genres(genres),
        cover=cover,
        lyrics=text("\xa9lyr"),
    )
