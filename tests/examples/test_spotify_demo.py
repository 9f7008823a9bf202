"""The demo library: deterministic, tagged, covered, in several formats; and the CLI."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import numpy as np
import pytest
from dspot_spotify import cli
from dspot_spotify.demo import FORMATS, DemoTrack, generate_demo_library, synthesize
from dspot_spotify.tags import read_tags


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> list[DemoTrack]:
    return generate_demo_library(tmp_path_factory.mktemp("demo"), seed=11, max_seconds=6.0)


def test_library_shape_and_tags(library: list[DemoTrack]) -> None:
    tracks = library
    artists = {t.artist for t in tracks}
    albums = {(t.artist, t.album) for t in tracks}
    assert len(artists) == 3
    assert 5 <= len(albums) <= 6  # 1-2 albums each, at least one per default format
    assert {t.format for t in tracks} == {"mp3", "flac", "ogg", "opus", "wav"}
    for t in tracks:
        assert 5.0 <= t.duration <= 15.0
        tags = read_tags(t.path)
        assert (tags.title, tags.artist, tags.album, tags.track, tags.year) == (
            t.title,
            t.artist,
            t.album,
            t.track,
            t.year,
        )
        assert tags.genres == (t.genre,)
        assert tags.duration == pytest.approx(t.duration, abs=0.1)
        assert tags.cover is not None and tags.cover.mime == "image/png"
        assert tags.cover.data == (t.path.parent / "cover.png").read_bytes()
        assert t.path.name.startswith(f"{t.track:02d} - ")
    covers = {(t.path.parent / "cover.png").read_bytes() for t in tracks}
    assert len(covers) == len(albums)  # one distinct cover per album


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    kw = {
        "artists": 2,
        "formats": ("ogg", "opus", "mp3", "flac"),
        "min_seconds": 1.5,
        "max_seconds": 2.5,
    }
    generate_demo_library(tmp_path / "a", seed=3, **kw)  # type: ignore[arg-type]
    generate_demo_library(tmp_path / "b", seed=3, **kw)  # type: ignore[arg-type]
    generate_demo_library(tmp_path / "c", seed=4, **kw)  # type: ignore[arg-type]
    a, b, c = (_hashes(tmp_path / x) for x in "abc")
    assert a == b
    assert a != c


def test_m4a_album(tmp_path: Path) -> None:
    pytest.importorskip("av")
    tracks = generate_demo_library(tmp_path, seed=1, artists=1, formats=("m4a",), max_seconds=5.5)
    assert {t.format for t in tracks} == {"m4a"}
    tags = read_tags(tracks[0].path)
    assert (tags.mime, tags.title, tags.track) == ("audio/mp4", tracks[0].title, 1)
    assert tags.cover is not None


def test_synthesized_audio_is_sane() -> None:
    x = synthesize(random.Random(2), 6.0, 22050)
    assert x.dtype == np.float32
    assert 5.0 <= len(x) / 22050 <= 8.0
    assert float(np.max(np.abs(x))) == pytest.approx(0.8, abs=1e-3)  # normalised, no clipping
    assert float(np.sqrt(np.mean(x**2))) > 0.05  # not silence
    assert float(np.max(np.abs(x[-100:]))) < 0.01  # fades out


def test_unknown_format_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown format"):
        generate_demo_library(tmp_path, formats=("mp3", "aiff"))
    assert "m4a" in FORMATS


def test_cli_demo_and_tags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "music"
    assert (
        cli.main(["demo-music", str(out), "--seed", "5", "--artists", "1", "--formats", "flac,ogg"])
        == 0
    )
    printed = capsys.readouterr().out
    assert "tracks" in printed and "1 artists" in printed
    files = sorted(out.rglob("*.flac")) + sorted(out.rglob("*.ogg"))
    assert files
    assert cli.main(["tags", "--json", str(files[0])]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "flac" and info["cover"]["mime"] == "image/png"
    assert cli.main(["tags", str(files[-1])]) == 0
    assert "ogg-vorbis" in capsys.readouterr().out
    bogus = tmp_path / "notes.txt"
    bogus.write_text("hello")
    assert cli.main(["tags", str(bogus), str(tmp_path / "missing.mp3")]) == 1
    err = capsys.readouterr().err
    assert "error 415" in err and "missing.mp3" in err
    with pytest.raises(SystemExit):
        cli.main(["demo-music", str(out), "--formats", "aiff"])
