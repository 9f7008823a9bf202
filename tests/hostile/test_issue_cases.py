"""Issue 13's cases, one by one, against a real node (HTTP) and the real gateway (HTTPS).

Each fixed case but one failed on the code before this branch (a 500, a 201 that stored
``"123"``, a TRACE routed like a GET...). Cases that need the example service itself to
change are marked as strict expected failures naming what is missing: they start failing
(XPASS) the day it is fixed, so the mark cannot outlive the bug.
"""

from __future__ import annotations

import json
import socket
import ssl

import pytest

from tests.hostile.processes import Service, split

NEEDS_EXAMPLE = "fixed in the example service, not in the library"


def exchange(
    service: Service, target: str, request: bytes
) -> tuple[int, dict[str, str], bytes, bool]:
    """Send ``request`` (``@TOKEN@`` replaced by a valid bearer token) to the node or the
    gateway; its status, headers, body, and whether it then closed the connection."""
    request = request.replace(b"@TOKEN@", service.token.encode())
    address = service.node_http[0] if target == "node" else service.gateway_https
    sock: socket.socket = socket.create_connection(split(address), timeout=15)
    if target == "gateway":
        sock = service.https_context().wrap_socket(sock, server_hostname="127.0.0.1")
    try:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])
        }
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        closed = False
        if headers.get("connection") == "close":
            sock.settimeout(5)
            try:
                closed = sock.recv(1) == b""
            except (OSError, ssl.SSLError):
                closed = True
        return int(lines[0].split(" ")[1]), headers, body, closed
    finally:
        sock.close()


def request(method: str, path: str, body: bytes | None = None, *, extra: str = "") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: service\r\nAuthorization: Bearer @TOKEN@\r\n"
    head += extra
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + (body or b"")


CASES = {
    "login_nested_json": (
        b"POST /api/auth/login HTTP/1.1\r\nHost: service\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100000\r\n\r\n" + b"[" * 50_000 + b"]" * 50_000,
        {400, 413},  # too deep, or (the service caps JSON bodies at 64 KiB) too large
    ),
    "playlist_lone_surrogate": (
        request("POST", "/api/playlists", b'{"name":"\\ud800x"}'),
        {400, 422},  # not valid text, or not a valid name
    ),
    "playlist_name_number": (request("POST", "/api/playlists", b'{"name":123}'), 422),
    "playlist_name_null": (request("POST", "/api/playlists", b'{"name":null}'), 422),
    "playlist_name_list": (request("POST", "/api/playlists", b'{"name":["a"]}'), 422),
    # (already a 400 before this branch: kept as a guard)
    "log_position_5000_digits": (
        request("GET", "/api/songs", extra="X-Log-Position: " + "9" * 5000 + "\r\n"),
        400,
    ),
    "login_text_plain": pytest.param(
        b"POST /api/auth/login HTTP/1.1\r\nHost: service\r\nContent-Type: text/plain\r\n"
        b'Content-Length: 32\r\n\r\n{"username":"a","password":"bb"}',
        415,
        marks=pytest.mark.xfail(
            strict=True,
            reason="the service reads JSON with its own read_json (api/wire.py), which does not "
            f"check Content-Type as Request.json does; {NEEDS_EXAMPLE}",
        ),
    ),
    "trace": (b"TRACE / HTTP/1.1\r\nHost: service\r\n\r\n", 405),
    "unknown_method": (b"BREW /api/songs HTTP/1.1\r\nHost: service\r\n\r\n", 501),
    "http_2_0": (b"GET /healthz HTTP/2.0\r\nHost: service\r\n\r\n", 505),
    "page_past_every_range": (request("GET", "/api/songs?page=99999999999999999999"), 400),
    "page_2_to_the_62": (request("GET", "/api/songs?page=4611686018427387903"), 400),
}


@pytest.mark.parametrize("target", ["node", "gateway"])
@pytest.mark.parametrize(("raw", "status"), list(CASES.values()), ids=list(CASES))
def test_bad_input_gets_a_clear_4xx(
    serving: Service, target: str, raw: bytes, status: int | set[int]
) -> None:
    got, _, body, _ = exchange(serving, target, raw)
    assert got in (status if isinstance(status, set) else {status}), body[:500]
    if got >= 400:
        assert json.loads(body)["status"] == got, "a problem document"


@pytest.mark.parametrize("target", ["node", "gateway"])
def test_content_length_with_transfer_encoding_is_refused_and_closed(
    serving: Service, target: str
) -> None:
    smuggled = (
        b"POST /api/auth/login HTTP/1.1\r\nHost: service\r\nContent-Type: application/json\r\n"
        b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        b"GET /api/songs HTTP/1.1\r\nHost: service\r\n\r\n"
    )
    status, headers, _, closed = exchange(serving, target, smuggled)
    assert status == 400
    assert headers.get("connection") == "close" and closed


@pytest.mark.xfail(
    strict=True,
    reason="the gateway must set ServerConfig.response_headers (HSTS, nosniff, "
    f"Referrer-Policy, CSP); {NEEDS_EXAMPLE}",
)
def test_the_gateway_sends_security_headers(serving: Service) -> None:
    _, headers, _, _ = exchange(serving, "gateway", b"GET / HTTP/1.1\r\nHost: service\r\n\r\n")
    assert headers.get("strict-transport-security", "").startswith("max-age=")
    assert headers.get("x-content-type-options") == "nosniff"
    assert "referrer-policy" in headers
    assert "default-src" in headers.get("content-security-policy", "")
