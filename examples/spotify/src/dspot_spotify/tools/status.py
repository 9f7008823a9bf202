"""``dspot-spotify status``: ``GET /api/cluster``, printed as a table (``--json``: as is)."""

from __future__ import annotations

import http.client
import json
from typing import IO, Any

from dspot_spotify.client import ApiClient, ApiError, ClientError
from dspot_spotify.tools.login import Credentials, sign_in
from dspot_spotify.tools.progress import human_bytes

__all__ = ["fetch_cluster", "render_status", "status"]


def fetch_cluster(server: ApiClient, creds: Credentials) -> dict[str, Any]:
    """``GET /api/cluster`` (after logging in); :class:`ClientError` with one line on failure."""
    sign_in(server, creds)
    try:
        doc = server.json("GET", "/api/cluster")
    except ApiError as e:
        if e.status in (401, 403):
            raise ClientError(f"the server refused the credentials: {e.detail}") from None
        raise ClientError(f"{server.url}/api/cluster answered {e}") from None
    except (OSError, http.client.HTTPException) as e:
        raise ClientError(server.describe(e)) from None
    except ValueError:
        raise ClientError(f"{server.url}/api/cluster did not answer JSON") from None
    if not isinstance(doc, dict):
        raise ClientError(f"{server.url}/api/cluster did not answer a JSON object")
    return doc


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def _ms(value: Any) -> str:
    """A lag in milliseconds, as the table shows it."""
    if not isinstance(value, int | float):
        return "-"
    return f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"


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
    header = (
        *("ID", "ROLE", "STATE", "HTTP", "RPC", "LOG", "BLOBS", "BYTES"),
        *("STALL 1m", "LAG p99", "RESTARTS"),
    )
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
                _ms(m.get("loop_lag_worst_ms")),
                _ms(m.get("loop_lag_p99_ms")),
                _cell(m.get("restarts")),
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


def status(server: ApiClient, creds: Credentials, *, as_json: bool, out: IO[str]) -> int:
    """``dspot-spotify status``: print the cluster (exit status 0 once it answered)."""
    doc = fetch_cluster(server, creds)
    if as_json:
        print(json.dumps(doc, indent=2, ensure_ascii=False), file=out)
    else:
        print(render_status(doc), file=out)
    return 0
