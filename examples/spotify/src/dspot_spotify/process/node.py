"""One node process (``dspot-spotify node``): a :class:`~dspot_spotify.node.SpotifyNode` over
TCP on a :class:`~dspot.disk.LocalDisk`, until SIGINT or SIGTERM. It prints two kinds of
lines on stdout, for people and for supervisors::

    node NAME ready: rpc ADDR http ADDR     (once, when every part is listening)
    node NAME quorum: yes (N live members)  (whenever writes become possible / impossible)
"""

from __future__ import annotations

import logging
import os
import signal
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import attrs
from dspot.errors import AddressInUse
from dspot.tokenring import TokenRingConfig

from dspot_spotify.process.setup import (
    ConfigError,
    NodeStopped,
    SplitTransport,
    cluster_tls,
    disk_full,
    event_loop,
    find_exception,
    is_wildcard,
    load_node_id,
    read_secret,
    restarts_meta,
    say,
    settle_heap,
    write_private,
)
from dspot_spotify.throttle import ThrottleConfig

if TYPE_CHECKING:
    from dspot_spotify.config import NodeConfig

__all__ = ["NodeSettings", "serve_node", "throttle_config"]


def throttle_config(
    *, login_failures: int, address_failures: int, hash_limit: int, uploads_per_user: int
) -> ThrottleConfig:
    """The throttles a node's command line asks for (the rest at their defaults)."""
    base = ThrottleConfig()
    return attrs.evolve(
        base,
        username=attrs.evolve(base.username, free=login_failures),
        address=attrs.evolve(base.address, free=address_failures),
        hash_limit=hash_limit,
        uploads_per_user=uploads_per_user,
    )


@attrs.frozen(kw_only=True)
class NodeSettings:
    data: Path
    rpc: str
    http: str
    seeds: tuple[str, ...]
    secret_file: Path
    cluster_size: int
    name: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    http_advertise: str | None = None
    sabotage: tuple[str, ...] = ()
    """Deliberate bugs (:class:`~dspot_spotify.config.Sabotage` values), for chaos tests only."""
    throttle: ThrottleConfig = attrs.field(factory=ThrottleConfig)
    """Sign-in, password-hash and upload throttles."""
    commit_notice: bool = True
    """Off: members apply a committed entry up to a heartbeat late
    (:attr:`~dspot.tokenring.TokenRingConfig.commit_notify`), as every node did before the
    commit notice; tests of session guarantees use it so that replicas lag behind."""
    learner: bool = False
    """Join as a learner (see :attr:`~dspot_spotify.node.SpotifyNode.learner`)."""
    compact_every: int = TokenRingConfig().compact_every
    """Snapshot the catalog every this many log entries applied."""
    keep_entries: int = TokenRingConfig().keep_entries
    """Log entries kept before the latest snapshot."""

    def node_config(self) -> NodeConfig:
        """The node's configuration from these settings."""
        from dspot_spotify.config import NodeConfig, Sabotage

        ring = attrs.evolve(
            TokenRingConfig(),
            compact_every=self.compact_every,
            keep_entries=self.keep_entries,
            commit_notify=self.commit_notice,
        )
        return NodeConfig(
            cluster_size=self.cluster_size,
            throttle=self.throttle,
            sabotage=frozenset(Sabotage(s) for s in self.sabotage),
            tokenring=ring,
        )


async def _serve(settings: NodeSettings, secret: bytes, node_id: str) -> None:
    from dspot.disk import LocalDisk
    from dspot.env import production_env
    from dspot.transport import TcpTransport

    from dspot_spotify.node import SpotifyNode

    transport: Any = TcpTransport()
    if settings.tls_cert is not None:
        tls = cluster_tls(settings.tls_cert, settings.tls_key, settings.tls_ca)
        transport = SplitTransport(tls, TcpTransport(), [settings.http])
    # Signals are taken over for the whole run, shutdown included: a second SIGTERM while
    # stopping must not kill the process with the disk half closed.
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        disk = await LocalDisk.open(settings.data / "disk")
        try:
            env = production_env(node_id, transport, disk)
            node = SpotifyNode(
                env,
                rpc_address=settings.rpc,
                http_address=settings.http,
                http_advertise=settings.http_advertise,
                secret=secret,
                seeds=[s for s in settings.seeds if s != settings.rpc],
                config=settings.node_config(),
                learner=settings.learner,
                meta=restarts_meta(),
            )
            async with anyio.create_task_group() as tg:
                tg.start_soon(_stop_on_signal, signals, tg.cancel_scope, node_id)
                await tg.start(node.run)
                settle_heap()
                say(f"node {node_id} ready: rpc {node.rpc.address} http {node.http_bound_address}")
                tg.start_soon(_watch_quorum, node)
            say(f"node {node_id} stopped")
        finally:
            with anyio.CancelScope(shield=True):
                await disk.aclose()


async def _stop_on_signal(signals: Any, scope: anyio.CancelScope, node_id: str) -> None:
    async for signum in signals:
        logging.getLogger("dspot_spotify").info(
            "%s: %s received, stopping", node_id, signal.Signals(signum).name
        )
        scope.cancel()
        return


async def _watch_quorum(node: Any) -> None:
    last: bool | None = None
    while True:
        ok = bool(node.has_quorum() and node.ring.holder)
        if ok != last:
            live = len(node.membership.live())
            say(f"node {node.env.node_id} quorum: {'yes' if ok else 'no'} ({live} live members)")
            last = ok
        await anyio.sleep(0.2)


def serve_node(settings: NodeSettings) -> int:
    """Run one node until SIGINT/SIGTERM; returns the exit status."""
    # Owner only from the start: the catalog, the blobs and the node's identity live here.
    settings.data.mkdir(mode=0o700, parents=True, exist_ok=True)
    secret = read_secret(settings.secret_file)
    for path in (settings.tls_cert, settings.tls_key, settings.tls_ca):
        if path is not None and not path.is_file():
            raise ConfigError(f"no such TLS file: {path}")
    if settings.tls_cert is not None and settings.tls_ca is None:
        raise ConfigError("--tls-cert needs --tls-ca (nodes verify each other: mutual TLS)")
    if settings.http_advertise is None and is_wildcard(settings.http):
        raise ConfigError(
            f"--http {settings.http} listens on every interface: give --http-advertise "
            "HOST:PORT, the address the gateway and the other nodes reach it at"
        )
    node_id = load_node_id(settings.data, settings.name)
    pid_file = settings.data / "node.pid"
    write_private(pid_file, f"{os.getpid()}\n")
    backend = event_loop()
    try:
        anyio.run(_serve, settings, secret, node_id, backend=backend)
    except BaseException as exc:
        found = find_exception(exc, (ConfigError, KeyboardInterrupt, AddressInUse, socket.gaierror))
        if isinstance(found, ConfigError):
            raise found from None
        if isinstance(found, AddressInUse):
            raise ConfigError(f"cannot listen: {found}") from None
        if isinstance(found, socket.gaierror):
            raise ConfigError(
                f"cannot listen on {settings.rpc} / {settings.http}: {found}"
            ) from None
        full = disk_full(exc)
        if found is None and full is not None:
            raise NodeStopped(
                f"node {node_id} stopped: the disk under {settings.data} is full ({full}). "
                "The other nodes go on without it; free some space there and start it "
                "again: it catches up from them."
            ) from None
        if found is None:
            raise
        # KeyboardInterrupt: Ctrl-C before the signal handlers were installed
    finally:
        pid_file.unlink(missing_ok=True)
    return 0
