"""Hypothesis against real processes: raw RPC frames (before and after a correct handshake)
and raw HTTP requests to a node and to the gateway (HTTPS). Whatever arrives, every process
lives on, and afterwards the cluster serves with every member alive (the ``serving``
fixture checks ``/healthz`` everywhere and ``/api/cluster`` on every node). Which status each
kind of bad input gets is pinned down case by case in ``test_issue_cases.py``.

Bounded: a fixed number of derandomized examples per target (CI sees the same inputs every
run), each a fresh connection that is read for a moment and dropped.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import ssl

from dspot_spotify.process.supervisor import NodeProcess
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.hostile.processes import (
    Service,
    authenticated_rpc,
    raw_frame,
    rpc_listener_answers,
    split,
)

FUZZ = settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# -- strategies -------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
nested = st.builds(
    lambda depth, opener, balanced: opener * depth + (b"]" * depth if balanced else b""),
    st.integers(50, 3000),
    st.sampled_from([b"[", b'{"a":[']),
    st.booleans(),
)
metas = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {"node": json_values, "boot": json_values, "nonce": json_values, "proof": json_values}
    ).map(lambda v: json.dumps(v).encode()),
    nested,
    st.binary(max_size=300),
    st.just(b'{"nonce":"\\ud800"}'),
)
names = st.one_of(
    st.sampled_from([b"hello", b"auth", b"membership.ping", b"blob.read", b"nope"]),
    st.binary(max_size=12),
)


@st.composite
def frames(draw: st.DrawFn, kinds: st.SearchStrategy[int]) -> bytes:
    """A frame whose fields are mostly honest, sometimes lying about lengths or versions."""
    meta = draw(metas)
    name = draw(names)
    payload = draw(st.binary(max_size=64))
    data = raw_frame(draw(kinds), name, meta, payload, msg_id=draw(st.integers(0, 2**64 - 1)))
    lie = draw(st.integers(0, 9))
    if lie == 0:
        data = data[: draw(st.integers(0, len(data)))]  # truncated
    elif lie == 1:
        fake = draw(st.sampled_from([2**32 - 1, 2**31, 16 * 1024 * 1024 + 1, 4097]))
        data = data[:18] + fake.to_bytes(4, "big") + data[22:]  # meta length lies
    elif lie == 2:
        data = data[:2] + bytes([draw(st.integers(0, 255))]) + data[3:]  # version
    return data


rpc_garbage = st.one_of(st.binary(max_size=600), frames(st.sampled_from([1, 1, 3, 4, 7, 255])))
after_auth = st.lists(frames(st.sampled_from([4, 4, 4, 5, 6, 1, 3, 0])), min_size=1, max_size=3)

tokens = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=8)
methods = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "TRACE", "CONNECT", "FOO"])
targets = st.one_of(
    st.sampled_from(
        [
            "/",
            "/healthz",
            "/api/songs?page=99999999999999999999",
            "/api/songs?page=4611686018427387903&limit=-5",
            "/api/auth/login",
            "/api/auth/register",
            "/api/playlists",
            "/rest/ping.view?u=a&p=enc:zz",
            "/metrics",
            "/%2e%2e/%2e%2e/etc/passwd",
        ]
    ),
    tokens.map(lambda t: "/api/" + t),
)
versions = st.sampled_from(["HTTP/1.1", "HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/0.9", "XTTP/1.1"])
bodies = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    nested,
    st.just(b'{"username":"\\ud800x","password":"p"}'),
    st.just(b'{"name":' + b"9" * 5000 + b"}"),
    st.binary(max_size=200),
)
content_types = st.sampled_from(
    ["application/json", "text/plain", "application/x-www-form-urlencoded", None]
)
extra_headers = st.lists(
    st.sampled_from(
        [
            ("Transfer-Encoding", "chunked"),
            ("X-Log-Position", "9" * 5000),
            ("X-Log-Position", "1.999999999999999999"),
            ("Authorization", "Bearer abc.def.ghi"),
            ("Range", "bytes=99999999999999999999-"),
            ("Expect", "100-continue"),
            ("X-Big", "a" * 20_000),
        ]
    ),
    max_size=3,
)


TOKEN = b"@TOKEN@"  # replaced by a real bearer token before sending

json_endpoints = st.sampled_from(
    [
        ("POST", "/api/auth/login"),
        ("POST", "/api/auth/register"),
        ("POST", "/api/playlists"),
        ("PATCH", "/api/playlists/x"),
        ("PUT", "/api/me/password"),
    ]
)
numbers = st.one_of(
    st.sampled_from(["99999999999999999999", "4611686018427387903", "-1", "1e3", "9" * 5000]),
    st.integers().map(str),
)


@st.composite
def json_requests(draw: st.DrawFn) -> bytes:
    """A well-formed request to a JSON endpoint, with a body or parameters meant to hurt."""
    method, path = draw(json_endpoints)
    body = draw(bodies)
    content_type = draw(st.sampled_from(["application/json", "application/json", "text/plain"]))
    lines = [f"{method} {path} HTTP/1.1", "Host: fuzz", f"Content-Type: {content_type}"]
    lines += [f"Content-Length: {len(body)}", "Connection: close"]
    head = "\r\n".join(lines).encode()
    if draw(st.booleans()):
        head += b"\r\nAuthorization: Bearer " + TOKEN
    return head + b"\r\n\r\n" + body


@st.composite
def query_requests(draw: st.DrawFn) -> bytes:
    """A GET whose integers (query, X-Log-Position) are out of every range."""
    path = draw(st.sampled_from(["/api/songs", "/api/albums", "/api/artists", "/api/playlists"]))
    param = draw(st.sampled_from(["page", "limit", "offset"]))
    head = f"GET {path}?{param}={draw(numbers)} HTTP/1.1\r\nHost: fuzz\r\nConnection: close"
    if draw(st.booleans()):
        head += f"\r\nX-Log-Position: {draw(numbers)}"
    return head.encode() + b"\r\nAuthorization: Bearer " + TOKEN + b"\r\n\r\n"


@st.composite
def http_requests(draw: st.DrawFn) -> bytes:
    body = draw(bodies)
    lines = [f"{draw(methods)} {draw(targets)} {draw(versions)}", "Host: fuzz"]
    content_type = draw(content_types)
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    lines.append(f"Content-Length: {len(body)}")
    lines += [f"{k}: {v}" for k, v in draw(extra_headers)]
    lines.append("Connection: close")
    data = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    if draw(st.integers(0, 9)) == 0:
        data = data[: draw(st.integers(0, len(data)))]
    return data


http_garbage = st.one_of(
    json_requests(), query_requests(), http_requests(), st.binary(max_size=300)
)

# -- exchanges --------------------------------------------------------------------------------


def _read_briefly(sock: socket.socket, limit: float) -> bytes:
    """What the server sends within ``limit`` seconds (until the head of a response, or it
    closes); not waiting longer keeps each example short."""
    got = b""
    sock.setblocking(False)
    with contextlib.suppress(OSError, ssl.SSLError):
        while len(got) < 65536:
            ready, _, _ = select.select([sock], [], [], limit)
            if not ready:
                break
            try:
                chunk = sock.recv(65536)
            except ssl.SSLWantReadError:
                continue
            if not chunk:
                break
            got += chunk
            if got.startswith(b"HTTP/") and b"\r\n\r\n" in got:
                break
    return got


def _send(address: str, data: bytes, tls: ssl.SSLContext | None = None, wait: float = 0.1) -> bytes:
    sock = socket.create_connection(split(address), timeout=10)
    try:
        if tls is not None:
            sock = tls.wrap_socket(sock, server_hostname="127.0.0.1")
        with contextlib.suppress(OSError):
            sock.sendall(data)
        return _read_briefly(sock, wait)
    finally:
        with contextlib.suppress(OSError):
            sock.close()


def _alive(proc: NodeProcess | None) -> None:
    assert proc is not None
    assert proc.poll() is None, f"{proc.spec.name} died:\n{proc.log_tail(30)}"


# -- tests ------------------------------------------------------------------------------------


def test_rpc_frames_before_the_handshake(serving: Service) -> None:
    targets = [(serving.node_rpc[0], serving.nodes[0]), (serving.gateway_rpc, serving.gateway)]

    @FUZZ
    @given(data=rpc_garbage, to_gateway=st.booleans())
    def attack(data: bytes, to_gateway: bool) -> None:
        address, proc = targets[to_gateway]
        _send(address, data, wait=0.05)
        _alive(proc)

    attack()
    for address, _ in targets:
        assert rpc_listener_answers(address)


def test_rpc_frames_after_a_correct_handshake(serving: Service) -> None:
    targets = [(serving.node_rpc[1], serving.nodes[1]), (serving.gateway_rpc, serving.gateway)]

    @FUZZ
    @given(sent=after_auth, to_gateway=st.booleans())
    def attack(sent: list[bytes], to_gateway: bool) -> None:
        address, proc = targets[to_gateway]
        sock = authenticated_rpc(address)
        try:
            with contextlib.suppress(OSError):
                for data in sent:
                    sock.sendall(data)
            _read_briefly(sock, 0.05)
        finally:
            sock.close()
        _alive(proc)

    attack()
    for address, _ in targets:
        assert rpc_listener_answers(address)


def test_raw_http_leaves_the_node_and_the_gateway_serving(serving: Service) -> None:
    tls = serving.https_context()

    @FUZZ
    @given(data=http_garbage, to_gateway=st.booleans())
    def attack(data: bytes, to_gateway: bool) -> None:
        data = data.replace(TOKEN, serving.token.encode())
        if to_gateway:
            _send(serving.gateway_https, data, tls)
            _alive(serving.gateway)
        else:
            _send(serving.node_http[0], data)
            _alive(serving.nodes[0])

    attack()
