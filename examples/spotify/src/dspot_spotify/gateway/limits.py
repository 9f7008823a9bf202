"""Connections per client address: one client must not take the gateway's whole budget.

:class:`PerClientListener` wraps the gateway's listener. A connection from an address that
already holds ``per_client`` open connections is closed at once, before any TLS handshake
(a fast close costs the gateway nothing; a client that respects its own limits never sees
it). The count drops when a connection's stream is closed, which the HTTP server always
does when it is done with it. The global cap (``ServerConfig.max_connections``) stays the
HTTP server's: there, over TLS, a new connection is closed as quickly.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import anyio
import anyio.abc
from dspot.transport import Listener, StreamHandler

__all__ = ["PerClientListener", "client_host"]

log = logging.getLogger("dspot_spotify.gateway")


def client_host(stream: anyio.abc.ByteStream) -> str:
    """The address a connection comes from, without its port (``"unknown"`` if not known)."""
    addr = stream.extra(anyio.abc.SocketAttribute.remote_address, None)
    if isinstance(addr, tuple) and addr:
        return str(addr[0])
    return "unknown"


class _Counted(anyio.abc.ByteStream):
    """A stream that gives its client's slot back when closed (once)."""

    def __init__(self, inner: anyio.abc.ByteStream, release: Any) -> None:
        self._inner = inner
        self._release = release

    async def receive(self, max_bytes: int = 65536) -> bytes:
        return await self._inner.receive(max_bytes)

    async def send(self, item: bytes) -> None:
        await self._inner.send(item)

    async def send_eof(self) -> None:
        await self._inner.send_eof()

    async def aclose(self) -> None:
        release, self._release = self._release, None
        try:
            await self._inner.aclose()
        finally:
            if release is not None:
                release()

    @property
    def extra_attributes(self) -> Mapping[Any, Any]:
        return self._inner.extra_attributes


class PerClientListener:
    """``inner``, with at most ``per_client`` open connections per client address."""

    def __init__(self, inner: Listener, per_client: int) -> None:
        if per_client < 1:
            raise ValueError("per_client must be at least 1")
        self._inner = inner
        self.per_client = per_client
        self.open: dict[str, int] = {}
        """Open connections by client address."""
        self.refused = 0
        """Connections closed at once because their address was at its cap."""

    @property
    def address(self) -> str:
        return self._inner.address

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def serve(self, handler: StreamHandler) -> None:
        async def admit(stream: anyio.abc.ByteStream) -> None:
            host = client_host(stream)
            if self.open.get(host, 0) >= self.per_client:
                self.refused += 1
                if self.refused == 1 or self.refused % 1000 == 0:
                    log.warning(
                        "client %s is at its cap of %d connections: closing new ones "
                        "(%d refused so far)",
                        host,
                        self.per_client,
                        self.refused,
                    )
                await anyio.aclose_forcefully(stream)
                return
            self.open[host] = self.open.get(host, 0) + 1

            def release() -> None:
                left = self.open.get(host, 1) - 1
                if left > 0:
                    self.open[host] = left
                else:
                    self.open.pop(host, None)

            await handler(_Counted(stream, release))

        await self._inner.serve(admit)
