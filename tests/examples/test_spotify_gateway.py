"""The HTTPS gateway in front of three real node processes on loopback.

One cluster (3 nodes + ``dspot-spotify gateway``, TLS from the development CA) serves the
whole module; the last test kills a node, so it runs last. Every wait is bounded and every
process is killed when the module ends.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import random
import socket
import ssl
import sys
import wave
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
from anyio.abc import SocketAttribute
from dspot_spotify.client import ApiClient
from dspot_spotify.demo import tag_file
from dspot_spotify.devtls import ensure_dev_tls
from dspot_spotify.process.supervisor import NodeProcess

from dspot.errors import ConnectionLost
from dspot.http import WebSocketClosed, client_ssl_context, connect_websocket
from dspot.testing import free_ports, poll_until
from tests.helpers.processes import PASSWORD, SECRET, ProcessCluster, process_cluster, retry_503

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


class Cluster:
    """The module's processes, seen through the gateway."""

    def __init__(self, processes: ProcessCluster) -> None:
        assert processes.gateway is not None and processes.ca is not None
        self.processes = processes
        self.gateway = processes.gateway
        self.ca = processes.ca
        self.port = int(self.gateway.spec.http.rsplit(":", 1)[1])
        self.ssl = ssl.create_default_context(cafile=str(self.ca))
        self.url = processes.url

    def client(self, token: str | None = None) -> ApiClient:
        return self.processes.client(token=token)

    def gateway_log(self) -> str:
        return self.gateway.log_path.read_text(errors="replace")

    def node_by_id(self, node_id: str) -> NodeProcess:
        [proc] = [p for p in self.processes.procs.values() if p.node_id == node_id]
        return proc


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with process_cluster(tmp_path_factory.mktemp("gateway-cluster")) as processes:
        processes.start_nodes(["g1", "g2", "g3"], quorum=True)
        processes.start_gateway()
        yield Cluster(processes)


