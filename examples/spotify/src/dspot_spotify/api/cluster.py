"""What a node tells about the cluster: ``/api/cluster``, ``/api/songs/{id}/replicas``, the
``/api/events`` WebSocket, ``/metrics`` and ``/healthz``; and the events the node publishes.

The cluster document asks every live voter for its status (:mod:`dspot_spotify.survey`): a
member that does not answer in time is shown with nulls, and a song is *under-replicated*
while fewer of the live voters that answered hold its audio than ``min(R, live voters)``.
"""

from __future__ import annotations

import contextlib
import json
from typing import Final, Literal

import anyio
import attrs
from dspot.http import HTTPError, Request, Response, WebSocket, WebSocketClosed, WebSocketUpgrade
from dspot.membership import Member as ClusterMember
from dspot.membership import is_observer, ring_order

from dspot_spotify import catalog
from dspot_spotify.api.context import Api
from dspot_spotify.api.route import NOT_FOUND, Route
from dspot_spotify.api.schema import json_schema
from dspot_spotify.api.wire import API_JSON
from dspot_spotify.config import HTTP_SERVICE, RESTARTS_META
from dspot_spotify.events import Event
from dspot_spotify.metrics import CONTENT_TYPE
from dspot_spotify.parts import NodeParts
from dspot_spotify.survey import LIVE, MemberStatus, survey
from dspot_spotify.writer import POSITION_PATTERN, format_position

__all__ = [
    "EVENT_TYPES",
    "LOOP_LAG_METRIC",
    "MAX_LISTED",
    "ROUTES",
    "CatalogEvent",
    "Cluster",
    "ClusterEvent",
    "Health",
    "Hello",
    "Member",
    "MembershipChange",
    "QuorumEvent",
    "Replicas",
    "TokenEvent",
    "cluster_document",
    "event_without_addresses",
    "member_row",
    "replicas_document",
    "without_addresses",
]

LOOP_LAG_METRIC: Final = "dspot_event_loop_lag_seconds"
"""The ``/metrics`` name of the node's event-loop lag histogram (``_worst``: last minute)."""
MAX_LISTED: Final = 100
"""At most this many songs are listed in ``under_replicated_songs``."""
MemberStateName = Literal["alive", "suspect", "dead", "left"]
_POSITION: Final = json_schema(pattern=POSITION_PATTERN)


@attrs.frozen(kw_only=True)
class Health:
    """Liveness, and whether this node sees a quorum."""

    status: str
    quorum: bool


@attrs.frozen(kw_only=True)
class Member:
    """A cluster member as this node sees it, with what it answered when asked (nulls when
    it did not)."""

    id: str
    address: str | None = attrs.field(
        metadata=json_schema(description="RPC address (null unless the reader is an admin)")
    )
    http: str | None = attrs.field(
        metadata=json_schema(description="HTTP address (null unless the reader is an admin)")
    )
    state: MemberStateName
    role: Literal["voter", "observer"]
    incarnation: int
    log_position: str | None = attrs.field(metadata=_POSITION)
    blobs: int | None
    bytes: int | None
    loop_lag_worst_ms: float | None = attrs.field(
        metadata=json_schema(
            description="the worst event-loop lag of the member in the last minute (ms)"
        )
    )
    loop_lag_p99_ms: float | None = attrs.field(
        metadata=json_schema(
            description="the 99th percentile of the member's event-loop lag since it started"
            " (ms; the upper bound of its histogram bucket)"
        )
    )
    orphaned_bytes: int | None = attrs.field(
        metadata=json_schema(description="bytes of its copies that no entry owns, to collect")
    )
    restarts: int | None = attrs.field(
        default=None,
        metadata=json_schema(
            description="how many times its supervisor (`dspot-spotify up`) restarted it after"
            " it exited (null when it runs unsupervised)"
        ),
    )


@attrs.frozen(kw_only=True)
class Token:
    """Who holds the token ring's token, in which epoch."""

    holder: str | None
    epoch: int


@attrs.frozen(kw_only=True)
class UnderReplicated:
    """A song with fewer copies on live voters than wanted."""

    id: str
    title: str
    copies: int
    wanted: int


@attrs.frozen(kw_only=True)
class Cluster:
    """The cluster as the answering node sees it."""

    node: str
    quorum: bool
    log_position: str = attrs.field(metadata=_POSITION)
    token: Token
    ring: tuple[str, ...]
    replication: int
    members: tuple[Member, ...]
    songs: int
    under_replicated: int
    orphaned_bytes: int = attrs.field(
        metadata=json_schema(
            description="bytes of blob copies no entry owns, awaiting collection, summed "
            "over the members that answered"
        )
    )
    under_replicated_songs: tuple[UnderReplicated, ...] = attrs.field(
        metadata=json_schema(maxItems=MAX_LISTED)
    )


@attrs.frozen(kw_only=True)
class ReplicaRow:
    """A voter that should or does hold a song's audio."""

    node: str
    state: MemberStateName
    has: bool


@attrs.frozen(kw_only=True)
class Replicas:
    """Which voters should or do hold a song's audio."""

    song_id: str
    sha256: str
    wanted: int
    replicas: tuple[ReplicaRow, ...]


