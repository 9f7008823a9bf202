"""How a node is tuned, and the names its services go by."""

from __future__ import annotations

import attrs
from dspot.blobstore import BlobStoreConfig
from dspot.env import Mechanism
from dspot.http import ServerConfig
from dspot.membership import MembershipConfig
from dspot.tokenring import TokenRingConfig

from dspot_spotify.auth import DEFAULT_SCRYPT, ScryptParams
from dspot_spotify.throttle import ThrottleConfig
from dspot_spotify.upload import DEFAULT_MAX_UPLOAD

__all__ = ["HTTP_SERVICE", "RESTARTS_META", "WRITE_BEHIND_DELAY", "NodeConfig", "Sabotage"]

HTTP_SERVICE = "spotify-http"
"""The registry service under which every node publishes its HTTP API (the gateway
resolves it)."""

RESTARTS_META = "restarts"
"""The membership metadata key under which a supervised node or gateway gossips how many
times its supervisor restarted it (``status`` and ``/api/cluster`` show it)."""


class Sabotage(Mechanism):
    """Deliberate bugs that tests switch on to show their checks catch them; production
    never does (``dspot-spotify node`` only through a hidden option, logged loudly). In the
    simulation they are mechanisms the nodes are built without (``NodeEnv.disabled``)."""

    ACK_BEFORE_SYNC = "ack-before-sync"
    """Acknowledge an upload before its audio has W synced copies: commit the catalog entry
    and answer 201 at once, store the blob from a write-behind buffer a few seconds later
    (unsynced). A crash in between loses an acknowledged song."""
    SPLIT_WRITES = "split-writes"
    """Commit the changes of one request one entry at a time (a Subsonic ``star`` of a song,
    an album and an artist as three entries): a reader can land between them."""
    COLLECTOR_OFF = "collector-off"
    """The blob collector deletes nothing: orphaned blobs stay for ever."""
    NO_LOG_POSITIONS = "no-log-positions"
    """The gateway forwards no log positions of its own: a client that sends none (a
    Subsonic app, curl) gets neither read-your-writes nor monotonic reads."""
    NO_CATCH_UP = "no-catch-up"
    """A node answers a read from its replica as it is, ignoring the log position the
    client says it has seen (``X-Log-Position``): a write acknowledged by one node may be
    missing from the next node's answer (no read-your-writes across nodes)."""
    COLLECT_PENDING = "collect-pending"
    """The blob collector ignores upload leases and the blobs' own age: it deletes a blob
    an upload has stored but not yet referred to."""
    HASH_ON_LOOP = "hash-on-loop"
    """Check sign-in passwords the old way: scrypt on the event loop, inside a transaction
    holding the database's writer lock. Membership probes and the token ring wait behind
    every hash, so a login flood gets live members declared dead."""
    SNAPSHOT_WITHOUT_SEARCH = "snapshot-without-search"
    """A node installing a catalog snapshot restores the tables but not the full-text
    tables' content: the songs it held are listed but no search finds them."""
    REVOKE_UNKNOWN_USERS = "revoke-unknown-users"
    """A replica that does not know a token's user yet answers 401 "token revoked" instead
    of 503 ``behind``: a client that reaches a lagging node just after signing up is signed
    out."""
    NO_STREAM_RESUME = "no-stream-resume"
    """The gateway relays a song stream from one node only: when that node breaks off
    mid-stream the download is cut instead of resuming on another at the same offset."""
    NO_CLIENT_CAP = "no-client-cap"
    """The gateway admits any number of connections from one client address: a client that
    opens and holds connections takes the whole global cap, and everyone else is refused."""


GATEWAY_SABOTAGES: frozenset[Sabotage] = frozenset(
    {Sabotage.NO_LOG_POSITIONS, Sabotage.NO_STREAM_RESUME, Sabotage.NO_CLIENT_CAP}
)
"""The sabotages that live in the gateway (the others in the nodes)."""


WRITE_BEHIND_DELAY = 10.0
"""Seconds :attr:`Sabotage.ACK_BEFORE_SYNC` holds an acknowledged upload before storing it."""


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
    throttle: ThrottleConfig = attrs.field(factory=ThrottleConfig)
    """Failed sign-ins, concurrent password hashes and uploads (:mod:`dspot_spotify.throttle`)."""
    token_ttl_ms: int = 7 * 24 * 3600 * 1000
    commit_timeout: float = 10.0
    """How long a write waits for its log entry to commit (503 after)."""
    read_wait_timeout: float = 10.0
    """How long a read waits for the ``X-Log-Position`` it was given (503 after)."""
    position_gossip_interval: float = 0.25
    """How often a changed applied position is published in the membership metadata."""
    watch_interval: float = 0.25
    """How often the token holder, epoch and quorum are checked for change events."""
    event_queue: int = 256
    """Events an ``/api/events`` subscriber may fall behind before it is dropped."""
    upload_lease: float = 900.0
    """Seconds an upload's lease keeps its blobs from the collector: storing them and
    committing the song must fit in it (an upload that does not is refused, 503)."""
    blob_grace: float = 600.0
    """Seconds an unowned blob stays before the collector deletes it (by the log's clock;
    also the longest clock difference between nodes this tolerates)."""
    collect_interval: float = 30.0
    """How often the collector looks for blobs whose grace period is over (it also wakes
    when one is announced)."""
    sabotage: frozenset[Sabotage] = frozenset()
    """Deliberate bugs for tests (:class:`Sabotage`); empty in production."""
