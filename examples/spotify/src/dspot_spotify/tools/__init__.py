"""Client tools of the ``dspot-spotify`` command line: ``import`` and ``status``.

Both talk to the public HTTP API (a node's plain HTTP or the gateway's HTTPS) through the
blocking :class:`~dspot_spotify.client.ApiClient`.

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

The package: :mod:`~dspot_spotify.tools.state` (files and the state file),
:mod:`~dspot_spotify.tools.uploader` (the upload loop), :mod:`~dspot_spotify.tools.progress`
(plain lines or live bars), :mod:`~dspot_spotify.tools.importer`,
:mod:`~dspot_spotify.tools.status`, :mod:`~dspot_spotify.tools.login` and
:mod:`~dspot_spotify.tools.commands` (the command line).
"""

from __future__ import annotations

from dspot_spotify.tools.commands import add_commands, run_command
from dspot_spotify.tools.importer import import_folder
from dspot_spotify.tools.login import Credentials, credentials_from, sign_in
from dspot_spotify.tools.progress import PlainProgress, Progress, RichProgress, human_bytes
from dspot_spotify.tools.state import (
    AUDIO_EXTENSIONS,
    DEFAULT_STATE_NAME,
    AudioFile,
    ImportState,
    scan,
)
from dspot_spotify.tools.status import fetch_cluster, render_status, status
from dspot_spotify.tools.uploader import Importer, ImportReport

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
    "add_commands",
    "credentials_from",
    "fetch_cluster",
    "human_bytes",
    "import_folder",
    "render_status",
    "run_command",
    "scan",
    "sign_in",
    "status",
]
