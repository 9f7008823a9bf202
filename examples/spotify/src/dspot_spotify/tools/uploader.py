"""The upload loop of an import: each file streamed from disk with ``POST /api/songs``,
on one thread or ``jobs`` threads, transient failures retried with backoff, every answer
recorded in the state file as it comes."""

from __future__ import annotations

import hashlib
import http.client
import json
import queue
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Final

import attrs

from dspot_spotify.client import BLOCK, ApiClient, problem_detail
from dspot_spotify.tools.progress import Progress, human_bytes
from dspot_spotify.tools.state import AudioFile, ImportState

__all__ = ["TRANSIENT_STATUSES", "ImportReport", "Importer", "Interrupted"]

TRANSIENT_STATUSES: Final = frozenset({429, 502, 503, 504})


class Interrupted(Exception):
    """The import was asked to stop while a file was being sent."""


@attrs.define
class ImportReport:
    """What one import run did."""

    uploaded: list[str] = attrs.field(factory=list)
    duplicates: list[str] = attrs.field(factory=list)
    skipped: int = 0
    failed: list[tuple[str, str]] = attrs.field(factory=list)
    """(path, reason) of every file the server refused or that could not be read."""
    aborted: str | None = None
    """Why the run stopped early (interrupt, server unreachable, credentials), if it did."""

    @property
    def exit_status(self) -> int:
        if self.aborted == "interrupted":
            return 130
        return 1 if self.failed or self.aborted else 0


class _Reader:
    """A file as an upload body: hashes what is read, reports progress, stops on request."""

    def __init__(self, f: IO[bytes], on_read: Callable[[int], None], stop: threading.Event) -> None:
        self.f = f
        self.sha = hashlib.sha256()
        self.sent = 0
        self.on_read = on_read
        self.stop = stop

    def read(self, n: int = -1) -> bytes:
        if self.stop.is_set():
            raise Interrupted
        data = self.f.read(n if n > 0 else BLOCK)
        self.sha.update(data)
        self.sent += len(data)
        if data:
            self.on_read(len(data))
        return data


@attrs.frozen
class _Outcome:
    file: AudioFile
    kind: str  # "uploaded" | "already there" | "refused" | "unreadable" | "fatal" | "stopped"
    detail: str
    sha256: str = ""
    song_id: str = ""


