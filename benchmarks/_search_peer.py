"""The search benchmark's peer, and reading a node's event-loop lag from ``/metrics``.

The peer answers ``GET /api/songs?q=WORD&limit=N`` the way a conventional Python web stack
would: uvicorn + starlette in one process over plain HTTP, the endpoint a plain function
(starlette runs it in its thread pool), one read-only SQLite connection per thread (with the
node readers' page cache size) on a copy of a node's catalog file, running the catalog's own
query (:func:`dspot_spotify.catalog.list_songs`: the same FTS5 ``MATCH`` and BM25 order) and
answering the same JSON shape (:class:`dspot_spotify.api.songs.Song`, by the API's
converter). The node does the same work behind its own HTTP server, read pool and log
position checks: the ratio is ours against the usual way of serving one SQLite query.

Run as ``python benchmarks/_search_peer.py PORT DBFILE`` (``bench_gateway.py`` does).
"""

from __future__ import annotations

import math
import re
import sqlite3
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any

from dspot.disk import READER_CACHE_KIB

__all__ = ["copy_catalog", "lag_buckets", "lag_quantile_ms", "main"]


def copy_catalog(source: Path, target: Path) -> None:
    """A consistent copy of a running node's SQLite file (the online backup API)."""
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def app(db: Path) -> Any:
    from dspot_spotify import catalog
    from dspot_spotify.api.songs import Song
    from dspot_spotify.api.wire import API_JSON
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    local = threading.local()

    def connection() -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, check_same_thread=False)
            conn.execute(f"PRAGMA cache_size=-{READER_CACHE_KIB}")  # as the node's readers
            local.conn = conn
        return conn

    def songs(request: Request) -> JSONResponse:
        q = request.query_params.get("q")
        limit = int(request.query_params.get("limit", "50"))
        page = catalog.list_songs(connection(), q=q, limit=limit).map(Song.of)
        return JSONResponse(API_JSON.unstructure(page))

    return Starlette(routes=[Route("/api/songs", songs)])


def main(port: int, db: Path) -> None:
    import uvicorn

    uvicorn.run(app(db), host="127.0.0.1", port=port, log_level="warning", access_log=False)


_BUCKET = re.compile(r'^dspot_event_loop_lag_seconds_bucket\{le="([^"]+)"\} (\S+)$', re.M)


def lag_buckets(url: str) -> dict[float, float]:
    """A node's cumulative event-loop lag histogram from its ``/metrics``: {bound: count}."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return {float(le): float(n) for le, n in _BUCKET.findall(text)}


def lag_quantile_ms(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """The ``q`` quantile of the lags measured between two scrapes, in ms, estimated as
    Prometheus' ``histogram_quantile`` does: linearly inside the bucket that holds it (from
    the bucket's lower bound, 0 for the first); ``inf`` beyond the last bound."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1] if counts else 0.0
    if total <= 0:
        return float("nan")
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, seen in zip(bounds, counts, strict=True):
        if seen >= rank:
            if math.isinf(bound):
                return float("inf")
            inside = seen - below
            share = (rank - below) / inside if inside else 1.0
            return (lower + (bound - lower) * share) * 1000
        lower, below = bound, seen
    return float("inf")


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]))
