"""What node and gateway processes share: checks of their settings, the files they keep
(cluster secret, node id), the cluster transport (TCP, or mutual TLS for RPC), and turning
failures into one-line :class:`ConfigError` messages."""

from __future__ import annotations

import errno
import gc
import os
import re
import secrets
import sqlite3
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import anyio

from dspot_spotify.config import RESTARTS_META

__all__ = [
    "EVENT_LOOP_ENV",
    "MIN_SECRET_BYTES",
    "RESTARTS_ENV",
    "ConfigError",
    "SplitTransport",
    "cluster_tls",
    "event_loop",
    "find_exception",
    "is_wildcard",
    "load_node_id",
    "parse_address",
    "read_secret",
    "restarts_meta",
    "say",
    "settle_heap",
    "write_private",
    "write_secret",
]

MIN_SECRET_BYTES: Final = 16

RESTARTS_ENV: Final = "DSPOT_SPOTIFY_RESTARTS"
"""How many times a supervisor (``dspot-spotify up``) restarted this process before."""


def restarts_meta() -> dict[str, str]:
    """This process's restart count as membership metadata (empty when not supervised)."""
    raw = os.environ.get(RESTARTS_ENV, "")
    return {RESTARTS_META: raw} if raw.isdigit() else {}


class ConfigError(Exception):
    """A bad command-line setting, reported as one line without a traceback (exit status
    :attr:`status`, 2)."""

    status = 2


class NodeStopped(Exception):
    """The process stopped on a condition its operator must fix (not a bug): reported as one
    line without a traceback, exit status :attr:`status` (75, EX_TEMPFAIL: try again once
    it is fixed)."""

    status = 75


def disk_full(exc: BaseException) -> BaseException | None:
    """The error in ``exc`` (looking inside exception groups) that says a disk is full:
    ``ENOSPC`` or ``EDQUOT`` from the file system, ``SQLITE_FULL`` from SQLite."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return exc
    if isinstance(exc, sqlite3.Error) and getattr(exc, "sqlite_errorcode", None) == (
        sqlite3.SQLITE_FULL
    ):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            if (found := disk_full(inner)) is not None:
                return found
    return None


def parse_address(text: str) -> str:
    """Check ``HOST:PORT`` (port 0-65535); returns it normalised."""
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    return f"{host}:{int(port)}"


def read_secret(path: str | os.PathLike[str]) -> bytes:
    """The cluster secret from a file (surrounding whitespace stripped)."""
    try:
        data = Path(path).read_bytes().strip()
    except OSError as e:
        raise ConfigError(f"cannot read the secret file {path}: {e.strerror or e}") from None
    if len(data) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"the secret file {path} holds {len(data)} bytes; "
            f"a cluster secret needs at least {MIN_SECRET_BYTES}"
        )
    return data


def write_secret(path: Path) -> bytes:
    """Create a new random secret file readable by its owner only."""
    secret = secrets.token_hex(32).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(secret + b"\n")
    return secret


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``, as a file created owner-only (0600: never readable by
    others, not even between its creation and a ``chmod``)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def load_node_id(data_dir: Path, wanted: str | None = None) -> str:
    """This node's id, kept in ``DATA/node-id`` so a restart keeps its identity."""
    path = data_dir / "node-id"
    if path.exists():
        node_id = path.read_text(encoding="utf-8").strip()
        if wanted is not None and wanted != node_id:
            raise ConfigError(
                f"{data_dir} belongs to node {node_id!r}, not {wanted!r} (a node keeps its id)"
            )
        return node_id
    node_id = wanted or f"node-{secrets.token_hex(4)}"
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", node_id):
        raise ConfigError(f"bad node name {node_id!r}: use letters, digits, '.', '_' and '-'")
    write_private(path, node_id + "\n")
    return node_id


class SplitTransport:
    """Listens on ``plain_addresses`` without TLS and everywhere else with ``tls``.

    :class:`~dspot_spotify.node.SpotifyNode` serves RPC and HTTP on one transport; with
    mutual TLS between nodes, the HTTP API would otherwise demand client certificates too.
    Outgoing connections (node to node) always use ``tls``.
    """

    def __init__(self, tls: Any, plain: Any, plain_addresses: Sequence[str]) -> None:
        self.tls = tls
        self.plain = plain
        self.plain_addresses = set(plain_addresses)

    async def connect(self, address: str, *, timeout: float = 10.0) -> anyio.abc.ByteStream:
        stream: anyio.abc.ByteStream = await self.tls.connect(address, timeout=timeout)
        return stream

    async def listen(self, address: str) -> Any:
        if address in self.plain_addresses:
            return await self.plain.listen(address)
        return await self.tls.listen(address)


def cluster_tls(cert: Path, key: Path | None, ca: Path | None) -> Any:
    """The mutual-TLS transport for cluster RPC (``--tls-cert/--tls-key/--tls-ca``), shared
    by nodes and the gateway; unreadable files are a :class:`ConfigError`."""
    from dspot.tls import client_context, server_context
    from dspot.transport import TcpTransport

    try:
        return TcpTransport(
            server_ssl=server_context(cert, key, client_ca=ca),
            client_ssl=client_context(ca, certfile=cert, keyfile=key),
        )
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"cannot load the cluster TLS files: {e}") from None


EVENT_LOOP_ENV: Final = "DSPOT_SPOTIFY_EVENT_LOOP"
"""Which event loop a node or gateway process runs on: ``asyncio`` (the default) or ``trio``."""


def event_loop() -> str:
    """The anyio backend named by :data:`EVENT_LOOP_ENV` (``asyncio`` when unset).

    The library runs on both. asyncio's streams (:class:`dspot.transport.ProtocolStream`,
    with ``sendfile(2)`` for files on plain TCP) cost less CPU per request: with
    ``bench_gateway.py --only search`` a node answered 1.08x to 1.25x the uvicorn peer on
    asyncio against 0.98x on trio, and ``bench_http.py`` answered small JSON requests at
    1.07x uvicorn on asyncio against 0.74x on trio. ``trio`` stays available, and the
    simulation is unaffected (it runs on its own virtual-time loop)."""
    backend = os.environ.get(EVENT_LOOP_ENV, "asyncio")
    if backend not in ("asyncio", "trio"):
        raise ConfigError(f"{EVENT_LOOP_ENV}={backend!r}: use asyncio or trio")
    return backend


def settle_heap() -> None:
    """Move every object alive now (modules, classes, the parts a started process built)
    out of the garbage collector's reach (:func:`gc.freeze`).

    Call it once the process is ready. The cyclic collector's full (oldest generation) pass
    otherwise walks all of them again every time it runs, pausing the event loop: measured
    on a node under load, 60 to 100 ms over about 70,000 objects, most of them from start-up.
    Objects made later are collected as usual."""
    gc.collect()
    gc.freeze()


def say(line: str) -> None:
    """Print one status line for people and supervisors (flushed at once)."""
    print(line, flush=True)


def is_wildcard(address: str) -> bool:
    """Whether ``address`` listens on every interface (``0.0.0.0:P``, ``[::]:P``)."""
    host = address.rpartition(":")[0].strip("[]")
    return host in ("0.0.0.0", "::", "")


def find_exception(
    exc: BaseException, kinds: tuple[type[BaseException], ...]
) -> BaseException | None:
    """The first exception of ``kinds`` in ``exc``, looking inside exception groups."""
    if isinstance(exc, kinds):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            if (found := find_exception(inner, kinds)) is not None:
                return found
    return None
