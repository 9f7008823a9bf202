"""A blocking client of the service's HTTP API, for command-line tools, scripts and tests.

:class:`ApiClient` talks to a node (``http://HOST:PORT``) or to the gateway
(``https://HOST[:PORT]``, verified against a CA file, else the system trust store) with the
standard library's :mod:`http.client`: a command line has nothing else to do while it waits,
and every request opens its own connection (tools send few, mostly large, requests).

It keeps the newest ``X-Log-Position`` any answer carried and sends it with every request,
so a read through the gateway, on whichever node, sees this client's own writes.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import socket
import ssl
import urllib.parse
from collections.abc import Collection
from pathlib import Path
from typing import Any, Final, Protocol

__all__ = ["BLOCK", "ApiClient", "ApiError", "ClientError", "Readable", "problem_detail"]

BLOCK: Final = 256 * 1024
"""Bytes sent and received per socket call."""
_POSITION: Final = re.compile(r"^[0-9]{1,19}\.[0-9]{1,19}$")


class ClientError(Exception):
    """A failure reported as one line (a bad URL or CA file, bad credentials, no server)."""


class ApiError(Exception):
    """The server answered with an error status; ``detail`` is its problem's ``detail``."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail


class Readable(Protocol):
    """A request body sent in blocks (``http.client`` calls ``read(blocksize)``)."""

    def read(self, n: int = -1, /) -> bytes: ...


def problem_detail(data: bytes) -> str:
    """The ``detail`` (else ``title``) of a problem document, else the start of the body."""
    try:
        doc = json.loads(data)
        return str(doc.get("detail") or doc.get("title") or doc)
    except (ValueError, AttributeError):
        return data[:200].decode(errors="replace").strip() or "(no detail)"


class ApiClient:
    """Blocking calls to one HTTP(S) endpoint of the service."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        cafile: str | os.PathLike[str] | None = None,
        timeout: float = 60.0,
    ) -> None:
        parts = urllib.parse.urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ClientError(f"expected an http:// or https:// URL, got {url!r}")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise ClientError(f"bad port in {url!r}") from None
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = port
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"{self.scheme}://{host}:{self.port}"
        self.timeout = timeout
        self.token = token
        self.log_position: str | None = None
        """The newest ``X-Log-Position`` an answer carried; sent with every request."""
        self._context: ssl.SSLContext | None = None
        if self.scheme == "https":
            from dspot.tls import client_context

            try:
                self._context = client_context(cafile)
            except (OSError, ssl.SSLError) as e:
                raise ClientError(f"cannot load the CA file {cafile}: {e}") from None
        elif cafile is not None:
            raise ClientError("a CA file is for https:// URLs")

    def connection(self) -> http.client.HTTPConnection:
        """A new connection to the server (HTTPS when the URL said so); the caller closes it."""
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
        if self.log_position and not any(k.lower() == "x-log-position" for k in hdrs):
            hdrs["x-log-position"] = self.log_position
        conn = self.connection()
        try:
            # A server may answer and stop reading (a 413): its answer says why.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            got = {k.lower(): v for k, v in resp.getheaders()}
        finally:
            conn.close()
        if (pos := got.get("x-log-position")) is not None:
            self._saw_position(pos)
        return resp.status, got, data

    def _saw_position(self, pos: str) -> None:
        def key(p: str) -> tuple[int, ...]:
            return tuple(int(x) for x in p.split(".")) if _POSITION.match(p) else ()

        if key(pos) and (self.log_position is None or key(pos) > key(self.log_position)):
            self.log_position = pos

    def json(
        self, method: str, path: str, doc: Any = None, ok: Collection[int] | None = None
    ) -> Any:
        """A JSON request; the parsed answer (None if empty) when its status is in ``ok``
        (default: any 2xx), else :class:`ApiError`."""
        body = None if doc is None else json.dumps(doc).encode()
        headers = {"accept": "application/json"}
        if body is not None:
            headers["content-type"] = "application/json"
        status, _, data = self.request(method, path, body, headers)
        if (status not in ok) if ok is not None else not 200 <= status < 300:
            raise ApiError(status, problem_detail(data))
        return json.loads(data) if data else None

    def register(self, username: str, password: str) -> dict[str, Any]:
        """``POST /api/auth/register`` (201); the new session."""
        doc = {"username": username, "password": password}
        session: dict[str, Any] = self.json("POST", "/api/auth/register", doc, (201,))
        return session

    def login(self, username: str, password: str) -> dict[str, Any]:
        """``POST /api/auth/login``; keeps the token for the next requests."""
        doc = {"username": username, "password": password}
        session: dict[str, Any] = self.json("POST", "/api/auth/login", doc, (200,))
        self.token = session["token"]
        return session

    def upload(self, path: Path) -> tuple[int, dict[str, Any]]:
        """POST one file; (201, song) when new, (200, song) when already there."""
        name = urllib.parse.quote(path.name)
        status, _, data = self.request(
            "POST",
            f"/api/songs?filename={name}",
            path.read_bytes(),
            {"content-type": "application/octet-stream"},
        )
        if status not in (200, 201):
            raise ApiError(status, problem_detail(data))
        return status, json.loads(data)

    def song_count(self) -> int:
        """How many songs the catalog lists."""
        return int(self.json("GET", "/api/songs?limit=1")["total"])

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
