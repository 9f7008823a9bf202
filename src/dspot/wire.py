"""Framed binary messages: a small fixed header, a JSON body, and a raw binary payload.

Frame layout (big-endian)::

    magic "DS" | version u8 | kind u8 | msg_id u64 | name_len u16 | meta_len u32 | payload_len u32
    name (utf-8) | meta (JSON) | payload (raw bytes, never base64)

Message classes are attrs classes registered with :func:`message`; the one cattrs
:data:`converter` maps them to the JSON body. A field named ``payload`` of type ``bytes``
travels in the raw payload section instead, so audio crosses the wire untouched.

:class:`FrameDecoder` is sans-I/O: feed it bytes, take frames out. A malformed or oversize
frame raises :class:`~dspot.errors.FrameError` and the connection must be closed.

Limits, all checked before anything is parsed: a frame is at most ``max_frame`` bytes
(:data:`DEFAULT_MAX_FRAME`; :data:`PREAUTH_MAX_FRAME` until the peer has authenticated), and
JSON meta nests at most :data:`MAX_JSON_DEPTH` levels. Every way decoding can fail (bad
JSON, bad UTF-8, too deep, wrong types, a body cattrs cannot structure) surfaces as
:class:`~dspot.errors.FrameError` and nothing else.
"""

from __future__ import annotations

import enum
import json
import struct
from collections.abc import Callable
from typing import Any, TypeVar

import attrs
import cattrs

from dspot._json import JsonRejected, loads_limited, strict_primitives
from dspot.errors import FrameError

MAGIC = b"DS"
VERSION = 1
HEADER = struct.Struct(">2sBBQHII")
DEFAULT_MAX_FRAME = 16 * 1024 * 1024
PREAUTH_MAX_FRAME = 4 * 1024
"""Largest frame a peer may send before it has proved the cluster secret (HELLO, AUTH)."""
MAX_JSON_DEPTH = 64
"""Deepest nesting of arrays/objects accepted in a frame's JSON meta."""

converter = cattrs.Converter()
"""The wire converter: attrs message ⇄ JSON-compatible structure."""


def _structure_bytes(value: Any, _: type) -> bytes:
    # Payloads arrive as bytes already: pass them through instead of copying megabytes.
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise TypeError(f"expected bytes, got {type(value).__name__}")


converter.register_structure_hook(bytes, _structure_bytes)
strict_primitives(converter)


class Kind(enum.IntEnum):
    """What a frame is for."""

    HELLO = 1
    HELLO_ACK = 2
    AUTH = 3
    REQUEST = 4
    RESPONSE = 5
    ERROR = 6


_KINDS = {k.value: k for k in Kind}  # Kind(n) is a Python-level enum lookup


@attrs.frozen
class Frame:
    """One decoded frame."""

    kind: Kind
    msg_id: int
    name: str
    meta: bytes
    payload: bytes = b""

    def encode(self) -> list[bytes]:
        """The frame as buffers to write in order (the payload is not copied)."""
        name = self.name.encode()
        header = HEADER.pack(
            MAGIC, VERSION, self.kind, self.msg_id, len(name), len(self.meta), len(self.payload)
        )
        head = header + name + self.meta
        if len(self.payload) < 65536:
            return [head + self.payload]
        return [head, self.payload]


