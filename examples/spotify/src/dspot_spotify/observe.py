"""What a node tells about the cluster: ``/api/cluster``, ``/api/songs/{id}/replicas``, the
``/api/events`` WebSocket, ``/metrics`` and ``/api/openapi.json``.

**Asking the other members.** Each node serves one RPC, ``spotify.status``
(:class:`StatusRequest`): its applied log position, its blob count and bytes, and — for a
list of sha256 digests sent as raw 32-byte values — a bitmap of which of them it holds. A
cluster document asks every live voter once, concurrently, with a short deadline
(:data:`STATUS_TIMEOUT`); a member that does not answer in time is shown with nulls. So the
under-replication count of a 10 000-song catalog costs one ~320 KB request per member, not
one request per song.

**Under-replicated** means: a song's audio has fewer copies on the live voters that answered
than the blob store's target for the current cluster, ``min(R, live voters)`` (the number
repair restores; with R above the live count no repair could ever satisfy R itself). Right
after a crash the dead node still counts as live but cannot answer, so its songs show up as
under-replicated until it is declared dead and repair has copied them again.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import anyio
import attrs
from dspot import wire
from dspot.errors import DspotError, RemoteError
from dspot.http import (
    HTTPError,
    Request,
    Response,
    Router,
    WebSocket,
    WebSocketClosed,
    WebSocketUpgrade,
)
from dspot.membership import Member, MemberState, is_observer, ring_order
from dspot.rpc import Peer, RetryPolicy

from dspot_spotify import catalog, openapi
from dspot_spotify.metrics import CONTENT_TYPE

if TYPE_CHECKING:
    from dspot_spotify.api import Api
    from dspot_spotify.node import SpotifyNode

__all__ = [
    "MAX_LISTED",
    "STATUS_TIMEOUT",
    "MemberStatus",
    "StatusReply",
    "StatusRequest",
    "add_routes",
    "cluster_document",
    "member_row",
    "serve_status",
]

STATUS_TIMEOUT = 1.0
"""Seconds a cluster document waits for each member's status (then shows nulls)."""
MAX_LISTED = 100
"""At most this many songs are listed in ``under_replicated_songs``."""
HASHES_PER_CALL = 64 * 1024
"""Digests per status request (2 MiB, well under the RPC frame limit)."""
_DIGEST = 32
_LIVE = (MemberState.ALIVE, MemberState.SUSPECT)
_STATUS_RETRY = RetryPolicy(attempts=1, attempt_timeout=STATUS_TIMEOUT)
# What asking a member may raise when it cannot help (down, partitioned, not started).
_UNREACHABLE = (
    DspotError,
    OSError,
    TimeoutError,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
)


# -- the status RPC ------------------------------------------------------------------------------


@wire.message("spotify.status", idempotent=True)
@attrs.frozen
class StatusRequest:
    """Ask a node for its status and which of the digests in ``payload`` it holds."""

    payload: bytes = b""
    """Concatenated raw sha256 digests (32 bytes each)."""


@wire.message("spotify.status_reply")
@attrs.frozen
class StatusReply:
    log_epoch: int
    log_seq: int
    blobs: int
    blob_bytes: int
    payload: bytes = b""
    """Bitmap: bit ``i`` (byte ``i // 8``, bit ``i % 8``) set when digest ``i`` is held."""


@attrs.frozen
class MemberStatus:
    """One member's answer: applied log position, blob totals, and which asked hashes it
    holds (indexes into the list that was asked about)."""

    log_position: catalog.LogPosition
    blobs: int
    bytes: int
    held: frozenset[int]


def _pack(hashes: Sequence[str]) -> bytes:
    return b"".join(bytes.fromhex(h) for h in hashes)


