"""One node of the service: RPC + membership + token-ring catalog log + blob store + HTTP API.

    node = SpotifyNode(
        env,                       # dspot.env.NodeEnv (production_env or the simulation's)
        rpc_address="n1:7100",     # where the cluster (RPC) listens
        http_address="n1:8080",    # where the HTTP API listens, on env.transport
        secret=b"cluster secret of 16+ bytes",
        seeds=["n2:7100", "n3:7100"],
        config=NodeConfig(cluster_size=3),
    )
    async with anyio.create_task_group() as tg:
        await tg.start(node.run)   # started once every part is up; runs until cancelled

Every catalog change goes through the token ring as one entry of :mod:`dspot_spotify.catalog`
and is applied, in log order, to the node's :class:`~dspot_spotify.replica.CatalogReplica`
on ``env.disk``; audio and covers go to the replicated :class:`~dspot.blobstore.BlobStore`.
The HTTP API (:mod:`dspot_spotify.api`) is served over ``env.transport``, so the same code
runs inside the deterministic simulation and over TCP.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any, TypeVar

import anyio
import anyio.abc
import attrs
from dspot.blobstore import BlobStore, BlobStoreConfig
from dspot.env import NodeEnv
from dspot.http import HttpServer, ServerConfig
from dspot.membership import Membership, MembershipConfig, VoterView
from dspot.registry import Registry
from dspot.rpc import RetryPolicy, RpcNode
from dspot.tokenring import CommittedEntry, TokenRing, TokenRingConfig

from dspot_spotify import catalog
from dspot_spotify.auth import DEFAULT_SCRYPT, ScryptParams, TokenSigner, derive_token_key
from dspot_spotify.replica import CatalogReplica
from dspot_spotify.upload import DEFAULT_MAX_UPLOAD

__all__ = ["HTTP_SERVICE", "NodeConfig", "SpotifyNode"]

HTTP_SERVICE = "spotify-http"
"""The registry service under which every node publishes its HTTP API (the gateway
resolves it)."""

_T = TypeVar("_T")


@attrs.frozen(kw_only=True)
class NodeConfig:
    """Tuning of a :class:`SpotifyNode`; every node of a cluster should use the same values."""

    cluster_size: int = 1
    """The initial number of nodes: majorities are never counted against fewer (the token
    ring's ``min_members``), so separately started nodes cannot each commit alone."""
    tokenring: TokenRingConfig = attrs.field(factory=TokenRingConfig)
    blobstore: BlobStoreConfig = attrs.field(factory=BlobStoreConfig)
    membership: MembershipConfig | None = None
    http: ServerConfig = attrs.field(factory=ServerConfig)
    rpc_call_timeout: float = 5.0
    max_upload: int = DEFAULT_MAX_UPLOAD
    """Largest accepted upload in bytes (413 beyond)."""
    scrypt: ScryptParams = DEFAULT_SCRYPT
    token_ttl_ms: int = 7 * 24 * 3600 * 1000
    commit_timeout: float = 10.0
    """How long a write waits for its log entry to commit (503 after)."""
    read_wait_timeout: float = 10.0
    """How long a read waits for the ``X-Log-Position`` it was given (503 after)."""


class SpotifyNode:
    """One node of the service. Run it with ``await tg.start(node.run)``.

    After start, :attr:`rpc`, :attr:`membership`, :attr:`ring`, :attr:`blobs`,
    :attr:`replica` and :attr:`http` are the running parts (for tests and dashboards).
    """

    def __init__(
        self,
        env: NodeEnv,
        *,
        rpc_address: str,
        http_address: str,
        secret: bytes,
        seeds: Sequence[str] = (),
        config: NodeConfig | None = None,
    ) -> None:
        self.env = env
        self.rpc_address = rpc_address
        self.http_address = http_address
        self.seeds = list(seeds)
        self.config = config or NodeConfig()
        self._secret = secret
        self.signer = TokenSigner(
            [derive_token_key(secret)],
            token_bytes=env.secure_token,
            ttl_ms=self.config.token_ttl_ms,
        )
        self.replica = CatalogReplica(env.disk.db)
        self._rpc: RpcNode | None = None
        self._membership: Membership | None = None
        self._ring: TokenRing | None = None
        self._blobs: BlobStore | None = None
        self._registry: Registry | None = None
        self._http: HttpServer | None = None
        self._http_bound: str | None = None

    # -- running parts -------------------------------------------------------------------

    @property
    def rpc(self) -> RpcNode:
        return _running(self._rpc)

    @property
    def membership(self) -> Membership:
        return _running(self._membership)

    @property
    def ring(self) -> TokenRing:
        return _running(self._ring)

    @property
    def blobs(self) -> BlobStore:
        return _running(self._blobs)

    @property
    def registry(self) -> Registry:
        return _running(self._registry)

    @property
    def http(self) -> HttpServer:
        return _running(self._http)

    @property
    def http_bound_address(self) -> str:
        """Where the HTTP API actually listens (``http_address`` with port 0 resolved)."""
        return _running(self._http_bound)

    def now_ms(self) -> int:
        """Wall time in milliseconds from the env's clock (virtual in the simulation)."""
        return int(self.env.clock.wall() * 1000)

    def has_quorum(self) -> bool:
        """Whether this node currently sees a majority (writes possible)."""
        return self._ring is not None and self._ring.core.view_has_quorum()

    # -- lifecycle -----------------------------------------------------------------------

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[Any] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Start every part, report started (with ``self``), serve until cancelled."""
        from dspot_spotify.api import build_router  # api imports this module

        cfg = self.config
        env = self.env
        retry = RetryPolicy(attempts=3, max_delay=0.5, attempt_timeout=cfg.rpc_call_timeout / 2)
        async with contextlib.AsyncExitStack() as stack:
            await self.replica.open()
            self._rpc = await stack.enter_async_context(
                RpcNode(
                    env,
                    listen=self.rpc_address,
                    secret=self._secret,
                    call_timeout=cfg.rpc_call_timeout,
                    retry=retry,
                )
            )
            self._membership = await stack.enter_async_context(
                Membership(env, self._rpc, cfg.membership, seeds=self.seeds)
            )
            # Observers (the gateway) gossip with us but neither vote nor hold blobs.
            voters = VoterView(self._membership)
            ring_config = attrs.evolve(
                cfg.tokenring, min_members=max(cfg.tokenring.min_members, cfg.cluster_size)
            )
            self._ring = await stack.enter_async_context(
                TokenRing(env, self._rpc, voters, ring_config, apply=self._apply)
            )
            tg = await stack.enter_async_context(anyio.create_task_group())
            self._blobs = BlobStore(env, self._rpc, voters, cfg.blobstore)
            await tg.start(self._blobs.run)
            self._http = HttpServer(build_router(self), cfg.http, clock=env.clock)
            listener = await env.transport.listen(self.http_address)
            stack.push_async_callback(listener.aclose)
            self._http_bound = listener.address
            tg.start_soon(self._http.serve, listener)
            self._registry = Registry(env, self._membership)
            self._registry.register(HTTP_SERVICE, listener.address, instance=env.node_id)
            await tg.start(self._registry.run)
            env.log(20, "spotify.node.started", rpc=self.rpc_address, http=self.http_address)
            task_status.started(self)
            await anyio.sleep_forever()

    async def _apply(self, entry: CommittedEntry) -> None:
        position = catalog.LogPosition(entry.position.epoch, entry.position.seq)
        await self.replica.apply(position, entry.data)


def _running(part: _T | None) -> _T:
    if part is None:
        raise RuntimeError("SpotifyNode is not running (start it with tg.start(node.run))")
    return part
