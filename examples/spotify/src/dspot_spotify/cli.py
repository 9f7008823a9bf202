"""The ``dspot-spotify`` command line.

``dspot-spotify demo-music DIR``  generate the synthesized demo library into DIR.
``dspot-spotify tags FILE...``    print what the tag reader finds in each file.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from dspot_spotify import __version__
from dspot_spotify.demo import DEFAULT_FORMATS, FORMATS, generate_demo_library
from dspot_spotify.tags import MediaError, TrackTags, read_tags


def _formats(text: str) -> tuple[str, ...]:
    names = tuple(f.strip().lower() for f in text.split(",") if f.strip())
    bad = [f for f in names if f not in FORMATS]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"unknown format(s) {', '.join(bad) or '(none)'}; choose from {', '.join(FORMATS)}"
        )
    return names


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dspot-spotify", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo-music", help="generate a tagged, synthesized demo library")
    demo.add_argument("dir", help="directory to write Artist/Album/NN - Title.ext into")
    demo.add_argument("--seed", type=int, default=0, help="seed (same seed, same files)")
    demo.add_argument("--artists", type=int, default=3, help="number of artists (default 3)")
    demo.add_argument(
        "--formats",
        type=_formats,
        default=DEFAULT_FORMATS,
        help="comma-separated formats, one per album in turn "
        f"(default {','.join(DEFAULT_FORMATS)}; also: m4a, needs PyAV)",
    )

    tags = sub.add_parser("tags", help="print the tags the service would read from files")
    tags.add_argument("files", nargs="+", help="audio files")
    tags.add_argument("--json", action="store_true", help="one JSON object per line")
    return p


def _describe(t: TrackTags) -> dict[str, Any]:
    cover = None if t.cover is None else {"mime": t.cover.mime, "bytes": len(t.cover.data)}
    return {
        "title": t.title,
        "artist": t.artist,
        "album_artist": t.album_artist,
        "album": t.album,
        "track": t.track,
        "disc": t.disc,
        "year": t.year,
        "genres": list(t.genres),
        "duration": round(t.duration, 3),
        "format": t.format,
        "mime": t.mime,
        "sample_rate": t.sample_rate,
        "channels": t.channels,
        "bitrate": t.bitrate,
        "cover": cover,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "demo-music":
        if args.artists < 1:
            print("dspot-spotify: --artists must be at least 1", file=sys.stderr)
            return 2
        tracks = generate_demo_library(
            args.dir, seed=args.seed, artists=args.artists, formats=args.formats
        )
        for t in tracks:
            print(f"{t.path}  [{t.format}, {t.duration:.1f} s]")
        albums = len({(t.artist, t.album) for t in tracks})
        print(f"{len(tracks)} tracks, {albums} albums, {len({t.artist for t in tracks})} artists")
        return 0
    status = 0
    for name in args.files:
        try:
            info = _describe(read_tags(name))
        except MediaError as exc:
            print(f"{name}: error {exc.status}: {exc.message}", file=sys.stderr)
            status = 1
            continue
        except OSError as exc:
            print(f"{name}: {exc.strerror or exc}", file=sys.stderr)
            status = 1
            continue
        if args.json:
            print(json.dumps({"file": name, **info}, ensure_ascii=False))
        else:
            print(name)
            for key, value in info.items():
                print(f"  {key:12} {value}")
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
