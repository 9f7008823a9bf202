"""The audio formats the demo library can be written in (no heavy imports: node and gateway
processes read these names for the CLI, and must not load numpy, the demo's synthesizer)."""

from __future__ import annotations

from typing import Final

#: Format name → file extension. ``ogg`` is Ogg Vorbis, ``opus`` is Ogg Opus.
FORMATS: Final[dict[str, str]] = {
    "mp3": ".mp3",
    "flac": ".flac",
    "ogg": ".ogg",
    "opus": ".opus",
    "wav": ".wav",
    "m4a": ".m4a",
}
#: Formats used (one per album, cycling) when none are given: no optional dependency needed.
DEFAULT_FORMATS: Final[tuple[str, ...]] = ("mp3", "flac", "ogg", "opus", "wav")
