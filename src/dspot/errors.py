"""Exceptions shared by every dspot layer, by kind (as h11 sorts its own).

::

    DspotError
    ├── TransportError (OSError)
    │   ├── AddressInUse
    │   └── PeerUnavailable (ConnectionError)      the peer cannot be reached, or went away
    │       ├── ConnectRefused (ConnectionRefusedError)
    │       ├── ConnectTimeout (TimeoutError)      connecting (or its TLS handshake) too slow
    │       ├── HandshakeFailed                    TLS or cluster-secret authentication failed
    │       │   └── CertificateRejected (ssl.SSLCertVerificationError)
    │       ├── ConnectionLost                     an open connection broke (reset, closed)
    │       │   └── ConnectionReset (anyio.BrokenResourceError)
    │       └── RpcUnavailable (RpcError)          every attempt of a call failed to reach it
    ├── ProtocolError
    │   ├── LocalProtocolError                     we broke the protocol (a bug on our side)
    │   └── RemoteProtocolError                    the peer sent something invalid
    │       └── FrameError
    └── RpcError
        ├── RpcTimeout (TimeoutError)
        ├── RemoteError
        ├── OutcomeUnknown
        └── RpcUnavailable (PeerUnavailable)

Transports, RPC and the HTTP client raise these (the HTTP client's own classes subclass
them), so a caller that only wants to know "is the peer there" catches
:class:`PeerUnavailable`, whatever transport, TLS or protocol is underneath. Each subclass
also derives from the matching builtin, so ``except ConnectionRefusedError`` or
``except TimeoutError`` keep working.

Inside the library, :func:`connection_errors` is the one place that knows which low-level
exceptions (anyio's stream errors, ``OSError``, ``ssl.SSLError``) mean the connection is
gone, and turns them into :class:`ConnectionLost`.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterator

import anyio


class DspotError(Exception):
    """Base class of every error raised on purpose by dspot."""


class TransportError(DspotError, OSError):
    """A connection could not be made or was lost, or an address could not be bound."""


class AddressInUse(TransportError):
    """Something already listens at the address."""


class PeerUnavailable(TransportError, ConnectionError):
    """The peer cannot be reached or went away: refused, reset, closed, TLS or
    authentication failure, timeout while connecting. Catch this one."""


class ConnectRefused(PeerUnavailable, ConnectionRefusedError):
    """Nobody listens at the address (or the host is down)."""


class ConnectTimeout(PeerUnavailable, TimeoutError):
    """The connection (or its TLS handshake) did not complete in time."""


class HandshakeFailed(PeerUnavailable):
    """A peer failed authentication (TLS or cluster secret) during connection setup."""


class CertificateRejected(HandshakeFailed, ssl.SSLCertVerificationError):
    """The peer's TLS certificate did not verify (also an ``ssl.SSLCertVerificationError``)."""


def handshake_failed(message: str, cause: BaseException) -> HandshakeFailed:
    """The :class:`HandshakeFailed` for a TLS handshake that failed with ``cause``."""
    if isinstance(cause, ssl.SSLCertVerificationError):
        return CertificateRejected(f"{message}: {cause}")
    return HandshakeFailed(f"{message}: {cause!r}")


class ConnectionLost(PeerUnavailable):
    """An open connection broke: the peer reset or closed it, or it was closed under us."""


class ConnectionReset(ConnectionLost, anyio.BrokenResourceError):
    """The peer crashed or reset the connection while it was in use (memory transport).

    Also an :class:`anyio.BrokenResourceError`, as every anyio byte stream raises one.
    """


class ProtocolError(DspotError):
    """A protocol's rules were broken; see the two subclasses for whose fault it is."""


class LocalProtocolError(ProtocolError):
    """We tried to do something the protocol forbids: a bug on this side."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol forbids; its connection is closed."""


class FrameError(RemoteProtocolError):
    """A peer sent a malformed or oversize frame; the connection is closed."""


class RpcError(DspotError):
    """An RPC did not produce a response."""


class RpcTimeout(RpcError, TimeoutError):
    """The RPC's deadline passed before a response arrived."""


class RpcUnavailable(RpcError, PeerUnavailable):
    """Every attempt of an RPC failed to reach the peer (or to keep a connection to it)."""


class RemoteError(RpcError):
    """The remote handler raised; ``code`` and ``message`` describe it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class OutcomeUnknown(RpcError):
    """A non-idempotent call may or may not have run: the server restarted in between."""


STREAM_ERRORS = (
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
    ssl.SSLError,
    OSError,
)
"""What an anyio byte stream (TCP, TLS, simulated) raises once its connection is gone."""


@contextlib.contextmanager
def connection_errors(what: str) -> Iterator[None]:
    """Turn :data:`STREAM_ERRORS` raised inside into :class:`ConnectionLost` (``what``
    names the connection in the message). Timeouts and dspot's own errors pass unchanged."""
    try:
        yield
    except (TimeoutError, DspotError):
        raise
    except STREAM_ERRORS as exc:
        raise ConnectionLost(f"{what}: {exc!r}") from exc
