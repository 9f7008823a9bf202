"""The gateway process (``dspot-spotify gateway``): a :class:`~dspot_spotify.gateway.Gateway`
over TCP until SIGINT or SIGTERM. It prints ``gateway NAME ready: https ADDR rpc ADDR``
once it listens, and ``gateway NAME nodes: N healthy`` whenever that count changes."""

from __future__ import annotations

import logging
import os
import random
import signal
import socket
import ssl
from pathlib import Path
from typing import Any

import anyio
import attrs
from dspot.disk import SimDisk
from dspot.env import production_env
from dspot.errors import AddressInUse
from dspot.http import ServerConfig, server_ssl_context
from dspot.transport import TcpTransport

from dspot_spotify.config import Sabotage
from dspot_spotify.gateway import Gateway, GatewayConfig, PositionScope
from dspot_spotify.process.setup import (
    ConfigError,
    SplitTransport,
    cluster_tls,
    event_loop,
    find_exception,
    read_secret,
    restarts_meta,
    say,
    settle_heap,
    write_private,
)

__all__ = ["GatewaySettings", "serve_gateway"]

log = logging.getLogger("dspot_spotify.gateway")


@attrs.frozen(kw_only=True)
class GatewaySettings:
    """What ``dspot-spotify gateway`` was given."""

    listen: str
    join: tuple[str, ...]
    secret_file: Path
    cert: Path
    key: Path
    rpc: str = "127.0.0.1:0"
    frontend: Path | None = None
    name: str = "gateway"
    pid_file: Path | None = None
    tls_cert: Path | None = None
    """Certificate for mutual TLS with the nodes' RPC (the nodes' ``--tls-*``)."""
    tls_key: Path | None = None
    tls_ca: Path | None = None
    max_connections: int = ServerConfig().max_connections
    """Open HTTPS connections at most (new ones are closed at once beyond)."""
    max_connections_per_client: int = GatewayConfig().max_connections_per_client
    """Open HTTPS connections one client address may hold."""
    positions: str = "gateway"
    """Whose log positions a relayed request must see (``gateway`` or ``session``)."""
    sabotage: tuple[str, ...] = ()
    """Deliberate bugs (:class:`~dspot_spotify.config.Sabotage` values), for chaos tests."""
    served_by: bool = False
    """Name the answering node in ``X-Served-By`` (:attr:`GatewayConfig.served_by`)."""


async def _serve(
    settings: GatewaySettings,
    secret: bytes,
    ssl_context: ssl.SSLContext,
    cluster_rpc: TcpTransport | None,
) -> None:
    transport: Any = TcpTransport()
    if cluster_rpc is not None:
        # Cluster RPC over mutual TLS, like the nodes'; the HTTPS listener does its own TLS
        # and the nodes' HTTP APIs are plain HTTP inside the internal network.
        transport = SplitTransport(cluster_rpc, TcpTransport(), [settings.listen])
    # The gateway keeps nothing: an in-memory disk satisfies NodeEnv, and nothing uses it.
    env = production_env(settings.name, transport, SimDisk(random.Random()))
    gateway = Gateway(
        env,
        listen=settings.listen,
        rpc_address=settings.rpc,
        secret=secret,
        seeds=settings.join,
        ssl_context=ssl_context,
        frontend=settings.frontend,
        upstream_connect=TcpTransport().connect,
        meta=restarts_meta(),
        config=GatewayConfig(
            server=ServerConfig(max_connections=settings.max_connections),
            max_connections_per_client=settings.max_connections_per_client,
            served_by=settings.served_by,
            positions=PositionScope(settings.positions),
            sabotage=frozenset(Sabotage(s) for s in settings.sabotage),
        ),
    )
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with anyio.create_task_group() as tg:
            await tg.start(gateway.run)
            assert gateway.rpc is not None
            settle_heap()
            say(f"gateway {settings.name} ready: https {gateway.bound} rpc {gateway.rpc.address}")
            tg.start_soon(_report_nodes, gateway, settings.name)
            async for signum in signals:
                log.info("%s received, stopping", signal.Signals(signum).name)
                with anyio.move_on_after(gateway.config.server.shutdown_timeout + 1):
                    await gateway.shutdown()
                tg.cancel_scope.cancel()
                break
    say(f"gateway {settings.name} stopped")


async def _report_nodes(gateway: Gateway, name: str) -> None:
    last = -1
    while True:
        count = len(gateway.pool.healthy())
        if count != last:
            say(f"gateway {name} nodes: {count} healthy")
            last = count
        with anyio.move_on_after(1.0):
            await gateway.pool.wait_changed()


def serve_gateway(settings: GatewaySettings) -> int:
    """Run the gateway until SIGINT/SIGTERM; returns the exit status."""
    secret = read_secret(settings.secret_file)
    if settings.frontend is not None and not (settings.frontend / "index.html").is_file():
        raise ConfigError(f"--frontend {settings.frontend} has no index.html (build it first)")
    try:
        ssl_context = server_ssl_context(settings.cert, settings.key)
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"cannot load the TLS certificate and key: {e}") from None
    cluster_rpc = None
    if settings.tls_cert is not None:
        cluster_rpc = cluster_tls(settings.tls_cert, settings.tls_key, settings.tls_ca)
    if settings.pid_file is not None:
        settings.pid_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_private(settings.pid_file, f"{os.getpid()}\n")
    backend = event_loop()
    try:
        anyio.run(_serve, settings, secret, ssl_context, cluster_rpc, backend=backend)
    except BaseException as exc:
        found = find_exception(exc, (KeyboardInterrupt, AddressInUse, socket.gaierror))
        if isinstance(found, AddressInUse | socket.gaierror):
            raise ConfigError(
                f"cannot listen on {settings.listen} / {settings.rpc}: {found}"
            ) from None
        if found is None:
            raise
    finally:
        if settings.pid_file is not None:
            settings.pid_file.unlink(missing_ok=True)
    return 0