# -- events --------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Hello:
    """The first event of a subscription: the cluster as it is."""

    type: Literal["hello"]
    node: str
    cluster: Cluster


@attrs.frozen(kw_only=True)
class MembershipChange:
    """A member joined, changed state, left, or changed its metadata."""

    type: Literal["membership"]
    event: Literal["joined", "suspect", "alive", "dead", "left", "updated"]
    member: Member


@attrs.frozen(kw_only=True)
class TokenEvent:
    """The token moved, or a new epoch began."""

    type: Literal["token"]
    holder: str | None
    epoch: int


@attrs.frozen(kw_only=True)
class CatalogEvent:
    """A catalog entry was applied on this node."""

    type: Literal["catalog"]
    position: str = attrs.field(metadata=_POSITION)
    kind: str


@attrs.frozen(kw_only=True)
class QuorumEvent:
    """This node gained or lost sight of a majority."""

    type: Literal["quorum"]
    quorum: bool


ClusterEvent = Hello | MembershipChange | TokenEvent | CatalogEvent | QuorumEvent
"""One message of the ``/api/events`` WebSocket (JSON text, by ``type``)."""
EVENT_TYPES: Final = (("ClusterEvent", ClusterEvent),)
"""Shapes the OpenAPI document lists although no path answers them as JSON."""


# -- documents -----------------------------------------------------------------------------------


def _http_endpoints(node: NodeParts) -> dict[str, str]:
    return {ep.node_id: ep.endpoint for ep in node.registry.resolve(HTTP_SERVICE)}


def member_row(
    node: NodeParts,
    member: ClusterMember,
    status: MemberStatus | None = None,
    http: dict[str, str] | None = None,
) -> Member:
    """A member as ``/api/cluster`` lists it (``status``: what it answered, if it did)."""
    if http is None:
        http = _http_endpoints(node)
    return Member(
        id=member.node_id,
        address=member.address,
        http=http.get(member.node_id),
        state=member.state.value,
        role="observer" if is_observer(member) else "voter",
        incarnation=member.incarnation,
        log_position=format_position(status.log_position) if status else None,
        blobs=status.blobs if status else None,
        bytes=status.bytes if status else None,
        loop_lag_worst_ms=status.loop_lag_worst_ms if status else None,
        loop_lag_p99_ms=status.loop_lag_p99_ms if status else None,
        orphaned_bytes=status.orphaned_bytes if status else None,
        restarts=_restarts(member),
    )


def _restarts(member: ClusterMember) -> int | None:
    raw = member.meta.get(RESTARTS_META, "")
    return int(raw) if raw.isdigit() and len(raw) < 10 else None


def replication_factor(node: NodeParts) -> int:
    """The configured R (for ``"all"``: the number of configured voters)."""
    replicas = node.blobs.placement.replicas
    if replicas == "all":
        return len(node.blobs.view.configured())
    return replicas


async def cluster_document(node: NodeParts) -> Cluster:
    """The ``/api/cluster`` document, as this node sees the cluster now."""
    voters = node.blobs.view
    members = node.membership.members()
    asked = [m for m in members if not is_observer(m) and m.state in LIVE]
    live = voters.live()
    wanted = node.blobs.placement.count(len(live))
    held = await node.surveys.holdings(asked, live, wanted, listed=MAX_LISTED)
    statuses = held.statuses
    under = tuple(
        UnderReplicated(id=song_id, title=title, copies=copies, wanted=wanted)
        for song_id, title, copies in held.under_listed
    )
    http = _http_endpoints(node)
    ring = node.ring
    return Cluster(
        node=node.env.node_id,
        quorum=node.has_quorum(),
        log_position=format_position(node.replica.position),
        token=Token(holder=ring.holder, epoch=ring.epoch),
        ring=tuple(ring_order([m.node_id for m in voters.configured()])),
        replication=replication_factor(node),
        members=tuple(member_row(node, m, statuses.get(m.node_id), http) for m in members),
        songs=held.songs,
        under_replicated=held.under,
        orphaned_bytes=sum(s.orphaned_bytes for s in statuses.values() if s is not None),
        under_replicated_songs=under,
    )


def without_addresses(doc: Cluster) -> Cluster:
    """``doc`` with every member's internal addresses left out (what a non-admin sees)."""
    members = tuple(attrs.evolve(m, address=None, http=None) for m in doc.members)
    return attrs.evolve(doc, members=members)


def event_without_addresses(event: Event) -> Event:
    """A published event (JSON form) as a non-admin subscriber gets it: the members of a
    ``hello`` and the member of a ``membership`` event without internal addresses."""
    if event.get("type") == "membership":
        return {**event, "member": {**event["member"], "address": None, "http": None}}
    return event


