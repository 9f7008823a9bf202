# mutagen ships py.typed but leaves many functions unannotated:
# mypy: disable-error-code="no-untyped-call"
"""Tag reading on real audio files of every supported format, and its two kinds of error."""

from __future__ import annotations

import io
import random
import struct
import tempfile
import wave
import zlib
from pathlib import Path

import numpy as np
import pytest
from dspot_spotify.demo import encode_audio, make_cover_png, synthesize, tag_file
from dspot_spotify.tags import (
    CorruptMedia,
    UnsupportedMedia,
    parse_filename,
    read_tags,
    sniff_format,
    sniff_image_mime,
)
from mutagen.flac import FLAC
from mutagen.id3 import APIC, ID3, TCON, TIT2, TPE1, TRCK, TYER
from mutagen.mp4 import MP4
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE

FORMATS = ["mp3", "flac", "ogg", "opus", "wav", "m4a"]
EXPECTED = {
    "mp3": ("mp3", "audio/mpeg"),
    "flac": ("flac", "audio/flac"),
    "ogg": ("ogg-vorbis", "audio/ogg"),
    "opus": ("ogg-opus", "audio/ogg"),
    "wav": ("wav", "audio/wav"),
    "m4a": ("m4a", "audio/mp4"),
}
COVER = make_cover_png(random.Random(5), size=32)


def _need(fmt: str) -> None:
    if fmt == "m4a":
        pytest.importorskip("av")


def _audio(fmt: str, seconds: float = 2.0) -> tuple[bytes, float]:
    """Encoded synthesized audio and its true length in seconds."""
    sr = 48000 if fmt == "opus" else 44100
    samples = synthesize(random.Random(1), seconds, sr)
    return encode_audio(samples, sr, fmt), len(samples) / sr


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("fmt", FORMATS)
def test_reads_every_tag_of_every_format(tmp_path: Path, fmt: str) -> None:
    _need(fmt)
    data, seconds = _audio(fmt)
    path = _write(tmp_path, f"whatever.{fmt}", data)
    tag_file(
        path,
        title="Señal de Humo",
        artist="Los Ñandúes",
        album="Álbum Uno",
        album_artist="Various",
        track=3,
        track_total=9,
        year=2019,
        genre="Cumbia",
        cover=COVER,
    )
    t = read_tags(path)
    assert (t.format, t.mime) == EXPECTED[fmt]
    assert t.title == "Señal de Humo"
    assert t.artist == "Los Ñandúes"
    assert t.album_artist == "Various"
    assert t.album == "Álbum Uno"
    assert t.track == 3
    assert t.year == 2019
    assert t.genres == ("Cumbia",) and t.genre == "Cumbia"
    assert t.duration == pytest.approx(seconds, abs=0.1)
    assert t.channels == 1
    assert t.sample_rate in (44100, 48000)
    assert t.cover is not None and t.cover.data == COVER and t.cover.mime == "image/png"


@pytest.mark.parametrize("fmt", FORMATS)
def test_format_comes_from_content_not_extension(tmp_path: Path, fmt: str) -> None:
    _need(fmt)
    data, _ = _audio(fmt, 1.0)
    wrong = "mp3" if fmt != "mp3" else "flac"
    path = _write(tmp_path, f"07 - Misnamed.{wrong}", data)
    t = read_tags(path)
    assert t.format == EXPECTED[fmt][0]
    assert (t.track, t.title) == (7, "Misnamed")


@pytest.mark.parametrize("fmt", ["mp3", "flac", "m4a"])
def test_reads_from_a_spooled_upload_and_rewinds(tmp_path: Path, fmt: str) -> None:
    _need(fmt)
    data, _ = _audio(fmt, 1.0)
    path = _write(tmp_path, "a", data)
    tag_file(path, title="Spooled", artist="Uploader", cover=COVER)
    with tempfile.SpooledTemporaryFile(max_size=1024) as spool:
        spool.write(path.read_bytes())
        spool.seek(123)
        t = read_tags(spool, filename="ignored.mp3")
        assert spool.tell() == 0
        assert spool.read() == path.read_bytes()
    assert (t.title, t.artist) == ("Spooled", "Uploader")
    assert read_tags(io.BytesIO(path.read_bytes())).title == "Spooled"


def test_untagged_falls_back_to_the_file_name(tmp_path: Path) -> None:
    data, _ = _audio("flac", 1.0)
    t = read_tags(_write(tmp_path, "03 - Some Artist - Some Title.flac", data))
    assert (t.track, t.artist, t.title, t.album) == (3, "Some Artist", "Some Title", None)
    assert read_tags(io.BytesIO(data), filename="12. Just a Title.flac").title == "Just a Title"
    assert read_tags(io.BytesIO(data)).title == "Untitled"


