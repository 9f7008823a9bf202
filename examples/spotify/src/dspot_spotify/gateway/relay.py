"""The gateway itself: relays ``/api/*``, ``/rest/*`` and ``/metrics`` to a healthy node
with the log position the request must see (:mod:`.positions`), tries a node that has
caught up when one is behind, resumes broken song streams on another, relays the event
WebSocket, serves the frontend."""

from __future__ import annotations

import contextlib
import logging
import re
import ssl
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, cast

import anyio
import anyio.abc
import attrs
from dspot.env import NodeEnv
from dspot.errors import (
    ConnectionLost,
    ConnectRefused,
    ConnectTimeout,
    DspotError,
    HandshakeFailed,
)
from dspot.http import (
    ClientResponse,
    Connector,
    Headers,
    HttpClient,
    HTTPError,
    HttpServer,
    ReadTimeout,
    Request,
    Response,
    StaticFiles,
    WebSocket,
    WebSocketClosed,
    WebSocketHandshakeError,
    WebSocketUpgrade,
    connect_websocket,
)
from dspot.membership import Membership, observer_meta
from dspot.registry import Endpoint, Registry
from dspot.rpc import RpcNode

from dspot_spotify import catalog
from dspot_spotify.config import Sabotage
from dspot_spotify.gateway.limits import PerClientListener
from dspot_spotify.gateway.messages import (
    body_span,
    forward_headers,
    is_small,
    response_headers,
)
from dspot_spotify.gateway.pool import GatewayConfig, NodePool
from dspot_spotify.gateway.positions import PositionTracker, read_position
from dspot_spotify.security import WEB_APP_CSP, hardened
from dspot_spotify.subsonic.protocol import WRITES, endpoint_name
from dspot_spotify.writer import LOG_POSITION_HEADER, LOG_WAIT_HEADER, format_position

__all__ = ["NOT_BUILT_PAGE", "STREAM_PATH", "Gateway"]

log = logging.getLogger("dspot_spotify.gateway")