async def replicas_document(node: NodeParts, song: catalog.SongView) -> Replicas:
    """The ``/api/songs/{id}/replicas`` document: one row per voter that should or does
    hold the song's audio."""
    voters = node.blobs.view
    placement = node.blobs.placement
    sha = song.blob_sha256
    live = voters.live()
    should = {m.node_id for m in placement.owners(sha, live)}
    should |= {m.node_id for m in placement.owners(sha, voters.configured())}
    statuses = await survey(node, live, [sha])
    has = {n for n, s in statuses.items() if s is not None and 0 in s.held}
    by_id = {m.node_id: m for m in voters.members()}
    rows = tuple(
        ReplicaRow(node=n, state=by_id[n].state.value, has=n in has)
        for n in ring_order([n for n in by_id if n in should or n in has])
    )
    return Replicas(song_id=song.id, sha256=sha, wanted=placement.count(len(live)), replicas=rows)


# -- handlers ------------------------------------------------------------------------------------


async def cluster(api: Api, request: Request) -> Response:
    _, user = await api.user(request)
    doc = await cluster_document(api.node)
    return api.reply(doc if user.admin else without_addresses(doc))


async def replicas(api: Api, request: Request) -> Response:
    await api.authenticate(request)  # also catches up to X-Log-Position
    song = await api.song(request.path_params["song_id"])
    return api.reply(await replicas_document(api.node, song))


async def events(api: Api, request: Request) -> Response:
    # Bearer header, else ?token= (a browser cannot send headers on a WebSocket).
    _, user = await api.user(request, allow_query_token=True)
    if not request.is_websocket_upgrade:
        raise HTTPError(426, "this resource speaks WebSocket", headers=[("upgrade", "websocket")])
    node = api.node
    # Internal addresses are for admins (decided when the subscription starts).
    admin = user.admin

    async def session(ws: WebSocket) -> None:
        # Subscribe before building the hello document, so nothing falls in between.
        async with node.events.subscribe() as queue, anyio.create_task_group() as tg:

            async def ignore_client() -> None:
                async for _ in ws:
                    pass  # client messages are ignored; draining keeps pings flowing
                tg.cancel_scope.cancel()  # the client went away

            tg.start_soon(ignore_client)
            with contextlib.suppress(WebSocketClosed):
                doc = await cluster_document(node)
                hello = Hello(
                    type="hello",
                    node=node.env.node_id,
                    cluster=doc if admin else without_addresses(doc),
                )
                await ws.send(API_JSON.dumps(hello))
                async for event in queue:
                    await ws.send(json.dumps(event if admin else event_without_addresses(event)))
                # The hub dropped us: we fell too far behind.
                await ws.close(1013, "too slow: events dropped")
            tg.cancel_scope.cancel()

    return WebSocketUpgrade(session=session)


async def metrics(api: Api, request: Request) -> Response:
    node = api.node
    doc = await cluster_document(node)
    m = node.metrics
    m.set_members([{"state": r.state, "role": r.role} for r in doc.members])
    m.quorum.set(1 if doc.quorum else 0)
    m.token_epoch.set(doc.token.epoch)
    m.token_holder.set(1 if doc.token.holder == node.env.node_id else 0)
    pos = node.replica.position or catalog.LogPosition(0, 0)
    m.applied_epoch.set(pos.epoch)
    m.applied_seq.set(pos.seq)
    m.set_log(node.ring.status(), await node.ring.log_entries_on_disk())
    stats = node.blobs.stats()
    m.blobs.set(stats.blobs)
    m.blob_bytes.set(stats.bytes)
    m.songs.set(doc.songs)
    m.under_replicated.set(doc.under_replicated)
    lag = node.looplag.snapshot().prometheus(LOOP_LAG_METRIC).encode()
    return Response(200, [("content-type", CONTENT_TYPE)], m.render() + lag)


async def healthz(api: Api, request: Request) -> Response:
    return api.reply(Health(status="ok", quorum=api.node.has_quorum()))


ROUTES: Final = (
    Route(
        method="GET",
        path="/api/cluster",
        handler=cluster,
        summary="The cluster as the answering node sees it (members' internal addresses "
        "only for admins)",
        tag="cluster",
        reply=Cluster,
    ),
    Route(
        method="GET",
        path="/api/songs/{song_id}/replicas",
        handler=replicas,
        summary="Which voters should or do hold the song's audio",
        tag="cluster",
        reply=Replicas,
        errors=(NOT_FOUND,),
    ),
    Route(
        method="GET",
        path="/api/events",
        handler=events,
        summary="WebSocket of cluster events (`ClusterEvent`: hello, membership, token, "
        "catalog, quorum); JSON text messages from the server, client messages ignored; "
        "members' internal addresses only for admins",
        tag="cluster",
        query_token=True,
        ok=101,
        ok_description="Switching to the WebSocket protocol",
        errors=(400, 426),  # 426: a plain GET, not a WebSocket upgrade
    ),
    Route(
        method="GET",
        path="/healthz",
        handler=healthz,
        summary="Liveness, and whether this node sees a quorum",
        tag="meta",
        auth=False,
        reply=Health,
    ),
    Route(
        method="GET",
        path="/metrics",
        handler=metrics,
        summary="Prometheus metrics of this node",
        tag="meta",
        auth=False,
        reply={"text/plain": {"schema": {"type": "string"}}},
    ),
)
