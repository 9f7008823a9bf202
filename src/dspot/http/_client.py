"""An HTTP/1.1 client on h11 over any transport, with a keep-alive connection pool.

Services use it for REST between them, over the simulated network or TCP/TLS alike: give it
``connect=transport.connect``. Idempotent requests (GET, HEAD, PUT, DELETE, OPTIONS) whose
body can be replayed are retried when the connection fails before a response arrives; that
covers the usual race of reusing a keep-alive connection the server has just closed.
"""

from __future__ import annotations

import contextlib
import json as jsonlib
import ssl
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Iterable, Mapping
from types import TracebackType
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import anyio
import anyio.abc
import attrs
import h11
from anyio.streams.tls import TLSStream
from cattrs.preconf.json import JsonConverter

from dspot.errors import (
    STREAM_ERRORS,
    ConnectionLost,
    ConnectRefused,
    ConnectTimeout,
    DspotError,
    LocalProtocolError,
    RemoteProtocolError,
    handshake_failed,
)
from dspot.http._message import Headers, json_converter
from dspot.http._problem import PROBLEM_JSON, Problem, status_phrase
from dspot.http._server import _coalesce
from dspot.transport import ProtocolStream

T = TypeVar("T")

IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})

DIRECT_BODY_MIN = 64 * 1024
"""A response body with a ``content-length`` at least this large is read straight from the
stream, not through h11: h11 would copy every byte into its buffer and out again (measured
on the gateway relaying a 64 MiB song: about 15 % of its CPU)."""
RECEIVE_SIZE = 1024 * 1024


class Connector(Protocol):
    """``transport.connect``: opens a byte stream to ``"host:port"``."""

    async def __call__(self, address: str, *, timeout: float = ...) -> anyio.abc.ByteStream: ...


class HttpClientError(DspotError):
    """A request failed without an HTTP response (the connection or the protocol broke).

    Connecting raises the transport's :class:`~dspot.errors.PeerUnavailable` subclasses
    (``ConnectRefused``, ``ConnectTimeout``, ``HandshakeFailed``); a connection that breaks
    later raises :class:`ServerDisconnected`, also a ``PeerUnavailable``.
    """


class ServerDisconnected(HttpClientError, ConnectionLost):
    """The connection broke (reset, closed) before the response or its body was complete."""


class HttpProtocolError(HttpClientError, RemoteProtocolError):
    """The server's response is not valid HTTP/1.1."""


class InvalidRequest(HttpClientError, LocalProtocolError):
    """The request cannot be sent as given (an invalid header, say): a bug of the caller."""


class ReadTimeout(HttpClientError, TimeoutError):
    """The server did not answer (or send the next body chunk) within ``read_timeout``."""


class WriteTimeout(HttpClientError, TimeoutError):
    """The server did not take the request (or the next body chunk) within ``write_timeout``."""


class HTTPStatusError(HttpClientError):
    """Raised by :meth:`ClientResponse.raise_for_status` for a 4xx/5xx; carries the problem."""

    def __init__(self, status: int, problem: Problem) -> None:
        super().__init__(
            f"{status} {problem.title}" + (f": {problem.detail}" if problem.detail else "")
        )
        self.status = status
        self.problem = problem


@attrs.frozen
class Timeouts:
    """Client timeouts in seconds: connecting (TLS included), each read, each write."""

    connect: float = 10.0
    read: float = 30.0
    write: float = 30.0


