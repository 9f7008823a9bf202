"""Pluggable transports: a simulated network and TCP/TLS behind one interface (re-exports)."""

from dspot.transport._asyncio_stream import ProtocolStream, can_send_file, send_file
from dspot.transport._base import (
    Listener,
    StreamHandler,
    Transport,
    TransportMechanism,
    join_address,
    split_address,
)
from dspot.transport._memory import LinkModel, MemoryTransport, SimListener, SimNetwork, SimStream
from dspot.transport._tcp import TcpListener, TcpTransport

__all__ = [
    "LinkModel",
    "Listener",
    "MemoryTransport",
    "ProtocolStream",
    "SimListener",
    "SimNetwork",
    "SimStream",
    "StreamHandler",
    "TcpListener",
    "TcpTransport",
    "Transport",
    "TransportMechanism",
    "can_send_file",
    "join_address",
    "send_file",
    "split_address",
]
