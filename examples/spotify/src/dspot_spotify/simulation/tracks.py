"""The scenario's audio: tiny tagged FLAC files for the workload, one big WAV to stream
through the gateway; synthesized once per process, the same in every process."""

from __future__ import annotations

import functools
import random
import tempfile
from pathlib import Path
from typing import Final

import attrs

__all__ = [
    "FINAL_TRACKS",
    "SESSION_TRACKS",
    "WORKLOAD_TRACKS",
    "Track",
    "big_track",
    "session_tracks",
    "tracks",
]

WORKLOAD_TRACKS: Final = 8
SESSION_TRACKS: Final = 12
"""Tracks of the clients that send no log position (their own, not the others' tracks)."""
FINAL_TRACKS: Final = 5  # one fresh upload per node at the end (up to 5 nodes)
BIG_SECONDS: Final = 18.0
"""Length of the streaming client's song (16 kHz mono 16-bit WAV: about 580 KB)."""
WORDS = (
    "Aurora", "Basalt", "Cinder", "Dynamo", "Ember", "Fjord", "Gossamer", "Harbor",
    "Ion", "Juniper", "Kestrel", "Lumen", "Mistral",
)  # fmt: skip


@attrs.frozen
class Track:
    index: int
    title: str
    word: str
    data: bytes


@attrs.frozen(kw_only=True)
class _Tags:
    title: str
    artist: str
    album: str
    track: int
    genre: str


def _flac(tmp: Path, name: str, seed: str, seconds: float, tags: _Tags, *, cover: bool) -> bytes:
    """A tagged 16 kHz FLAC of ``seconds`` synthesized from ``seed`` (with a tiny cover)."""
    from dspot_spotify.demo import encode_audio, make_cover_png, synthesize, tag_file

    rng = random.Random(seed)
    path = tmp / name
    path.write_bytes(encode_audio(synthesize(rng, seconds, 16000), 16000, "flac"))
    tag_file(
        path,
        title=tags.title,
        artist=tags.artist,
        album=tags.album,
        track=tags.track,
        year=2026,
        genre=tags.genre,
        cover=make_cover_png(rng, 8) if cover else None,
    )
    return path.read_bytes()


@functools.cache
def tracks() -> tuple[Track, ...]:
    """Tiny tagged FLAC files (about a second, mono, 16 kHz): a few tens of KiB each; the
    last one is :func:`big_track`."""
    from dspot_spotify.demo import encode_audio, synthesize, tag_file

    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(WORKLOAD_TRACKS + FINAL_TRACKS):
            word = WORDS[i % len(WORDS)]
            title = f"{word} Song {i}"
            data = _flac(
                Path(tmp),
                f"t{i}.flac",
                f"spotify-sim-track:{i}",
                1.0,
                _Tags(
                    title=title,
                    artist=f"Sim Artist {i % 3}",
                    album=f"Sim Album {i % 4}",
                    track=i + 1,
                    genre="Ambient",
                ),
                cover=i % 2 == 0,
            )
            out.append(Track(i, title, word, data))
        # The big one, streamed through the gateway (WAV: the size is what matters).
        i = WORKLOAD_TRACKS + FINAL_TRACKS
        rng = random.Random(f"spotify-sim-track:{i}")
        path = Path(tmp) / f"t{i}.wav"
        path.write_bytes(encode_audio(synthesize(rng, BIG_SECONDS, 16000), 16000, "wav"))
        tag_file(path, title=f"Nebula Song {i}", artist="Sim Artist Big", album="Sim Long")
        out.append(Track(i, f"Nebula Song {i}", "Nebula", path.read_bytes()))
    return tuple(out)


@functools.cache
def session_tracks() -> tuple[Track, ...]:
    """Tiny tagged FLAC files for the clients without positions: two albums of two
    artists, half with a cover (so uploads create artists, albums and covers at once)."""
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(SESSION_TRACKS):
            title = f"Session Song {i}"
            data = _flac(
                Path(tmp),
                f"s{i}.flac",
                f"spotify-sim-session-track:{i}",
                0.5,
                _Tags(
                    title=title,
                    artist=f"Session Artist {i % 2}",
                    album=f"Session Album {i % 4}",
                    track=i + 1,
                    genre="Drone",
                ),
                cover=i % 2 == 1,
            )
            out.append(Track(i, title, "Session", data))
    return tuple(out)


def big_track() -> Track:
    return tracks()[WORKLOAD_TRACKS + FINAL_TRACKS]
