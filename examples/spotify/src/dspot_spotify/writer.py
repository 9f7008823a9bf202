"""Writing the catalog from a request: the path every REST and Subsonic write takes.

:class:`CatalogWriter` submits an entry to the token ring, waits until this node's replica
has applied it and turns the outcome into an answer: a rejection becomes a problem document
with the log's own code (``REJECT_STATUS``), no quorum a 503 ``read-only: no quorum``, a
commit that timed out a 503 whose outcome is unknown. :meth:`CatalogWriter.catch_up` is the
read side of read-your-writes: it waits (bounded) until the replica has applied the log
position a client sends in ``X-Log-Position``.

**One request, one entry.** A request that changes several things commits them as one
:class:`~dspot_spotify.catalog.Batch` (:meth:`CatalogWriter.commit_all`), applied all or
nothing: no reader sees part of it.

**Read your writes.** Every answer carries ``X-Log-Position: <epoch>.<seq>``: a write's,
the position of its entry; any other, the position this node's replica had applied when it
answered (:func:`position_headers`). A request that sends that header back, to any node,
waits until that node's replica has applied the position (503 after ``read_wait_timeout``,
carrying the node's own lower position, so a gateway can tell "behind" from other 503s and
try a node that has caught up; ``X-Log-Wait: <seconds>`` shortens that wait); a malformed or
absurd header (not ``<epoch>.<seq>`` of at most 19 digits each, or beyond what SQLite
stores) is a 400.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

import anyio
import attrs
from dspot.http import HTTPError, Request, Response, WebSocketUpgrade
from dspot.tokenring import CommitTimeout, NoQuorum

from dspot_spotify import catalog
from dspot_spotify.config import Sabotage
from dspot_spotify.parts import NodeParts

__all__ = [
    "BEHIND",
    "LOG_POSITION_HEADER",
    "LOG_WAIT_HEADER",
    "NO_QUORUM",
    "POSITION_META",
    "CatalogWriter",
    "entry_id",
    "entry_origin",
    "format_position",
    "no_quorum",
    "parse_position",
    "position_headers",
]

LOG_POSITION_HEADER: Final = "x-log-position"
BEHIND: Final = "behind"
"""The ``code`` of the 503 a replica answers when it has not reached the position asked."""
POSITION_META: Final = "log_position"
"""The membership metadata key under which a node gossips its applied position."""
LOG_WAIT_HEADER: Final = "x-log-wait"
"""How many seconds (at most ``read_wait_timeout``) a request may wait for its position
here; a gateway sends less, to try another node sooner."""
NO_QUORUM: Final = "read-only: no quorum"
POSITION_PATTERN: Final = r"^[0-9]{1,19}\.[0-9]{1,19}$"
"""The form of ``X-Log-Position`` (also its schema's ``pattern`` in the OpenAPI document)."""
_POSITION_RE: Final = re.compile(POSITION_PATTERN)
_MAX_FIELD: Final = 2**63 - 1  # SQLite's largest INTEGER


def no_quorum() -> HTTPError:
    """The answer to a write on a minority side (503, ``Retry-After: 1``)."""
    return HTTPError(503, NO_QUORUM, headers=[("retry-after", "1")])


def format_position(pos: catalog.LogPosition | None) -> str:
    """``<epoch>.<seq>`` (``0.0`` before the first entry)."""
    pos = pos or catalog.LogPosition(0, 0)
    return f"{pos.epoch}.{pos.seq}"


def parse_position(text: str) -> catalog.LogPosition:
    """A client's ``X-Log-Position``; 400 unless it is ``<epoch>.<seq>`` within range."""
    value = text.strip()
    if not _POSITION_RE.match(value):
        raise HTTPError(400, f"malformed {LOG_POSITION_HEADER}: expected <epoch>.<seq>")
    epoch, _, seq = value.partition(".")
    if int(epoch) > _MAX_FIELD or int(seq) > _MAX_FIELD:
        raise HTTPError(400, f"{LOG_POSITION_HEADER} out of range")
    return catalog.LogPosition(int(epoch), int(seq))


def entry_id(node_id: str, unique: str) -> str:
    """A log entry id that names the node that wrote it (``<unique>@<node>``)."""
    return f"{unique}@{node_id}"


def entry_origin(entry_id: str) -> str | None:
    """The node that wrote the entry with this id (None for ids without one: older logs)."""
    _, at, node = entry_id.rpartition("@")
    return node if at else None


Handler = Callable[[Request], Awaitable[Response]]


def position_headers(
    handler: Handler, position: Callable[[], catalog.LogPosition | None]
) -> Handler:
    """``handler``, its every answer (errors included) carrying ``X-Log-Position``: the
    write's own when it set one, else ``position()`` as it is once the answer is ready (the
    replica's: at least the state the request read)."""

    async def handle(request: Request) -> Response:
        try:
            response = await handler(request)
        except HTTPError as e:
            if not any(k.lower() == LOG_POSITION_HEADER for k, _ in e.headers):
                e.headers.append((LOG_POSITION_HEADER, format_position(position())))
            raise
        if isinstance(response, WebSocketUpgrade) or LOG_POSITION_HEADER in response.headers:
            return response
        headers = response.headers.set(LOG_POSITION_HEADER, format_position(position()))
        return attrs.evolve(response, headers=headers)

    return handle


class CatalogWriter:
    """Commits catalog entries for the APIs of ``node`` and waits for their outcome."""

    def __init__(self, node: NodeParts) -> None:
        self.node = node

    async def catch_up(self, request: Request) -> None:
        """Wait for the log position the client says it has seen (read your writes)."""
        value = request.headers.get(LOG_POSITION_HEADER)
        if value is None:
            return
        pos = parse_position(value)
        if Sabotage.NO_CATCH_UP in self.node.config.sabotage:
            return
        limit = self.node.config.read_wait_timeout
        wait = request.headers.get(LOG_WAIT_HEADER)
        if wait is not None:
            try:
                limit = min(limit, max(0.0, float(wait)))
            except ValueError:
                raise HTTPError(400, f"malformed {LOG_WAIT_HEADER}: expected seconds") from None
        try:
            with anyio.fail_after(limit):
                await self.node.replica.wait_applied(pos)
        except TimeoutError:
            raise HTTPError(
                503,
                f"this replica has not reached log position {value.strip()} yet",
                headers=[("retry-after", "1")],
                extensions={"code": BEHIND},
            ) from None

    async def submit(self, entry: catalog.Entry) -> catalog.LogPosition:
        """Commit one entry through the token ring (503 on a minority side or timeout)."""
        node = self.node
        try:
            pos = await node.ring.submit(
                catalog.encode_entry(entry),
                entry_id=entry_id(node.env.node_id, node.env.ids()),
                timeout=node.config.commit_timeout,
            )
        except NoQuorum:
            raise no_quorum() from None
        except CommitTimeout:
            raise HTTPError(
                503,
                "the write was not committed in time; its outcome is unknown",
                headers=[("retry-after", "1")],
            ) from None
        return catalog.LogPosition(pos.epoch, pos.seq)

    async def result(self, pos: catalog.LogPosition) -> catalog.ApplyResult:
        """Wait until ``pos`` is applied here and say whether it was applied or rejected."""
        try:
            with anyio.fail_after(self.node.config.read_wait_timeout):
                return await self.node.replica.outcome(pos)
        except TimeoutError:
            raise HTTPError(503, "the write committed but is not applied here yet") from None

    async def outcome(self, pos: catalog.LogPosition) -> None:
        """Wait until ``pos`` is applied here; raise its rejection as a problem document."""
        _raise_rejection(await self.result(pos))

    def require_quorum(self) -> None:
        """503 ``read-only: no quorum`` unless this node sees a majority."""
        if not self.node.has_quorum():
            raise no_quorum()

    async def commit(self, entry: catalog.Entry) -> catalog.LogPosition:
        """Commit ``entry`` and wait for its outcome here (its rejection as a problem)."""
        self.require_quorum()
        pos = await self.submit(entry)
        await self.outcome(pos)
        return pos

    async def commit_all(
        self, entries: Sequence[catalog.Entry], *, actor: str | None, at: int
    ) -> catalog.LogPosition:
        """Commit the changes of one request as one entry: ``entries`` alone when there is
        one, else a :class:`~dspot_spotify.catalog.Batch` of them (all or nothing)."""
        if not entries:
            raise ValueError("nothing to commit")
        if len(entries) == 1:
            return await self.commit(attrs.evolve(entries[0], actor=actor, at=at))
        if Sabotage.SPLIT_WRITES in self.node.config.sabotage:
            self.require_quorum()
            pos = catalog.LogPosition(0, 0)
            for entry in entries:  # a reader may land between them
                pos = await self.submit(attrs.evolve(entry, actor=actor, at=at))
            await self.outcome(pos)
            return pos
        return await self.commit(catalog.Batch.of(entries, actor=actor, at=at))

    async def check(self, entry: catalog.Entry, *, leased: Sequence[str] = ()) -> None:
        """Raise what the log would answer ``entry`` now, as a problem document, without
        committing anything (``leased``: blobs to count as under a live lease)."""
        _raise_rejection(await self.node.replica.check(entry, leased=leased))


def _raise_rejection(result: catalog.ApplyResult) -> None:
    """A rejected entry as its problem document (a 503 says when to try again)."""
    if result.status == "rejected":
        code = result.code or "invalid"
        status = catalog.REJECT_STATUS[code]
        retry = [("retry-after", "1")] if status == 503 else []
        raise HTTPError(status, result.reason, headers=retry, extensions={"code": code})
