"""One node of the service: RPC + membership + token-ring catalog log + blob store + HTTP API.

    node = SpotifyNode(
        env,                       # dspot.env.NodeEnv (production_env or the simulation's)
        rpc_address="n1:7100",     # where the cluster (RPC) listens
        http_address="n1:8080",    # where the HTTP API listens, on env.transport
        secret=b"cluster secret of 16+ bytes",
        seeds=["n2:7100", "n3:7100"],
        config=NodeConfig(cluster_size=3),
        learner=False,             # True: a new disk joining a cluster that has a log
    )
    async with anyio.create_task_group() as tg:
        await tg.start(node.run)   # started once every part is up; runs until cancelled

Every catalog change goes through the token ring as one entry of :mod:`dspot_spotify.catalog`
and is applied, in log order, to the node's :class:`~dspot_spotify.replica.CatalogReplica`
on ``env.disk`` through a :class:`~dspot_spotify.statemachine.CatalogMachine`, which also
takes and restores the snapshots that let the ring compact its log; audio and covers go to
the replicated :class:`~dspot.blobstore.BlobStore`.
The HTTP API (:mod:`dspot_spotify.api` and :mod:`dspot_spotify.subsonic`, routed by
:func:`dspot_spotify.router.build_router`) is served over ``env.transport``, so the same code
runs inside the deterministic simulation and over TCP.

What happens on the node — catalog entries applied, the token moving, quorum won or lost,
members changing state — is published on :attr:`SpotifyNode.events` (an :class:`EventHub`)
for the ``/api/events`` WebSocket; :attr:`SpotifyNode.metrics` holds its Prometheus metrics.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar, cast

import anyio
import anyio.abc
import attrs
from dspot.blobstore import BlobStore
from dspot.env import NodeEnv
from dspot.http import HttpServer
from dspot.looplag import LoopLagMonitor
from dspot.membership import Membership, VoterView
from dspot.outbox import Inbox, Outbox
from dspot.registry import Registry
from dspot.rpc import RetryPolicy, RpcNode
from dspot.tokenring import CommittedEntry, StateMachine, TokenRing

from dspot_spotify import catalog, survey
from dspot_spotify.api.cluster import (
    CatalogEvent,
    MembershipChange,
    QuorumEvent,
    TokenEvent,
    member_row,
)
from dspot_spotify.api.wire import API_JSON
from dspot_spotify.auth import CredentialBox, TokenSigner, derive_box_key, derive_token_key
from dspot_spotify.collector import BlobCollector
from dspot_spotify.config import HTTP_SERVICE, NodeConfig, Sabotage
from dspot_spotify.events import EventHub
from dspot_spotify.holdings import Surveys
from dspot_spotify.metrics import NodeMetrics
from dspot_spotify.replica import CatalogReplica, Effects
from dspot_spotify.router import build_router
from dspot_spotify.security import API_CSP, hardened
from dspot_spotify.signin import SignIn
from dspot_spotify.statemachine import CatalogMachine
from dspot_spotify.throttle import UploadSlots
from dspot_spotify.writer import (
    POSITION_META,
    CatalogWriter,
    entry_origin,
    format_position,
    position_headers,
)

__all__ = ["HTTP_SERVICE", "EventHub", "NodeConfig", "Sabotage", "SpotifyNode"]

_T = TypeVar("_T")


class SpotifyNode:
    """One node of the service. Run it with ``await tg.start(node.run)``.

    After start, :attr:`rpc`, :attr:`membership`, :attr:`ring`, :attr:`blobs`,
    :attr:`replica` and :attr:`http` are the running parts (for tests and dashboards);
    :attr:`events` and :attr:`metrics` exist from construction.
    """

    def __init__(
        self,
        env: NodeEnv,
        *,
        rpc_address: str,
        http_address: str,
        http_advertise: str | None = None,
        secret: bytes,
        seeds: Sequence[str] = (),
        config: NodeConfig | None = None,
        learner: bool = False,
        meta: Mapping[str, str] | None = None,
    ) -> None:
        """``meta``: membership metadata this member gossips besides its registrations (its
        supervisor's restart count, for instance)."""
        self.env = env
        self.meta = dict(meta or {})
        self.rpc_address = rpc_address
        self.http_address = http_address
        self.http_advertise = http_advertise
        """The HTTP address published in the registry when it differs from the listening one
        (a node listening on 0.0.0.0 must say where others reach it)."""
        self.seeds = list(seeds)
        self.config = config or NodeConfig()
        self.learner = learner
        """Join the token ring as a learner (see :class:`~dspot.tokenring.TokenRing`): set it
        for a node whose disk is new and that joins a cluster that already has a log — never
        for the nodes that bootstrap a cluster. Only read when the disk holds no ring yet."""
        self._secret = secret
        self.signer = TokenSigner(
            [derive_token_key(secret)],
            token_bytes=env.secure_token,
            ttl_ms=self.config.token_ttl_ms,
        )
        self.credentials = CredentialBox(derive_box_key(secret))
        """Seals the per-user credentials that a protocol needs in clear (Subsonic)."""
        self.events = EventHub(self.config.event_queue)
        self.metrics = NodeMetrics(env.clock.now)
        self.replica = CatalogReplica(env.disk.db)
        self.signin = SignIn(
            env,
            self.replica,
            env.disk.db,
            self.config.throttle,
            on_loop=Sabotage.HASH_ON_LOOP in self.config.sabotage,
        )
        """Password checks: throttled, off the event loop."""
        self.uploads = UploadSlots(self.config.throttle.uploads_per_user)
        """Uploads running per user."""
        self.looplag = LoopLagMonitor(env, watchdog=env.production)
        """How late this node's event loop runs a periodic timer (``/metrics``, status)."""
        self.machine = CatalogMachine(
            self.replica,
            offload=env.offload,
            on_applied=self._applied,
            on_restored=self._restored,
            on_taken=self.metrics.snapshots.labels("taken").inc,
            effects_for=self._effects,
            restore_search=Sabotage.SNAPSHOT_WITHOUT_SEARCH not in self.config.sabotage,
        )
        self.ring_machine: StateMachine = self.machine
        """What the token ring drives: :attr:`machine`, unless replaced before :meth:`run`
        (the simulation wraps it to check every entry applied against its history)."""
        self._rpc: RpcNode | None = None
        self._membership: Membership | None = None
        self._ring: TokenRing | None = None
        self._blobs: BlobStore | None = None
        self._registry: Registry | None = None
        self._http: HttpServer | None = None
        self.background: anyio.abc.TaskGroup | None = None
        """The task group of the running node (work that outlives a request)."""
        self.collector = BlobCollector(self, CatalogWriter(self))
        """Deletes blob copies that no catalog entry owns (:mod:`dspot_spotify.collector`)."""
        self.surveys = Surveys(
            env.clock,
            lambda: self.replica.position,
            lambda: self.replica.read(catalog.song_blobs),
            lambda members, hashes: survey.survey(self, members, hashes),
        )
        """Who holds which song's audio, shared by the cluster documents (``/api/cluster``,
        ``/metrics``, the event stream's hello)."""
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
                Membership(env, self._rpc, cfg.membership, seeds=self.seeds, meta=self.meta)
            )
            # Observers (the gateway) gossip with us but neither vote nor hold blobs.
            voters = VoterView(self._membership, disabled=env.disabled)
            ring_config = attrs.evolve(
                cfg.tokenring, min_members=max(cfg.tokenring.min_members, cfg.cluster_size)
            )
            self._ring = await stack.enter_async_context(
                TokenRing(
                    env,
                    self._rpc,
                    voters,
                    ring_config,
                    state_machine=self.ring_machine,
                    learner=self.learner,
                )
            )
            tg = await stack.enter_async_context(anyio.create_task_group())
            self.background = tg
            await tg.start(self.looplag.run)
            # The collector hears of unowned blobs through the outbox of the node that wrote
            # the entry; the inbox takes them in.
            outbox = Outbox(self.env, self._rpc, voters)
            inbox = Inbox(self.env, self._rpc)
            self.collector.attach(outbox, inbox)
            await self.collector.open()
            await outbox.open()
            await tg.start(inbox.run)
            await tg.start(outbox.run)
            blob_config = cfg.blobstore
            for bug in sorted(cfg.sabotage, key=lambda b: b.value):
                env.log(40, "spotify.node.SABOTAGED", bug=bug.value, note="never in production")
            self._blobs = BlobStore(env, self._rpc, voters, blob_config)
            await tg.start(self._blobs.run)
            await tg.start(self.collector.run)
            survey.serve_status(self)
            # Every answer says how far this replica is (a gateway tracks it for clients).
            answer = position_headers(build_router(self), lambda: self.replica.position)
            handler = self.metrics.instrument(answer)
            http_config = hardened(cfg.http, csp=API_CSP)
            self._http = HttpServer(handler, http_config, clock=env.clock, disabled=env.disabled)
            listener = await env.transport.listen(self.http_address)
            stack.push_async_callback(listener.aclose)
            self._http_bound = listener.address
            tg.start_soon(self._http.serve, listener)
            self._registry = Registry(env, self._membership)
            self._registry.register(
                HTTP_SERVICE, self.http_advertise or listener.address, instance=env.node_id
            )
            await tg.start(self._registry.run)
            await tg.start(self._watch_membership)
            tg.start_soon(self._watch_ring)
            tg.start_soon(self._gossip_position)
            env.log(20, "spotify.node.started", rpc=self.rpc_address, http=self.http_address)
            task_status.started(self)
            await anyio.sleep_forever()

    def _effects(self, entry: CommittedEntry) -> Effects | None:
        """The collector hears, in the applying transaction, of the blobs this node's own
        entries leave unowned (every node applies the entry; one announces)."""
        mine = entry_origin(entry.entry_id) == self.env.node_id
        return self.collector.announcer() if mine else None

    def _applied(self, position: catalog.LogPosition, data: bytes) -> None:
        kind = _entry_kind(data)
        label = "batch" if "+" in kind else kind  # metric labels stay few
        self.metrics.entry_applied(label, position.epoch, position.seq)
        self._publish(CatalogEvent(type="catalog", position=format_position(position), kind=kind))

    def _restored(self, position: catalog.LogPosition) -> None:
        self.metrics.snapshot_restored(position.epoch, position.seq)
        self._publish(
            CatalogEvent(type="catalog", position=format_position(position), kind="snapshot")
        )

    def _publish(self, event: CatalogEvent | MembershipChange | TokenEvent | QuorumEvent) -> None:
        self.events.publish(API_JSON.unstructure(event))

    async def _watch_membership(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Publish every membership event (observers included) as a ``membership`` event."""
        async with self.membership.subscribe() as events:
            task_status.started()
            async for event in events:
                change = MembershipChange(
                    type="membership",
                    event=cast(Any, event.kind.value),
                    member=member_row(self, event.member),
                )
                self._publish(change)

    async def _gossip_position(self) -> None:
        """Publish the replica's applied position in this member's metadata (at most every
        ``position_gossip_interval``): gateways learn from it which nodes have caught up,
        and the positions other gateways acknowledged."""
        published: catalog.LogPosition | None = None
        while True:
            await anyio.sleep(self.config.position_gossip_interval)
            position = self.replica.position
            me = self.membership.get(self.env.node_id)
            if position is None or position == published or me is None:
                continue
            self.membership.update_meta({**me.meta, POSITION_META: format_position(position)})
            published = position

    async def _watch_ring(self) -> None:
        """Publish ``token`` and ``quorum`` events when the holder, epoch or quorum change."""
        token: tuple[str | None, int] | None = None
        quorum: bool | None = None
        while True:
            ring = self.ring
            now_token = (ring.holder, ring.epoch)
            if now_token != token:
                token = now_token
                self.metrics.token_epoch.set(ring.epoch)
                self.metrics.token_holder.set(1 if ring.holder == self.env.node_id else 0)
                self._publish(TokenEvent(type="token", holder=ring.holder, epoch=ring.epoch))
            now_quorum = self.has_quorum()
            if now_quorum != quorum:
                quorum = now_quorum
                self.metrics.quorum.set(1 if quorum else 0)
                self._publish(QuorumEvent(type="quorum", quorum=quorum))
            await anyio.sleep(self.config.watch_interval)


def _entry_kind(data: bytes) -> str:
    """The ``type`` of an encoded catalog entry (``"song.create"`` ...), for events; a
    batch's is its parts' types, in order, each once (``"artist.create+song.create"``)."""
    try:
        doc = json.loads(data)
        kind = doc.get("type")
        if kind == "batch":
            parts = dict.fromkeys(str(p.get("type")) for p in doc.get("entries", ()))
            return "+".join(parts) or "batch"
    except (ValueError, AttributeError):
        return "unknown"
    return kind if isinstance(kind, str) else "unknown"


def _running(part: _T | None) -> _T:
    if part is None:
        raise RuntimeError("SpotifyNode is not running (start it with tg.start(node.run))")
    return part
