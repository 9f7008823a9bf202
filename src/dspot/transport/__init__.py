"""Pluggable transports: a simulated network and TCP/TLS behind one interface (re-exports)."""

from dspot.transport._base import Listener, StreamHandler, Transport, join_address, split_address
from dspot.transport._memory import LinkModel, MemoryTransport, SimListener, SimNetwork, SimStream
from dspot.transport._tcp import TcpListener, TcpTransport

__all__ = [
    "LinkModel",
    "Listener",
    "MemoryTransport",
    "SimListener",
    "SimNetwork",
    "SimStream",
    "StreamHandler",
    "TcpListener",
    "TcpTransport",
    "Transport",
    "join_address",
    "split_address",
]
