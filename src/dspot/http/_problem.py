"""Errors as RFC 9457 problem documents (``application/problem+json``).

Handlers raise :class:`HTTPError`; the server turns it (and every protocol error it detects
itself) into a problem document with the matching status, so clients always get a machine
readable reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any

import attrs

from dspot.errors import DspotError

PROBLEM_JSON = "application/problem+json"


def status_phrase(status: int) -> str:
    """The standard reason phrase for ``status`` (``"Unknown"`` if there is none)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


@attrs.frozen
class Problem:
    """An RFC 9457 problem document; ``extensions`` are extra top-level members."""

    status: int
    title: str
    detail: str | None = None
    type: str = "about:blank"
    instance: str | None = None
    extensions: Mapping[str, Any] = attrs.field(factory=dict)

    def to_json(self) -> bytes:
        """Serialise: standard members first, ``None`` members omitted."""
        doc: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status}
        if self.detail is not None:
            doc["detail"] = self.detail
        if self.instance is not None:
            doc["instance"] = self.instance
        for key, value in self.extensions.items():
            doc.setdefault(key, value)
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes | str, *, status: int = 0) -> Problem:
        """Parse a problem document; tolerant of missing members (``status`` as fallback)."""
        doc = json.loads(data)
        if not isinstance(doc, dict):
            raise ValueError("a problem document is a JSON object")
        known = {"type", "title", "status", "detail", "instance"}
        doc_status = doc.get("status", status)
        st = doc_status if isinstance(doc_status, int) else status
        return cls(
            status=st,
            title=str(doc.get("title", status_phrase(st))),
            detail=None if doc.get("detail") is None else str(doc["detail"]),
            type=str(doc.get("type", "about:blank")),
            instance=None if doc.get("instance") is None else str(doc["instance"]),
            extensions={k: v for k, v in doc.items() if k not in known},
        )


class HTTPError(DspotError):
    """Raise from a handler to answer with a problem document of status ``status``.

    ``headers`` are added to the response (``Allow`` for 405, ``Content-Range`` for 416...).
    """

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        *,
        title: str | None = None,
        type: str = "about:blank",
        headers: Iterable[tuple[str, str]] = (),
        extensions: Mapping[str, Any] | None = None,
    ) -> None:
        self.problem = Problem(
            status=status,
            title=title or status_phrase(status),
            detail=detail,
            type=type,
            extensions=dict(extensions or {}),
        )
        self.headers = list(headers)
        super().__init__(f"{status} {self.problem.title}" + (f": {detail}" if detail else ""))

    @property
    def status(self) -> int:
        return self.problem.status
