"""What the HTTP and Subsonic APIs use of a running node.

:class:`NodeParts` is the node as its APIs see it: the running library parts (RPC,
membership, token ring, blob store, registry), the catalog replica, the token signer and
credential box, the event hub and metrics, its configuration and clock.
:class:`~dspot_spotify.node.SpotifyNode` is one; the APIs never import it, so the node can
build their routes without an import cycle.
"""

from __future__ import annotations

from typing import Protocol

import anyio.abc
from dspot.blobstore import BlobStore
from dspot.env import NodeEnv
from dspot.looplag import LoopLagMonitor
from dspot.membership import Membership
from dspot.registry import Registry
from dspot.rpc import RpcNode
from dspot.tokenring import TokenRing

from dspot_spotify.auth import CredentialBox, TokenSigner
from dspot_spotify.config import NodeConfig
from dspot_spotify.events import EventHub
from dspot_spotify.holdings import Surveys
from dspot_spotify.metrics import NodeMetrics
from dspot_spotify.replica import CatalogReplica
from dspot_spotify.signin import SignIn
from dspot_spotify.throttle import UploadSlots

__all__ = ["BlobCollection", "NodeParts"]


class BlobCollection(Protocol):
    """What the APIs show of the node's blob collector."""

    orphaned_bytes: int
    """Bytes of local blob copies that no catalog entry owns (awaiting collection)."""


class NodeParts(Protocol):
    """A running node, as its APIs use it (the parts raise until the node has started)."""

    env: NodeEnv
    config: NodeConfig
    signer: TokenSigner
    credentials: CredentialBox
    replica: CatalogReplica
    signin: SignIn
    uploads: UploadSlots
    looplag: LoopLagMonitor
    events: EventHub
    metrics: NodeMetrics
    background: anyio.abc.TaskGroup | None
    surveys: Surveys
    """Where work that outlives a request runs (the node's own task group)."""

    @property
    def collector(self) -> BlobCollection:
        """The node's blob collector (:mod:`dspot_spotify.collector`)."""
        ...

    @property
    def rpc(self) -> RpcNode: ...

    @property
    def membership(self) -> Membership: ...

    @property
    def ring(self) -> TokenRing: ...

    @property
    def blobs(self) -> BlobStore: ...

    @property
    def registry(self) -> Registry: ...

    def now_ms(self) -> int:
        """Wall time in milliseconds from the node's clock."""
        ...

    def has_quorum(self) -> bool:
        """Whether the node sees a majority (writes possible)."""
        ...
