"""Serving a directory: safe path resolution, content types, validators, ranges.

Paths are checked twice: every decoded segment is rejected if it could climb (``..``, ``.``)
or smuggle a separator or terminator (``\\``, NUL), and the resolved real path (symlinks
followed) must still lie inside the root. Files are streamed in chunks and never read whole;
over plain TCP the kernel sends them (:class:`~dspot.http.FileSlice`).
"""

from __future__ import annotations

import mimetypes
import os
import stat
from pathlib import Path

import anyio
import anyio.to_thread

from dspot.http._message import Request, Response
from dspot.http._problem import HTTPError
from dspot.http._range import ReadSlice, file_reader, representation_response


def content_type_for(name: str) -> str:
    """The ``Content-Type`` for a file name (``mimetypes``), with charset for text."""
    ctype, encoding = mimetypes.guess_type(name, strict=False)
    if ctype is None or encoding is not None:
        return "application/octet-stream"
    if ctype.startswith("text/") or ctype in ("application/javascript", "application/json"):
        return f"{ctype}; charset=utf-8"
    return ctype


def safe_relative_path(path: str) -> str:
    """A root-relative path from a decoded URL path; raises 400 for anything that could
    escape the root or confuse the file system."""
    if "\x00" in path or "\\" in path:
        raise HTTPError(400, "invalid character in path")
    parts = [p for p in path.split("/") if p]
    for part in parts:
        if part in (".", ".."):
            raise HTTPError(400, "invalid path segment")
    return "/".join(parts)


class StaticFiles:
    """A handler serving files under ``root``.

    Mount it with ``router.mount("/assets", StaticFiles(...))`` (the rest of the path comes
    from ``path_params["path"]``) or use it as the whole app. Directories serve their
    ``index``. With ``spa=True`` a missing path without a file extension serves the root
    ``index`` (client-side routing) with ``Cache-Control: no-cache``. Dot files and
    directories (``.git``, ``.env``) are not served unless ``hidden=True``; ``.well-known``
    always is.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        spa: bool = False,
        index: str = "index.html",
        cache_control: str = "public, max-age=0, must-revalidate",
        chunk_size: int = 1024 * 1024,
        hidden: bool = False,
    ) -> None:
        if not mimetypes.inited:
            mimetypes.init()  # reads the system tables now, not inside a request
        self.root = Path(root).resolve(strict=True)
        if not self.root.is_dir():
            raise NotADirectoryError(self.root)
        self.spa = spa
        self.index = index
        self.cache_control = cache_control
        self.chunk_size = chunk_size
        self.hidden = hidden

    async def __call__(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            raise HTTPError(405, "static files are read-only", headers=[("allow", "GET, HEAD")])
        raw = request.path_params.get("path", request.path)
        rel = safe_relative_path(raw)
        if not self.hidden and any(
            p.startswith(".") and p != ".well-known" for p in rel.split("/")
        ):
            raise HTTPError(404, f"no file at /{rel}")  # .git, .env...: never served
        found = await self._find(rel)
        cache_control = self.cache_control
        if found is None and self.spa and "." not in rel.rsplit("/", 1)[-1]:
            found = await self._find(self.index)
            cache_control = "no-cache"
        if found is None:
            raise HTTPError(404, f"no file at /{rel}")
        path, st = found
        return representation_response(
            request,
            size=st.st_size,
            read=self._reader(path),
            content_type=content_type_for(path.name),
            etag=f'"{st.st_size:x}-{st.st_mtime_ns:x}"',
            last_modified=st.st_mtime,
            headers=[("cache-control", cache_control), ("x-content-type-options", "nosniff")],
        )

    async def _find(self, rel: str) -> tuple[Path, os.stat_result] | None:
        """The regular file for ``rel`` (a directory's index) inside the root, or ``None``."""
        return await anyio.to_thread.run_sync(self._find_sync, rel)  # one trip to a thread

    def _find_sync(self, rel: str) -> tuple[Path, os.stat_result] | None:
        try:
            real = Path(self.root, rel).resolve(strict=True)
            if not real.is_relative_to(self.root):
                return None  # a symlink pointing outside the root
            st = real.stat()
            if stat.S_ISDIR(st.st_mode):
                real = Path(real, self.index).resolve(strict=True)
                if not real.is_relative_to(self.root):
                    return None
                st = real.stat()
        except (OSError, ValueError):
            return None
        return (real, st) if stat.S_ISREG(st.st_mode) else None

    def _reader(self, path: Path) -> ReadSlice:
        return file_reader(path, self.chunk_size)
