"""WebSockets on wsproto: one :class:`WebSocket` type for both ends.

A background reader answers pings, reassembles fragmented messages and queues whole messages
in a bounded queue: when the application stops receiving, the queue fills, the reader stops
reading and the peer's writes block (backpressure). A keep-alive task pings the peer and
drops the connection when no pong comes back in time.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING

import anyio
import anyio.abc
import attrs
import wsproto
import wsproto.events as wse
import wsproto.utilities
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState

from dspot.errors import STREAM_ERRORS, DspotError
from dspot.http._message import Request, Response, WebSocketUpgrade
from dspot.http._problem import Problem

if TYPE_CHECKING:
    from dspot.http._client import Connector
    from dspot.http._server import _ServerConnection

import ssl

# What a send from the reader may hit when the socket is closing or gone: not an error there.
_SEND_FAILED = (*STREAM_ERRORS, wsproto.utilities.LocalProtocolError)
Message = str | bytes


class WebSocketClosed(DspotError):
    """The WebSocket is closed; ``code`` is the close code (1006 when the link just broke)."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"WebSocket closed ({code}{': ' + reason if reason else ''})")
        self.code = code
        self.reason = reason


class WebSocketHandshakeError(DspotError):
    """The server refused the upgrade; ``status`` is its HTTP status (0 if none came)."""

    def __init__(self, status: int, detail: str = "") -> None:
        super().__init__(f"WebSocket handshake failed ({status}) {detail}".strip())
        self.status = status


@attrs.frozen
class WebSocketConfig:
    """Limits and keep-alive of one WebSocket (seconds, bytes, messages)."""

    ping_interval: float | None = 20.0
    ping_timeout: float = 20.0
    close_timeout: float = 5.0
    send_timeout: float = 60.0
    max_message_size: int = 16 * 1024 * 1024
    queue_size: int = 16
    receive_size: int = 64 * 1024


