"""The HTTPS gateway: the one public endpoint in front of the nodes.

The gateway joins the cluster's membership as an *observer* (it gossips and resolves
services but never votes in the token ring nor holds blobs), finds the nodes' HTTP APIs in
the :class:`~dspot.registry.Registry` under :data:`~dspot_spotify.node.HTTP_SERVICE`, and
relays ``/api/*``, ``/rest/*`` and ``/metrics`` to a healthy one over keep-alive
connections. Everything else is the web frontend, served from a directory.

What it promises:

* **Health.** Every node's ``/healthz`` is polled about once a second with a short timeout;
  a node that fails a check, or fails a relayed request, gets no requests until a check
  passes again. With no healthy node a request gets 503 ``no healthy node``.
* **Streaming.** Request and response bodies are relayed chunk by chunk with backpressure,
  never held whole (uploads can be hundreds of MiB).
* **Retries.** A GET or HEAD that fails before any response byte went to the client is tried
  on another node. Any other request is tried elsewhere only if it never reached a node
  (connection refused); once it may have been sent, a failure answers 502, since the node
  may have applied it.
* **Mid-stream failover.** When the node serving ``GET /api/songs/{id}/stream`` (or a
  Subsonic player's ``GET /rest/stream`` / ``/rest/download``) breaks off,
  the gateway asks another node for the rest (``Range`` from the next byte, ``If-Range`` with
  the song's ETag so it is the same file) and continues the same client response: the
  client sees one unbroken, byte-identical body.
* **Events.** The WebSocket ``/api/events`` is relayed message by message to a node's.
* Each relayed response says which node answered in ``X-Served-By``. A malformed request
  costs its own connection a 400, never the other clients their service.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import re
import signal
import socket
import ssl
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Sequence, Set
from pathlib import Path
from typing import Any, cast

import anyio
import anyio.abc
import attrs
from dspot.disk import SimDisk
from dspot.env import NodeEnv, production_env
from dspot.errors import AddressInUse, ConnectRefused, ConnectTimeout, DspotError, HandshakeFailed
from dspot.http import (
    ClientResponse,
    Connector,
    Headers,
    HttpClient,
    HttpClientError,
    HTTPError,
    HttpServer,
    ReadTimeout,
    Request,
    Response,
    ServerConfig,
    StaticFiles,
    Timeouts,
    WebSocket,
    WebSocketClosed,
    WebSocketHandshakeError,
    WebSocketUpgrade,
    connect_websocket,
    server_ssl_context,
)
from dspot.membership import Membership, MembershipConfig, observer_meta
from dspot.registry import Endpoint, NoEndpoint, Registry, RegistryClient
from dspot.rpc import RpcNode
from dspot.transport import TcpTransport

from dspot_spotify.node import HTTP_SERVICE

__all__ = ["Gateway", "GatewayConfig", "GatewaySettings", "NodePool", "serve_gateway"]

log = logging.getLogger("dspot_spotify.gateway")

HOP_BY_HOP = frozenset(
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
FORWARDED = frozenset({"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded"})
STREAM_PATH = re.compile(r"^(?:/api/songs/[^/]+/stream|/rest/(?:stream|download)(?:\.view)?)$")
"""Song bodies that resume on another node when theirs breaks off: the REST API's stream and
the Subsonic API's ``stream`` and ``download`` (music players)."""
CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")
_UPSTREAM_GONE = (
    HttpClientError,
    DspotError,
    OSError,
    anyio.BrokenResourceError,
    anyio.EndOfStream,
)

NOT_BUILT_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>dspot-spotify</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto">
<h1>dspot-spotify</h1>
<p>The gateway and the API are running, but the web frontend has not been built.</p>
<p>Build it from the source checkout and restart:</p>
<pre>cd frontend &amp;&amp; npm ci &amp;&amp; npm run build</pre>
<p>The API is at <a href="/api/openapi.json"><code>/api/</code></a>;
this gateway's health is at <a href="/healthz"><code>/healthz</code></a>.</p>
</body></html>
"""


@attrs.frozen(kw_only=True)
class GatewayConfig:
    """Tuning of a :class:`Gateway` (seconds, bytes)."""

    health_interval: float = 1.0
    """How often every node's ``/healthz`` is polled."""
    health_timeout: float = 1.0
    """A check slower than this fails."""
    upstream: Timeouts = attrs.field(factory=lambda: Timeouts(connect=2.0, read=60.0, write=60.0))
    """Timeouts of relayed requests (a node may take a while to commit an upload)."""
    attempts: int = 3
    """Nodes tried for one retryable request."""
    resume_window: float = 10.0
    """How long a broken song stream may wait for a healthy node to continue from."""
    max_body_size: int = 4 * 1024**3
    """Largest request body relayed (nodes apply their own, lower, upload limit)."""
    membership: MembershipConfig | None = None
    server: ServerConfig = attrs.field(factory=ServerConfig)