class Importer:
    """Uploads a folder's audio files to ``server``, recording progress in ``state``."""

    def __init__(
        self,
        server: ApiClient,
        state: ImportState,
        progress: Progress,
        *,
        jobs: int = 1,
        attempts: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
    ) -> None:
        self.server = server
        self.state = state
        self.progress = progress
        self.jobs = max(1, jobs)
        self.attempts = attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.stop = threading.Event()

    def run(self, files: Sequence[AudioFile]) -> ImportReport:
        """Upload what ``state`` does not list yet; Ctrl-C stops it cleanly (exit 130)."""
        report = ImportReport()
        todo = [f for f in files if not self.state.is_done(f)]
        report.skipped = len(files) - len(todo)
        self.progress.begin(len(todo), sum(f.size for f in todo), report.skipped)
        try:
            for outcome in self._outcomes(todo):
                if self._take(outcome, report):
                    break
        except KeyboardInterrupt:
            report.aborted = "interrupted"
        finally:
            self.stop.set()
            self.progress.end()
        return report

    def _outcomes(self, todo: Sequence[AudioFile]) -> Iterator[_Outcome]:
        if self.jobs == 1:
            for f in todo:
                yield self._upload(f)
            return
        work: queue.Queue[AudioFile] = queue.Queue()
        for f in todo:
            work.put(f)
        results: queue.Queue[_Outcome] = queue.Queue()

        def worker() -> None:
            while not self.stop.is_set():
                try:
                    f = work.get_nowait()
                except queue.Empty:
                    return
                results.put(self._upload(f))

        # Daemon threads: after Ctrl-C a file being sent is abandoned (its reader raises at
        # the next block), never waited for; a rerun finds it done or a duplicate.
        threads = [
            threading.Thread(target=worker, daemon=True, name=f"import-{i}")
            for i in range(min(self.jobs, len(todo)))
        ]
        for t in threads:
            t.start()
        for _ in range(len(todo)):
            while True:
                try:
                    outcome = results.get(timeout=0.2)  # a timeout lets Ctrl-C through
                    break
                except queue.Empty:
                    if not any(t.is_alive() for t in threads) and results.empty():
                        return
            yield outcome

    def _take(self, o: _Outcome, report: ImportReport) -> bool:
        """Record one outcome; True when the whole run must stop."""
        if o.kind == "stopped":
            return True
        if o.kind == "fatal":
            report.aborted = o.detail
            return True
        if o.kind in ("uploaded", "already there"):
            self.state.record(o.file, o.sha256, o.song_id)
            (report.uploaded if o.kind == "uploaded" else report.duplicates).append(o.file.path)
        else:
            report.failed.append((o.file.path, o.detail))
        self.progress.file_done(o.file, o.kind, o.detail)
        return False

    def _upload(self, f: AudioFile) -> _Outcome:
        if self.stop.is_set():
            return _Outcome(f, "stopped", "")
        self.progress.start_file(f)
        name = Path(f.path).name
        path = "/api/songs?filename=" + urllib.parse.quote(name, safe="")
        headers = {"content-type": "application/octet-stream", "content-length": str(f.size)}
        if name.isascii():
            headers["x-filename"] = name
        last = ""
        unreachable = False
        for attempt in range(self.attempts):
            if attempt:
                time.sleep(min(self.max_backoff, self.backoff * 2 ** (attempt - 1)))
                if self.stop.is_set():
                    return _Outcome(f, "stopped", "")
            try:
                fh = open(f.full, "rb")  # noqa: SIM115
            except OSError as e:
                return _Outcome(f, "unreadable", e.strerror or str(e))
            reader = _Reader(fh, lambda n: self.progress.advance(f, n), self.stop)
            try:
                with fh:
                    status, _, data = self.server.request("POST", path, reader, headers)
            except Interrupted:
                return _Outcome(f, "stopped", "")
            except (OSError, http.client.HTTPException) as e:
                if isinstance(e, ssl.SSLCertVerificationError | socket.gaierror):
                    return _Outcome(f, "fatal", self.server.describe(e))
                last = self.server.describe(e)
                # Unreachable (refused, timed out): the whole import waits for a rerun.
                # Reset mid-file while the server is up: this file fails, the others go on.
                unreachable = isinstance(e, ConnectionRefusedError | TimeoutError)
                self.progress.restart_file(f, reader.sent, last)
                continue
            if status in TRANSIENT_STATUSES:
                last = f"HTTP {status}: {problem_detail(data)}"
                unreachable = True  # the cluster cannot take writes now: so for every file
                self.progress.restart_file(f, reader.sent, last)
                continue
            return self._answer(f, status, data, reader.sha.hexdigest())
        reason = f"{f.path} still failing after {self.attempts} tries: {last}"
        return _Outcome(f, "fatal" if unreachable else "refused", reason)

    def _answer(self, f: AudioFile, status: int, data: bytes, sha256: str) -> _Outcome:
        if status in (401, 403):
            return _Outcome(
                f, "fatal", f"the server refused the credentials: {problem_detail(data)}"
            )
        if status not in (200, 201):
            return _Outcome(f, "refused", f"HTTP {status}: {problem_detail(data)}")
        try:
            song = json.loads(data)
            song_id = str(song["id"])
        except (ValueError, KeyError, TypeError):
            return _Outcome(f, "refused", f"HTTP {status} without a song in the answer")
        stored = song.get("blob_sha256")
        if stored is not None and stored != sha256 and status == 201:
            return _Outcome(
                f,
                "refused",
                f"the server got other bytes than were read (sha256 {stored}): "
                "did the file change during the upload?",
            )
        artist = song.get("artist") or song.get("artist_name") or "?"
        detail = f"{artist} - {song.get('title', '?')}, {human_bytes(f.size)}"
        kind = "already there" if status == 200 or song.get("duplicate") else "uploaded"
        return _Outcome(f, kind, detail, sha256, song_id)
