"""What an import works on: the audio files under a folder, and the state file that lists
those already imported (per server), so a rerun continues where the last one stopped."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any, Final

import attrs

from dspot_spotify.client import ClientError

__all__ = ["AUDIO_EXTENSIONS", "DEFAULT_STATE_NAME", "AudioFile", "ImportState", "scan"]

AUDIO_EXTENSIONS: Final = frozenset({".mp3", ".flac", ".ogg", ".opus", ".m4a", ".aac", ".wav"})
DEFAULT_STATE_NAME: Final = ".dspot-import.jsonl"


@attrs.frozen
class AudioFile:
    """One audio file under the imported folder (``path`` is relative, with ``/``)."""

    path: str
    full: Path
    size: int
    mtime_ns: int


def scan(root: Path) -> list[AudioFile]:
    """Every audio file under ``root`` by extension, hidden entries skipped, sorted by path."""
    found: list[AudioFile] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if name.startswith(".") or Path(name).suffix.lower() not in AUDIO_EXTENSIONS:
                continue
            full = Path(dirpath, name)
            try:
                st = full.stat()
            except OSError:
                continue
            found.append(
                AudioFile(full.relative_to(root).as_posix(), full, st.st_size, st.st_mtime_ns)
            )
    found.sort(key=lambda f: f.path)
    return found


class ImportState:
    """The files already imported, per server: an append-only JSON-lines file.

    Appending one flushed line per file keeps a crash from losing more than the file being
    sent, and a huge import from rewriting a huge file after every song.
    """

    def __init__(self, path: Path, server: str) -> None:
        self.path = path
        self.server = server
        self.done: dict[str, dict[str, Any]] = {}
        try:
            with open(path, encoding="utf-8") as f:
                for line in f:
                    try:
                        row = json.loads(line)
                    except ValueError:
                        continue  # a line torn by a crash
                    if isinstance(row, dict) and row.get("server") == server:
                        self.done[str(row.get("path"))] = row
        except FileNotFoundError:
            pass
        except OSError as e:
            raise ClientError(f"cannot read the state file {path}: {e.strerror or e}") from None
        try:
            self._out: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115
            if self._out.tell() > 0 and not path.read_bytes().endswith(b"\n"):
                self._out.write("\n")  # end a torn line, or the next one would join it
        except OSError as e:
            raise ClientError(
                f"cannot write the state file {path}: {e.strerror or e} (choose one with --state)"
            ) from None

    def is_done(self, f: AudioFile) -> bool:
        row = self.done.get(f.path)
        return row is not None and row.get("size") == f.size and row.get("mtime_ns") == f.mtime_ns

    def record(self, f: AudioFile, sha256: str, song_id: str) -> None:
        row = {
            "server": self.server,
            "path": f.path,
            "size": f.size,
            "mtime_ns": f.mtime_ns,
            "sha256": sha256,
            "song_id": song_id,
        }
        self._out.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._out.flush()
        os.fsync(self._out.fileno())
        self.done[f.path] = row

    def close(self) -> None:
        self._out.close()
