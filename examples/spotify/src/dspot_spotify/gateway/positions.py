"""Session guarantees through the gateway: the log positions it has seen, and the one it
asks each forwarded request to see.

Every node answer carries ``X-Log-Position`` (a write's position, or how far the answering
replica had applied). The gateway keeps the highest it has seen and sends it with every
request it forwards (or the client's own, when higher), so a node behind it waits until it
has caught up (:meth:`~dspot_spotify.writer.CatalogWriter.catch_up`). A client that knows
nothing of positions — a Subsonic app, curl — then reads its own acknowledged writes and
never older state than it has seen, however the gateway spreads its requests.

Two scopes (:class:`PositionScope`):

``gateway`` (the default)
    one position for everything this gateway relayed, raised further by the positions the
    nodes gossip in their membership metadata. Every client of the gateway sees every write
    any client made through it; and a write made through *another* gateway once gossip
    has carried it here (about a second). The token a REST client gets and the Subsonic
    password it then uses are one user but two sessions: only this scope connects them.
``session``
    one position per bearer token, Subsonic user (``u=``) or API key, else client address:
    a request waits only for what its own session saw.

The benchmark ``benchmarks/bench_sessions.py`` measures what each adds to read latency;
``docs/service/consistency.md`` has the numbers and the choice.
"""

from __future__ import annotations

import enum
import hashlib
from collections import OrderedDict
from collections.abc import Iterable
from typing import Final

from dspot.http import Request
from dspot.membership import Member

from dspot_spotify import catalog
from dspot_spotify.writer import LOG_POSITION_HEADER, POSITION_META, POSITION_PATTERN

__all__ = ["PositionScope", "PositionTracker", "read_position"]

_MAX_SESSIONS: Final = 65_536
_PATTERN: Final = POSITION_PATTERN


class PositionScope(enum.Enum):
    """Whose positions a forwarded request must see."""

    GATEWAY = "gateway"
    SESSION = "session"


def read_position(text: str | None) -> catalog.LogPosition | None:
    """``<epoch>.<seq>`` as a position; None when absent or malformed (a malformed one is
    forwarded untouched: the node answers it with a 400)."""
    if not text:
        return None
    epoch, dot, seq = text.strip().partition(".")
    if not (dot and epoch.isdigit() and seq.isdigit() and len(epoch) <= 19 and len(seq) <= 19):
        return None
    return catalog.LogPosition(int(epoch), int(seq))


class PositionTracker:
    """The positions one gateway has seen, by scope, and each node's."""

    def __init__(self, scope: PositionScope, max_sessions: int = _MAX_SESSIONS) -> None:
        self.scope = scope
        self._gateway: catalog.LogPosition | None = None
        self._sessions: OrderedDict[str, catalog.LogPosition] = OrderedDict()
        self._max_sessions = max_sessions
        self._nodes: dict[str, catalog.LogPosition] = {}

    # -- what a request must see ----------------------------------------------------------

    def session(self, request: Request) -> str:
        """The session a request belongs to: its bearer token, Subsonic user or API key,
        else the client's address."""
        auth = request.headers.get("authorization")
        if auth:
            return "bearer:" + hashlib.sha256(auth.encode("latin-1")).hexdigest()[:32]
        if request.raw_path.startswith("/rest"):
            if user := request.query.get("u"):
                return "subsonic:" + user.strip().lower()
            if key := request.query.get("apiKey"):
                return "apikey:" + hashlib.sha256(key.encode()).hexdigest()[:32]
            if token := request.query.get("token"):
                return "bearer:" + hashlib.sha256(token.encode()).hexdigest()[:32]
        client = (request.client or "").rpartition(":")[0]
        return "address:" + (request.headers.get("x-forwarded-for") or client)

    def required(self, request: Request) -> catalog.LogPosition | None:
        """The position ``request`` must see: the client's own, or what its scope saw; None
        for a malformed position of the client's (forwarded untouched: the node answers it
        with a 400, rather than the gateway replacing it with a good one)."""
        text = request.headers.get(LOG_POSITION_HEADER)
        own = read_position(text)
        if text is not None and own is None:
            return None
        if self.scope is PositionScope.GATEWAY:
            seen = self._gateway
        else:
            seen = self._sessions.get(self.session(request))
        return _max(own, seen)

    # -- what the gateway learns ----------------------------------------------------------

    def saw(self, request: Request, node: str, position: catalog.LogPosition | None) -> None:
        """A node answered ``request`` with ``position`` (its write, or its replica's)."""
        if position is None:
            return
        self._node(node, position)
        if self.scope is PositionScope.GATEWAY:
            self._gateway = _max(self._gateway, position)
            return
        key = self.session(request)
        self._sessions[key] = _max(self._sessions.get(key), position) or position
        self._sessions.move_to_end(key)
        while len(self._sessions) > self._max_sessions:
            self._sessions.popitem(last=False)

    def behind(self, node: str, position: catalog.LogPosition | None) -> None:
        """A node said it has not reached a position: remember how far it is."""
        if position is not None:
            self._node(node, position)

    def gossip(self, members: Iterable[Member]) -> None:
        """Learn the positions nodes publish in their membership metadata (and, in the
        gateway scope, raise the gateway's own: writes through other gateways)."""
        for member in members:
            position = read_position(member.meta.get(POSITION_META))
            if position is not None:
                self._node(member.node_id, position)
                if self.scope is PositionScope.GATEWAY:
                    self._gateway = _max(self._gateway, position)

    def node(self, node: str) -> catalog.LogPosition | None:
        """The furthest position ``node`` is known to have applied."""
        return self._nodes.get(node)

    @property
    def highest(self) -> catalog.LogPosition | None:
        """The highest position seen anywhere."""
        return max(self._nodes.values(), default=None)

    @property
    def sessions(self) -> int:
        return len(self._sessions)

    def _node(self, node: str, position: catalog.LogPosition) -> None:
        self._nodes[node] = _max(self._nodes.get(node), position) or position


def _max(
    a: catalog.LogPosition | None, b: catalog.LogPosition | None
) -> catalog.LogPosition | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)