class WebSocket:
    """An open WebSocket. ``send`` text or bytes, ``receive`` (or ``async for``) whole
    messages, ``close`` with a code. ``request`` is the upgrade request on the server side.
    """

    def __init__(
        self,
        stream: anyio.abc.ByteStream,
        connection: WSConnection,
        *,
        config: WebSocketConfig | None = None,
        request: Request | None = None,
        subprotocol: str | None = None,
    ) -> None:
        self.request = request
        self.subprotocol = subprotocol
        self._stream = stream
        self._ws = connection
        self._config = config or WebSocketConfig()
        self._send_lock = anyio.Lock()
        self._inbox_send, self._inbox = anyio.create_memory_object_stream[Message](
            self._config.queue_size
        )
        self._closed = anyio.Event()
        self._pong = anyio.Event()
        self._ping_ids = itertools.count()
        self.close_code: int | None = None
        self.close_reason = ""

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def send(self, message: Message) -> None:
        """Send one message (``str`` as text, ``bytes`` as binary); waits while the peer is slow."""
        if self._ws.state is not ConnectionState.OPEN:
            raise WebSocketClosed(self.close_code or 1006, self.close_reason)
        event: wse.Event
        if isinstance(message, str):
            event = wse.TextMessage(data=message)
        else:
            event = wse.BytesMessage(data=bytes(message))
        try:
            await self._send_event(event)
        except _SEND_FAILED:
            # Closed while we waited for the lock, or the link broke under us.
            raise WebSocketClosed(self.close_code or 1006, self.close_reason) from None

    async def receive(self) -> Message:
        """The next whole message; raises :class:`WebSocketClosed` once the socket is closed."""
        try:
            return await self._inbox.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise WebSocketClosed(self.close_code or 1006, self.close_reason) from None

    def __aiter__(self) -> WebSocket:
        return self

    async def __anext__(self) -> Message:
        try:
            return await self.receive()
        except WebSocketClosed:
            raise StopAsyncIteration from None

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Start (or finish) the close handshake and wait, bounded, for the peer's reply."""
        if self._ws.state is ConnectionState.OPEN:
            with contextlib.suppress(*_SEND_FAILED):
                await self._send_event(wse.CloseConnection(code=code, reason=reason))
            if self.close_code is None:
                self.close_code, self.close_reason = code, reason
        self._inbox.close()  # unblocks a reader waiting on a full queue; it drops the rest
        with anyio.move_on_after(self._config.close_timeout):
            await self._closed.wait()
        await anyio.aclose_forcefully(self._stream)

    async def _send_event(self, event: wse.Event) -> None:
        async with self._send_lock:
            data = self._ws.send(event)
            try:
                with anyio.fail_after(self._config.send_timeout):
                    await self._stream.send(data)
            except TimeoutError:
                # A frame may be half written: the stream is unusable. Drop the link.
                await anyio.aclose_forcefully(self._stream)
                raise

    async def _deliver(self, message: Message) -> None:
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            await self._inbox_send.send(message)

    async def _reader(self) -> None:
        parts: list[Message] = []
        size = 0
        try:
            while True:
                for event in self._ws.events():
                    if isinstance(event, wse.TextMessage | wse.BytesMessage):
                        parts.append(
                            event.data if isinstance(event.data, str) else bytes(event.data)
                        )
                        size += len(event.data)
                        if size > self._config.max_message_size:
                            self.close_code, self.close_reason = 1009, "message too big"
                            with contextlib.suppress(*_SEND_FAILED):
                                await self._send_event(wse.CloseConnection(1009, "message too big"))
                            return
                        if event.message_finished:
                            if isinstance(event, wse.TextMessage):
                                msg: Message = "".join(p for p in parts if isinstance(p, str))
                            else:
                                msg = b"".join(p for p in parts if isinstance(p, bytes))
                            parts, size = [], 0
                            await self._deliver(msg)
                    elif isinstance(event, wse.Ping):
                        with contextlib.suppress(*_SEND_FAILED):
                            await self._send_event(event.response())
                    elif isinstance(event, wse.Pong):
                        self._pong.set()
                    elif isinstance(event, wse.CloseConnection):
                        if self.close_code is None:
                            self.close_code, self.close_reason = event.code, event.reason or ""
                        if self._ws.state is ConnectionState.REMOTE_CLOSING:
                            with contextlib.suppress(*_SEND_FAILED):
                                await self._send_event(event.response())
                        return
                try:
                    data: bytes | None = await self._stream.receive(self._config.receive_size)
                except STREAM_ERRORS:
                    data = None
                self._ws.receive_data(data)
        finally:
            self._inbox_send.close()
            self._closed.set()

    async def _keepalive(self, interval: float) -> None:
        while self._ws.state is ConnectionState.OPEN:
            await anyio.sleep(interval)
            if self._ws.state is not ConnectionState.OPEN:
                return
            self._pong = anyio.Event()
            payload = next(self._ping_ids).to_bytes(8, "big")
            try:
                await self._send_event(wse.Ping(payload=payload))
            except _SEND_FAILED:
                return
            with anyio.move_on_after(self._config.ping_timeout):
                await self._pong.wait()
                continue
            # No pong: the peer or the path is dead. Drop the link; the reader sees 1006.
            self.close_code, self.close_reason = 1006, "keepalive ping timeout"
            await anyio.aclose_forcefully(self._stream)
            return


@contextlib.asynccontextmanager
async def running(ws: WebSocket) -> AsyncIterator[WebSocket]:
    """Run ``ws``'s reader and keep-alive for the duration; close it (1000) on the way out."""
    async with anyio.create_task_group() as tg:
        tg.start_soon(ws._reader)
        if ws._config.ping_interval:
            tg.start_soon(ws._keepalive, ws._config.ping_interval)
        try:
            yield ws
        finally:
            with anyio.CancelScope(shield=True):
                await ws.close()
            tg.cancel_scope.cancel()


