# mutagen ships py.typed but leaves many functions unannotated:
# mypy: disable-error-code="no-untyped-call"
"""A demo music library: short synthesized tracks, tagged, with cover art, in several formats.

Everything derives from one seed: artist and album names, keys, tempos, melodies, cover
colours. The same seed gives byte-identical files on the same installation (Ogg stream
serial numbers, which libsndfile picks at random, are rewritten from the seed).

Encoders ship inside PyPI wheels, no system codec is needed: ``soundfile`` (libsndfile
≥ 1.1 bundled: FLAC, Ogg Vorbis, Ogg Opus, MP3 via LAME, WAV) and, for M4A only, ``av``
(PyAV wheels bundle FFmpeg's native AAC encoder; the optional ``m4a`` extra).
"""

from __future__ import annotations

import io
import math
import random
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import attrs
import numpy as np
import numpy.typing as npt
from mutagen.flac import FLAC, Picture
from mutagen.id3 import APIC, ID3, TALB, TCON, TDRC, TIT2, TPE1, TPE2, TRCK
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4, MP4Cover
from mutagen.ogg import OggPage
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE

from dspot_spotify.formats import DEFAULT_FORMATS, FORMATS
from dspot_spotify.tags import sniff_format

__all__ = [
    "DEFAULT_FORMATS",
    "FORMATS",
    "DemoTrack",
    "encode_audio",
    "generate_demo_library",
    "make_cover_png",
    "png_bytes",
    "synthesize",
    "tag_file",
]

Samples = npt.NDArray[np.float32]

# --------------------------------------------------------------------------- PNG covers


