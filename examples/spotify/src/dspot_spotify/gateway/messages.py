"""What the gateway changes in a relayed request and its answer: hop-by-hop headers are
dropped, ``X-Forwarded-*`` are the gateway's own; and what it reads off an answer (whether
its body is small, which bytes it covers)."""

from __future__ import annotations

import re
from typing import Final

from dspot.http import ClientResponse, Headers, Request
from dspot.registry import Endpoint

__all__ = [
    "FORWARDED",
    "HOP_BY_HOP",
    "SMALL_RESPONSE",
    "body_span",
    "forward_headers",
    "is_small",
    "response_headers",
]

HOP_BY_HOP: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# Set by the gateway itself: what a client sends under these names is not trusted.
FORWARDED: Final = frozenset(
    {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded"}
)
SMALL_RESPONSE: Final = 64 * 1024
"""Response bodies up to this size (by their ``content-length``) are read whole from the node
before the client sees the head: the client gets them in one write (one TLS record batch,
one system call), and a node failing half-way through one is a retry, not a cut-off body."""
CONTENT_RANGE: Final = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")


def forward_headers(request: Request) -> Headers:
    """The request's end-to-end headers plus ``X-Forwarded-*`` (the client's own are
    replaced: only the gateway knows who connected)."""
    drop = HOP_BY_HOP | FORWARDED | {"host", "expect"}  # 100-continue is answered here
    drop |= {t.lower() for t in request.headers.get_list("connection")}
    kept = [(k, v) for k, v in request.headers if k not in drop]
    client = (request.client or "").rpartition(":")[0].strip("[]") or "unknown"
    kept.append(("x-forwarded-for", client))
    kept.append(("x-forwarded-proto", "https"))
    if (host := request.headers.get("host")) is not None:
        kept.append(("x-forwarded-host", host))
    return Headers(kept)


def response_headers(resp: ClientResponse, ep: Endpoint, *, served_by: bool) -> Headers:
    drop = HOP_BY_HOP | {"server", "date", "x-served-by"}
    drop |= {t.lower() for t in resp.headers.get_list("connection")}
    headers = Headers([(k, v) for k, v in resp.headers if k not in drop])
    return headers.add("x-served-by", ep.instance) if served_by else headers


def is_small(request: Request, resp: ClientResponse) -> bool:
    """Whether the answer has a body of at most :data:`SMALL_RESPONSE` bytes."""
    if request.method == "HEAD" or resp.status in (204, 304) or resp.status < 200:
        return False
    length = resp.headers.get("content-length")
    return length is not None and length.isdigit() and int(length) <= SMALL_RESPONSE


def body_span(resp: ClientResponse) -> tuple[int, int] | None:
    """The first and last byte positions a single-part 200/206 body covers (``None`` when
    unknown, e.g. chunked or multipart)."""
    if resp.status == 200:
        length = resp.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > 0:
            return 0, int(length) - 1
        return None
    if resp.status == 206:
        m = CONTENT_RANGE.match(resp.headers.get("content-range", ""))
        if m:
            return int(m.group(1)), int(m.group(2))
    return None