def test_partial_tags_fill_gaps_from_the_file_name(tmp_path: Path) -> None:
    data, _ = _audio("mp3", 1.0)
    path = _write(tmp_path, "05 - Name Artist - Name Title.mp3", data)
    tag_file(path, title="Tag Title", artist="Tag Artist")
    t = read_tags(path)
    assert (t.title, t.artist, t.track) == ("Tag Title", "Tag Artist", 5)


@pytest.mark.parametrize(
    ("name", "track", "artist", "title"),
    [
        ("03 - Artist - Title.mp3", 3, "Artist", "Title"),
        ("03 - Title.mp3", 3, None, "Title"),
        ("03. Title With. Dots.ogg", 3, None, "Title With. Dots"),
        ("03 Title.flac", 3, None, "Title"),
        ("Artist - Title.m4a", None, "Artist", "Title"),
        ("some_file_name.wav", None, None, "some file name"),
        ("/uploads/dir/Plain.opus", None, None, "Plain"),
        ("C:\\Music\\01 - A - B.mp3", 1, "A", "B"),
        ("1999.mp3", None, None, "1999"),
        ("noext", None, None, "noext"),
        ("", None, None, "Untitled"),
    ],
)
def test_parse_filename(name: str, track: int | None, artist: str | None, title: str) -> None:
    g = parse_filename(name)
    assert (g.track, g.artist, g.title) == (track, artist, title)


def test_stdlib_wave_file_then_id3_chunk(tmp_path: Path) -> None:
    path = tmp_path / "02 - Sine.wav"
    rate = 8000
    tone = (np.sin(np.arange(rate * 3) * 2 * np.pi * 440 / rate) * 12000).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(tone.tobytes())
    t = read_tags(path)
    assert (t.format, t.mime, t.title, t.track) == ("wav", "audio/wav", "Sine", 2)
    assert t.duration == pytest.approx(3.0)
    assert t.cover is None
    audio = WAVE(path)
    audio.add_tags()
    assert audio.tags is not None
    audio.tags.add(TIT2(encoding=3, text=["Tagged Sine"]))
    audio.tags.add(TPE1(encoding=3, text=["Oscillator"]))
    audio.save()
    t = read_tags(path)
    assert (t.title, t.artist, t.track) == ("Tagged Sine", "Oscillator", 2)


def _info_chunk(fields: dict[bytes, bytes]) -> bytes:
    body = b"INFO"
    for key, value in fields.items():
        data = value + b"\x00"
        body += key + struct.pack("<I", len(data)) + data + (b"\x00" if len(data) & 1 else b"")
    return b"LIST" + struct.pack("<I", len(body)) + body


def test_wav_riff_info_chunk(tmp_path: Path) -> None:
    """Many tools tag WAV with RIFF LIST/INFO instead of ID3; an ID3 chunk wins if both."""
    data, _ = _audio("wav", 1.0)
    info = _info_chunk(
        {
            b"INAM": "Canción".encode(),
            b"IART": b"Info Artist",
            b"IPRD": b"Info Album",
            b"ICRD": b"2004-02-01",
            b"IGNR": b"Tango",
            b"ITRK": b"6",
            b"ISFT": b"Lavf",
        }
    )
    body = data[12:] + info
    path = _write(tmp_path, "x.wav", b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body)
    t = read_tags(path)
    assert (t.title, t.artist, t.album, t.year, t.genres, t.track) == (
        "Canción",
        "Info Artist",
        "Info Album",
        2004,
        ("Tango",),
        6,
    )
    tag_file(path, title="ID3 Title", artist="ID3 Artist")
    t = read_tags(path)
    assert (t.title, t.artist, t.album) == ("ID3 Title", "ID3 Artist", "Info Album")


def test_id3v23_tyer_track_of_total_jpeg_cover_and_numeric_genre(tmp_path: Path) -> None:
    data, _ = _audio("mp3", 1.0)
    path = _write(tmp_path, "x.mp3", data)
    jpeg = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(40)
    tags = ID3()
    tags.add(TIT2(encoding=1, text=["Old Style"]))
    tags.add(TRCK(encoding=1, text=["04/11"]))
    tags.add(TYER(encoding=1, text=["1987"]))
    tags.add(TCON(encoding=1, text=["(17)"]))
    tags.add(APIC(encoding=1, mime="image/jpg", type=0, desc="other", data=b"\x89PNG\r\n\x1a\n"))
    tags.add(APIC(encoding=1, mime="image/jpg", type=3, desc="front", data=jpeg))
    tags.save(path, v2_version=3)
    t = read_tags(path)
    assert (t.title, t.track, t.year, t.genres) == ("Old Style", 4, 1987, ("Rock",))
    assert t.cover is not None and t.cover.mime == "image/jpeg" and t.cover.data == jpeg


