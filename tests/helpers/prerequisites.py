"""What some tests need beyond Python packages (a built web frontend, Chromium, the
frontend's npm packages), and what happens without it: locally the test is skipped with a
message saying what to install or build; on CI (``CI`` set to anything but ``false`` or
``0``) it fails, since CI installs everything and a silent skip would hide a broken setup."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Final, NoReturn

import pytest

__all__ = ["FRONTEND", "REPO", "on_ci", "require", "require_chromium", "require_frontend_build"]

REPO: Final = Path(__file__).resolve().parents[2]
FRONTEND: Final = REPO / "frontend"


def on_ci() -> bool:
    """Whether the tests run on CI (which must install every prerequisite)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _missing(message: str) -> NoReturn:
    if on_ci():
        pytest.fail(f"{message} (CI must provide it)", pytrace=False)
    pytest.skip(message)


def require(ok: bool, message: str) -> None:
    """Go on if ``ok``; else skip with ``message`` (fail on CI)."""
    if not ok:
        _missing(message)


def require_frontend_build() -> Path:
    """``frontend/dist``, built (``cd frontend && npm ci && npm run build``)."""
    dist = FRONTEND / "dist"
    require(
        (dist / "index.html").is_file(),
        f"{dist} is missing: build the web app first "
        "(cd frontend && npm ci && npm run build; `nox -s frontend` does it)",
    )
    return dist


def require_chromium() -> str:
    """The path of Debian's headless Chromium."""
    path = shutil.which("chromium")
    require(path is not None, "no chromium on PATH: apt-get install chromium")
    assert path is not None
    return path