REPLAYABLE: Final = 64 * 1024
"""Request bodies up to this size are read whole before relaying, so they can be retried."""
UPSTREAM_IDLE_PER_NODE: Final = 64
"""Idle keep-alive connections kept to each node. With fewer than the load keeps busy at
once, connections are closed and opened again all the time: with the client's default of 8,
32 clients searching over 3 nodes left 250 to 360 closed connections in 10 s (one request
in 15 to 20 paid for a new one); with 64, only the health checks' 20."""
STREAM_PATH: Final = re.compile(
    r"^(?:/api/songs/[^/]+/stream|/rest/(?:stream|download)(?:\.view)?)$"
)
"""Song bodies that resume on another node when theirs breaks off: the REST API's stream and
the Subsonic API's ``stream`` and ``download`` (music players)."""
NOT_BUILT_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>dspot-spotify</title></head>
<body>
<h1>dspot-spotify</h1>
<p>The gateway and the API are running, but the web frontend has not been built.</p>
<p>Build it from the source checkout and restart:</p>
<pre>cd frontend &amp;&amp; npm ci &amp;&amp; npm run build</pre>
<p>The API is at <a href="/api/openapi.json"><code>/api/</code></a>;
this gateway's health is at <a href="/healthz"><code>/healthz</code></a>.</p>
</body></html>
"""


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
        meta: Mapping[str, str] | None = None,
    ) -> None:
        """``upstream_connect`` reaches the nodes' HTTP APIs (default ``env.transport``'s:
        give a plain one when the cluster's RPC transport is mutual TLS); ``meta``: membership
        metadata to gossip besides the observer role (its supervisor's restart count)."""
        self.env = env
        self.meta = dict(meta or {})
        self._upstream_connect = upstream_connect
        self.listen = listen
        self.rpc_address = rpc_address
        self.seeds = list(seeds)
        self.config = config or GatewayConfig()
        self.listener: PerClientListener | None = None
        """The HTTPS listener once running (its per-client connection counts)."""
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
        self.positions = PositionTracker(self.config.positions)
        """The log positions seen in node answers (and gossip): what requests must see."""
        self.retried_behind = 0
        """Requests sent again to another node because the first was behind."""
        self._membership: Membership | None = None

    @property
    def pool(self) -> NodePool:
        assert self._pool is not None, "the gateway is not running"
        return self._pool

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[Any] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Join the cluster, start health checks, serve until cancelled or :meth:`shutdown`."""
        cfg = self.config
        server_cfg = hardened(
            attrs.evolve(cfg.server, ssl_context=self._ssl, max_body_size=cfg.max_body_size),
            csp=WEB_APP_CSP,
        )
        async with contextlib.AsyncExitStack() as stack:
            self.rpc = await stack.enter_async_context(
                RpcNode(self.env, listen=self.rpc_address, secret=self._secret)
            )
            membership = await stack.enter_async_context(
                Membership(
                    self.env,
                    self.rpc,
                    cfg.membership,
                    seeds=self.seeds,
                    meta=observer_meta(self.meta),
                )
            )
            self._membership = membership
            if Sabotage.NO_LOG_POSITIONS in cfg.sabotage:
                log.error("SABOTAGED: this gateway forwards no log positions (tests only)")
                self.env.log(40, "spotify.gateway.SABOTAGED", bug="no-log-positions")
            registry = Registry(self.env, membership)  # resolving only: we publish nothing
            connect = self._upstream_connect or self.env.transport.connect
            # One retry: a check must not fail on a keep-alive connection the node just closed.
            checks = await stack.enter_async_context(HttpClient(connect, retries=1))
            self._upstream = await stack.enter_async_context(
                HttpClient(
                    connect,
                    timeouts=cfg.upstream,
                    retries=1,
                    max_idle_per_host=UPSTREAM_IDLE_PER_NODE,
                )
            )
            self._pool = NodePool(registry, checks, cfg, self.env.child_rng("gateway"))
            tg = await stack.enter_async_context(anyio.create_task_group())
            await tg.start(self._pool.run)
            self._server = HttpServer(self.handle, server_cfg, clock=self.env.clock)
            per_client = cfg.max_connections_per_client
            if Sabotage.NO_CLIENT_CAP in cfg.sabotage:
                per_client = cfg.server.max_connections + 1  # never reached
            listener = PerClientListener(await self.env.transport.listen(self.listen), per_client)
            self.listener = listener
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

    def _required(self, request: Request) -> catalog.LogPosition | None:
        """The position the request must see (None: the sabotaged gateway's answer)."""
        if Sabotage.NO_LOG_POSITIONS in self.config.sabotage:
            return None
        if self._membership is not None:
            self.positions.gossip(self._membership.members())
        return self.positions.required(request)

    def _caught_up(self, tried: set[str], required: catalog.LogPosition) -> Endpoint | None:
        """A healthy node not tried yet that is known to have reached ``required``, the
        furthest first."""
        zero = catalog.LogPosition(0, 0)
        known = [
            (self.positions.node(ep.instance) or zero, ep)
            for ep in self.pool.healthy()
            if ep.endpoint not in tried
        ]
        ahead = [(pos, ep) for pos, ep in known if pos >= required]
        return max(ahead, key=lambda item: item[0])[1] if ahead else None

    async def _relay(self, request: Request) -> Response:
        upstream = self._upstream
        assert upstream is not None
        target = self._target(request)
        headers = forward_headers(request)
        required = self._required(request)
        if required is not None:
            headers = headers.set(LOG_POSITION_HEADER, format_position(required))
            if LOG_WAIT_HEADER not in request.headers:
                headers = headers.set(LOG_WAIT_HEADER, f"{self.config.position_wait:g}")
        method = request.method
        # A read may go to another node after the first failed half-way; a write only when
        # the first certainly did nothing. Subsonic writes come as GET too: neither the relay
        # nor its HTTP client (which resends an idempotent method) may send one twice.
        subsonic_write = endpoint_name(request.raw_path) in WRITES
        retry_anyway = method in ("GET", "HEAD", "OPTIONS") and not subsonic_write
        length = request.headers.get("content-length", "0")
        has_body = "transfer-encoding" in request.headers or length not in ("", "0")
        whole: bytes | None = None
        if has_body and length.isdigit() and int(length) <= REPLAYABLE:
            # Small (forms, JSON, a Subsonic POST): read it first, so it can go to another
            # node when the first is behind.
            whole = b"".join([chunk async for chunk in request.stream()])
            has_body = False
        tried: set[str] = set()
        behind: catalog.LogPosition | None = None
        for _ in range(self.config.attempts):
            ep = None
            if behind is not None and required is not None:
                ep = self._caught_up(tried, required)
            ep = ep or self.pool.pick(tried)
            if ep is None:
                break
            tried.add(ep.endpoint)
            sent = _Once(request.stream()) if has_body else None
            body: bytes | AsyncIterable[bytes] = whole or b"" if sent is None else sent
            try:
                # In flight until the answer's head (and a small body) is in: a streamed
                # body costs the node little more than the copying.
                with self.pool.asking(ep):
                    resp = await upstream.request(
                        method,
                        f"http://{ep.endpoint}{target}",
                        headers=headers,
                        body=body,
                        idempotent=False if subsonic_write else None,
                    )
                    # A small body is read here, whole: a node failing half-way through it
                    # is then handled like one failing before answering.
                    whole_body = await resp.read() if is_small(request, resp) else None
            except HTTPError:
                raise  # the client's own body was bad (413, 408): not the node's fault
            except (ConnectRefused, ConnectTimeout, HandshakeFailed) as e:
                self._failed(ep, request, e)  # never reached the node: safe to try another
                if sent is not None and sent.started:
                    raise HTTPError(502, "the node failed while receiving the body") from None
                continue
            except ReadTimeout as e:
                self._failed(ep, request, e)
                if retry_anyway:
                    continue
                raise HTTPError(504, "the node did not answer in time") from None
            except DspotError as e:
                self._failed(ep, request, e)
                if retry_anyway:
                    continue
                raise HTTPError(
                    502, "the node failed while handling the request (it may have been applied)"
                ) from None
            self.pool.succeeded(ep)
            answered = read_position(resp.headers.get(LOG_POSITION_HEADER))
            if (
                resp.status == 503
                and required is not None
                and answered is not None
                and answered < required
                and not (sent is not None and sent.started)
            ):
                # The node waited for the position and is still behind: nothing was done
                # there, so another node that has caught up may answer instead.
                self.positions.behind(ep.instance, answered)
                behind = answered
                self.retried_behind += 1
                await resp.aclose()
                continue
            self.positions.saw(request, ep.instance, answered)
            return self._response(request, ep, resp, headers, whole_body)
        if behind is not None and required is not None:
            raise HTTPError(
                503,
                f"no node has reached log position {format_position(required)} yet",
                headers=[("retry-after", "1")],
            )
        raise HTTPError(503, "no healthy node", headers=[("retry-after", "1")])

    def _failed(self, ep: Endpoint, request: Request, error: BaseException) -> None:
        """Take ``ep`` out of rotation; the log, never the client, learns where and why (a
        5xx answer names no internal address)."""
        self.pool.failed(ep)
        log.warning(
            "node %s (%s) failed %s %s: %r",
            ep.instance,
            ep.endpoint,
            request.method,
            request.raw_path,
            error,
        )

    def _response(
        self,
        request: Request,
        ep: Endpoint,
        resp: ClientResponse,
        headers: Headers,
        whole_body: bytes | None,
    ) -> Response:
        out = response_headers(resp, ep, served_by=self.config.served_by)
        if request.method == "HEAD" or resp.status in (204, 304) or resp.status < 200:
            return Response(resp.status, out, b"")  # the client read it (no body): released
        if whole_body is not None:
            return Response(resp.status, out, whole_body)
        span = body_span(resp)
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
        except DspotError as e:
            self.pool.failed(ep)
            # Aborting the client's response is all that is left: it sees a cut-off body.
            raise ConnectionLost(f"node {ep.instance} broke off: {e!r}") from e
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
                except DspotError as e:
                    self.pool.failed(ep)
                    if Sabotage.NO_STREAM_RESUME in self.config.sabotage:
                        raise
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
                except DspotError:
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
                raise ConnectionLost(
                    f"node {ep.instance} answered {resp.status} to the resume of {target}"
                )
        raise ConnectionLost(f"no healthy node to resume {target} at byte {offset}")

    async def _relay_websocket(self, client: WebSocket) -> None:
        """Relay ``/api/events`` to a node's: messages both ways until either side closes."""
        request = client.request
        assert request is not None
        target = self._target(request)
        headers = [
            (k, v)
            for k, v in forward_headers(request)
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
            except DspotError:
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