def test_big_id3_tag_in_front_of_mp3_and_flac(tmp_path: Path) -> None:
    big_cover = b"\x89PNG\r\n\x1a\n" + random.Random(1).randbytes(100_000)
    for fmt in ("mp3", "flac"):
        data, _ = _audio(fmt, 1.0)
        tags = ID3()
        tags.add(TIT2(encoding=3, text=["Prefixed"]))
        tags.add(APIC(encoding=3, mime="image/png", type=3, desc="", data=big_cover))
        path = _write(tmp_path, f"x.{fmt}", data)
        tags.save(path)  # mutagen prepends an ID3v2 tag; FLAC players tolerate it too
        assert path.read_bytes().startswith(b"ID3")
        t = read_tags(path)
        assert t.format == fmt
        if fmt == "mp3":
            assert t.title == "Prefixed"
            assert t.cover is not None and t.cover.data == big_cover
            assert read_tags(path, max_cover_bytes=50_000).cover is None


def test_id3v1_only_mp3(tmp_path: Path) -> None:
    data, _ = _audio("mp3", 1.0)
    v1 = (
        b"TAG"
        + b"V1 Title".ljust(30, b"\x00")
        + b"V1 Artist".ljust(30, b"\x00")
        + b"V1 Album".ljust(30, b"\x00")
        + b"1999"
        + b"\x00" * 28
        + b"\x00\x07"
        + b"\x08"
    )
    t = read_tags(_write(tmp_path, "x.mp3", data + v1))
    assert (t.title, t.artist, t.album, t.year, t.track, t.genres) == (
        "V1 Title",
        "V1 Artist",
        "V1 Album",
        1999,
        7,
        ("Jazz",),
    )


def test_vorbis_date_multiple_genres_and_legacy_cover(tmp_path: Path) -> None:
    data, _ = _audio("ogg", 1.0)
    path = _write(tmp_path, "x.ogg", data)
    ogg = OggVorbis(path)
    assert ogg.tags is not None
    ogg.tags["TITLE"] = ["Upper Keys"]
    ogg.tags["DATE"] = ["2003-04-05"]
    ogg.tags["GENRE"] = ["Ambient", "Drone; Ambient"]
    ogg.tags["TRACKNUMBER"] = ["2/10"]
    import base64

    ogg.tags["COVERART"] = [base64.b64encode(COVER).decode()]
    ogg.save()
    t = read_tags(path)
    assert (t.title, t.year, t.track, t.genres) == ("Upper Keys", 2003, 2, ("Ambient", "Drone"))
    assert t.cover is not None and t.cover.data == COVER and t.cover.mime == "image/png"


def test_mp4_genres_and_disc(tmp_path: Path) -> None:
    pytest.importorskip("av")
    data, _ = _audio("m4a", 1.0)
    path = _write(tmp_path, "x.m4a", data)
    mp4 = MP4(path)
    if mp4.tags is None:
        mp4.add_tags()
    assert mp4.tags is not None
    mp4.tags["\xa9gen"] = ["Jazz", "Swing"]
    mp4.tags["disk"] = [(2, 2)]
    mp4.save()
    t = read_tags(path)
    assert (t.genres, t.disc, t.title) == (("Jazz", "Swing"), 2, "x")


def test_raw_adts_aac(tmp_path: Path) -> None:
    av = pytest.importorskip("av")
    samples = synthesize(random.Random(3), 2.0, 44100)
    buf = io.BytesIO()
    with av.open(buf, "w", format="adts") as out:
        stream = out.add_stream("aac", rate=44100, layout="mono")
        for i in range(0, len(samples), 1024):
            frame = av.AudioFrame.from_ndarray(
                samples[i : i + 1024].reshape(1, -1), format="fltp", layout="mono"
            )
            frame.sample_rate = 44100
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    t = read_tags(_write(tmp_path, "09 - Raw Stream.aac", buf.getvalue()))
    assert (t.format, t.mime, t.track, t.title) == ("aac", "audio/aac", 9, "Raw Stream")
    # raw ADTS has no length field: mutagen estimates it from the first frames' bitrate
    assert t.duration == pytest.approx(len(samples) / 44100, rel=0.35)