@attrs.frozen
class URL:
    """A parsed ``http(s)``/``ws(s)`` URL as the client needs it."""

    secure: bool
    host: str
    port: int
    target: str

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def host_header(self) -> str:
        default = 443 if self.secure else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def parse_url(url: str, *, websocket: bool = False) -> URL:
    parts = urlsplit(url)
    schemes = {"ws": False, "wss": True} if websocket else {"http": False, "https": True}
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError(f"unsupported URL {url!r}")
    secure = schemes[parts.scheme]
    port = parts.port or (443 if secure else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return URL(secure, parts.hostname, port, target)


async def _tcp_connect(address: str, *, timeout: float = 10.0) -> anyio.abc.ByteStream:
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    try:
        with anyio.fail_after(timeout):
            return await anyio.connect_tcp(host, int(port))
    except TimeoutError:
        raise ConnectTimeout(f"connect to {address} timed out") from None
    except OSError as e:
        raise ConnectRefused(f"connect to {address} failed: {e}") from e


async def open_stream(
    url: URL,
    *,
    connect: Connector | None,
    ssl_context: ssl.SSLContext | None,
    timeout: float,
) -> anyio.abc.ByteStream:
    """Connect to ``url``'s address, wrapping in TLS (verified against ``ssl_context``) for
    https/wss. Raises :class:`~dspot.errors.ConnectTimeout` / ``ConnectRefused``.
    """
    stream = await (connect or _tcp_connect)(url.address, timeout=timeout)
    if not url.secure:
        return stream
    ctx = ssl_context or ssl.create_default_context()
    try:
        with anyio.fail_after(timeout):
            return await TLSStream.wrap(
                stream, hostname=url.host, ssl_context=ctx, standard_compatible=False
            )
    except TimeoutError:
        await anyio.aclose_forcefully(stream)
        raise ConnectTimeout(f"TLS handshake with {url.address} timed out") from None
    except STREAM_ERRORS as e:  # ssl.SSLError (a certificate not trusted), a reset, EOF
        await anyio.aclose_forcefully(stream)
        raise handshake_failed(f"TLS handshake with {url.address} failed", e) from e
    except BaseException:
        await anyio.aclose_forcefully(stream)
        raise


class _Connection:
    """One pooled connection: a byte stream and its client-side h11 state."""

    def __init__(self, key: tuple[bool, str, int], stream: anyio.abc.ByteStream) -> None:
        self.key = key
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT)
        self.idle_since = 0.0
        self.reused = False
        self._eof = False
        self._fast = stream if isinstance(stream, ProtocolStream) else None
        """The stream, when it can time a send or receive without a cancel scope (plain TCP
        on asyncio): a gateway makes two of those per relayed request."""

    async def send(self, event: h11.Event, timeout: float) -> None:
        try:
            pieces = self.h11.send_with_data_passthrough(event)
        except h11.LocalProtocolError as e:
            raise InvalidRequest(str(e)) from None
        for piece in _coalesce(pieces):
            try:
                if self._fast is not None:
                    await self._fast.send_within(timeout, piece)
                    continue
                with anyio.fail_after(timeout):
                    await self.stream.send(piece)
            except TimeoutError:
                raise WriteTimeout("server did not accept the request in time") from None
            except STREAM_ERRORS as e:
                raise ServerDisconnected(f"connection lost while sending: {e!r}") from e

    async def next_event(self, timeout: float) -> h11.Event | type[h11.PAUSED]:
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as e:
                if self.h11.their_state is h11.ERROR and self._eof:
                    # The server closed in the middle of the response: gone, not garbling.
                    raise ServerDisconnected(f"connection closed mid-response: {e}") from None
                raise HttpProtocolError(f"invalid response from the server: {e}") from None
            if event is not h11.NEED_DATA:
                return event  # type: ignore[return-value]
            try:
                data = await self.receive(RECEIVE_SIZE, timeout)
            except anyio.EndOfStream:
                data = b""  # h11 decides whether that ends the response or breaks it
                self._eof = True
            self.h11.receive_data(data)

    async def receive(self, max_bytes: int, timeout: float) -> bytes:
        """Bytes from the stream (``anyio.EndOfStream`` at its end), or the client's errors:
        :class:`ReadTimeout`, :class:`ServerDisconnected`."""
        try:
            if self._fast is not None:
                data = await self._fast.receive_within(timeout, max_bytes)
                if data is None:
                    raise TimeoutError
                return data
            with anyio.fail_after(timeout):
                return await self.stream.receive(max_bytes)
        except TimeoutError:
            raise ReadTimeout("no data from server in time") from None
        except anyio.EndOfStream:
            raise  # one of STREAM_ERRORS, but the caller decides what an end means
        except STREAM_ERRORS as e:
            raise ServerDisconnected(f"connection lost while receiving: {e!r}") from e

    async def aclose(self) -> None:
        await anyio.aclose_forcefully(self.stream)


