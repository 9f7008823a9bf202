"""Conditional requests (RFC 9110 section 13): ETag and Last-Modified validators.

Pure functions over header values, evaluated in the RFC's order: ``If-Match``,
``If-Unmodified-Since``, ``If-None-Match``, ``If-Modified-Since``. ``If-Range`` is decided by
:func:`if_range_allows`.
"""

from __future__ import annotations

import email.utils
import re

from dspot.http._message import Headers

_ETAG = re.compile(r'\s*((?:W/)?"[\x21\x23-\x7e\x80-\xff]*")\s*(?:,|$)')


def http_date(timestamp: float) -> str:
    """An IMF-fixdate (``Sun, 06 Nov 1994 08:49:37 GMT``) for a Unix timestamp."""
    return email.utils.formatdate(timestamp, usegmt=True)


def parse_http_date(value: str | None) -> float | None:
    """A Unix timestamp from an HTTP date, or ``None`` if absent or invalid."""
    if not value:
        return None
    try:
        dt = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if dt.tzinfo is None:
        return None
    return dt.timestamp()


def parse_etags(value: str) -> list[str] | None:
    """Entity tags from an ``If-(None-)Match`` value; ``["*"]`` for ``*``; ``None`` if malformed."""
    value = value.strip()
    if value == "*":
        return ["*"]
    tags: list[str] = []
    pos = 0
    while pos < len(value):
        m = _ETAG.match(value, pos)
        if not m:
            return None
        tags.append(m.group(1))
        pos = m.end()
    return tags


def _opaque(tag: str) -> str:
    return tag[2:] if tag.startswith("W/") else tag


def strong_match(a: str, b: str) -> bool:
    return not a.startswith("W/") and not b.startswith("W/") and a == b


def weak_match(a: str, b: str) -> bool:
    return _opaque(a) == _opaque(b)


def evaluate_preconditions(
    method: str, headers: Headers, *, etag: str | None, last_modified: float | None
) -> int | None:
    """The status a conditional request must get instead of the normal one (304 or 412),
    or ``None`` to proceed. ``last_modified`` compares at one-second resolution.
    """
    lm = None if last_modified is None else int(last_modified)
    if_match = headers.get("if-match")
    if if_match is not None:
        tags = parse_etags(if_match) or []
        if not (tags == ["*"] or (etag is not None and any(strong_match(t, etag) for t in tags))):
            return 412
    else:
        ius = parse_http_date(headers.get("if-unmodified-since"))
        if ius is not None and lm is not None and lm > ius:
            return 412
    if_none_match = headers.get("if-none-match")
    safe = method in ("GET", "HEAD")
    if if_none_match is not None:
        tags = parse_etags(if_none_match) or []
        if tags == ["*"] or (etag is not None and any(weak_match(t, etag) for t in tags)):
            return 304 if safe else 412
    elif safe:
        ims = parse_http_date(headers.get("if-modified-since"))
        if ims is not None and lm is not None and lm <= ims:
            return 304
    return None


def if_range_allows(headers: Headers, *, etag: str | None, last_modified: float | None) -> bool:
    """Whether a ``Range`` may be honoured given ``If-Range`` (true when there is none).

    An entity tag must match strongly; a date must equal ``Last-Modified`` exactly.
    """
    value = headers.get("if-range")
    if value is None:
        return True
    value = value.strip()
    if value.startswith(('"', 'W/"')):
        return etag is not None and strong_match(value, etag)
    date = parse_http_date(value)
    return date is not None and last_modified is not None and int(last_modified) == int(date)
