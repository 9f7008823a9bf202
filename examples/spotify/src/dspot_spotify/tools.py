"""Client tools of the ``dspot-spotify`` command line: ``import`` and ``status``.

Both talk to the public HTTP API (a node's plain HTTP or the gateway's HTTPS) with the
standard library's blocking :mod:`http.client`; a command line has nothing else to do while
it waits.

``import DIR`` uploads every audio file under DIR (by extension, hidden files and folders
skipped) with ``POST /api/songs``, streaming each file from disk. It is **resumable**: every
file the server accepted (or already had: a duplicate) is appended as one JSON line to a
state file, by default ``DIR/.dspot-import.jsonl`` (``--state`` elsewhere)::

    {"server": "https://host:8443", "path": "Artist/Album/01 - Song.flac", "size": 123,
     "mtime_ns": 1700000000000000000, "sha256": "ab12...", "song_id": "..."}

A rerun against the same server skips the files listed there whose size and modification
time are unchanged, so an import interrupted by Ctrl-C or a network failure continues where
it stopped (the line is written and flushed right after the server's answer; a torn last line
is ignored). Transient failures (502/503/504/429, connection reset or refused, timeouts) are
retried with exponential backoff; refusals (e.g. 413, 415, 422) are listed at the end and
make the exit status 1.

``status`` fetches ``GET /api/cluster`` and prints it as a table (``--json``: as is).
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import hashlib
import http.client
import json
import os
import queue
import socket
import ssl
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Protocol

import attrs

__all__ = [
    "AUDIO_EXTENSIONS",
    "DEFAULT_STATE_NAME",
    "AudioFile",
    "Credentials",
    "ImportReport",
    "ImportState",
    "Importer",
    "PlainProgress",
    "Progress",
    "RichProgress",
    "Server",
    "ToolError",
    "add_commands",
    "import_folder",
    "render_status",
    "run_command",
    "scan",
]

AUDIO_EXTENSIONS = frozenset({".mp3", ".flac", ".ogg", ".opus", ".m4a", ".aac", ".wav"})
DEFAULT_STATE_NAME = ".dspot-import.jsonl"
TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})
BLOCK = 256 * 1024


class Readable(Protocol):
    """A request body sent in blocks (``http.client`` calls ``read(blocksize)``)."""

    def read(self, n: int = -1, /) -> bytes: ...


class ToolError(Exception):
    """A failure reported as one line (unreachable server, bad credentials, bad setting)."""


class HttpFailure(Exception):
    """The server answered with an error status; ``detail`` is its problem ``detail``."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail


class Interrupted(Exception):
    """The import was asked to stop while a file was being sent."""


# -- talking to a server ---------------------------------------------------------------------


@attrs.frozen
class Credentials:
    """A bearer token, or a user name and password to log in with."""

    token: str | None = None
    user: str | None = None
    password: str | None = None


def credentials_from(
    user: str | None, password: str | None, token: str | None, *, command: str
) -> Credentials:
    """Credentials from options, else ``DSPOT_TOKEN`` / ``DSPOT_USER`` + ``DSPOT_PASSWORD``;
    asks for a missing password on a terminal."""
    token = token or os.environ.get("DSPOT_TOKEN")
    user = user or os.environ.get("DSPOT_USER")
    password = password or os.environ.get("DSPOT_PASSWORD")
    if token:
        return Credentials(token=token)
    if not user:
        raise ToolError(f"{command} needs --user (and --password) or --token")
    if password is None:
        if not sys.stdin.isatty():
            raise ToolError(f"no password for {user!r}: pass --password or set DSPOT_PASSWORD")
        password = getpass.getpass(f"password for {user}: ")
    return Credentials(user=user, password=password)


