"""The HTTP/1.1 server: h11 over any anyio byte stream (TCP, TLS, the simulated network).

One :class:`HttpServer` owns its connections. Each connection is a loop around an
``h11.Connection``: read a request head (under the header timeout, or the keep-alive timeout
while idle), run the handler, write the response with backpressure, start the next cycle.
h11 decides keep-alive and pipelining; this module only adds policy (timeouts, limits,
problem documents, graceful shutdown, the access log).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import re
import ssl
from collections.abc import AsyncIterable, Callable, Iterable
from typing import Any, Protocol

import anyio
import anyio.abc
import anyio.to_thread
import attrs
import h11
import sniffio
from anyio.streams.tls import TLSStream

from dspot.env import Clock, Mechanism, Tracer, null_tracer
from dspot.errors import STREAM_ERRORS
from dspot.http._conditional import http_date
from dspot.http._message import Handler, Headers, Request, Response, WebSocketUpgrade
from dspot.http._problem import HTTPError, Problem, status_phrase
from dspot.http._range import FileSlice
from dspot.http._validate import HttpMechanism, JsonLimits
from dspot.transport import ProtocolStream, can_send_file, send_file

access_log = logging.getLogger("dspot.http.access")

SECRET_QUERY_PARAMS = frozenset({"token", "access_token", "apikey", "p", "t", "s"})
"""Query parameters whose values the access log never shows (credentials that browsers and
Subsonic clients put in URLs)."""

_SECRET_PARAM = re.compile(
    r"([?&](?:" + "|".join(sorted(SECRET_QUERY_PARAMS)) + r")=)[^&#]*", re.IGNORECASE
)


def redact_target(target: str) -> str:
    """``target`` with the values of :data:`SECRET_QUERY_PARAMS` replaced by ``***``."""
    if "?" not in target:
        return target
    return _SECRET_PARAM.sub(r"\1***", target)


"""One INFO line per response: ``client "METHOD target HTTP/v" status bytes seconds``."""
error_log = logging.getLogger("dspot.http.error")

KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY"}
)
"""The methods of RFC 9110 plus PATCH and QUERY (the safe method with a body, in IANA's
registry): any other method is answered 501 Not Implemented, these 405 unless served."""

SERVED_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})
"""The default :attr:`ServerConfig.allowed_methods`: a known method outside it (TRACE,
CONNECT) is answered 405 before any handler runs."""


@attrs.frozen
class ServerConfig:
    """Limits and timeouts of an :class:`HttpServer` (seconds, bytes).

    ``header_timeout`` bounds the time from a request's first byte (or from connection start)
    to the end of its head, which is what stops slowloris; ``keepalive_timeout`` bounds the
    idle time between requests; ``body_timeout`` and ``send_timeout`` bound each read of a
    request body and each write of a response. Past ``max_connections`` a new
    connection gets a 503 and is closed. ``drain_limit``: an unread request body up to this
    size is skipped to keep the connection; ``linger_*``: how long and how much input is
    dropped before closing on a client still sending.

    Before any handler runs, a request with an HTTP version other than 1.0/1.1 gets 505, one
    with both ``Content-Length`` and ``Transfer-Encoding`` gets 400 and the connection is
    closed (its framing cannot be trusted), an unknown method gets 501 and a known one not
    in ``allowed_methods`` 405. ``response_headers`` are added to every response that does
    not set them itself (``Strict-Transport-Security``, ``X-Content-Type-Options``...).
    ``json_limits`` is what :meth:`Request.json` enforces unless told otherwise.
    """

    max_header_size: int = 16 * 1024
    max_body_size: int = 16 * 1024 * 1024
    header_timeout: float = 10.0
    keepalive_timeout: float = 15.0
    body_timeout: float = 30.0
    send_timeout: float = 60.0
    max_connections: int = 1024
    shutdown_timeout: float = 10.0
    ssl_context: ssl.SSLContext | None = None
    tls_handshake_timeout: float = 10.0
    receive_size: int = 64 * 1024
    drain_limit: int = 64 * 1024
    linger_timeout: float = 2.0
    linger_limit: int = 1024 * 1024
    server_header: str | None = "dspot"
    ws_ping_interval: float | None = 20.0
    ws_ping_timeout: float = 20.0
    ws_max_message_size: int = 16 * 1024 * 1024
    ws_queue_size: int = 16
    allowed_methods: frozenset[str] = SERVED_METHODS
    response_headers: Headers = attrs.field(factory=Headers, converter=Headers)
    json_limits: JsonLimits = attrs.field(factory=JsonLimits)


class StreamListener(Protocol):
    """Anything with ``serve(handler)``: a :class:`dspot.transport.Listener` or an anyio one."""

    async def serve(self, handler: Any) -> None: ...


def _peer(stream: anyio.abc.ByteStream) -> str | None:
    """The client's address for logs; None when unknown (a socket the client already reset
    may no longer say)."""
    try:
        addr = stream.extra(anyio.abc.SocketAttribute.remote_address, None)
    except OSError:
        return None
    if isinstance(addr, tuple) and len(addr) >= 2:
        return f"{addr[0]}:{addr[1]}"
    return None if addr is None else str(addr)


class HttpServer:
    """Serves ``handler`` (usually a :class:`~dspot.http.Router`) on byte streams.

    Use :meth:`serve` with a listener, or hand each accepted stream to
    :meth:`handle_stream`. :meth:`shutdown` stops accepting, closes idle connections, lets
    in-flight responses finish for up to ``config.shutdown_timeout`` and then cancels the rest.
    ``clock`` supplies the ``Date`` header: pass the node's (``env.clock``), or
    ``EventLoopClock(wall_base=real_wall_base())`` in a standalone process. Without one the
    server has no clock and, as RFC 9110 (6.6.1) requires of such a server, sends no
    ``Date``: it never reads the system clock behind the caller's back, so a simulation
    that forgets to pass its clock still replays exactly.
    ``trace`` (a node's ``env.trace``) hears of every connection that ended in an unexpected
    error. ``disabled`` (a node's ``env.disabled``): :class:`HttpMechanism` s it is built
    without, for sabotage tests.
    """

    def __init__(
        self,
        handler: Handler,
        config: ServerConfig | None = None,
        *,
        clock: Clock | None = None,
        trace: Tracer = null_tracer,
        disabled: Iterable[Mechanism] = (),
    ) -> None:
        self.handler = handler
        self.json_guard = HttpMechanism.JSON_GUARD not in set(disabled)
        self.config = config or ServerConfig()
        self._clock = clock
        self._trace = trace
        # A dict as an ordered set: shutdown closes idle connections in the order they
        # came, not in memory-address order (which differs from run to run).
        self._connections: dict[_ServerConnection, None] = {}
        self._handshaking = 0
        self._date_second = -1
        self._date_value = b""
        self._date_until = -math.inf
        self._no_connections = anyio.Event()
        self._no_connections.set()
        self._shutdown_requested = anyio.Event()
        self._stopped = anyio.Event()
        self._conn_group: anyio.abc.TaskGroup | None = None

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    @property
    def shutting_down(self) -> bool:
        return self._shutdown_requested.is_set()

    def _date(self, now: float) -> bytes | None:
        """The ``Date`` header value, formatted at most once per second; None without a
        clock. ``now`` is the loop's monotonic time (cheaper to read than the wall clock)."""
        if self._clock is None:
            return None
        if now < self._date_until:
            return self._date_value
        wall = self._clock.wall()
        second = int(wall)
        if second != self._date_second:
            self._date_second = second
            self._date_value = http_date(second).encode()
        self._date_until = now + (second + 1 - wall)
        return self._date_value

    async def serve(
        self,
        listener: StreamListener,
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Accept connections from ``listener`` until cancelled or :meth:`shutdown`."""
        try:
            async with anyio.create_task_group() as connections:
                self._conn_group = connections
                async with anyio.create_task_group() as accepting:
                    accepting.start_soon(listener.serve, self._accept)
                    task_status.started()
                    await self._shutdown_requested.wait()
                    accepting.cancel_scope.cancel()
                for conn in list(self._connections):
                    conn.close_if_idle()
                with anyio.move_on_after(self.config.shutdown_timeout):
                    await self._no_connections.wait()
                connections.cancel_scope.cancel()
        finally:
            self._conn_group = None
            self._stopped.set()

    async def _accept(self, stream: anyio.abc.ByteStream) -> None:
        # Connections belong to the server's task group, not the listener's, so that
        # shutdown can stop accepting while in-flight responses finish.
        if self._conn_group is None or self.shutting_down:
            await anyio.aclose_forcefully(stream)
            return
        self._conn_group.start_soon(self.handle_stream, stream)

    async def wait_shutdown(self) -> None:
        """Return once :meth:`shutdown` has been called (long-lived sessions watch this)."""
        await self._shutdown_requested.wait()

    async def shutdown(self) -> None:
        """Graceful stop; returns when :meth:`serve` has returned."""
        self._shutdown_requested.set()
        for conn in list(self._connections):
            conn.close_if_idle()
        if self._conn_group is not None:
            await self._stopped.wait()

    async def handle_stream(self, stream: anyio.abc.ByteStream) -> None:
        """Serve HTTP on one connection until it ends; always closes ``stream``."""
        try:
            if len(self._connections) + self._handshaking >= self.config.max_connections:
                if self.config.ssl_context is None:  # a plaintext 503 would garble TLS
                    await self._refuse(stream)
                return
            if self.config.ssl_context is not None:
                self._handshaking += 1
                try:
                    with anyio.fail_after(self.config.tls_handshake_timeout):
                        stream = await TLSStream.wrap(
                            stream,
                            server_side=True,
                            ssl_context=self.config.ssl_context,
                            standard_compatible=False,
                        )
                except (TimeoutError, ssl.SSLError, *STREAM_ERRORS) as e:
                    error_log.debug("TLS handshake failed: %r", e)
                    return
                finally:
                    self._handshaking -= 1
            conn = _ServerConnection(self, stream)
            self._connections[conn] = None
            self._no_connections = (
                anyio.Event() if len(self._connections) == 1 else self._no_connections
            )
            try:
                await conn.run()
            finally:
                self._connections.pop(conn, None)
                if not self._connections:
                    self._no_connections.set()
        except Exception as exc:
            # A bug must cost one connection, never the server (or the listener's tasks).
            error_log.exception("connection from %s failed", _peer(stream) or "-")
            self._trace("conn.crash", error=type(exc).__name__)
        finally:
            with (
                anyio.CancelScope(shield=True),
                anyio.move_on_after(1),
                contextlib.suppress(*STREAM_ERRORS),
            ):
                await stream.aclose()

    async def _refuse(self, stream: anyio.abc.ByteStream) -> None:
        conn = h11.Connection(h11.SERVER)
        problem = Problem(503, "Service Unavailable", "too many connections")
        body = problem.to_json()
        headers = [
            ("content-type", "application/problem+json"),
            ("content-length", str(len(body))),
            ("connection", "close"),
            ("retry-after", "1"),
        ]
        data = conn.send(
            h11.Response(status_code=503, headers=headers, reason=b"Service Unavailable")
        )
        with anyio.move_on_after(1), contextlib.suppress(*STREAM_ERRORS):
            await stream.send((data or b"") + body)


class _ServerConnection:
    """One HTTP connection: the request/response loop around an ``h11.Connection``.

    On a :class:`~dspot.transport.ProtocolStream` (plain TCP on asyncio) timeouts use the
    stream's own timers (:meth:`~dspot.transport.ProtocolStream.receive_within`); anyio
    cancel scopes, which cost more than the rest of a small request, only elsewhere.
    """

    def __init__(self, server: HttpServer, stream: anyio.abc.ByteStream) -> None:
        self.server = server
        self.config = server.config
        self.stream = stream
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=self.config.max_header_size)
        self.peer = _peer(stream)
        self._fast = stream if isinstance(stream, ProtocolStream) else None
        self._now = _loop_clock()
        self._idle_scope: anyio.CancelScope | None = None
        self._idle = False
        self._body_failed = False

    def close_if_idle(self) -> None:
        if self._idle_scope is not None:
            self._idle_scope.cancel()
        if self._idle and self._fast is not None:
            self._fast.interrupt_receive()

    async def _receive(
        self, timeout: float, scope: anyio.CancelScope | None = None
    ) -> bytes | None:
        """Bytes from the peer, ``b""`` at end of stream, ``None`` on timeout (or when
        ``scope`` is cancelled, or :meth:`close_if_idle` interrupts an idle wait)."""
        if self._fast is not None:
            try:
                return await self._fast.receive_within(timeout, self.config.receive_size)
            except STREAM_ERRORS:
                return b""
        scope = scope or anyio.CancelScope()
        scope.deadline = self._now() + timeout
        with scope:
            try:
                return await self.stream.receive(self.config.receive_size)
            except STREAM_ERRORS:
                return b""
        return None

    async def _send_bytes(self, data: bytes) -> None:
        """Send ``data``; ``TimeoutError`` if the peer takes longer than ``send_timeout``."""
        if self._fast is not None:
            await self._fast.send_within(self.config.send_timeout, data)
            return
        with anyio.fail_after(self.config.send_timeout):
            await self.stream.send(data)

    async def _send(self, event: h11.Event) -> int:
        sent = 0
        for piece in _coalesce(self.h11.send_with_data_passthrough(event)):
            await self._send_bytes(piece)
            sent += len(piece)
        return sent

    async def run(self) -> None:
        first = True
        while True:
            event = await self._next_request(first)
            first = False
            if event is None:
                break
            keep_alive = await self._respond(event)
            if (
                not keep_alive
                or self.server.shutting_down
                or self.h11.our_state is not h11.DONE
                or self.h11.their_state is not h11.DONE
            ):
                break
            self.h11.start_next_cycle()
        await self._linger()

    async def _linger(self) -> None:
        """Before closing on a client that may still be sending (an unread body, a bad
        request), stop writing and drop its input for a moment. Closing at once would make
        the kernel answer with a reset that can destroy our error response in flight."""
        if self.h11.their_state not in (h11.SEND_BODY, h11.ERROR):
            return
        with anyio.move_on_after(self.config.linger_timeout):
            with contextlib.suppress(*STREAM_ERRORS, NotImplementedError):
                await self.stream.send_eof()
            dropped = 0
            while dropped < self.config.linger_limit:
                try:
                    dropped += len(await self.stream.receive(self.config.receive_size))
                except STREAM_ERRORS:
                    return

    async def _next_request(self, first: bool) -> h11.Request | None:
        cfg = self.config
        idle = not self.h11.trailing_data[0]
        # The head must arrive within header_timeout of the connection's start (first
        # request) or of its first byte; found lazily, as most heads come in one piece.
        deadline = self._now() + cfg.header_timeout if first else None
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as e:
                await self._send_error_and_close(e.error_status_hint, str(e))
                return None
            if isinstance(event, h11.Request):
                return event
            if event is not h11.NEED_DATA:
                return None  # ConnectionClosed, or PAUSED after an error
            if idle:
                # Idle between requests: shutdown may cancel this wait (and only this one).
                if self.server.shutting_down:
                    return None
                if self._fast is None:
                    self._idle_scope = anyio.CancelScope()
                self._idle = True
                try:
                    timeout = cfg.header_timeout if first else cfg.keepalive_timeout
                    data = await self._receive(timeout, self._idle_scope)
                finally:
                    self._idle_scope = None
                    self._idle = False
                if data is None:
                    return None
                idle = False
            else:
                if deadline is None:
                    deadline = self._now() + cfg.header_timeout
                data = await self._receive(deadline - self._now())
                if data is None:
                    await self._send_error_and_close(408, "request head not received in time")
                    return None
            self.h11.receive_data(data)

    async def _receive_body(self) -> bytes:
        """Next chunk of the current request body (``b""`` at its end); the h11 pump."""
        if self.h11.they_are_waiting_for_100_continue:
            await self._send(h11.InformationalResponse(status_code=100, headers=[]))
        try:
            return await self._next_body_chunk()
        except BaseException:
            self._body_failed = True
            raise

    async def _next_body_chunk(self) -> bytes:
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as e:
                raise HTTPError(e.error_status_hint, str(e)) from None
            if isinstance(event, h11.Data):
                if event.data:
                    return bytes(event.data)
                continue
            if isinstance(event, h11.EndOfMessage):
                return b""
            if event is h11.NEED_DATA:
                data = await self._receive(self.config.body_timeout)
                if data is None:
                    raise HTTPError(408, "request body not received in time")
                self.h11.receive_data(data)
                continue
            raise HTTPError(400, f"unexpected {type(event).__name__} in request body")

    async def _drain(self, request: Request) -> bool:
        """Read and drop what is left of a small request body (declared ``Content-Length`` up
        to ``drain_limit``) so the connection can be reused; False means close instead."""
        if self.h11.their_state is not h11.SEND_BODY:
            return True
        if not self.h11.they_are_waiting_for_100_continue and not self._body_failed:
            # Fast path: a request without a body only has its EndOfMessage left in h11.
            # (Anything else it returns is body we were about to drop anyway.)
            try:
                if isinstance(self.h11.next_event(), h11.EndOfMessage):
                    return True
            except h11.RemoteProtocolError:
                return False
        length = request.headers.get("content-length", "0")
        if (
            self._body_failed
            or self.h11.they_are_waiting_for_100_continue
            or "transfer-encoding" in request.headers
            or not length.isdigit()
            or int(length) > self.config.drain_limit
        ):
            return False
        dropped = 0
        try:
            while chunk := await self._receive_body():
                dropped += len(chunk)
                if dropped > self.config.drain_limit:
                    return False
        except HTTPError:
            return False
        return True

    async def _send_error_and_close(self, status: int, detail: str) -> None:
        if self.h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        response = Response.problem(Problem(status, status_phrase(status), detail))
        with contextlib.suppress(h11.LocalProtocolError, TimeoutError, *STREAM_ERRORS):
            await self._write_response(None, response, close=True)
        access_log.info('%s "-" %d -', self.peer or "-", status)

    async def _respond(self, event: h11.Request) -> bool:
        """Run the handler for ``event`` and write its response; False to close."""
        logged = access_log.isEnabledFor(logging.INFO)
        start = self._now() if logged else 0.0
        self._body_failed = False
        request = Request(
            method=event.method.decode("ascii"),
            target=event.target.decode("latin-1"),
            headers=Headers.from_raw(event.headers),
            http_version=event.http_version.decode("ascii"),
            client=self.peer,
            max_body_size=self.config.max_body_size,
            json_limits=self.config.json_limits,
            json_guard=self.server.json_guard,
            receive=self._receive_body,
        )
        # Which of the two frames the body? Proxies disagree (request smuggling): the body
        # is never read and the connection closes after the answer.
        refuse_body = "content-length" in request.headers and "transfer-encoding" in request.headers
        try:
            head_size = len(event.target) + sum(len(k) + len(v) + 4 for k, v in event.headers)
            if head_size > self.config.max_header_size:
                raise HTTPError(431, f"request head exceeds {self.config.max_header_size} bytes")
            self._check_request(request, refuse_body)
            response = await self.server.handler(request)
        except HTTPError as e:
            response = Response.from_error(e)
        except Exception:
            error_log.exception("handler failed: %s %s", request.method, request.target)
            response = Response.problem(Problem(500, "Internal Server Error"))
        if isinstance(response, WebSocketUpgrade) and response.session is not None:
            from dspot.http._websocket import serve_websocket

            if await self._drain(request) and request.is_websocket_upgrade:
                rejected = await serve_websocket(self, request, response)
                if rejected is None:
                    return False
                response = rejected
            else:
                response = Response.problem(Problem(400, "Bad Request", "invalid upgrade request"))
            close = True
        else:
            drained = not refuse_body and await self._drain(request)
            close = self.server.shutting_down or not drained
        try:
            sent = await self._write_response(request, response, close=close)
        except (TimeoutError, h11.LocalProtocolError, *STREAM_ERRORS) as e:
            error_log.debug("response to %s aborted: %r", self.peer, e)
            return False
        except Exception:
            error_log.exception("response body failed: %s %s", request.method, request.target)
            return False
        finally:
            await _close_body(response.body)
        if logged:
            access_log.info(
                '%s "%s %s HTTP/%s" %d %d %.3f',
                self.peer or "-",
                request.method,
                redact_target(request.target),
                request.http_version,
                response.status,
                sent,
                self._now() - start,
            )
        return not close

    def _check_request(self, request: Request, ambiguous_length: bool) -> None:
        """Raise the answer to a request no handler should see."""
        if request.http_version not in ("1.0", "1.1"):
            raise HTTPError(505, f"HTTP/{request.http_version[:10]} is not supported; use 1.1")
        if ambiguous_length:
            raise HTTPError(400, "Content-Length and Transfer-Encoding together")
        method = request.method
        if method not in self.config.allowed_methods:
            if method not in KNOWN_METHODS:
                raise HTTPError(501, f"method {method[:20]!r} is not implemented")
            allow = ", ".join(sorted(self.config.allowed_methods))
            raise HTTPError(405, f"{method} is not served here", headers=[("allow", allow)])

    async def _write_response(
        self, request: Request | None, response: Response, *, close: bool
    ) -> int:
        body = response.body
        head_only = request is not None and request.method == "HEAD"
        no_body = response.status in (204, 304) or response.status < 200
        try:
            head = self.h11.send(self._head(response, body, no_body=no_body, close=close)) or b""
        except h11.LocalProtocolError:
            if request is None:
                raise
            error_log.exception("handler returned an invalid response")
            fallback = Response.problem(Problem(500, "Internal Server Error", "invalid response"))
            return await self._write_response(request, fallback, close=True)
        if (isinstance(body, bytes) and len(body) <= 1024 * 1024) or head_only or no_body:
            # The whole response in one write: one syscall for the common small response.
            parts = [head]
            if isinstance(body, bytes) and body and not head_only and not no_body:
                parts.append(self.h11.send(h11.Data(data=body)) or b"")
            parts.append(self.h11.send(_END) or b"")
            data = b"".join(parts)
            await self._send_bytes(data)
            return len(data)
        await self._send_bytes(head)
        sent = len(head)
        if not head_only and not no_body:
            if isinstance(body, bytes):
                if body:
                    sent += await self._send(h11.Data(data=body))
            elif isinstance(body, FileSlice) and can_send_file(self.stream):
                sent += await self._send_file(body)
            else:
                async for chunk in body:
                    if chunk:
                        sent += await self._send(h11.Data(data=chunk))
        sent += await self._send(_END)
        return sent

    def _head(self, response: Response, body: Any, *, no_body: bool, close: bool) -> h11.Response:
        """The h11 response head: the handler's headers, checked, plus our own."""
        # Build and check the header list in one pass: this runs for every response.
        raw: list[tuple[bytes, bytes]] = []
        seen: set[str] = set()
        for name, value in response.headers:
            if close and name == "connection":
                continue
            if name not in _GOOD_NAMES:
                if not _TOKEN.fullmatch(name):
                    raise h11.LocalProtocolError(f"illegal header name {name!r}")
                if len(_GOOD_NAMES) < 1024:
                    _GOOD_NAMES.add(name)
            if _BAD_VALUE.search(value):
                raise h11.LocalProtocolError(f"illegal header value {value!r}")
            seen.add(name)
            try:
                raw.append((name.encode("latin-1"), value.encode("latin-1")))
            except UnicodeEncodeError:
                raise h11.LocalProtocolError(f"header {name} is not latin-1") from None
        for name, value in self.config.response_headers:
            if name not in seen:
                raw.append((name.encode("latin-1"), value.encode("latin-1")))
        if isinstance(body, bytes) and not no_body and "content-length" not in seen:
            raw.append((b"content-length", str(len(body)).encode()))
        if "date" not in seen and (date := self.server._date(self._now())) is not None:
            raw.append((b"date", date))
        if self.config.server_header and "server" not in seen:
            raw.append((b"server", self.config.server_header.encode("latin-1")))
        if close:
            raw.append((b"connection", b"close"))
        # The headers are checked above (names are tokens, values hold no control characters
        # but tab: no header injection), so h11's own slower check is skipped with its
        # `_parsed` switch, which it uses for what its parser produced.
        return h11.Response(
            status_code=response.status,
            headers=raw,
            reason=_reason(response.status),
            _parsed=True,
        )

    async def _send_file(self, body: FileSlice) -> int:
        """Send a file slice with ``sendfile(2)``: h11 frames a stand-in of the right length
        (its data passthrough hands it back untouched) and the kernel copies the bytes."""
        region = _Region(body.length)
        sent = 0
        event = h11.Data(data=region)  # type: ignore[arg-type]
        pieces: list[Any] = self.h11.send_with_data_passthrough(event) or []
        for piece in pieces:
            if piece is not region:
                await self._send_bytes(piece)
                sent += len(piece)
                continue
            file = await anyio.to_thread.run_sync(open, body.path, "rb")
            try:
                offset, left = body.offset, body.length
                while left > 0:
                    with anyio.fail_after(self.config.send_timeout):
                        n = await send_file(self.stream, file, offset, left)
                    if n <= 0:
                        raise OSError(f"{body.path} shrank while being sent")
                    offset += n
                    left -= n
                    sent += n
            finally:
                file.close()
        return sent


_END = h11.EndOfMessage()  # immutable: one for every response

_TOKEN = re.compile(r"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]|^[ \t]|[ \t]$")
_GOOD_NAMES: set[str] = set()  # header names already found to be tokens


class _Region:
    """Stands in for a file's bytes in h11 (which only asks its length)."""

    __slots__ = ("_length",)

    def __init__(self, length: int) -> None:
        self._length = length

    def __len__(self) -> int:
        return self._length


def _loop_clock() -> Callable[[], float]:
    """The running loop's clock: ``loop.time`` on asyncio (a tenth of the cost of
    ``anyio.current_time``), anyio's otherwise (trio, virtual time included)."""
    if sniffio.current_async_library() == "asyncio":
        return asyncio.get_running_loop().time
    return anyio.current_time


@functools.cache
def _reason(status: int) -> bytes:
    return status_phrase(status).encode()


def _coalesce(pieces: list[bytes] | None) -> list[bytes]:
    """Join h11's small pieces (head lines, chunk framing) into one write; keep a large
    body chunk as its own write so it is not copied."""
    pieces = [p for p in pieces or () if p]
    if len(pieces) <= 1 or sum(len(p) for p in pieces) <= 64 * 1024:
        return [b"".join(pieces)] if pieces else []
    return pieces


async def _close_body(body: bytes | AsyncIterable[bytes]) -> None:
    # Close a streamed body now (an open file behind it, say) rather than at garbage
    # collection, also when the response was HEAD or was aborted part-way.
    aclose = getattr(body, "aclose", None)
    if aclose is not None:
        with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
            await aclose()
