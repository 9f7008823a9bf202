"""The transport interface: addresses, listeners and connections.

A transport turns an address string into reliable, ordered anyio byte streams. Two
implementations exist: :class:`~dspot.transport.MemoryTransport` (a simulated network inside
the deterministic simulation) and :class:`~dspot.transport.TcpTransport` (TCP, optionally TLS).
Everything above this layer (RPC, HTTP, WebSocket) only sees these streams.

Addresses are ``"host:port"`` strings. Listening on port ``0`` picks a free port; the
listener's :attr:`Listener.address` tells which.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

import anyio.abc

from dspot.env import Mechanism
from dspot.errors import DspotError


class TransportMechanism(Mechanism):
    """What sabotage tests can build a node's transport without (``NodeEnv.disabled``)."""

    CONTAIN = "transport.contain"
    """A listener runs each connection's handler so that an exception escaping it costs
    that connection only: logged, traced as ``conn.crash``, closed (off: it ends the
    listener's task group, and every connection and the node with it)."""
    CHECKSUM = "transport.checksum"
    """A segment damaged on a simulated link (``LinkModel.corrupt``) fails TCP's checksum
    and is resent like a lost one (off: it is delivered with its flipped bit, as through
    a path whose checksum missed it). Only the simulated network models it."""


StreamHandler = Callable[[anyio.abc.ByteStream], Awaitable[None]]


def split_address(address: str) -> tuple[str, int]:
    """Split ``"host:port"`` (``"[::1]:port"`` for IPv6) into host and port."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise DspotError(f"bad address {address!r}: expected 'host:port'")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def join_address(host: str, port: int) -> str:
    """Inverse of :func:`split_address`."""
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


@runtime_checkable
class Listener(Protocol):
    """Accepts incoming connections at :attr:`address`."""

    @property
    def address(self) -> str:
        """The address peers connect to (the real port when listening on port 0)."""
        ...

    async def serve(self, handler: StreamHandler) -> None:
        """Accept connections forever, running ``handler(stream)`` for each in its own task.

        The handler owns the stream (it should close it). Returns only when cancelled or
        when the listener is closed; closing the listener does not close accepted streams.
        """
        ...

    async def aclose(self) -> None:
        """Stop accepting. Idempotent."""
        ...


@runtime_checkable
class Transport(Protocol):
    """Connects to and listens on addresses."""

    async def connect(self, address: str, *, timeout: float = 10.0) -> anyio.abc.ByteStream:
        """Open a reliable ordered byte stream to ``address``.

        Raises :class:`~dspot.errors.ConnectRefused` when nothing listens there and
        :class:`~dspot.errors.ConnectTimeout` when no answer comes within ``timeout``
        seconds (TLS handshake included).
        """
        ...

    async def listen(self, address: str) -> Listener:
        """Start listening at ``address``; raises :class:`~dspot.errors.AddressInUse`."""
        ...