def _bitmap(flags: Sequence[bool]) -> bytes:
    out = bytearray((len(flags) + 7) // 8)
    for i, flag in enumerate(flags):
        if flag:
            out[i // 8] |= 1 << (i % 8)
    return bytes(out)


def _bits(bitmap: bytes, count: int, offset: int) -> set[int]:
    return {
        offset + i for i in range(count) if i // 8 < len(bitmap) and bitmap[i // 8] >> (i % 8) & 1
    }


def serve_status(node: SpotifyNode) -> None:
    """Serve ``spotify.status`` on ``node``'s RPC (call once its blob store runs)."""

    async def on_status(req: StatusRequest, peer: Peer) -> StatusReply:
        if len(req.payload) % _DIGEST:
            raise RemoteError("invalid", "payload is not a list of 32-byte digests")
        local = node.blobs.local
        digests = [req.payload[i : i + _DIGEST] for i in range(0, len(req.payload), _DIGEST)]
        pos = node.replica.position or catalog.LogPosition(0, 0)
        return StatusReply(
            log_epoch=pos.epoch,
            log_seq=pos.seq,
            blobs=local.count,
            blob_bytes=local.bytes,
            payload=_bitmap([local.get(d.hex()) is not None for d in digests]),
        )

    node.rpc.handle(StatusRequest, on_status)


def _local_status(node: SpotifyNode, hashes: Sequence[str]) -> MemberStatus:
    local = node.blobs.local
    return MemberStatus(
        log_position=node.replica.position or catalog.LogPosition(0, 0),
        blobs=local.count,
        bytes=local.bytes,
        held=frozenset(i for i, h in enumerate(hashes) if local.get(h) is not None),
    )


async def _ask(node: SpotifyNode, member: Member, hashes: Sequence[str]) -> MemberStatus | None:
    held: set[int] = set()
    reply: StatusReply | None = None
    batches = range(0, max(len(hashes), 1), HASHES_PER_CALL)
    try:
        with anyio.fail_after(STATUS_TIMEOUT * len(batches)):
            for start in batches:
                batch = hashes[start : start + HASHES_PER_CALL]
                reply = await node.rpc.call(
                    member.address,
                    StatusRequest(_pack(batch)),
                    timeout=STATUS_TIMEOUT,
                    retry=_STATUS_RETRY,
                )
                held |= _bits(reply.payload, len(batch), start)
    except _UNREACHABLE:
        return None
    assert reply is not None
    return MemberStatus(
        log_position=catalog.LogPosition(reply.log_epoch, reply.log_seq),
        blobs=reply.blobs,
        bytes=reply.blob_bytes,
        held=frozenset(held),
    )


async def survey(
    node: SpotifyNode, members: Sequence[Member], hashes: Sequence[str]
) -> dict[str, MemberStatus | None]:
    """Ask ``members`` (this node answers locally) concurrently; None for those that could
    not answer within :data:`STATUS_TIMEOUT`."""
    me = node.env.node_id
    found: dict[str, MemberStatus | None] = {m.node_id: None for m in members}

    async def one(m: Member) -> None:
        found[m.node_id] = await _ask(node, m, hashes)

    async with anyio.create_task_group() as tg:
        for m in members:
            if m.node_id == me:
                found[me] = _local_status(node, hashes)
            else:
                tg.start_soon(one, m)
    return found


# -- documents -----------------------------------------------------------------------------------


def format_position(pos: catalog.LogPosition | None) -> str:
    pos = pos or catalog.LogPosition(0, 0)
    return f"{pos.epoch}.{pos.seq}"


def member_row(
    node: SpotifyNode,
    member: Member,
    status: MemberStatus | None = None,
    http: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A member as ``/api/cluster`` lists it (``status``: what it answered, if it did)."""
    if http is None:
        http = _http_endpoints(node)
    return {
        "id": member.node_id,
        "address": member.address,
        "http": http.get(member.node_id),
        "state": member.state.value,
        "role": "observer" if is_observer(member) else "voter",
        "incarnation": member.incarnation,
        "log_position": format_position(status.log_position) if status else None,
        "blobs": status.blobs if status else None,
        "bytes": status.bytes if status else None,
    }


def _http_endpoints(node: SpotifyNode) -> dict[str, str]:
    from dspot_spotify.node import HTTP_SERVICE

    return {ep.node_id: ep.endpoint for ep in node.registry.resolve(HTTP_SERVICE)}


def _song_blobs(tx: catalog.Tx) -> list[tuple[str, str, str]]:
    rows = tx.execute("SELECT id, title, blob_sha256 FROM songs ORDER BY n")
    return [(str(i), str(t), str(s)) for i, t, s in rows]


def replication_factor(node: SpotifyNode) -> int:
    """The configured R (for ``"all"``: the number of configured voters)."""
    replicas = node.blobs.placement.replicas
    if replicas == "all":
        return len(node.blobs.view.configured())
    return replicas


async def cluster_document(node: SpotifyNode) -> dict[str, Any]:
    """The ``/api/cluster`` document, as this node sees the cluster now."""
    voters = node.blobs.view
    members = node.membership.members()
    songs = await node.replica.read(_song_blobs)
    hashes = list(dict.fromkeys(sha for _, _, sha in songs))
    index = {sha: i for i, sha in enumerate(hashes)}
    asked = [m for m in members if not is_observer(m) and m.state in _LIVE]
    statuses = await survey(node, asked, hashes)
    live = voters.live()
    wanted = node.blobs.placement.count(len(live))
    copies = [0] * len(hashes)
    for m in live:
        status = statuses.get(m.node_id)
        if status is not None:
            for i in status.held:
                copies[i] += 1
    under = [
        {"id": song_id, "title": title, "copies": copies[index[sha]], "wanted": wanted}
        for song_id, title, sha in songs
        if copies[index[sha]] < wanted
    ]
    http = _http_endpoints(node)
    ring = node.ring
    return {
        "node": node.env.node_id,
        "quorum": node.has_quorum(),
        "log_position": format_position(node.replica.position),
        "token": {"holder": ring.holder, "epoch": ring.epoch},
        "ring": ring_order([m.node_id for m in voters.configured()]),
        "replication": replication_factor(node),
        "members": [member_row(node, m, statuses.get(m.node_id), http) for m in members],
        "songs": len(songs),
        "under_replicated": len(under),
        "under_replicated_songs": under[:MAX_LISTED],
    }


async def replicas_document(node: SpotifyNode, song: catalog.SongView) -> dict[str, Any]:
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
    rows = [
        {"node": n, "state": by_id[n].state.value, "has": n in has}
        for n in ring_order([n for n in by_id if n in should or n in has])
    ]
    return {
        "song_id": song.id,
        "sha256": sha,
        "wanted": placement.count(len(live)),
        "replicas": rows,
    }


# -- HTTP ----------------------------------------------------------------------------------------


class ObserveApi:
    """The handlers of this module, bound to one node and its :class:`~dspot_spotify.api.Api`."""

    def __init__(self, node: SpotifyNode, api: Api) -> None:
        self.node = node
        self.api = api

    async def cluster(self, request: Request) -> Response:
        await self.api.authenticate(request)
        return Response.json(await cluster_document(self.node))

    async def replicas(self, request: Request) -> Response:
        await self.api.authenticate(request)  # also catches up to X-Log-Position
        song = await self.api.song_or_404(request.path_params["song_id"])
        return Response.json(await replicas_document(self.node, song))

    async def events(self, request: Request) -> Response:
        # Bearer header, else ?token= (a browser cannot send headers on a WebSocket).
        await self.api.authenticate(request, allow_query_token=True)
        if not request.is_websocket_upgrade:
            raise HTTPError(
                426, "this resource speaks WebSocket", headers=[("upgrade", "websocket")]
            )
        return WebSocketUpgrade(session=self._event_session)

    async def _event_session(self, ws: WebSocket) -> None:
        node = self.node
        # Subscribe before building the hello document, so nothing falls in between.
        async with node.events.subscribe() as events, anyio.create_task_group() as tg:

            async def ignore_client() -> None:
                async for _ in ws:
                    pass  # client messages are ignored; draining keeps pings flowing
                tg.cancel_scope.cancel()  # the client went away

            tg.start_soon(ignore_client)
            with contextlib.suppress(WebSocketClosed):
                hello = {
                    "type": "hello",
                    "node": node.env.node_id,
                    "cluster": await cluster_document(node),
                }
                await ws.send(json.dumps(hello))
                async for event in events:
                    await ws.send(json.dumps(event))
                # The hub dropped us: we fell too far behind.
                await ws.close(1013, "too slow: events dropped")
            tg.cancel_scope.cancel()

    async def metrics(self, request: Request) -> Response:
        node = self.node
        doc = await cluster_document(node)
        m = node.metrics
        m.set_members(doc["members"])
        m.quorum.set(1 if doc["quorum"] else 0)
        m.token_epoch.set(doc["token"]["epoch"])
        m.token_holder.set(1 if doc["token"]["holder"] == node.env.node_id else 0)
        pos = node.replica.position or catalog.LogPosition(0, 0)
        m.applied_epoch.set(pos.epoch)
        m.applied_seq.set(pos.seq)
        stats = node.blobs.stats()
        m.blobs.set(stats.blobs)
        m.blob_bytes.set(stats.bytes)
        m.songs.set(doc["songs"])
        m.under_replicated.set(doc["under_replicated"])
        return Response(200, [("content-type", CONTENT_TYPE)], m.render())

    async def openapi(self, request: Request) -> Response:
        return Response.json(openapi.document())


def add_routes(router: Router, node: SpotifyNode, api: Api) -> None:
    """Register this module's routes on the node's router."""
    h = ObserveApi(node, api)
    router.add("GET", "/api/cluster", h.cluster)
    router.add("GET", "/api/songs/{song_id}/replicas", h.replicas)
    router.add("GET", "/api/events", h.events)
    router.add("GET", "/api/openapi.json", h.openapi)
    router.add("GET", "/metrics", h.metrics)
