"""``dspot-spotify import DIR``: sign in, upload what is new, print a summary."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO

from dspot_spotify.client import ApiClient, ClientError
from dspot_spotify.tools.login import Credentials, sign_in
from dspot_spotify.tools.progress import PlainProgress, Progress, RichProgress
from dspot_spotify.tools.state import AUDIO_EXTENSIONS, DEFAULT_STATE_NAME, ImportState, scan
from dspot_spotify.tools.uploader import Importer, ImportReport

__all__ = ["import_folder"]


def import_folder(
    root: Path,
    server: ApiClient,
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
        raise ClientError(f"{root} is not a directory")
    if jobs < 1:
        raise ClientError("--jobs must be at least 1")
    files = scan(root)
    if not files:
        raise ClientError(
            f"no audio files under {root} (looked for {', '.join(sorted(AUDIO_EXTENSIONS))})"
        )
    sign_in(server, creds)
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