class ClientResponse:
    """A response whose body is read on demand. Read it to the end (``read``, ``iter_bytes``,
    ``json``) or close it (``aclose`` / ``async with``) so the connection goes back to the pool.
    """

    def __init__(
        self,
        client: HttpClient,
        conn: _Connection,
        response: h11.Response,
        *,
        method: str,
        url: str,
        read_timeout: float,
    ) -> None:
        self.status = response.status_code
        self.reason = response.reason.decode("latin-1")
        self.headers = Headers.from_raw(response.headers)
        self.http_version = response.http_version.decode("ascii")
        self.method = method
        self.url = url
        self._client = client
        self._conn: _Connection | None = conn
        self._read_timeout = read_timeout
        self._content: bytes | None = None
        self._direct = _direct_length(conn, response, method)

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        """Yield the body as it arrives (backpressure: nothing is read ahead)."""
        if self._content is not None:
            if self._content:
                yield self._content
            return
        conn = self._conn
        if conn is None:
            raise HttpClientError("response body already consumed or closed")
        if self._direct is not None:
            # Closed here, not at garbage collection, when our reader stops early.
            async with contextlib.aclosing(self._iter_direct(conn, self._direct)) as chunks:
                async for chunk in chunks:
                    yield chunk
            return
        try:
            while True:
                event = await conn.next_event(self._read_timeout)
                if isinstance(event, h11.Data):
                    yield bytes(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    self._conn = None
                    await self._client._release(conn)
                    return
                else:
                    raise ServerDisconnected(f"connection closed in the response body ({event!r})")
        finally:
            if self._conn is not None:
                self._conn = None
                with anyio.CancelScope(shield=True):
                    await conn.aclose()

    async def _iter_direct(self, conn: _Connection, length: int) -> AsyncGenerator[bytes, None]:
        """The body's ``length`` bytes read straight from the stream (h11 has parsed the head
        and holds what arrived with it). The connection goes back to the pool with a fresh
        h11 state when the server keeps it alive."""
        prefix, closed = conn.h11.trailing_data
        remaining = length
        try:
            if len(prefix) > remaining:
                raise HttpProtocolError("invalid response from the server: more than its body")
            if prefix:
                remaining -= len(prefix)
                yield prefix
            while remaining:
                if closed:
                    raise anyio.EndOfStream
                try:
                    data = await conn.receive(min(remaining, RECEIVE_SIZE), self._read_timeout)
                except anyio.EndOfStream:
                    raise ServerDisconnected(
                        f"connection closed in the response body ({remaining} bytes missing)"
                    ) from None
                remaining -= len(data)
                yield data
            # Kept alive (``_direct_length`` took only responses after which h11 left our
            # side DONE, not MUST_CLOSE): back to the pool with a fresh h11 state.
            self._conn = None
            conn.h11 = h11.Connection(h11.CLIENT)
            await self._client._release(conn)
        finally:
            if self._conn is not None:
                self._conn = None
                with anyio.CancelScope(shield=True):
                    await conn.aclose()

    async def read(self) -> bytes:
        """The whole body."""
        if self._content is None:
            self._content = b"".join([c async for c in self.iter_bytes()])
        return self._content

    async def text(self) -> str:
        return (await self.read()).decode()

    async def json(
        self, cls: type[T] | None = None, *, converter: JsonConverter = json_converter
    ) -> Any:
        """The body parsed as JSON, structured into ``cls`` when given."""
        data = await self.read()
        return jsonlib.loads(data) if cls is None else converter.loads(data, cls)

    async def raise_for_status(self) -> None:
        """Raise :class:`HTTPStatusError` (with the server's problem document) for 4xx/5xx."""
        if self.status < 400:
            return
        data = await self.read()
        problem = Problem(self.status, self.reason or status_phrase(self.status))
        if (self.headers.get("content-type") or "").startswith((PROBLEM_JSON, "application/json")):
            with contextlib.suppress(ValueError):
                problem = Problem.from_json(data, status=self.status)
        raise HTTPStatusError(self.status, problem)

    async def aclose(self) -> None:
        """Drop the rest of the body; the connection is closed rather than reused."""
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.aclose()

    async def __aenter__(self) -> ClientResponse:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


def _direct_length(conn: _Connection, response: h11.Response, method: str) -> int | None:
    """The body length when the body can be read straight from the stream: a plain
    ``content-length`` body of at least :data:`DIRECT_BODY_MIN` bytes, after a request that
    was sent whole, on a connection that stays open (h11 leaves our side ``DONE`` only then:
    ``Connection: close`` or HTTP/1.0 makes it ``MUST_CLOSE``)."""
    if method == "HEAD" or response.status_code < 200 or response.status_code in (204, 304):
        return None
    if conn.h11.our_state is not h11.DONE or conn.h11.their_state is not h11.SEND_BODY:
        return None
    length = None
    for name, value in response.headers:
        if name == b"transfer-encoding":
            return None
        if name == b"content-length":
            length = int(value)  # h11 has checked it is one non-negative integer
    return length if length is not None and length >= DIRECT_BODY_MIN else None


class HttpClient:
    """Sends requests over pooled keep-alive connections made with ``connect``.

    ``connect`` is a transport's ``connect`` (default: plain TCP); https URLs are wrapped in
    TLS verified against ``ssl_context`` (default: the system trust store). ``retries`` is how
    many times an idempotent request is re-sent after a connection failure.
    """

    def __init__(
        self,
        connect: Connector | None = None,
        *,
        ssl_context: ssl.SSLContext | None = None,
        timeouts: Timeouts | None = None,
        retries: int = 2,
        retry_backoff: float = 0.05,
        max_idle_per_host: int = 8,
        keepalive_expiry: float = 5.0,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
    ) -> None:
        self._connect = connect
        self._ssl_context = ssl_context
        self.timeouts = timeouts or Timeouts()
        self.retries = retries
        self.retry_backoff = retry_backoff
        self.max_idle_per_host = max_idle_per_host
        self.keepalive_expiry = keepalive_expiry
        self.headers = Headers(headers)
        self._idle: dict[tuple[bool, str, int], list[_Connection]] = {}
        self._closed = False

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every idle connection; responses still being read keep theirs."""
        self._closed = True
        idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                await conn.aclose()

    @property
    def idle_connections(self) -> int:
        return sum(len(v) for v in self._idle.values())

    async def _acquire(self, url: URL, connect_timeout: float) -> _Connection:
        key = (url.secure, url.host, url.port)
        pool = self._idle.get(key, [])
        now = anyio.current_time()
        while pool:
            conn = pool.pop()
            if now - conn.idle_since < self.keepalive_expiry:
                conn.reused = True
                return conn
            await conn.aclose()
        stream = await open_stream(
            url, connect=self._connect, ssl_context=self._ssl_context, timeout=connect_timeout
        )
        return _Connection(key, stream)

    async def _release(self, conn: _Connection) -> None:
        states = (conn.h11.our_state, conn.h11.their_state)
        # DONE/DONE: a response read through h11; IDLE/IDLE: a fresh state after a body read
        # straight from the stream.
        if not self._closed and states in ((h11.DONE, h11.DONE), (h11.IDLE, h11.IDLE)):
            if states[0] is h11.DONE:
                conn.h11.start_next_cycle()
            pool = self._idle.setdefault(conn.key, [])
            if len(pool) < self.max_idle_per_host:
                conn.idle_since = anyio.current_time()
                pool.append(conn)
                return
        await conn.aclose()

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        body: bytes | AsyncIterable[bytes] = b"",
        json: Any = None,
        converter: JsonConverter = json_converter,
        timeouts: Timeouts | None = None,
        idempotent: bool | None = None,
    ) -> ClientResponse:
        """Send a request and return once the response head has arrived.

        ``body`` is bytes or an async iterable of chunks (sent chunked unless a
        ``content-length`` header is given); ``json`` is serialised through ``converter``.
        ``idempotent`` says whether the request may be sent again after a connection failure
        (default: by its method; ``False`` for a GET that changes something).

        When a request went out and the connection failed, the error raised says so
        (:class:`ServerDisconnected`) even if a retry then could not connect: the server may
        have handled it, which a :class:`~dspot.errors.ConnectRefused` would deny.
        """
        if self._closed:
            raise HttpClientError("client is closed")
        method = method.upper()
        parsed = parse_url(url)
        t = timeouts or self.timeouts
        h = Headers([*self.headers, *Headers(headers)])
        if json is not None:
            body = converter.dumps(json, separators=(",", ":")).encode()
            h = h.setdefault("content-type", "application/json")
        h = h.setdefault("host", parsed.host_header)
        if isinstance(body, bytes):
            if body or method in ("POST", "PUT", "PATCH"):
                h = h.set("content-length", str(len(body)))
        elif "content-length" not in h:
            h = h.set("transfer-encoding", "chunked")
        repeatable = isinstance(body, bytes) and (
            method in IDEMPOTENT if idempotent is None else idempotent
        )
        attempt = 0
        sent: HttpClientError | None = None  # an attempt that went out and then failed
        while True:
            try:
                conn = await self._acquire(parsed, t.connect)
            except DspotError as e:  # refused, a connect timeout, a failed handshake
                if isinstance(e, ConnectRefused) and repeatable and attempt < self.retries:
                    # Nobody listening (yet, or any more): worth another try.
                    await anyio.sleep(self.retry_backoff * (2**attempt))
                    attempt += 1
                    continue
                if sent is not None:
                    raise sent from sent.__cause__  # the first failure, not the retry's
                raise
            try:
                response = await self._exchange(conn, method, parsed.target, h, body, t)
            except HttpClientError as e:
                await conn.aclose()
                if isinstance(e, TimeoutError | InvalidRequest):
                    raise  # the server may be working on it / sending it again cannot help
                failure = e
                if isinstance(e, ServerDisconnected | HttpProtocolError):
                    failure = type(e)(f"{method} {url}: {e}")
                    failure.__cause__ = e
                if not (repeatable and attempt < self.retries):
                    raise failure from failure.__cause__
                sent = failure
                if not conn.reused:
                    await anyio.sleep(self.retry_backoff * (2**attempt))
                    attempt += 1
                continue
            except BaseException:
                await conn.aclose()
                raise
            resp = ClientResponse(self, conn, response, method=method, url=url, read_timeout=t.read)
            if method == "HEAD" or response.status_code in (204, 304):
                await resp.read()
            return resp

    async def _exchange(
        self,
        conn: _Connection,
        method: str,
        target: str,
        headers: Headers,
        body: bytes | AsyncIterable[bytes],
        t: Timeouts,
    ) -> h11.Response:
        await conn.send(h11.Request(method=method, target=target, headers=headers.raw()), t.write)
        try:
            if isinstance(body, bytes):
                if body:
                    await conn.send(h11.Data(data=body), t.write)
            else:
                try:
                    async for chunk in body:
                        if chunk:
                            await conn.send(h11.Data(data=chunk), t.write)
                finally:
                    # Stop a generator we gave up on now, not at garbage collection.
                    aclose = getattr(body, "aclose", None)
                    if aclose is not None:
                        with anyio.CancelScope(shield=True):
                            await aclose()
            await conn.send(h11.EndOfMessage(), t.write)
        except (ServerDisconnected, WriteTimeout):
            # The server may have answered early (413, 401...) and stopped reading: prefer
            # its response to our write error. The connection is not reused afterwards.
            with contextlib.suppress(Exception):
                event = await conn.next_event(min(t.read, 1.0))
                if isinstance(event, h11.Response):
                    return event
            raise
        while True:
            event = await conn.next_event(t.read)
            if isinstance(event, h11.InformationalResponse):
                continue
            if isinstance(event, h11.Response):
                return event
            raise ServerDisconnected(f"connection closed before a response ({event!r})")

    async def get(self, url: str, **kw: Any) -> ClientResponse:
        return await self.request("GET", url, **kw)

    async def head(self, url: str, **kw: Any) -> ClientResponse:
        return await self.request("HEAD", url, **kw)

    async def post(self, url: str, **kw: Any) -> ClientResponse:
        return await self.request("POST", url, **kw)

    async def put(self, url: str, **kw: Any) -> ClientResponse:
        return await self.request("PUT", url, **kw)

    async def delete(self, url: str, **kw: Any) -> ClientResponse:
        return await self.request("DELETE", url, **kw)
