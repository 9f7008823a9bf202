"""How an import shows its progress: one line per file, or live bars on a terminal."""

from __future__ import annotations

import sys
import threading
from typing import IO, Any, Protocol

from dspot_spotify.tools.state import AudioFile

__all__ = ["PlainProgress", "Progress", "RichProgress", "human_bytes"]


class Progress(Protocol):
    """What an import reports as it goes. ``start_file``, ``advance`` and ``restart_file``
    are called by the uploading threads (several with ``--jobs``); ``begin``, ``file_done``
    and ``end`` by the thread that runs the import."""

    def begin(self, files: int, total_bytes: int, skipped: int) -> None: ...

    def start_file(self, f: AudioFile) -> None: ...

    def advance(self, f: AudioFile, nbytes: int) -> None: ...

    def restart_file(self, f: AudioFile, sent: int, reason: str) -> None: ...

    def file_done(self, f: AudioFile, outcome: str, detail: str) -> None: ...

    def end(self) -> None: ...


class PlainProgress:
    """One line per file, for logs and pipes (no terminal control codes)."""

    def __init__(self, out: IO[str] | None = None) -> None:
        self.out = out or sys.stdout
        self.files = 0
        self.index = 0

    def _say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def begin(self, files: int, total_bytes: int, skipped: int) -> None:
        self.files = files
        self._say(
            f"{files} files to upload ({human_bytes(total_bytes)}); "
            f"{skipped} already imported (state file)"
        )

    def start_file(self, f: AudioFile) -> None:
        pass

    def advance(self, f: AudioFile, nbytes: int) -> None:
        pass

    def restart_file(self, f: AudioFile, sent: int, reason: str) -> None:
        self._say(f"  retrying {f.path}: {reason}")

    def file_done(self, f: AudioFile, outcome: str, detail: str) -> None:
        self.index += 1
        self._say(f"[{self.index}/{self.files}] {outcome}: {f.path} ({detail})")

    def end(self) -> None:
        pass


class RichProgress:
    """A bytes-based overall bar and one bar per file being sent (``rich``), for terminals."""

    def __init__(self, console: Any = None) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )
        from rich.progress import Progress as RichBars

        self.bars = RichBars(
            TextColumn("{task.description}", justify="left", markup=False),  # file names
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,  # a rich Console; None: the terminal
            transient=False,
        )
        self.overall: Any = None
        self.tasks: dict[str, Any] = {}
        self.files = 0
        self.index = 0
        self.lock = threading.Lock()

    def begin(self, files: int, total_bytes: int, skipped: int) -> None:
        self.files = files
        self.bars.console.print(
            f"{files} files to upload ({human_bytes(total_bytes)}); "
            f"{skipped} already imported (state file)",
            markup=False,
            highlight=False,
        )
        self.overall = self.bars.add_task(f"total 0/{files}", total=total_bytes)
        self.bars.start()

    def start_file(self, f: AudioFile) -> None:
        name = f.path if len(f.path) <= 40 else "…" + f.path[-39:]
        with self.lock:
            self.tasks[f.path] = self.bars.add_task(f"  {name}", total=f.size)

    def advance(self, f: AudioFile, nbytes: int) -> None:
        task = self.tasks.get(f.path)
        if task is not None:
            self.bars.advance(task, nbytes)
        self.bars.advance(self.overall, nbytes)

    def restart_file(self, f: AudioFile, sent: int, reason: str) -> None:
        task = self.tasks.get(f.path)
        if task is not None:
            self.bars.reset(task)
        self.bars.advance(self.overall, -sent)
        self.bars.console.print(f"retrying {f.path}: {reason}", markup=False, highlight=False)

    def file_done(self, f: AudioFile, outcome: str, detail: str) -> None:
        self.index += 1
        with self.lock:
            task = self.tasks.pop(f.path, None)
        if task is not None:
            self.bars.remove_task(task)
        self.bars.update(self.overall, description=f"total {self.index}/{self.files}")
        if outcome not in ("uploaded", "already there"):
            from rich.text import Text

            self.bars.console.print(Text.assemble((outcome, "red"), f": {f.path} ({detail})"))

    def end(self) -> None:
        self.bars.stop()


def human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")
