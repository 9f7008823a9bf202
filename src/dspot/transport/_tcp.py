"""TCP transport on anyio, optionally with TLS (and mutual TLS between nodes).

On the listening side the TLS handshake runs under ``handshake_timeout``, so a peer that
connects and says nothing cannot hold a server task forever; on the connecting side the
handshake counts against ``connect``'s ``timeout``. A failed server-side handshake is
logged and the connection dropped; the listener keeps accepting. So does an exception that
escapes a connection's handler (logged with its traceback, that connection closed) and a
failed ``accept`` for want of file descriptors (retried after a pause).
"""

from __future__ import annotations

import errno
import functools
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.abc
import sniffio
from anyio.abc import SocketAttribute
from anyio.streams.tls import TLSStream

from dspot.errors import (
    STREAM_ERRORS,
    AddressInUse,
    ConnectRefused,
    ConnectTimeout,
    HandshakeFailed,
    PeerUnavailable,
    handshake_failed,
)
from dspot.transport._asyncio_stream import accept_stream, connect_stream
from dspot.transport._base import StreamHandler, join_address, split_address

log = logging.getLogger("dspot.transport")

_ACCEPT_TRANSIENT = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
_ACCEPT_RETRY_DELAY = 0.1


class TcpListener:
    """A listening TCP socket; wraps accepted streams in TLS when configured."""

    def __init__(
        self,
        listener: anyio.abc.Listener[anyio.abc.SocketStream],
        ssl_context: ssl.SSLContext | None,
        handshake_timeout: float,
    ) -> None:
        self._listener = listener
        self._ssl = ssl_context
        self._handshake_timeout = handshake_timeout
        sockname: Any = listener.extra(anyio.abc.SocketAttribute.local_address)
        self._address = join_address(str(sockname[0]), int(sockname[1]))
        self._accept_scopes: set[anyio.CancelScope] = set()

    @property
    def address(self) -> str:
        return self._address

    async def serve(self, handler: StreamHandler) -> None:
        # anyio's Listener.serve would do, except that one exception from one connection (or
        # one failed accept) ends it and every other connection: run our own loop instead.
        async with anyio.create_task_group() as tg:
            for listener in getattr(self._listener, "listeners", [self._listener]):
                tg.start_soon(self._accept_loop, listener, handler, tg)

    async def _accept_loop(
        self,
        listener: anyio.abc.SocketListener,
        handler: StreamHandler,
        tg: anyio.abc.TaskGroup,
    ) -> None:
        accept: Callable[[], Awaitable[anyio.abc.ByteStream]] = listener.accept
        if sniffio.current_async_library() == "asyncio":
            # A leaner stream than anyio's on asyncio (see _asyncio_stream).
            accept = functools.partial(accept_stream, listener.extra(SocketAttribute.raw_socket))
        with anyio.CancelScope() as scope:
            self._accept_scopes.add(scope)
            await self._accept_each(accept, handler, tg)
        self._accept_scopes.discard(scope)

    async def _accept_each(
        self,
        accept: Callable[[], Awaitable[anyio.abc.ByteStream]],
        handler: StreamHandler,
        tg: anyio.abc.TaskGroup,
    ) -> None:
        while True:
            try:
                raw = await accept()
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                return  # the listener was closed: serving is over
            except OSError as exc:
                if exc.errno not in _ACCEPT_TRANSIENT:
                    raise
                # Out of file descriptors or memory: wait for connections to end instead of
                # giving up on listening (as trio's serve_listeners does).
                log.warning("accept on %s failed, retrying: %s", self._address, exc)
                await anyio.sleep(_ACCEPT_RETRY_DELAY)
                continue
            tg.start_soon(self._serve_one, raw, handler)

    async def _serve_one(self, raw: anyio.abc.ByteStream, handler: StreamHandler) -> None:
        stream = raw
        try:
            if self._ssl is not None:
                try:
                    with anyio.fail_after(self._handshake_timeout):
                        stream = await TLSStream.wrap(
                            raw, server_side=True, ssl_context=self._ssl, standard_compatible=False
                        )
                except BaseException as exc:
                    await anyio.aclose_forcefully(raw)
                    if isinstance(exc, STREAM_ERRORS):  # timeouts are OSErrors too
                        log.info("tls handshake failed on %s: %r", self._address, exc)
                        return
                    raise
            # The handler owns the stream from here (it may hand it to a task of its own).
            await handler(stream)
        except Exception:
            # A bug (or an exception nobody expected) costs this connection only.
            log.exception("connection on %s failed; closing it", self._address)
            await anyio.aclose_forcefully(stream)

    async def aclose(self) -> None:
        for scope in list(self._accept_scopes):
            scope.cancel()  # an accept waiting on the socket would never see it close
        # Shielded: closing a socket takes no time, and anyio's checkpoint inside it raised
        # a fresh cancellation from this cleanup on asyncio, which AsyncExitStack chained
        # into a __context__ cycle (CPython's _fix_exception_context when the next exit
        # re-raised it) that anyio's task group then walked forever: a node never stopped.
        with anyio.CancelScope(shield=True):
            await self._listener.aclose()


class TcpTransport:
    """Connects and listens over TCP. ``client_ssl``/``server_ssl`` come from :mod:`dspot.tls`."""

    def __init__(
        self,
        *,
        server_ssl: ssl.SSLContext | None = None,
        client_ssl: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        handshake_timeout: float = 10.0,
    ) -> None:
        self.server_ssl = server_ssl
        self.client_ssl = client_ssl
        self.server_hostname = server_hostname
        self.handshake_timeout = handshake_timeout

    async def connect(self, address: str, *, timeout: float = 10.0) -> anyio.abc.ByteStream:
        host, port = split_address(address)
        try:
            with anyio.fail_after(timeout):
                stream: anyio.abc.ByteStream
                if sniffio.current_async_library() == "asyncio":
                    stream = await connect_stream(host, port)  # leaner (see _asyncio_stream)
                else:
                    stream = await anyio.connect_tcp(host, port)
                if self.client_ssl is not None:
                    try:
                        stream = await TLSStream.wrap(
                            stream,
                            hostname=self.server_hostname or host,
                            ssl_context=self.client_ssl,
                            standard_compatible=False,
                        )
                    except BaseException:
                        await anyio.aclose_forcefully(stream)
                        raise
        except TimeoutError as exc:
            raise ConnectTimeout(f"connecting to {address} timed out after {timeout:g}s") from exc
        except ssl.SSLError as exc:
            raise handshake_failed(f"TLS handshake with {address} failed", exc) from exc
        except (anyio.BrokenResourceError, anyio.EndOfStream) as exc:
            raise HandshakeFailed(f"{address} closed the connection during the handshake") from exc
        except OSError as exc:
            causes = (exc, exc.__cause__)
            if any(isinstance(c, ConnectionRefusedError) for c in causes):
                raise ConnectRefused(f"connection to {address} refused") from exc
            raise PeerUnavailable(f"cannot connect to {address}: {exc}") from exc
        return stream

    async def listen(self, address: str) -> TcpListener:
        host, port = split_address(address)
        try:
            listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise AddressInUse(f"{address} is already in use") from exc
            raise
        return TcpListener(listener, self.server_ssl, self.handshake_timeout)