def png_bytes(width: int, height: int, rgb_rows: Sequence[bytes]) -> bytes:
    """Encode 8-bit RGB rows (``width * 3`` bytes each) as a PNG, with zlib and struct only."""
    if len(rgb_rows) != height or any(len(r) != width * 3 for r in rgb_rows):
        raise ValueError("rows do not match the image size")

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    raw = b"".join(b"\x00" + row for row in rgb_rows)  # filter type 0 on every row
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def make_cover_png(rng: random.Random, size: int = 128) -> bytes:
    """A small album cover: a diagonal two-colour gradient with rings or stripes on top."""
    c1 = [rng.randint(30, 230) for _ in range(3)]
    c2 = [rng.randint(30, 230) for _ in range(3)]
    ink = [255 - (a + b) // 2 for a, b in zip(c1, c2, strict=True)]
    pattern = rng.choice(("rings", "stripes", "dots"))
    period = rng.randint(10, 22)
    cx, cy = rng.randint(size // 4, 3 * size // 4), rng.randint(size // 4, 3 * size // 4)
    rows: list[bytes] = []
    span = 2 * (size - 1) or 1
    for y in range(size):
        row = bytearray()
        for x in range(size):
            t = (x + y) / span
            px = [int(a + (b - a) * t) for a, b in zip(c1, c2, strict=True)]
            if pattern == "rings":
                on = int(((x - cx) ** 2 + (y - cy) ** 2) ** 0.5) % period < period // 3
            elif pattern == "stripes":
                on = (x - y) % period < period // 3
            else:
                on = (x % period - period // 2) ** 2 + (y % period - period // 2) ** 2 < (
                    period // 4
                ) ** 2
            if on:
                px = [(p + 2 * k) // 3 for p, k in zip(px, ink, strict=True)]
            row += bytes(px)
        rows.append(bytes(row))
    return png_bytes(size, size, rows)


# --------------------------------------------------------------------------- synthesis

_MAJOR: Final = (0, 2, 4, 5, 7, 9, 11)
_MINOR: Final = (0, 2, 3, 5, 7, 8, 10)
_PROGRESSIONS: Final = ((0, 4, 5, 3), (0, 5, 3, 4), (5, 3, 0, 4), (0, 3, 4, 3), (0, 3, 5, 4))


@attrs.frozen
class _Voice:
    """A timbre: harmonic amplitudes and a decay time (seconds)."""

    harmonics: tuple[float, ...]
    decay: float


_VOICES: Final = (
    _Voice((1.0, 0.0, 0.33, 0.0, 0.2), 0.35),  # soft square-ish pluck
    _Voice((1.0, 0.5, 0.25, 0.12), 0.5),  # warm saw-ish
    _Voice((1.0, 0.0, 0.11, 0.0, 0.04), 0.7),  # triangle-ish bell
    _Voice((1.0, 0.2), 0.25),  # near-sine marimba
)


def _midi_hz(note: float) -> float:
    return float(440.0 * 2.0 ** ((note - 69) / 12))


_TABLE_SIZE: Final = 4096


def _wavetable(voice: _Voice) -> npt.NDArray[np.float64]:
    """One cycle of the voice's waveform (harmonics summed), for fast table lookup."""
    phase = np.arange(_TABLE_SIZE, dtype=np.float64) / _TABLE_SIZE
    table = np.zeros(_TABLE_SIZE, dtype=np.float64)
    for k, h in enumerate(voice.harmonics, start=1):
        table += h * np.sin(2 * np.pi * k * phase)
    return table


def _note(
    buf: Samples, sr: int, start: float, length: float, midi: float, amp: float, voice: _Voice
) -> None:
    """Add one enveloped note into ``buf`` (in place)."""
    i0 = int(start * sr)
    n = min(int(length * sr), len(buf) - i0, int(voice.decay * 7 * sr))
    if n <= 0:
        return
    t = np.arange(n, dtype=np.float64) / sr
    idx = (t * (_midi_hz(midi) * _TABLE_SIZE)).astype(np.int64) % _TABLE_SIZE
    wave = _wavetable(voice)[idx]
    attack = np.minimum(t / 0.01, 1.0)
    release = np.clip((n / sr - t) / 0.05, 0.0, 1.0)
    env = attack * np.exp(-t / voice.decay) * release
    buf[i0 : i0 + n] += (amp * wave * env).astype(np.float32)


def synthesize(rng: random.Random, seconds: float, sr: int = 44100) -> Samples:
    """A short instrumental: chords, bass line, a melody and light percussion (mono float32).

    The length is ``seconds`` rounded up to whole bars (a one-second tail included).
    """
    root = rng.randint(48, 59)
    scale = rng.choice((_MAJOR, _MINOR))
    prog = rng.choice(_PROGRESSIONS)
    bpm = rng.randint(84, 128)
    beat = 60.0 / bpm
    bars = max(1, math.ceil((seconds - 1.0) / (4 * beat)))
    total = bars * 4 * beat + 1.0
    buf = np.zeros(int(total * sr), dtype=np.float32)
    lead, pad = rng.sample(_VOICES, 2)
    noise = np.random.default_rng(rng.getrandbits(32))

    def degree(d: int, octave: int = 0) -> int:
        return root + 12 * (octave + d // 7) + scale[d % 7]

    melody_pos = rng.randint(7, 11)
    for bar in range(bars):
        chord = prog[bar % len(prog)]
        t0 = bar * 4 * beat
        for d in (chord, chord + 2, chord + 4):  # sustained chord
            _note(buf, sr, t0, 4 * beat, degree(d, 1), 0.07, _Voice(pad.harmonics, 1.6))
        for b in (0, 2):  # bass on beats 1 and 3
            _note(buf, sr, t0 + b * beat, 1.8 * beat, degree(chord, -1), 0.22, _VOICES[3])
        for eighth in range(8):  # melody: a random walk favouring chord tones on the beat
            if rng.random() < 0.25 and eighth % 2:
                continue
            step = rng.choice((-2, -1, -1, 0, 1, 1, 2))
            melody_pos = min(max(melody_pos + step, 4), 16)
            if eighth % 2 == 0 and (melody_pos - chord) % 7 not in (0, 2, 4):
                melody_pos += 1 if (melody_pos + 1 - chord) % 7 in (0, 2, 4) else -1
            start = t0 + eighth * beat / 2
            _note(
                buf,
                sr,
                start,
                beat * rng.choice((0.5, 0.5, 1.0)),
                degree(melody_pos, 1),
                0.16,
                lead,
            )
        for b in range(4):  # kick on 1 and 3, hats on every eighth
            start = t0 + b * beat
            if b % 2 == 0:
                n = int(0.15 * sr)
                i0 = int(start * sr)
                n = min(n, len(buf) - i0)
                tt = np.arange(n) / sr
                kick = np.sin(2 * np.pi * (50 * tt + 60 * (1 - np.exp(-tt * 30)) / 30))
                buf[i0 : i0 + n] += (0.35 * kick * np.exp(-tt * 18)).astype(np.float32)
            for half in (0.0, 0.5):
                i0 = int((start + half * beat) * sr)
                n = min(int(0.04 * sr), len(buf) - i0)
                hat = noise.standard_normal(n) * np.exp(-np.arange(n) / (0.008 * sr))
                hat = np.diff(hat, prepend=0.0)  # crude high-pass
                buf[i0 : i0 + n] += (0.025 * hat).astype(np.float32)
    fade = min(int(0.8 * sr), len(buf))
    buf[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    peak = float(np.max(np.abs(buf))) or 1.0
    return (buf * (0.8 / peak)).astype(np.float32)


# --------------------------------------------------------------------------- encoding


def encode_audio(samples: Samples, sr: int, fmt: str, *, ogg_serial: int = 1) -> bytes:
    """Encode mono float samples in ``fmt`` (a key of :data:`FORMATS`).

    Opus needs 48 kHz (or 8/12/16/24 kHz). Ogg serial numbers are set to ``ogg_serial`` so
    output is reproducible.
    """
    if fmt == "m4a":
        return _encode_m4a(samples, sr)
    import soundfile  # type: ignore[import-untyped]

    spec = {
        "mp3": ("MP3", "MPEG_LAYER_III"),
        "flac": ("FLAC", "PCM_16"),
        "ogg": ("OGG", "VORBIS"),
        "opus": ("OGG", "OPUS"),
        "wav": ("WAV", "PCM_16"),
    }
    if fmt not in spec:
        raise ValueError(f"unknown format {fmt!r}; expected one of {sorted(FORMATS)}")
    container, subtype = spec[fmt]
    buf = io.BytesIO()
    kwargs: dict[str, object] = {}
    if fmt == "mp3":
        kwargs = {"bitrate_mode": "CONSTANT", "compression_level": 0.6}
    soundfile.write(buf, samples, sr, format=container, subtype=subtype, **kwargs)
    data = buf.getvalue()
    if container == "OGG":
        data = _set_ogg_serial(data, ogg_serial)
    return data


def _set_ogg_serial(data: bytes, serial: int) -> bytes:
    """Rewrite every page's stream serial number (and CRC): libsndfile picks it at random."""
    src = io.BytesIO(data)
    out = io.BytesIO()
    while src.tell() < len(data):
        page = OggPage(src)
        page.serial = serial
        out.write(page.write())
    return out.getvalue()


def _encode_m4a(samples: Samples, sr: int) -> bytes:
    """AAC in an MP4 (``.m4a``) container with PyAV, bit-exact (no timestamps in headers)."""
    try:
        import av
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError("M4A needs PyAV: pip install 'dspot-spotify[m4a]'") from exc
    buf = io.BytesIO()
    with av.open(buf, "w", format="ipod", options={"fflags": "+bitexact"}) as out:
        stream = out.add_stream("aac", rate=sr, layout="mono")
        frame_size = 1024
        for i in range(0, len(samples), frame_size):
            chunk = np.ascontiguousarray(samples[i : i + frame_size].reshape(1, -1))
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
            frame.sample_rate = sr
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


# --------------------------------------------------------------------------- tagging


def tag_file(
    path: str | Path,
    *,
    title: str,
    artist: str,
    album: str | None = None,
    album_artist: str | None = None,
    track: int | None = None,
    track_total: int | None = None,
    year: int | None = None,
    genre: str | None = None,
    cover: bytes | None = None,
    cover_mime: str = "image/png",
) -> None:
    """Write tags (and front cover art) into an audio file, picking the tag kind by content.

    ID3v2.4 for MP3 and WAV, Vorbis comments (+ FLAC picture blocks) for FLAC, Ogg Vorbis and
    Opus, MP4 atoms for M4A.
    """
    with open(path, "rb") as f:
        fmt = sniff_format(f.read(4096))
    trck = None if track is None else (f"{track}/{track_total}" if track_total else str(track))
    if fmt in ("mp3", "wav"):
        audio = MP3(path) if fmt == "mp3" else WAVE(path)
        if audio.tags is None:
            audio.add_tags()
        tags = audio.tags
        assert isinstance(tags, ID3)
        tags.add(TIT2(encoding=3, text=[title]))
        tags.add(TPE1(encoding=3, text=[artist]))
        if album is not None:
            tags.add(TALB(encoding=3, text=[album]))
        if album_artist is not None:
            tags.add(TPE2(encoding=3, text=[album_artist]))
        if trck is not None:
            tags.add(TRCK(encoding=3, text=[trck]))
        if year is not None:
            tags.add(TDRC(encoding=3, text=[str(year)]))
        if genre is not None:
            tags.add(TCON(encoding=3, text=[genre]))
        if cover is not None:
            tags.add(APIC(encoding=3, mime=cover_mime, type=3, desc="Cover", data=cover))
        audio.save()
    elif fmt in ("flac", "ogg-vorbis", "ogg-opus"):
        vorbis: FLAC | OggVorbis | OggOpus = (
            FLAC(path)
            if fmt == "flac"
            else OggVorbis(path)
            if fmt == "ogg-vorbis"
            else OggOpus(path)
        )
        if vorbis.tags is None:
            vorbis.add_tags()
        comments = {
            "title": title,
            "artist": artist,
            "album": album,
            "albumartist": album_artist,
            "tracknumber": None if track is None else str(track),
            "tracktotal": None if track_total is None else str(track_total),
            "date": None if year is None else str(year),
            "genre": genre,
        }
        for key, value in comments.items():
            if value is not None:
                vorbis[key] = [value]
        if cover is not None:
            pic = Picture()
            pic.type = 3
            pic.mime = cover_mime
            pic.desc = "Cover"
            pic.data = cover
            if isinstance(vorbis, FLAC):
                vorbis.clear_pictures()
                vorbis.add_picture(pic)
            else:
                import base64

                vorbis["metadata_block_picture"] = [base64.b64encode(pic.write()).decode()]
        vorbis.save()
    elif fmt == "m4a":
        mp4 = MP4(path)
        if mp4.tags is None:
            mp4.add_tags()
        mt = mp4.tags
        assert mt is not None
        mt["\xa9nam"] = [title]
        mt["\xa9ART"] = [artist]
        if album is not None:
            mt["\xa9alb"] = [album]
        if album_artist is not None:
            mt["aART"] = [album_artist]
        if track is not None:
            mt["trkn"] = [(track, track_total or 0)]
        if year is not None:
            mt["\xa9day"] = [str(year)]
        if genre is not None:
            mt["\xa9gen"] = [genre]
        if cover is not None:
            kind = MP4Cover.FORMAT_PNG if cover_mime == "image/png" else MP4Cover.FORMAT_JPEG
            mt["covr"] = [MP4Cover(cover, imageformat=kind)]
        mp4.save()
    else:
        raise ValueError(f"cannot tag {path}: unsupported format {fmt}")


# --------------------------------------------------------------------------- the library


@attrs.frozen(kw_only=True)
class DemoTrack:
    """One generated file and the tags written into it."""

    path: Path
    title: str
    artist: str
    album: str
    track: int
    track_total: int
    year: int
    genre: str
    format: str
    duration: float


_ADJ: Final = (
    "Velvet",
    "Paper",
    "Neon",
    "Quiet",
    "Golden",
    "Electric",
    "Lunar",
    "Amber",
    "Hollow",
    "Crystal",
    "Wild",
    "Silver",
    "Violet",
    "Northern",
    "Tidal",
    "Copper",
)
_NOUN: Final = (
    "Foxes",
    "Lanterns",
    "Harbors",
    "Satellites",
    "Orchards",
    "Echoes",
    "Ravens",
    "Tides",
    "Engines",
    "Gardens",
    "Comets",
    "Pines",
    "Rivers",
    "Signals",
)
_WORDS: Final = (
    "Morning",
    "Static",
    "Bloom",
    "Drift",
    "Glass",
    "Ember",
    "Horizon",
    "Salt",
    "Window",
    "Thunder",
    "Hum",
    "Meadow",
    "Lights",
    "Shadow",
    "Orbit",
    "Rain",
    "Mirror",
    "Dust",
    "Fever",
    "Harbor",
    "Paper",
    "Spiral",
    "Velvet",
    "Wire",
)
_GENRES: Final = (
    "Synthpop",
    "Ambient",
    "Chiptune",
    "Lo-Fi",
    "Indie Pop",
    "Electronic",
    "Jazz",
    "Folk",
)


def _title(rng: random.Random) -> str:
    w = rng.sample(_WORDS, 2)
    return rng.choice((f"{w[0]} {w[1]}", f"The {w[0]}", f"{w[0]} of {w[1]}", w[0]))


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in " -_" else "_" for c in name).strip()


def generate_demo_library(
    dest: str | Path,
    *,
    seed: int = 0,
    artists: int = 3,
    formats: Sequence[str] = DEFAULT_FORMATS,
    min_seconds: float = 5.0,
    max_seconds: float = 12.0,
) -> list[DemoTrack]:
    """Write a tagged demo library under ``dest``: ``Artist/Album/NN - Title.ext``.

    Each artist gets 1-2 albums (more if needed to use every format) of 3-4 tracks; albums
    cycle through ``formats``; each album has its own PNG cover embedded in every track (and
    saved as ``cover.png``).
    """
    for fmt in formats:
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}; expected one of {sorted(FORMATS)}")
    if not formats:
        raise ValueError("need at least one format")
    rng = random.Random(seed)
    root = Path(dest)
    out: list[DemoTrack] = []
    names: set[str] = set()
    album_no = 0
    for i in range(artists):
        # Enough albums that every requested format is used at least once (when possible).
        unused = max(0, len(formats) - album_no)
        n_albums = max(rng.randint(1, 2), math.ceil(unused / (artists - i)))
        while True:
            artist = f"The {rng.choice(_ADJ)} {rng.choice(_NOUN)}"
            if artist not in names:
                names.add(artist)
                break
        genre = rng.choice(_GENRES)
        year = rng.randint(1994, 2025)
        for a in range(n_albums):
            album = _title(rng)
            fmt = formats[album_no % len(formats)]
            album_no += 1
            album_year = year + 2 * a
            cover = make_cover_png(random.Random(rng.getrandbits(64)))
            folder = root / _safe(artist) / _safe(album)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "cover.png").write_bytes(cover)
            count = rng.randint(3, 4)
            titles: list[str] = []
            while len(titles) < count:
                t = _title(rng)
                if t not in titles:
                    titles.append(t)
            for n, title in enumerate(titles, start=1):
                sr = 48000 if fmt == "opus" else 44100
                seconds = rng.uniform(min_seconds, max_seconds)
                samples = synthesize(random.Random(rng.getrandbits(64)), seconds, sr)
                path = folder / f"{n:02d} - {_safe(title)}{FORMATS[fmt]}"
                path.write_bytes(encode_audio(samples, sr, fmt, ogg_serial=album_no * 100 + n))
                tag_file(
                    path,
                    title=title,
                    artist=artist,
                    album=album,
                    album_artist=artist,
                    track=n,
                    track_total=count,
                    year=album_year,
                    genre=genre,
                    cover=cover,
                )
                out.append(
                    DemoTrack(
                        path=path,
                        title=title,
                        artist=artist,
                        album=album,
                        track=n,
                        track_total=count,
                        year=album_year,
                        genre=genre,
                        format=fmt,
                        duration=len(samples) / sr,
                    )
                )
    return out