class NodePool:
    """The nodes serving :data:`HTTP_SERVICE`, as the registry resolves them, minus those
    failing their health checks or their last request.

    Picking is round robin over :class:`~dspot.registry.RegistryClient`'s candidates (which
    also backs off from nodes that fail requests) restricted to healthy nodes.
    """

    def __init__(
        self, registry: Registry, client: HttpClient, config: GatewayConfig, rng: random.Random
    ) -> None:
        self.registry = registry
        self.balancer = RegistryClient(registry, HTTP_SERVICE, rng=rng)
        self.config = config
        self._client = client
        self._healthy: set[str] = set()  # endpoint addresses whose last check passed
        self._failed_at: dict[str, float] = {}  # when each last failed a request
        self._changed = anyio.Event()
        self._next = 0

    def endpoints(self) -> list[Endpoint]:
        return self.registry.resolve(HTTP_SERVICE)

    def healthy(self) -> list[Endpoint]:
        return [e for e in self.endpoints() if e.endpoint in self._healthy]

    def pick(self, exclude: Set[str] = frozenset()) -> Endpoint | None:
        """A healthy node not in ``exclude`` (endpoint addresses), or ``None``."""
        usable = {e.endpoint for e in self.healthy()} - exclude
        if not usable:
            return None
        try:
            preferred = [e for e in self.balancer.candidates() if e.endpoint in usable]
        except NoEndpoint:
            return None
        if not preferred:
            preferred = [e for e in self.healthy() if e.endpoint in usable]
        ep = preferred[self._next % len(preferred)]
        self._next += 1
        return ep

    def failed(self, ep: Endpoint) -> None:
        """``ep`` failed a request: no more requests until its next check passes."""
        if ep.endpoint in self._healthy:
            log.warning("node %s (%s) failed a request: taken out", ep.instance, ep.endpoint)
        self._healthy.discard(ep.endpoint)
        self._failed_at[ep.endpoint] = self.registry.env.clock.now()
        self.balancer.report_failure(ep)
        self._wake()

    def succeeded(self, ep: Endpoint) -> None:
        self.balancer.report_success(ep)

    def _wake(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def wait_changed(self) -> None:
        """Until the healthy set changes."""
        await self._changed.wait()

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Check every node, forever, every ``health_interval``."""
        task_status.started()
        while True:
            await self.check_all()
            await anyio.sleep(self.config.health_interval)

    async def check_all(self) -> None:
        """Check every registered node once, concurrently, and update the healthy set."""
        started = self.registry.env.clock.now()
        endpoints = self.endpoints()
        results: dict[str, bool] = {}

        async def check(ep: Endpoint) -> None:
            results[ep.endpoint] = await self._check(ep)

        async with anyio.create_task_group() as tg:
            for ep in endpoints:
                tg.start_soon(check, ep)
        for addr, failed_at in self._failed_at.items():
            if failed_at >= started:
                results[addr] = False  # failed a request since the check began: stays out
        self._failed_at = {a: t for a, t in self._failed_at.items() if t >= started}
        healthy = {addr for addr, ok in results.items() if ok}
        for ep in endpoints:
            if results.get(ep.endpoint) and ep.endpoint not in self._healthy:
                log.info("node %s (%s) is healthy", ep.instance, ep.endpoint)
                self.balancer.report_success(ep)
            elif not results.get(ep.endpoint) and ep.endpoint in self._healthy:
                log.warning("node %s (%s) failed its health check", ep.instance, ep.endpoint)
        if healthy != self._healthy:
            self._healthy = healthy
            self._wake()

    async def _check(self, ep: Endpoint) -> bool:
        t = self.config.health_timeout
        with anyio.move_on_after(t * 2):
            try:
                async with await self._client.get(
                    f"http://{ep.endpoint}/healthz", timeouts=Timeouts(connect=t, read=t, write=t)
                ) as resp:
                    await resp.read()
                    return resp.status == 200
            except (*_UPSTREAM_GONE, TimeoutError):
                return False
        return False


def _chunks(resp: ClientResponse) -> AsyncGenerator[bytes, None]:
    # iter_bytes is an async generator; typed as an iterator, it could not be aclosing()'d.
    return cast(AsyncGenerator[bytes, None], resp.iter_bytes())


class _Once:
    """A request body relayed once; ``started`` says whether any of it was read (after that,
    the request cannot be sent to another node)."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self.chunks = chunks
        self.started = False

    def __aiter__(self) -> _Once:
        return self

    async def __anext__(self) -> bytes:
        self.started = True
        return await self.chunks.__anext__()

    async def aclose(self) -> None:
        aclose = getattr(self.chunks, "aclose", None)
        if aclose is not None:
            await aclose()


def _forward_headers(request: Request) -> Headers:
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


def _response_headers(resp: ClientResponse, ep: Endpoint) -> Headers:
    drop = HOP_BY_HOP | {"server", "date"}
    drop |= {t.lower() for t in resp.headers.get_list("connection")}
    return Headers(
        [*((k, v) for k, v in resp.headers if k not in drop), ("x-served-by", ep.instance)]
    )


def _span(resp: ClientResponse) -> tuple[int, int] | None:
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


class Gateway:
    """The gateway over ``env`` (its transport must be plain TCP: TLS is the HTTP server's).

    Run it with ``await tg.start(gateway.run)``; it reports started once it listens.
    """

    def __init__(
        self,
        env: NodeEnv,
        *,
        listen: str,
        rpc_address: str,
        secret: bytes,
        seeds: Sequence[str],
        ssl_context: ssl.SSLContext | None,
        frontend: Path | None = None,
        config: GatewayConfig | None = None,
        upstream_connect: Connector | None = None,
    ) -> None:
        """``upstream_connect`` reaches the nodes' HTTP APIs (default ``env.transport``'s:
        give a plain one when the cluster's RPC transport is mutual TLS)."""
        self.env = env
        self._upstream_connect = upstream_connect
        self.listen = listen
        self.rpc_address = rpc_address
        self.seeds = list(seeds)
        self.config = config or GatewayConfig()
        self._secret = secret
        self._ssl = ssl_context
        self._assets: StaticFiles | None = None
        self._spa: StaticFiles | None = None
        if frontend is not None:
            self._spa = StaticFiles(frontend, spa=True)
            if (frontend / "assets").is_dir():
                # Vite names these by content hash: a changed file gets a new name.
                self._assets = StaticFiles(
                    frontend / "assets", cache_control="public, max-age=31536000, immutable"
                )
        self._pool: NodePool | None = None
        self._upstream: HttpClient | None = None
        self._server: HttpServer | None = None
        self.bound: str | None = None
        self.rpc: RpcNode | None = None
        self.resumed = 0
        """How many broken song streams were continued from another node."""

    @property
    def pool(self) -> NodePool:
        assert self._pool is not None, "the gateway is not running"
        return self._pool

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[Any] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Join the cluster, start health checks, serve until cancelled or :meth:`shutdown`."""
        cfg = self.config
        server_cfg = attrs.evolve(
            cfg.server, ssl_context=self._ssl, max_body_size=cfg.max_body_size
        )
        async with contextlib.AsyncExitStack() as stack:
            self.rpc = await stack.enter_async_context(
                RpcNode(self.env, listen=self.rpc_address, secret=self._secret)
            )
            membership = await stack.enter_async_context(
                Membership(
                    self.env, self.rpc, cfg.membership, seeds=self.seeds, meta=observer_meta()
                )
            )
            registry = Registry(self.env, membership)  # resolving only: we publish nothing
            connect = self._upstream_connect or self.env.transport.connect
            # One retry: a check must not fail on a keep-alive connection the node just closed.
            checks = await stack.enter_async_context(HttpClient(connect, retries=1))
            self._upstream = await stack.enter_async_context(
                HttpClient(connect, timeouts=cfg.upstream, retries=1)
            )
            self._pool = NodePool(registry, checks, cfg, self.env.child_rng("gateway"))
            tg = await stack.enter_async_context(anyio.create_task_group())
            await tg.start(self._pool.run)
            self._server = HttpServer(self.handle, server_cfg, clock=self.env.clock)
            listener = await self.env.transport.listen(self.listen)
            stack.push_async_callback(listener.aclose)
            self.bound = listener.address
            await tg.start(self._server.serve, listener)
            task_status.started(self)
            await self._server.wait_shutdown()
            tg.cancel_scope.cancel()

    async def shutdown(self) -> None:
        """Stop accepting, let in-flight responses finish (bounded), then stop."""
        if self._server is not None:
            await self._server.shutdown()

    # -- requests ----------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        """The gateway's handler: its own health, relayed API paths, else the frontend."""
        path = request.raw_path
        if path == "/healthz":
            return Response.json({"status": "ok", "nodes": len(self.pool.healthy())})
        if path.startswith(("/api/", "/rest/")) or path in ("/api", "/rest", "/metrics"):
            if path == "/api/events" and request.is_websocket_upgrade:
                return WebSocketUpgrade(session=self._relay_websocket)
            return await self._relay(request)
        return await self._frontend(request)

    async def _frontend(self, request: Request) -> Response:
        if self._spa is None:
            if request.raw_path in ("/", "/index.html") and request.method in ("GET", "HEAD"):
                return Response.text(NOT_BUILT_PAGE, content_type="text/html; charset=utf-8")
            raise HTTPError(404, "no such page (the web frontend is not built)")
        if self._assets is not None and request.raw_path.startswith("/assets/"):
            request.path_params["path"] = request.path.removeprefix("/assets/")
            return await self._assets(request)
        return await self._spa(request)

    def _target(self, request: Request) -> str:
        query = request.query_string
        return request.raw_path + (f"?{query}" if query else "")

    async def _relay(self, request: Request) -> Response:
        upstream = self._upstream
        assert upstream is not None
        target = self._target(request)
        headers = _forward_headers(request)
        method = request.method
        retry_anyway = method in ("GET", "HEAD", "OPTIONS")
        has_body = "transfer-encoding" in request.headers or request.headers.get(
            "content-length", "0"
        ) not in ("", "0")
        tried: set[str] = set()
        for _ in range(self.config.attempts):
            ep = self.pool.pick(tried)
            if ep is None:
                break
            tried.add(ep.endpoint)
            sent = _Once(request.stream()) if has_body else None
            body: bytes | AsyncIterable[bytes] = b"" if sent is None else sent
            try:
                resp = await upstream.request(
                    method, f"http://{ep.endpoint}{target}", headers=headers, body=body
                )
            except HTTPError:
                raise  # the client's own body was bad (413, 408): not the node's fault
            except (ConnectRefused, ConnectTimeout, HandshakeFailed):
                self.pool.failed(ep)  # never reached the node: safe to try another
                if sent is not None and sent.started:
                    raise HTTPError(502, "the node failed while receiving the body") from None
                continue
            except ReadTimeout:
                self.pool.failed(ep)
                if retry_anyway:
                    continue
                raise HTTPError(504, "the node did not answer in time") from None
            except _UPSTREAM_GONE as e:
                self.pool.failed(ep)
                if retry_anyway:
                    continue
                raise HTTPError(
                    502,
                    f"the node failed while handling the request (it may have been applied): {e}",
                ) from None
            self.pool.succeeded(ep)
            return self._response(request, ep, resp, headers)
        raise HTTPError(503, "no healthy node", headers=[("retry-after", "1")])

    def _response(
        self, request: Request, ep: Endpoint, resp: ClientResponse, headers: Headers
    ) -> Response:
        out = _response_headers(resp, ep)
        if request.method == "HEAD" or resp.status in (204, 304) or resp.status < 200:
            return Response(resp.status, out, b"")  # the client read it (no body): released
        span = _span(resp)
        etag = resp.headers.get("etag")
        if (
            request.method == "GET"
            and STREAM_PATH.match(request.raw_path)
            and span is not None
            and etag is not None
            and not etag.startswith("W/")
        ):
            body = self._resumable(ep, resp, self._target(request), headers, etag, span)
        else:
            body = self._relay_body(ep, resp)
        return Response(resp.status, out, body)

    async def _relay_body(self, ep: Endpoint, resp: ClientResponse) -> AsyncIterator[bytes]:
        try:
            async with contextlib.aclosing(_chunks(resp)) as chunks:
                async for chunk in chunks:
                    yield chunk
        except _UPSTREAM_GONE as e:
            self.pool.failed(ep)
            # Aborting the client's response is all that is left: it sees a cut-off body.
            raise anyio.BrokenResourceError(f"node {ep.instance} broke off: {e!r}") from e
        finally:
            await resp.aclose()

    async def _resumable(
        self,
        ep: Endpoint,
        resp: ClientResponse,
        target: str,
        headers: Headers,
        etag: str,
        span: tuple[int, int],
    ) -> AsyncIterator[bytes]:
        """The song's bytes ``span[0]..span[1]``, from ``resp`` and, if its node breaks off,
        from other nodes at the next offset."""
        offset, last = span
        current = resp
        try:
            while True:
                try:
                    async with contextlib.aclosing(_chunks(current)) as chunks:
                        async for chunk in chunks:
                            offset += len(chunk)
                            yield chunk
                    return
                except _UPSTREAM_GONE as e:
                    self.pool.failed(ep)
                    log.warning(
                        "node %s broke off %s at byte %d (%r): resuming elsewhere",
                        ep.instance,
                        target,
                        offset,
                        e,
                    )
                await current.aclose()
                ep, current = await self._resume(target, headers, etag, offset, last, ep)
                self.resumed += 1
                log.warning("resumed %s at byte %d from node %s", target, offset, ep.instance)
        finally:
            await current.aclose()

    async def _resume(
        self, target: str, headers: Headers, etag: str, offset: int, last: int, failed: Endpoint
    ) -> tuple[Endpoint, ClientResponse]:
        """Ask healthy nodes for bytes ``offset..last`` of the same representation."""
        upstream = self._upstream
        assert upstream is not None
        resume_headers = Headers(
            [
                *(
                    (k, v)
                    for k, v in headers
                    if k not in ("range", "if-range", "if-none-match", "if-modified-since")
                ),
                ("range", f"bytes={offset}-{last}"),
                ("if-range", etag),
            ]
        )
        expected = f"bytes {offset}-{last}/"
        with anyio.move_on_after(self.config.resume_window):
            while True:
                ep = self.pool.pick({failed.endpoint})
                if ep is None:
                    await self.pool.wait_changed()
                    continue
                try:
                    resp = await upstream.get(
                        f"http://{ep.endpoint}{target}", headers=resume_headers
                    )
                except _UPSTREAM_GONE:
                    self.pool.failed(ep)
                    failed = ep
                    continue
                if (
                    resp.status == 206
                    and resp.headers.get("etag") == etag
                    and resp.headers.get("content-range", "").startswith(expected)
                ):
                    return ep, resp
                await resp.aclose()
                # Another representation (or an error): these bytes cannot be spliced on.
                raise anyio.BrokenResourceError(
                    f"node {ep.instance} answered {resp.status} to the resume of {target}"
                )
        raise anyio.BrokenResourceError(f"no healthy node to resume {target} at byte {offset}")

    async def _relay_websocket(self, client: WebSocket) -> None:
        """Relay ``/api/events`` to a node's: messages both ways until either side closes."""
        request = client.request
        assert request is not None
        target = self._target(request)
        headers = [
            (k, v)
            for k, v in _forward_headers(request)
            if k.startswith("x-forwarded-") or k in ("authorization", "cookie", "origin")
        ]
        tried: set[str] = set()
        for _ in range(self.config.attempts):
            ep = self.pool.pick(tried)
            if ep is None:
                break
            tried.add(ep.endpoint)
            try:
                async with connect_websocket(
                    f"ws://{ep.endpoint}{target}",
                    connect=self.env.transport.connect,
                    headers=headers,
                    timeout=5.0,
                ) as node:
                    await _pump(client, node)
                return
            except WebSocketHandshakeError as e:
                if 400 <= e.status < 500:
                    # The node refused the client (401 without a token, ...): say so.
                    await client.close(4000 + e.status, f"refused by the node ({e.status})")
                    return
                self.pool.failed(ep)
            except _UPSTREAM_GONE:
                self.pool.failed(ep)
        await client.close(1013, "no healthy node")


async def _pump(client: WebSocket, node: WebSocket) -> None:
    """Copy messages both ways; when one side ends, close the other."""

    async def copy(src: WebSocket, dst: WebSocket, done: anyio.CancelScope) -> None:
        with contextlib.suppress(WebSocketClosed):
            async for message in src:
                await dst.send(message)
        done.cancel()

    async with anyio.create_task_group() as tg:
        tg.start_soon(copy, client, node, tg.cancel_scope)
        tg.start_soon(copy, node, client, tg.cancel_scope)
    if node.closed and not client.closed:
        # The node went away (or closed): the client should reconnect through us.
        code = node.close_code if node.close_code in (1000, 1008) else 1012
        await client.close(code, "node closed the event stream")


# -- the process ---------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class GatewaySettings:
    """What ``dspot-spotify gateway`` was given."""

    listen: str
    join: tuple[str, ...]
    secret_file: Path
    cert: Path
    key: Path
    rpc: str = "127.0.0.1:0"
    frontend: Path | None = None
    name: str = "gateway"
    pid_file: Path | None = None
    tls_cert: Path | None = None
    """Certificate for mutual TLS with the nodes' RPC (the nodes' ``--tls-*``)."""
    tls_key: Path | None = None
    tls_ca: Path | None = None


def _say(line: str) -> None:
    print(line, flush=True)


async def _serve(
    settings: GatewaySettings,
    secret: bytes,
    ssl_context: ssl.SSLContext,
    cluster_tls: TcpTransport | None,
) -> None:
    transport: Any = TcpTransport()
    if cluster_tls is not None:
        # Cluster RPC over mutual TLS, like the nodes'; the HTTPS listener does its own TLS
        # and the nodes' HTTP APIs are plain HTTP inside the internal network.
        from dspot_spotify.cluster import SplitTransport

        transport = SplitTransport(cluster_tls, TcpTransport(), [settings.listen])
    # The gateway keeps nothing: an in-memory disk satisfies NodeEnv, and nothing uses it.
    env = production_env(settings.name, transport, SimDisk(random.Random()))
    gateway = Gateway(
        env,
        listen=settings.listen,
        rpc_address=settings.rpc,
        secret=secret,
        seeds=settings.join,
        ssl_context=ssl_context,
        frontend=settings.frontend,
        upstream_connect=TcpTransport().connect,
    )
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with anyio.create_task_group() as tg:
            await tg.start(gateway.run)
            assert gateway.rpc is not None
            _say(f"gateway {settings.name} ready: https {gateway.bound} rpc {gateway.rpc.address}")
            tg.start_soon(_report_nodes, gateway, settings.name)
            async for signum in signals:
                log.info("%s received, stopping", signal.Signals(signum).name)
                with anyio.move_on_after(gateway.config.server.shutdown_timeout + 1):
                    await gateway.shutdown()
                tg.cancel_scope.cancel()
                break
    _say(f"gateway {settings.name} stopped")


async def _report_nodes(gateway: Gateway, name: str) -> None:
    last = -1
    while True:
        count = len(gateway.pool.healthy())
        if count != last:
            _say(f"gateway {name} nodes: {count} healthy")
            last = count
        with anyio.move_on_after(1.0):
            await gateway.pool.wait_changed()


def serve_gateway(settings: GatewaySettings) -> int:
    """Run the gateway until SIGINT/SIGTERM; returns the exit status."""
    from dspot_spotify.cluster import ConfigError, _find, read_secret
    from dspot_spotify.cluster import cluster_tls as cluster_tls_transport

    secret = read_secret(settings.secret_file)
    if settings.frontend is not None and not (settings.frontend / "index.html").is_file():
        raise ConfigError(f"--frontend {settings.frontend} has no index.html (build it first)")
    try:
        ssl_context = server_ssl_context(settings.cert, settings.key)
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"cannot load the TLS certificate and key: {e}") from None
    cluster_tls = None
    if settings.tls_cert is not None:
        cluster_tls = cluster_tls_transport(settings.tls_cert, settings.tls_key, settings.tls_ca)
    if settings.pid_file is not None:
        settings.pid_file.parent.mkdir(parents=True, exist_ok=True)
        settings.pid_file.write_text(f"{os.getpid()}\n", encoding="utf-8")
    try:
        anyio.run(_serve, settings, secret, ssl_context, cluster_tls, backend="trio")
    except BaseException as exc:
        found = _find(exc, (KeyboardInterrupt, AddressInUse, socket.gaierror))
        if isinstance(found, AddressInUse | socket.gaierror):
            raise ConfigError(
                f"cannot listen on {settings.listen} / {settings.rpc}: {found}"
            ) from None
        if found is None:
            raise
    finally:
        if settings.pid_file is not None:
            settings.pid_file.unlink(missing_ok=True)
    return 0