class Server:
    """One HTTP(S) endpoint of the service (``http://HOST:PORT`` or ``https://HOST[:PORT]``).

    Every request opens its own connection: a tool sends few, mostly large, requests.
    """

    def __init__(self, url: str, *, cafile: str | None = None, timeout: float = 60.0) -> None:
        parts = urllib.parse.urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ToolError(f"expected an http:// or https:// URL, got {url!r}")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise ToolError(f"bad port in {url!r}") from None
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = port
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"{self.scheme}://{host}:{self.port}"
        self.timeout = timeout
        self.token: str | None = None
        self._context: ssl.SSLContext | None = None
        if self.scheme == "https":
            from dspot.tls import client_context

            try:
                self._context = client_context(cafile)
            except (OSError, ssl.SSLError) as e:
                raise ToolError(f"cannot load the CA file {cafile}: {e}") from None
        elif cafile is not None:
            raise ToolError("--cafile is for https:// URLs")

    def connect(self) -> http.client.HTTPConnection:
        if self._context is not None:
            return http.client.HTTPSConnection(
                self.host, self.port, timeout=self.timeout, context=self._context, blocksize=BLOCK
            )
        return http.client.HTTPConnection(
            self.host, self.port, timeout=self.timeout, blocksize=BLOCK
        )

    def request(
        self,
        method: str,
        path: str,
        body: bytes | Readable | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """Send one request; returns (status, lower-cased headers, body).

        Raises :class:`OSError` (and :class:`http.client.HTTPException`) when the server
        cannot be reached or hangs up without an answer. A server that answers before it has
        read the whole body (a 413, say) and closes is still heard.
        """
        hdrs = dict(headers or {})
        if self.token:
            hdrs["authorization"] = f"Bearer {self.token}"
        conn = self.connect()
        try:
            # A server may answer and stop reading (a 413): its answer says why.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            conn.close()

    def json(self, method: str, path: str, doc: Any = None) -> Any:
        """A JSON request expecting 2xx; raises :class:`HttpFailure` otherwise."""
        body = None if doc is None else json.dumps(doc).encode()
        headers = {"accept": "application/json"}
        if body is not None:
            headers["content-type"] = "application/json"
        status, _, data = self.request(method, path, body, headers)
        if not 200 <= status < 300:
            raise HttpFailure(status, problem_detail(data))
        return json.loads(data) if data else None

    def describe(self, exc: BaseException) -> str:
        """A one-line reason why talking to this server failed."""
        if isinstance(exc, ssl.SSLCertVerificationError):
            return (
                f"TLS certificate of {self.url} not trusted ({exc.verify_message}); "
                "pass the CA with --cafile"
            )
        if isinstance(exc, socket.gaierror):
            return f"cannot resolve {self.host}: {exc.strerror}"
        if isinstance(exc, ConnectionRefusedError):
            return f"cannot reach {self.url}: connection refused"
        if isinstance(exc, TimeoutError):
            return f"cannot reach {self.url}: timed out"
        if isinstance(exc, OSError):
            return f"cannot reach {self.url}: {exc.strerror or exc}"
        return f"{self.url}: {exc or type(exc).__name__}"

    def authenticate(self, creds: Credentials) -> None:
        """Use ``creds``: keep the token, or log in; :class:`ToolError` if they are refused."""
        if creds.token is not None:
            self.token = creds.token
            return
        try:
            doc = self.json(
                "POST", "/api/auth/login", {"username": creds.user, "password": creds.password}
            )
        except HttpFailure as e:
            if e.status in (400, 401, 403, 422):
                raise ToolError(f"login as {creds.user!r} refused: {e.detail}") from None
            raise ToolError(f"login at {self.url} failed: {e}") from None
        except (OSError, http.client.HTTPException) as e:
            raise ToolError(self.describe(e)) from None
        self.token = str(doc["token"])


def problem_detail(data: bytes) -> str:
    """The ``detail`` (else ``title``) of a problem document, else the start of the body."""
    try:
        doc = json.loads(data)
        return str(doc.get("detail") or doc.get("title") or doc)
    except (ValueError, AttributeError):
        return data[:200].decode(errors="replace").strip() or "(no detail)"


# -- import: what is on disk and what is done ---------------------------------------------------


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
            raise ToolError(f"cannot read the state file {path}: {e.strerror or e}") from None
        try:
            self._out: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115
            if self._out.tell() > 0 and not path.read_bytes().endswith(b"\n"):
                self._out.write("\n")  # end a torn line, or the next one would join it
        except OSError as e:
            raise ToolError(
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


# -- import: progress --------------------------------------------------------------------------


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


# -- import: the upload loop -------------------------------------------------------------------


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
        server: Server,
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


def import_folder(
    root: Path,
    server: Server,
    creds: Credentials,
    *,
    state_path: Path | None = None,
    jobs: int = 1,
    progress: Progress | None = None,
    out: IO[str] | None = None,
    backoff: float = 0.5,
) -> ImportReport:
    """``dspot-spotify import``: log in, upload what is new, print a summary."""
    out = out or sys.stdout
    if not root.is_dir():
        raise ToolError(f"{root} is not a directory")
    if jobs < 1:
        raise ToolError("--jobs must be at least 1")
    files = scan(root)
    if not files:
        raise ToolError(
            f"no audio files under {root} (looked for {', '.join(sorted(AUDIO_EXTENSIONS))})"
        )
    server.authenticate(creds)
    state = ImportState(state_path or root / DEFAULT_STATE_NAME, server.url)
    try:
        if progress is None:
            progress = RichProgress() if out.isatty() else PlainProgress(out)
        report = Importer(server, state, progress, jobs=jobs, backoff=backoff).run(files)
    finally:
        state.close()
    print(
        f"{len(report.uploaded)} uploaded, {len(report.duplicates)} already on the server, "
        f"{report.skipped} skipped (imported before), {len(report.failed)} failed",
        file=out,
    )
    for path, reason in report.failed:
        print(f"  failed: {path}: {reason}", file=out)
    if report.aborted == "interrupted":
        print(f"interrupted; progress is saved in {state.path}: rerun to continue", file=out)
    elif report.aborted:
        print(f"stopped: {report.aborted}; rerun to continue", file=out)
    out.flush()
    return report


# -- status ------------------------------------------------------------------------------------


def fetch_cluster(server: Server, creds: Credentials) -> dict[str, Any]:
    """``GET /api/cluster`` (after logging in); :class:`ToolError` with one line on failure."""
    server.authenticate(creds)
    try:
        doc = server.json("GET", "/api/cluster")
    except HttpFailure as e:
        if e.status in (401, 403):
            raise ToolError(f"the server refused the credentials: {e.detail}") from None
        raise ToolError(f"{server.url}/api/cluster answered {e}") from None
    except (OSError, http.client.HTTPException) as e:
        raise ToolError(server.describe(e)) from None
    except ValueError:
        raise ToolError(f"{server.url}/api/cluster did not answer JSON") from None
    if not isinstance(doc, dict):
        raise ToolError(f"{server.url}/api/cluster did not answer a JSON object")
    return doc


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def render_status(doc: dict[str, Any]) -> str:
    """The ``/api/cluster`` document as text: a summary, the members, the songs at risk."""
    token = doc.get("token") or {}
    lines = [
        f"answered by {_cell(doc.get('node'))}: quorum {'yes' if doc.get('quorum') else 'NO'}, "
        f"log position {_cell(doc.get('log_position'))}, "
        f"token holder {_cell(token.get('holder'))} (epoch {_cell(token.get('epoch'))})",
        f"songs {_cell(doc.get('songs'))}, replication R={_cell(doc.get('replication'))}, "
        f"under-replicated {_cell(doc.get('under_replicated'))}",
        "",
    ]
    header = ("ID", "ROLE", "STATE", "HTTP", "RPC", "LOG", "BLOBS", "BYTES")
    rows = [header]
    for m in sorted(doc.get("members") or [], key=lambda m: str(m.get("id"))):
        size = m.get("bytes")
        rows.append(
            (
                _cell(m.get("id")) + (" *" if m.get("id") == token.get("holder") else ""),
                _cell(m.get("role")),
                _cell(m.get("state")),
                _cell(m.get("http")),
                _cell(m.get("address")),
                _cell(m.get("log_position")),
                _cell(m.get("blobs")),
                "-" if size is None else human_bytes(size),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.append("(* holds the token)")
    under = doc.get("under_replicated_songs") or []
    if under:
        lines += ["", "under-replicated songs:"]
        for s in under[:20]:
            lines.append(
                f"  {s.get('title')} ({s.get('id')}): {s.get('copies')} of {s.get('wanted')} copies"
            )
        if len(under) > 20:
            lines.append(f"  ... and {len(under) - 20} more")
    return "\n".join(lines)


def status(server: Server, creds: Credentials, *, as_json: bool, out: IO[str]) -> int:
    """``dspot-spotify status``: print the cluster (exit status 0 once it answered)."""
    doc = fetch_cluster(server, creds)
    if as_json:
        print(json.dumps(doc, indent=2, ensure_ascii=False), file=out)
    else:
        print(render_status(doc), file=out)
    return 0


# -- command line -------------------------------------------------------------------------------


def add_commands(sub: Any) -> None:
    """Add ``import`` and ``status`` to the ``dspot-spotify`` subcommands (``sub`` is the
    ``argparse`` subparsers object)."""

    def connection(p: argparse.ArgumentParser) -> None:
        p.add_argument("--url", required=True, help="the gateway (https://HOST:PORT) or a node")
        p.add_argument("--cafile", help="CA certificate to trust for an https:// URL")
        p.add_argument("--user", help="user name to log in with (or DSPOT_USER)")
        p.add_argument("--password", help="its password (or DSPOT_PASSWORD; asked if missing)")
        p.add_argument("--token", help="a bearer token instead of --user (or DSPOT_TOKEN)")

    imp = sub.add_parser(
        "import",
        help="upload a folder of audio files (resumable)",
        description="Upload every audio file under DIR. Files already imported (per the "
        f"state file, default DIR/{DEFAULT_STATE_NAME}) are skipped, so an interrupted "
        "import continues where it stopped.",
    )
    imp.add_argument("dir", type=Path, help="folder to import (searched recursively)")
    connection(imp)
    imp.add_argument("--jobs", type=int, default=1, help="files uploaded at once (default 1)")
    imp.add_argument("--state", type=Path, help=f"state file (default DIR/{DEFAULT_STATE_NAME})")

    st = sub.add_parser("status", help="print the cluster: members, token, replication")
    connection(st)
    st.add_argument("--json", action="store_true", help="print the /api/cluster document")


def run_command(args: argparse.Namespace) -> int:
    """Run ``import`` or ``status``; returns the exit status (2 for a one-line error)."""
    try:
        server = Server(args.url, cafile=args.cafile)
        creds = credentials_from(args.user, args.password, args.token, command=args.command)
        if args.command == "status":
            return status(server, creds, as_json=args.json, out=sys.stdout)
        report = import_folder(
            args.dir, server, creds, state_path=args.state, jobs=args.jobs, out=sys.stdout
        )
        return report.exit_status
    except ToolError as e:
        print(f"dspot-spotify {args.command}: {e}", file=sys.stderr)
        return 2