class FrameDecoder:
    """Incremental frame parser: ``feed(data)``, then ``next_frame()`` until it returns None.

    Small frames are parsed in place out of the bytes fed (a read position moves along; no
    buffer is shifted per frame). A large payload is collected as a list of chunks (the
    first a view of the buffer it arrived in) and joined once, so each payload byte is
    copied a single time.
    """

    _LARGE = 256 * 1024

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self._buf: bytes | bytearray = b""
        self._pos = 0
        self.max_frame = max_frame
        """Largest frame accepted (name + meta + payload); may be raised after a handshake."""
        self._head: tuple[Kind, int, str, bytes, int] | None = None  # frame awaiting payload
        self._chunks: list[bytes | memoryview] = []
        self._have = 0

    def feed(self, data: bytes) -> None:
        if self._head is not None:
            self._chunks.append(data)
            self._have += len(data)
        elif self._pos >= len(self._buf):
            self._buf = data  # everything before was consumed: parse the new bytes in place
            self._pos = 0
        elif isinstance(self._buf, bytearray) and self._pos == 0:
            self._buf += data
        else:  # a partial frame is left: keep it and the new bytes in one growing buffer
            rest = bytearray(memoryview(self._buf)[self._pos :])
            rest += data
            self._buf = rest
            self._pos = 0

    @property
    def wanted(self) -> int:
        """Bytes still missing from the frame being read (a hint for the read size)."""
        if self._head is not None:
            return max(0, self._head[4] - self._have)
        return 0

    def _take_payload(self) -> Frame | None:
        assert self._head is not None
        kind, msg_id, name, meta, size = self._head
        if self._have < size:
            return None
        chunks = self._chunks
        extra = self._have - size  # bytes of the frames after this one, fed with its end
        after: list[bytes | memoryview] = []
        while extra:
            last = memoryview(chunks.pop())
            if len(last) > extra:
                chunks.append(last[: len(last) - extra])
                last = last[len(last) - extra :]
            after.append(last)
            extra -= len(last)
        rest = b"".join(reversed(after))
        payload = b"".join(chunks)  # the payload's one copy
        self._head = None
        self._chunks = []
        self._have = 0
        self._buf = rest
        self._pos = 0
        return Frame(kind, msg_id, name, meta, payload)

    def next_frame(self) -> Frame | None:
        if self._head is not None:
            return self._take_payload()
        buf, pos = self._buf, self._pos
        avail = len(buf) - pos
        if avail < HEADER.size:
            if (avail and buf[pos] != MAGIC[0]) or (avail > 1 and buf[pos + 1] != MAGIC[1]):
                raise FrameError(f"bad magic {bytes(buf[pos : pos + 2])!r}")
            return None
        magic, version, kind, msg_id, name_len, meta_len, payload_len = HEADER.unpack_from(buf, pos)
        if magic != MAGIC:
            raise FrameError(f"bad magic {magic!r}")
        if version != VERSION:
            raise FrameError(f"unsupported frame version {version}")
        kind = _KINDS.get(kind)
        if kind is None:
            raise FrameError(f"unknown frame kind {HEADER.unpack_from(buf, pos)[2]}")
        total = name_len + meta_len + payload_len
        if total > self.max_frame:
            raise FrameError(f"frame of {total} bytes exceeds the {self.max_frame}-byte limit")
        name_at = pos + HEADER.size
        head_end = name_at + name_len + meta_len
        end = head_end + payload_len
        if len(buf) < head_end or (len(buf) < end and payload_len < self._LARGE):
            return None
        try:
            name = bytes(buf[name_at : name_at + name_len]).decode()
        except UnicodeDecodeError:
            raise FrameError("frame name is not utf-8") from None
        meta = bytes(buf[name_at + name_len : head_end])
        if len(buf) >= end:
            payload = bytes(buf[head_end:end])
            self._pos = end
            return Frame(kind, msg_id, name, meta, payload)
        # A large payload still arriving: collect it as chunks from here on, the first a
        # view of this buffer (no copy until the one join).
        self._head = (kind, msg_id, name, meta, payload_len)
        self._chunks = [memoryview(buf)[head_end:]]
        self._have = len(buf) - head_end
        self._buf = b""
        self._pos = 0
        return self._take_payload()

    @property
    def buffered(self) -> int:
        return len(self._buf) - self._pos + self._have


# -- message registry -------------------------------------------------------------------

M = TypeVar("M")

_by_name: dict[str, type[Any]] = {}
_names: dict[type[Any], str] = {}
_idempotent: dict[type[Any], bool] = {}


def message(name: str, *, idempotent: bool = False) -> Callable[[type[M]], type[M]]:
    """Register an attrs class as a wire message called ``name``.

    ``idempotent`` marks requests that may be executed more than once without harm; the
    RPC layer retries them freely and protects the others with at-most-once delivery.
    """

    def register(cls: type[M]) -> type[M]:
        if not attrs.has(cls):
            raise TypeError(f"{cls.__name__} must be an attrs class")
        existing = _by_name.get(name)
        if existing is not None and existing.__qualname__ != cls.__qualname__:
            raise ValueError(f"message name {name!r} already used by {existing.__qualname__}")
        _by_name[name] = cls
        _names[cls] = name
        _idempotent[cls] = idempotent
        return cls  # type: ignore[return-value]

    return register


def message_name(cls: type[Any]) -> str:
    try:
        return _names[cls]
    except KeyError:
        raise TypeError(f"{cls.__qualname__} is not a registered message") from None


def is_idempotent(cls: type[Any]) -> bool:
    return _idempotent.get(cls, False)


_payload_fields: dict[type[Any], bool] = {}


def _has_payload(cls: type[Any]) -> bool:
    found = _payload_fields.get(cls)
    if found is None:
        found = _payload_fields[cls] = any(a.name == "payload" for a in attrs.fields(cls))
    return found


_encoder = json.JSONEncoder(separators=(",", ":"), sort_keys=True)  # json.dumps builds one per call


def dumps(obj: Any) -> bytes:
    """Compact JSON, keys sorted (so traces and hashes are stable)."""
    return _encoder.encode(obj).encode()


def encode_body(msg: Any) -> tuple[str, Any, bytes]:
    """``(name, JSON-able body, raw payload)`` for a registered message."""
    cls = type(msg)
    name = message_name(cls)
    body = converter.unstructure(msg)
    payload = b""
    if _has_payload(cls):
        payload = body.pop("payload")
    return name, body, bytes(payload)


def decode_body(name: str, body: Any, payload: bytes) -> Any:
    """Inverse of :func:`encode_body`; raises :class:`FrameError` on a bad body."""
    cls = _by_name.get(name)
    if cls is None:
        raise FrameError(f"unknown message {name!r}")
    if not isinstance(body, dict):
        raise FrameError(f"body of {name!r} is not an object")
    if _has_payload(cls):
        body = dict(body, payload=payload)
    try:
        return converter.structure(body, cls)
    except Exception as exc:  # any failure to structure is the peer's bad input
        detail = (
            "; ".join(cattrs.transform_error(exc))
            if isinstance(exc, cattrs.BaseValidationError)
            else repr(exc)
        )
        raise FrameError(f"invalid {name!r} body: {detail[:300]}") from None


def loads(meta: bytes, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse a frame's JSON meta; any failure (depth and UTF-8 included) is a FrameError."""
    try:
        return loads_limited(meta, max_depth=max_depth)
    except JsonRejected as exc:
        raise FrameError(f"frame meta refused: {exc}") from None