@pytest.fixture(scope="module")
def big_song(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A tagged 24 MiB WAV: far more than the socket buffers between a node, the gateway and
    a slow client hold, so a node killed early in the download has most of it still to send."""
    path = tmp_path_factory.mktemp("audio") / "big.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(44100)
        w.writeframes(os.urandom(24 * 1024 * 1024))
    tag_file(path, title="Long Goodbye", artist="The Failovers", album="Resume", track=1)
    return path.read_bytes()


@pytest.fixture(scope="module")
def alice(cluster: Cluster) -> ApiClient:
    c = cluster.client()
    retry_503(lambda: c.register("alice", PASSWORD))
    c.login("alice", PASSWORD)
    return c


@pytest.fixture(scope="module")
def uploaded(alice: ApiClient, big_song: bytes) -> dict[str, Any]:
    status, headers, body = alice.request(
        "POST",
        "/api/songs?filename=big.wav",
        big_song,
        {"content-type": "application/octet-stream"},
    )
    assert status == 201, body
    assert headers["x-served-by"] in ("g1", "g2", "g3")
    song: dict[str, Any] = json.loads(body)
    assert song["size"] == len(big_song)
    return song


def test_upload_list_and_ranged_stream_through_the_gateway(
    cluster: Cluster, alice: ApiClient, uploaded: dict[str, Any], big_song: bytes
) -> None:
    status, _, body = alice.request("GET", "/api/songs?q=goodbye")
    assert status == 200
    assert [s["id"] for s in json.loads(body)["items"]] == [uploaded["id"]]

    status, headers, body = alice.request(
        "GET", f"/api/songs/{uploaded['id']}/stream", headers={"range": "bytes=1000-1999"}
    )
    assert status == 206
    assert headers["content-range"] == f"bytes 1000-1999/{len(big_song)}"
    assert body == big_song[1000:2000]

    # Requests are spread over the nodes, each answer saying which node served it.
    served: set[str] = set()
    for _ in range(30):
        served.add(alice.request("GET", "/api/songs?limit=1")[1]["x-served-by"])
        if len(served) == 3:
            break
    assert served == {"g1", "g2", "g3"}

    health = json.loads(http_get(cluster, "/healthz")[2])  # the gateway's own, not a node's
    assert health == {"status": "ok", "nodes": 3}

    # Without the frontend built, / says how to build it.
    status, headers, page = http_get(cluster, "/")
    assert status == 200 and b"npm run build" in page


def http_get(cluster: Cluster, path: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPSConnection("localhost", cluster.port, timeout=10, context=cluster.ssl)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_a_malformed_request_gets_400_and_the_gateway_keeps_serving(
    cluster: Cluster, alice: ApiClient
) -> None:
    for garbage in (b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n"):
        with (
            socket.create_connection(("127.0.0.1", cluster.port), timeout=10) as raw,
            cluster.ssl.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            tls.sendall(garbage)
            reply = b""
            while chunk := tls.recv(4096):
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 400 "), reply
        assert b"application/problem+json" in reply
    # Plain HTTP on the HTTPS port is refused by the TLS handshake, not served.
    with socket.create_connection(("127.0.0.1", cluster.port), timeout=10) as raw:
        raw.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
        assert b"HTTP/1." not in raw.recv(4096)
    status, _, _ = alice.request("GET", "/api/songs?limit=1")
    assert status == 200


def test_the_event_websocket_is_relayed_to_a_node(cluster: Cluster, alice: ApiClient) -> None:
    async def hello(url: str) -> tuple[dict[str, Any] | None, int | None]:
        ctx = client_ssl_context(cluster.ca)
        async with connect_websocket(url, ssl_context=ctx, timeout=10) as ws:
            with anyio.fail_after(10):
                try:
                    return json.loads(await ws.receive()), None
                except WebSocketClosed as e:
                    return None, e.code

    base = f"wss://localhost:{cluster.port}/api/events"
    doc, _ = anyio.run(hello, f"{base}?token={alice.token}")
    assert doc is not None and doc["type"] == "hello"
    assert doc["node"] in ("g1", "g2", "g3")
    assert doc["cluster"]["node"] == doc["node"]
    # Without a token the node refuses, and the gateway passes the refusal on (4000 + 401).
    doc, code = anyio.run(hello, base)
    assert doc is None and code == 4401


def test_a_node_killed_mid_song_the_client_gets_the_whole_song(
    cluster: Cluster, alice: ApiClient, uploaded: dict[str, Any], big_song: bytes
) -> None:
    resumed_before = cluster.gateway_log().count("resumed /api/songs/")
    start = 1000
    # A slow reader with a small receive window, so the download cannot finish by itself
    # inside the kernel's buffers before the node is killed.
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    raw.settimeout(30)
    raw.connect(("127.0.0.1", cluster.port))
    with cluster.ssl.wrap_socket(raw, server_hostname="localhost") as tls:
        request = (
            f"GET /api/songs/{uploaded['id']}/stream HTTP/1.1\r\nHost: localhost\r\n"
            f"Authorization: Bearer {alice.token}\r\nRange: bytes={start}-\r\n"
            "Connection: close\r\n\r\n"
        )
        tls.sendall(request.encode())
        resp = http.client.HTTPResponse(tls, method="GET")  # type: ignore[arg-type]
        resp.begin()
        try:
            assert resp.status == 206
            assert (
                resp.getheader("content-range")
                == f"bytes {start}-{len(big_song) - 1}/{len(big_song)}"
            )
            serving = cluster.node_by_id(resp.getheader("x-served-by") or "")
            got = resp.read(64 * 1024)
            serving.kill()  # kill -9, mid-song
            while chunk := resp.read(256 * 1024):
                got += chunk
        finally:
            resp.close()
    assert len(got) == len(big_song) - start
    assert got == big_song[start:]  # one response, byte-identical, despite the crash
    log = cluster.gateway_log()
    assert log.count("resumed /api/songs/") > resumed_before, log[-3000:]

    # The gateway keeps serving with the node dead: requests go to the others.
    survivors = {p.node_id for p in cluster.processes.procs.values() if p.poll() is None}
    poll_until(
        lambda: cluster.gateway.healthy_nodes == 2,
        timeout=15.0,
        what="the gateway to drop the dead node",
    )
    for _ in range(6):
        status, headers, _ = alice.request("GET", "/api/songs?limit=1")
        assert status == 200 and headers["x-served-by"] in survivors

    # The gateway is an observer: with it, 2 of 3 voters are still a majority (were it a
    # voter, the ring would wait on it), so writes still commit.
    retry_503(lambda: alice.json("POST", "/api/playlists", {"name": "after the crash"}, (201,)))
    status, _, body = alice.request("GET", "/api/cluster")
    assert status == 200, body
    doc = json.loads(body)
    roles = {m["id"]: m["role"] for m in doc["members"]}
    assert roles["gateway"] == "observer"
    assert "gateway" not in doc["ring"]
    assert doc["quorum"] is True


def test_without_nodes_the_gateway_says_so_and_serves_the_frontend(tmp_path: Path) -> None:
    """A gateway whose nodes are all unreachable: the API answers 503 "no healthy node", its
    own /healthz counts 0, and the built frontend is served with SPA fallback."""
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text("<!doctype html><title>app</title>")
    (dist / "assets" / "app-3f2a1b.js").write_text("console.log('hi')")
    [nobody] = free_ports(1)
    with process_cluster(tmp_path / "lonely") as processes:
        processes.start_gateway(
            name="lonely-gateway", frontend=dist, join=[f"127.0.0.1:{nobody}"], healthy=0
        )
        c = Cluster(processes)
        status, headers, body = http_get(c, "/api/songs")
        assert status == 503, body
        assert headers["content-type"] == "application/problem+json"
        assert json.loads(body)["detail"] == "no healthy node"
        assert json.loads(http_get(c, "/healthz")[2]) == {"status": "ok", "nodes": 0}

        status, headers, body = http_get(c, "/")
        assert status == 200 and body == b"<!doctype html><title>app</title>"
        status, headers, body = http_get(c, "/library/albums/42")  # a client-side route
        assert status == 200 and b"<title>app</title>" in body
        assert headers["cache-control"] == "no-cache"
        status, headers, body = http_get(c, "/assets/app-3f2a1b.js")
        assert status == 200 and body == b"console.log('hi')"
        assert "immutable" in headers["cache-control"]
        assert http_get(c, "/assets/missing-0000.js")[0] == 404
        assert http_get(c, "/favicon.ico")[0] == 404  # a missing file is not the app


def test_dev_tls_is_made_once_and_kept(tmp_path: Path) -> None:
    from cryptography import x509

    first = ensure_dev_tls(tmp_path / "tls")
    for private in (first.key, tmp_path / "tls" / "ca-key.pem"):
        assert private.stat().st_mode & 0o777 == 0o600
    ca_pem, cert_pem = first.ca.read_bytes(), first.cert.read_bytes()
    again = ensure_dev_tls(tmp_path / "tls")
    assert (again.ca.read_bytes(), again.cert.read_bytes()) == (ca_pem, cert_pem)

    # A new name re-issues the server certificate from the same CA (still trusted).
    wider = ensure_dev_tls(tmp_path / "tls", ["music.lan", "192.168.1.20"])
    assert wider.ca.read_bytes() == ca_pem and wider.cert.read_bytes() != cert_pem
    leaf = x509.load_pem_x509_certificate(wider.cert.read_bytes())
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {"localhost", "music.lan"}
    assert {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} == {
        "127.0.0.1",
        "::1",
        "192.168.1.20",
    }
    ctx = ssl.create_default_context(cafile=str(wider.ca))
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(wider.cert, wider.key)
    # A handshake, verified against the dev CA by name (strict X.509 checks on).
    bios = [ssl.MemoryBIO() for _ in range(4)]  # client in/out, server in/out
    cli = ctx.wrap_bio(bios[0], bios[1], server_hostname="music.lan")
    srv = server.wrap_bio(bios[2], bios[3], server_side=True)
    done: set[str] = set()
    for _ in range(10):
        for name, end in (("client", cli), ("server", srv)):
            if name not in done:
                with contextlib.suppress(ssl.SSLWantReadError):
                    end.do_handshake()
                    done.add(name)
        bios[2].write(bios[1].read())
        bios[0].write(bios[3].read())
    assert done == {"client", "server"}
    assert cli.version() in ("TLSv1.2", "TLSv1.3")


# -- retry rules, in process: a node that hangs up after reading a request, and a good one --


class StaticRegistry:
    """Resolves to a fixed list of endpoints (what the NodePool needs of a Registry)."""

    def __init__(self, env: Any, endpoints: list[Any]) -> None:
        self.env = env
        self.endpoints = endpoints

    def resolve(self, service: str) -> list[Any]:
        return list(self.endpoints)


@contextlib.asynccontextmanager
async def gateway_over(
    nodes: list[tuple[str, anyio.abc.SocketListener]],
) -> AsyncIterator[tuple[Any, Any]]:
    """A gateway (not serving, no membership) whose pool is these fake nodes, checked once:
    drive it with ``gateway.handle(request)``."""
    from dspot_spotify.gateway import Gateway, GatewayConfig, NodePool

    from dspot.disk import SimDisk
    from dspot.env import production_env
    from dspot.http import HttpClient
    from dspot.registry import Endpoint
    from dspot.transport import TcpTransport

    env = production_env("gw-test", TcpTransport(), SimDisk(random.Random(0)))
    eps = [
        Endpoint(
            "spotify-http", name, f"127.0.0.1:{lst.extra(SocketAttribute.local_port)}", name, 1e12
        )
        for name, lst in nodes
    ]
    gw = Gateway(
        env,
        listen="127.0.0.1:0",
        rpc_address="127.0.0.1:0",
        secret=SECRET,
        seeds=(),
        ssl_context=None,
        config=GatewayConfig(served_by=True),
    )
    async with HttpClient(retries=1) as checks, HttpClient(retries=1) as upstream:
        pool = NodePool(StaticRegistry(env, eps), checks, gw.config, random.Random(0))  # type: ignore[arg-type]
        gw._pool, gw._upstream = pool, upstream
        await pool.check_all()
        yield gw, pool


@contextlib.asynccontextmanager
async def bad_and_good(
    bad: Callable[[anyio.abc.ByteStream], Awaitable[None]], good: Any
) -> AsyncIterator[tuple[Any, Any]]:
    """A gateway over two fake nodes, ``bad`` (handles raw connections) and ``good`` (a
    router served by our HTTP server)."""
    from dspot.http import HttpServer

    async with (
        await anyio.create_tcp_listener(local_host="127.0.0.1") as bad_listener,
        await anyio.create_tcp_listener(local_host="127.0.0.1") as good_listener,
        anyio.create_task_group() as tg,
    ):
        server = HttpServer(good)
        tg.start_soon(bad_listener.serve, bad)
        await tg.start(server.serve, good_listener)
        async with gateway_over([("bad", bad_listener), ("good", good_listener)]) as gw_pool:
            yield gw_pool
        await server.shutdown()
        tg.cancel_scope.cancel()


async def request_head_unless_check(stream: anyio.abc.ByteStream) -> bytes | None:
    """A fake node's side: read a request head; answer a health check (None), else return
    what was read."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += await stream.receive()
    if data.startswith(b"GET /healthz"):
        await stream.send(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        return None
    return data


def good_node() -> Any:
    """A fake node's router: healthy, and ``GET /api/x`` answers ``{"node": "good"}``."""
    from dspot.http import Request, Response, Router

    good = Router()

    @good.get("/healthz")
    async def healthz(request: Request) -> Response:
        return Response.json({"status": "ok"})

    @good.get("/api/x")
    async def get_x(request: Request) -> Response:
        return Response.json({"node": "good"})

    return good


def test_gets_are_retried_on_another_node_and_posts_are_not(
    caplog: pytest.LogCaptureFixture,
) -> None:

    from dspot.http import Headers, HTTPError, Request, Response

    async def main() -> None:
        hangups: list[bytes] = []
        posts_to_good: list[bytes] = []

        async def hang_up(stream: anyio.abc.ByteStream) -> None:
            # Healthy to checks, but reads any other request whole and dies without answering.
            async with stream:
                data = b""
                with anyio.move_on_after(0.3):
                    while b"\r\n\r\n" not in data or not data.startswith(b"GET /healthz"):
                        data += await stream.receive()
                    await stream.send(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    return
                hangups.append(data)

        good = good_node()

        @good.post("/api/x")
        async def post_x(request: Request) -> Response:
            posts_to_good.append(await request.body())
            return Response.json({"node": "good"}, status=201)

        async with bad_and_good(hang_up, good) as (gw, pool):
            assert [e.instance for e in pool.healthy()] == ["bad", "good"]

            # A POST reached the bad node, which died: not sent again, 502.
            chunks = [b'{"a": 1}', b""]

            async def receive() -> bytes:
                return chunks.pop(0)

            post = Request(
                "POST",
                "/api/x",
                headers=Headers([("content-length", "8")]),
                client="1.2.3.4:5",
                receive=receive,
            )
            pool._next = 0
            with pytest.raises(HTTPError) as err:
                await gw.handle(post)
            assert err.value.status == 502
            bad_address = pool.endpoints()[0].endpoint
            assert bad_address not in str(err.value), "a 502 names no internal address"
            assert bad_address in caplog.text  # the gateway's log does
            assert len(hangups) == 1 and hangups[0].endswith(b'{"a": 1}')
            assert b"x-forwarded-for: 1.2.3.4" in hangups[0].lower()
            assert posts_to_good == []
            assert [e.instance for e in pool.healthy()] == ["good"]  # taken out

            # A GET that the bad node drops is answered by the good one.
            await pool.check_all()
            assert [e.instance for e in pool.healthy()] == ["bad", "good"]  # back in
            pool._next = 0
            resp = await gw.handle(Request("GET", "/api/x", client="1.2.3.4:5"))
            assert resp.status == 200 and resp.headers.get("x-served-by") == "good"
            assert resp.body == b'{"node":"good"}'  # small: read whole, one write
            assert len(hangups) >= 2

    anyio.run(main, backend="trio")


def test_a_subsonic_write_sent_as_a_get_is_not_retried_on_another_node() -> None:
    """Subsonic clients star, scrobble and edit playlists with GET. A node that reads such a
    call and dies may have applied it, so the gateway answers 502 ("may have been applied")
    instead of sending it to another node, whose answer (say, "no node has reached log
    position") would tell the client that nothing happened; the node is asked once only
    (its HTTP client does not resend it either). A Subsonic read is retried as any GET."""
    from dspot.http import HTTPError, Request, Response, Router

    async def main() -> None:
        seen: list[bytes] = []

        async def hang_up(stream: anyio.abc.ByteStream) -> None:
            # Healthy to checks; reads any other request whole and dies without answering.
            async with stream:
                if (data := await request_head_unless_check(stream)) is not None:
                    seen.append(data.split(b" ")[1])

        good = Router()
        answered: list[str] = []

        @good.get("/healthz")
        async def healthz(request: Request) -> Response:
            return Response.json({"status": "ok"})

        @good.get("/rest/{endpoint}")
        async def rest(request: Request) -> Response:
            answered.append(request.path_params["endpoint"])
            return Response.json({"subsonic-response": {"status": "ok"}})

        async with bad_and_good(hang_up, good) as (gw, pool):
            for write in ("/rest/star.view?id=s1&u=alice&p=pw", "/rest/scrobble?id=s1"):
                await pool.check_all()
                pool._next = 0  # the bad node first
                with pytest.raises(HTTPError) as err:
                    await gw.handle(Request("GET", write, client="1.2.3.4:5"))
                assert err.value.status == 502
                assert "may have been applied" in str(err.value)
            assert [p.split(b"?")[0] for p in seen] == [b"/rest/star.view", b"/rest/scrobble"]
            assert answered == []

            await pool.check_all()
            pool._next = 0
            resp = await gw.handle(Request("GET", "/rest/getStarred2?u=alice", client="1.2.3.4:5"))
            assert resp.status == 200 and resp.headers.get("x-served-by") == "good"
            assert answered == ["getStarred2"]

    anyio.run(main, backend="trio")


def test_a_small_answer_cut_off_mid_way_is_retried_for_gets_only() -> None:
    """A small body is read whole from the node before the client sees anything, so a node
    that dies half-way through one costs a GET a retry on another node (not a cut-off body)
    and a POST a clean 502 (it may have been applied: never sent twice)."""
    from dspot.http import HTTPError, Request, Response, Router

    async def main() -> None:
        cut: list[bytes] = []

        async def cut_off(stream: anyio.abc.ByteStream) -> None:
            # Healthy to checks; any other request gets a head and half its body.
            async with stream:
                if (data := await request_head_unless_check(stream)) is None:
                    return
                cut.append(data)
                await stream.send(b'HTTP/1.1 200 OK\r\ncontent-length: 40\r\n\r\n{"node":')

        good = Router()

        @good.get("/healthz")
        async def healthz(request: Request) -> Response:
            return Response.json({"status": "ok"})

        @good.route("/api/x", ("GET", "POST"))
        async def x(request: Request) -> Response:
            return Response.json({"node": "good"})

        async with bad_and_good(cut_off, good) as (gw, pool):
            pool._next = 0
            resp = await gw.handle(Request("GET", "/api/x", client="1.2.3.4:5"))
            assert (resp.status, resp.body) == (200, b'{"node":"good"}')
            assert resp.headers.get("x-served-by") == "good"
            assert len(cut) == 1

            await pool.check_all()
            pool._next = 0
            with pytest.raises(HTTPError) as err:
                await gw.handle(Request("POST", "/api/x", client="1.2.3.4:5"))
            assert err.value.status == 502
            assert len(cut) == 2

    anyio.run(main, backend="trio")


def test_a_node_that_falls_behind_gets_no_more_requests() -> None:
    """Round robin, but a node with more than ``in_flight_slack`` requests in flight beyond
    the least busy node is skipped: while one node sits on every request it gets (a stall),
    it holds slack + 1 of them and the rest go to the other node. Plain round robin would
    queue every second request behind the stalled one."""
    from dspot.http import Request

    async def main() -> None:
        held: list[bytes] = []
        release = anyio.Event()

        async def slow(stream: anyio.abc.ByteStream) -> None:
            async with stream:
                if (data := await request_head_unless_check(stream)) is None:
                    return
                held.append(data)
                await release.wait()
                await stream.send(b'HTTP/1.1 200 OK\r\ncontent-length: 15\r\n\r\n{"node":"slow"}')

        async with bad_and_good(slow, good_node()) as (gw, pool), anyio.create_task_group() as tg:
            slow_ep = pool.endpoints()[0]
            slack = gw.config.in_flight_slack
            served: list[str | None] = []

            async def ask() -> None:
                resp = await gw.handle(Request("GET", "/api/x", client="1.2.3.4:5"))
                served.append(resp.headers.get("x-served-by"))

            pool._next = 0
            total = 4 * (slack + 1)
            with anyio.fail_after(5):
                for sent in range(1, total + 1):
                    tg.start_soon(ask)
                    while len(served) + len(held) < sent:  # answered, or held by the slow node
                        await anyio.wait_all_tasks_blocked()
            assert pool.in_flight(slow_ep.endpoint) == slack + 1
            assert served == ["good"] * (3 * (slack + 1))
            release.set()
        assert served.count("bad") == slack + 1 and len(held) == slack + 1  # the slow one
        assert pool.in_flight(slow_ep.endpoint) == 0

    anyio.run(main, backend="trio")


@pytest.mark.parametrize(
    "target",
    [
        "/api/songs/s1/stream",
        "/rest/stream.view?id=s1&u=alice&p=pw",
        "/rest/download?id=s1&u=alice&p=pw",
        "/api/songs/s1/cover",  # not a song body: relayed as is, so the break shows
    ],
)
def test_a_song_body_cut_off_mid_way_continues_from_another_node(target: str) -> None:

    from dspot.http import (
        HttpServer,
        Request,
        Response,
        Router,
        representation_response,
    )

    song = random.Random(5).randbytes(3 * 1024 * 1024 + 17)
    etag = '"song-sha"'
    cut_at = 1024 * 1024

    def fake_node(name: str, served: list[str]) -> Router:
        router = Router()

        @router.get("/healthz")
        async def healthz(request: Request) -> Response:
            return Response.json({"status": "ok"})

        async def body(request: Request) -> Response:
            served.append(request.headers.get("range") or "all")

            async def read(offset: int, length: int) -> Any:
                end = offset + length
                while offset < end:
                    if name == "flaky" and offset >= cut_at:
                        raise OSError("disk gone")  # the node dies mid-body
                    step = min(64 * 1024, end - offset)
                    yield song[offset : offset + step]
                    offset += step

            return representation_response(request, size=len(song), read=read, etag=etag)

        for path in (
            "/api/songs/{song_id}/stream",
            "/api/songs/{song_id}/cover",
            "/rest/stream.view",
            "/rest/download",
        ):
            router.add("GET", path, body)
        return router

    async def main() -> tuple[bytes, dict[str, list[str]], str | None]:
        served: dict[str, list[str]] = {"flaky": [], "good": []}
        async with (
            await anyio.create_tcp_listener(local_host="127.0.0.1") as flaky_listener,
            await anyio.create_tcp_listener(local_host="127.0.0.1") as good_listener,
            anyio.create_task_group() as tg,
        ):
            servers = []
            for name, listener in (("flaky", flaky_listener), ("good", good_listener)):
                server = HttpServer(fake_node(name, served[name]))
                servers.append(server)
                await tg.start(server.serve, listener)
            got = b""
            async with gateway_over([("flaky", flaky_listener), ("good", good_listener)]) as (
                gw,
                pool,
            ):
                pool._next = 0  # the flaky node answers first
                resp = await gw.handle(Request("GET", target, client="1.2.3.4:5"))
                first = resp.headers.get("x-served-by")
                with contextlib.suppress(ConnectionLost):
                    async for chunk in resp.body:  # type: ignore[union-attr]
                        got += chunk
            for server in servers:
                await server.shutdown()
            tg.cancel_scope.cancel()
        return got, served, first

    got, served, first = anyio.run(main, backend="trio")
    assert first == "flaky" and served["flaky"] == ["all"]
    if "/cover" in target:
        assert len(got) < len(song)  # relayed as is: the client sees the break
        assert served["good"] == []
    else:
        assert got == song  # one unbroken, byte-identical body
        [resumed_range] = served["good"]
        start = int(resumed_range.removeprefix("bytes=").split("-")[0])
        assert cut_at <= start < len(song)