def test_flac_picture_block_preferred(tmp_path: Path) -> None:
    data, _ = _audio("flac", 1.0)
    path = _write(tmp_path, "x.flac", data)
    tag_file(path, title="T", artist="A", cover=COVER)
    assert len(FLAC(path).pictures) == 1
    t = read_tags(path)
    assert t.cover is not None and t.cover.data == COVER


# --------------------------------------------------------------------------- errors


def _png() -> bytes:
    return make_cover_png(random.Random(1), size=8)


@pytest.mark.parametrize(
    "content",
    [
        b"Hello, this is a text file.\nNot music at all.\n" * 20,
        _png(),
        b"\xff\xd8\xff\xe0\x00\x10JFIF" + bytes(200),  # JPEG
        random.Random(42).randbytes(5000),
        b"%PDF-1.7\n" + bytes(500),
        b"",
        b"OggS\x00\x02" + bytes(22) + b"\x01" + b"\x1e" + b"Speex   " + bytes(100),
        b"RIFF\x24\x00\x00\x00AVI LIST" + bytes(100),
    ],
    ids=["text", "png", "jpeg", "random", "pdf", "empty", "ogg-speex", "avi"],
)
def test_non_audio_is_unsupported(tmp_path: Path, content: bytes) -> None:
    path = _write(tmp_path, "song.mp3", content)  # the extension lies; content decides
    with pytest.raises(UnsupportedMedia) as info:
        read_tags(path)
    assert info.value.status == 415
    assert info.value.message


def test_corrupt_headers_are_corrupt(tmp_path: Path) -> None:
    flac, _ = _audio("flac", 1.0)
    ogg, _ = _audio("ogg", 1.0)
    cases = {
        "flac-cut-in-streaminfo": flac[:30],
        "flac-garbage": b"fLaC" + random.Random(3).randbytes(300),
        "ogg-cut-in-headers": ogg[:500],
        "ogg-cut-in-first-page": ogg[:20],
        "id3-then-garbage": b"ID3\x04\x00\x00\x00\x00\x00\x10" + bytes(16) + b"garbage" * 50,
        "wav-without-data": b"RIFF\x24\x00\x00\x00WAVEfmt " + struct.pack("<I", 16) + bytes(16),
        "mp4-without-moov": b"\x00\x00\x00\x18ftypM4A \x00\x00\x00\x00isomM4A "
        + b"\x00\x00\x00\x10mdat"
        + bytes(8),
    }
    for name, content in cases.items():
        with pytest.raises(CorruptMedia) as info:
            read_tags(_write(tmp_path, name, content))
        assert info.value.status == 422, name


def test_truncated_m4a_is_corrupt(tmp_path: Path) -> None:
    pytest.importorskip("av")
    data, _ = _audio("m4a", 1.0)
    with pytest.raises(CorruptMedia, match="M4A"):
        read_tags(_write(tmp_path, "cut.m4a", data[: len(data) // 2]))


def test_truncated_audio_frames_are_accepted(tmp_path: Path) -> None:
    """Documented: tags are metadata; a cut inside the audio frames is not detected (FLAC,
    MP3, WAV keep their header's length) or shortens the length (Ogg)."""
    for fmt in ("flac", "mp3", "wav"):
        data, seconds = _audio(fmt, 2.0)
        t = read_tags(_write(tmp_path, f"cut.{fmt}", data[: len(data) // 2]))
        assert t.duration == pytest.approx(seconds, abs=0.1)
    data, seconds = _audio("ogg", 2.0)
    t = read_tags(_write(tmp_path, "cut.ogg", data[: len(data) // 2]))
    assert 0 < t.duration < seconds


def test_sniffers() -> None:
    assert sniff_format(b"fLaC\x00") == "flac"
    assert sniff_format(b"\xff\xf1\x50\x80\x00\x1f\xfc") == "aac"
    assert sniff_format(b"\xff\xfb\x90\x64") == "mp3"
    assert sniff_format(b"\xff\xff\xff\xff") is None  # bad bitrate / rate fields
    assert sniff_format(b"ID3" + bytes(7) + b"fLaC") == "flac"
    assert sniff_image_mime(b"\x89PNG\r\n\x1a\nxx") == "image/png"
    assert sniff_image_mime(b"????", "JPG") == "image/jpeg"
    assert sniff_image_mime(b"????") == "application/octet-stream"


def test_cover_png_is_a_valid_png() -> None:
    png = make_cover_png(random.Random(9), size=16)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    # walk the chunks and check every CRC, then inflate IDAT to the right size
    pos, idat = 8, b""
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind = png[pos + 4 : pos + 8]
        body = png[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", png[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        if kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert len(zlib.decompress(idat)) == 16 * (1 + 16 * 3)