async def serve_websocket(
    conn: _ServerConnection, request: Request, upgrade: WebSocketUpgrade
) -> Response | None:
    """Complete an upgrade on a server connection and run the session; returns the error
    response to send instead when the upgrade request is invalid."""
    assert upgrade.session is not None
    ws_conn = WSConnection(ConnectionType.SERVER)
    try:
        ws_conn.initiate_upgrade_connection(request.headers.raw(), request.target)
        list(ws_conn.events())
        offered = request.headers.get_list("sec-websocket-protocol")
        subprotocol = upgrade.subprotocol if upgrade.subprotocol in offered else None
        handshake = ws_conn.send(wse.AcceptConnection(subprotocol=subprotocol))
    except (wsproto.utilities.RemoteProtocolError, wsproto.utilities.LocalProtocolError) as e:
        return Response.problem(Problem(400, "Bad Request", f"invalid WebSocket upgrade: {e}"))
    leftover = conn.h11.trailing_data[0]
    cfg = conn.config
    ws = WebSocket(
        conn.stream,
        ws_conn,
        config=WebSocketConfig(
            ping_interval=cfg.ws_ping_interval,
            ping_timeout=cfg.ws_ping_timeout,
            send_timeout=cfg.send_timeout,
            max_message_size=cfg.ws_max_message_size,
            queue_size=cfg.ws_queue_size,
        ),
        request=request,
        subprotocol=subprotocol,
    )
    try:
        with anyio.fail_after(cfg.send_timeout):
            await conn.stream.send(handshake)
    except (*STREAM_ERRORS, TimeoutError):
        return None
    if leftover:
        ws_conn.receive_data(leftover)

    async def going_away() -> None:
        # Graceful shutdown: tell the peer (1001) instead of waiting for the session to end.
        await conn.server.wait_shutdown()
        await ws.close(1001, "server shutting down")

    async with running(ws), anyio.create_task_group() as tg:
        tg.start_soon(going_away)
        try:
            await upgrade.session(ws)
        except Exception:
            from dspot.http._server import error_log

            error_log.exception("WebSocket session failed: %s", request.target)
            await ws.close(1011, "internal error")
        tg.cancel_scope.cancel()
    return None


@contextlib.asynccontextmanager
async def connect_websocket(
    url: str,
    *,
    connect: Connector | None = None,
    ssl_context: ssl.SSLContext | None = None,
    headers: Iterable[tuple[str, str]] = (),
    subprotocols: Iterable[str] = (),
    timeout: float = 10.0,
    config: WebSocketConfig | None = None,
) -> AsyncIterator[WebSocket]:
    """Open a WebSocket to ``ws://`` or ``wss://`` ``url`` for the duration of the block.

    Raises :class:`WebSocketHandshakeError` if the server does not upgrade.
    """
    from dspot.http._client import open_stream, parse_url

    target = parse_url(url, websocket=True)
    stream = await open_stream(target, connect=connect, ssl_context=ssl_context, timeout=timeout)
    try:
        ws_conn = WSConnection(ConnectionType.CLIENT)
        request = wse.Request(
            host=target.host_header,
            target=target.target,
            subprotocols=list(subprotocols),
            extra_headers=[(k.encode(), v.encode()) for k, v in headers],
        )
        accepted: wse.AcceptConnection | None = None
        with anyio.fail_after(timeout):
            await stream.send(ws_conn.send(request))
            while accepted is None:
                try:
                    data = await stream.receive()
                except STREAM_ERRORS:
                    raise WebSocketHandshakeError(0, "connection closed") from None
                ws_conn.receive_data(data)
                for event in ws_conn.events():
                    if isinstance(event, wse.AcceptConnection):
                        accepted = event
                        break
                    if isinstance(event, wse.RejectConnection):
                        raise WebSocketHandshakeError(event.status_code)
    except BaseException:
        await anyio.aclose_forcefully(stream)
        raise
    ws = WebSocket(stream, ws_conn, config=config, subprotocol=accepted.subprotocol)
    async with running(ws):
        yield ws
