"""Exceptions shared by every dspot layer.

Transport failures subclass both :class:`TransportError` and the matching builtin
(``ConnectionRefusedError``, ``TimeoutError``) so callers can catch either. A stream that
breaks mid-use raises :class:`anyio.BrokenResourceError` (the memory transport raises the
subclass :class:`ConnectionReset`), as every anyio byte stream does.
"""

from __future__ import annotations

import anyio


class DspotError(Exception):
    """Base class of every error raised on purpose by dspot."""


class TransportError(DspotError, OSError):
    """A connection could not be made or was lost."""


class ConnectRefused(TransportError, ConnectionRefusedError):
    """Nobody listens at the address (or the host is down)."""


class ConnectTimeout(TransportError, TimeoutError):
    """The connection (or its TLS handshake) did not complete in time."""


class AddressInUse(TransportError):
    """Something already listens at the address."""


class ConnectionReset(anyio.BrokenResourceError):
    """The peer crashed or reset the connection while it was in use."""


class HandshakeFailed(TransportError):
    """A peer failed authentication (TLS or cluster secret) during connection setup."""


class FrameError(DspotError):
    """A peer sent a malformed or oversize frame; the connection is closed."""


class RpcError(DspotError):
    """An RPC did not produce a response."""


class RpcTimeout(RpcError, TimeoutError):
    """The RPC's deadline passed before a response arrived."""


class RemoteError(RpcError):
    """The remote handler raised; ``code`` and ``message`` describe it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class OutcomeUnknown(RpcError):
    """A non-idempotent call may or may not have run: the server restarted in between."""
