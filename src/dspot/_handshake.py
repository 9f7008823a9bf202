"""The RPC connection handshake, sans-I/O: both sides' frames and checks, no awaits.

Theory of operation: the client sends HELLO with its node id, boot id and a fresh nonce;
the server answers HELLO_ACK with its own ids, its nonce and a proof
``HMAC(secret, "server" + client_nonce + "|" + server_nonce)``; the client checks it and
sends AUTH with ``HMAC(secret, "client" + server_nonce + "|" + client_nonce)``; the server
checks that. Each side proves the secret over a nonce the other just chose, so a recorded
handshake cannot be replayed. A side with the wrong secret learns nothing it can reuse.

Everything here reads frames from a peer that has not proved anything yet: every field is
checked for type before use (a number where a nonce belongs, a lone surrogate, a non-ASCII
proof would otherwise raise in ``str.encode`` or ``hmac.compare_digest``), and every way a
frame can be wrong ends as :class:`~dspot.errors.FrameError` or
:class:`~dspot.errors.HandshakeFailed`. :class:`RpcNode` drives both classes over a stream;
tools that speak raw frames (probes, fuzzers) can use :class:`ClientHandshake` directly.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from hashlib import sha256
from typing import Any

import attrs

from dspot import wire
from dspot.errors import FrameError, HandshakeFailed
from dspot.wire import Frame, Kind


@attrs.frozen
class Peer:
    """Who sent a request: its authenticated node id and its current boot id."""

    node_id: str
    boot: str


def handshake_proof(secret: bytes | None, role: bytes, first: str, second: str) -> str:
    """``HMAC-SHA256(secret, role + first + "|" + second)`` in hex (``""`` without a secret)."""
    if secret is None:
        return ""
    return hmac.new(secret, role + first.encode() + b"|" + second.encode(), sha256).hexdigest()


Loads = Callable[[bytes], Any]


def _meta(frame: Frame, loads: Loads) -> dict[str, Any]:
    meta = loads(frame.meta)
    if not isinstance(meta, dict):
        raise FrameError(f"{frame.kind.name} meta is not a JSON object")
    return meta


def _text(meta: dict[str, Any], key: str) -> str:
    """``meta[key]`` if it is a printable string (ids, nonces), else ``""``."""
    value = meta.get(key)
    return value if isinstance(value, str) and value.isprintable() else ""


def _proof_matches(expected: str, got: Any) -> bool:
    return isinstance(got, str) and got.isascii() and hmac.compare_digest(expected, got)


@attrs.define
class ClientHandshake:
    """The connecting side: :meth:`hello`, then :meth:`answer` the server's reply."""

    secret: bytes | None
    node_id: str
    boot: str
    nonce: str
    loads: Loads = wire.loads

    def hello(self) -> Frame:
        meta = {"node": self.node_id, "boot": self.boot, "nonce": self.nonce}
        return Frame(Kind.HELLO, 0, "hello", wire.dumps(meta))

    def answer(self, frame: Frame, address: str) -> tuple[Frame, Peer]:
        """Check the server's HELLO_ACK; the AUTH frame to send and who the server is.

        Raises :class:`HandshakeFailed` when the server refused us or cannot prove the
        secret, :class:`FrameError` when its frame is malformed.
        """
        meta = _meta(frame, self.loads)
        if frame.kind is Kind.ERROR:
            raise HandshakeFailed(f"{address} refused us: {_text(meta, 'message')[:200]}")
        if frame.kind is not Kind.HELLO_ACK:
            raise HandshakeFailed(f"{address} sent {frame.kind.name} instead of HELLO_ACK")
        their_nonce = _text(meta, "nonce")
        expected = handshake_proof(self.secret, b"server", self.nonce, their_nonce)
        if not _proof_matches(expected, meta.get("proof")):
            raise HandshakeFailed(f"{address} does not know the cluster secret")
        proof = handshake_proof(self.secret, b"client", their_nonce, self.nonce)
        auth = Frame(Kind.AUTH, 0, "auth", wire.dumps({"proof": proof}))
        return auth, Peer(node_id=_text(meta, "node"), boot=_text(meta, "boot"))


@attrs.define
class ServerHandshake:
    """The accepting side: :meth:`answer_hello`, then :meth:`check_auth`."""

    secret: bytes | None
    node_id: str
    boot: str
    nonce: str
    loads: Loads = wire.loads
    authenticate: bool = True
    """False: any AUTH frame is accepted (``RpcMechanism.AUTH`` off, sabotage tests only)."""
    _hello: dict[str, Any] = attrs.field(factory=dict, init=False)

    @property
    def claimed(self) -> str:
        """The node id the client claims (not proved yet), for log lines."""
        return _text(self._hello, "node")[:100] or "?"

    def answer_hello(self, frame: Frame) -> Frame:
        """The HELLO_ACK for the client's HELLO; :class:`FrameError` if it is not one."""
        meta = _meta(frame, self.loads)
        if frame.kind is not Kind.HELLO:
            raise FrameError(f"expected HELLO, got {frame.kind.name}")
        self._hello = meta
        ack = {
            "node": self.node_id,
            "boot": self.boot,
            "nonce": self.nonce,
            "proof": handshake_proof(self.secret, b"server", _text(meta, "nonce"), self.nonce),
        }
        return Frame(Kind.HELLO_ACK, 0, "hello", wire.dumps(ack))

    def check_auth(self, frame: Frame) -> Peer:
        """The proved peer; :class:`HandshakeFailed` if the AUTH frame does not prove it."""
        auth = _meta(frame, self.loads)
        their_nonce = _text(self._hello, "nonce")
        expected = handshake_proof(self.secret, b"client", self.nonce, their_nonce)
        proved = not self.authenticate or _proof_matches(expected, auth.get("proof"))
        if frame.kind is not Kind.AUTH or not proved:
            raise HandshakeFailed(f"node {self.claimed!r} does not know the cluster secret")
        return Peer(node_id=_text(self._hello, "node"), boot=_text(self._hello, "boot"))


def refusal() -> Frame:
    """The ERROR frame a server sends a client whose AUTH failed."""
    err = {"code": "unauthorized", "message": "wrong cluster secret"}
    return Frame(Kind.ERROR, 0, "auth", wire.dumps(err))
