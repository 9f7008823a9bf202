"""What the token ring's core hands its driver: durable state, disk writes, requests to
send, reads to make, and a status snapshot. Plain records, no behaviour."""

from __future__ import annotations

import enum

import attrs

from dspot.tokenring._messages import Append, Entry, LogPosition, SnapshotMeta, Vote


class Role(enum.Enum):
    FOLLOWER = "follower"
    CANDIDATE = "candidate"
    HOLDER = "holder"


@attrs.frozen
class HardState:
    """What must survive a crash besides the log: the epoch, this member's vote in it, and
    the highest token hop it took in it."""

    epoch: int = 0
    voted_for: str | None = None
    hop: int = -1
    learner: bool = False
    """A member that started with an empty disk in a cluster that already has a log (a
    new member, or one whose disk was lost): it neither votes nor stands for election
    until its log has matched a holder's whole log."""


@attrs.define
class Persist:
    """A disk write the driver must make durable, as one transaction, before sending
    anything from the same output: drop entries from ``truncate_from`` on, store
    ``entries`` (seq → entry), then drop entries up to ``trim_to`` (the log now starts
    after it, the entry there being of ``base_epoch``) and record ``snapshot``."""

    truncate_from: int | None = None
    entries: dict[int, Entry] = attrs.field(factory=dict)
    state: HardState | None = None
    upto: int = 0
    """The log's last index once this write is done (for :meth:`TokenRingCore.persisted`)."""
    trim_to: int | None = None
    base_epoch: int = 0
    snapshot: SnapshotMeta | None = None
    members: tuple[str, ...] = ()
    """Configured members named by an installed snapshot (added, never removed)."""


@attrs.frozen
class SnapshotOffer:
    """Holder → member: send it the snapshot ``meta`` (in chunks); the outcome goes back
    to the core as :meth:`TokenRingCore.on_snapshot_reply` or ``on_send_failed``."""

    epoch: int
    hop: int
    holder: str
    meta: SnapshotMeta


@attrs.frozen(eq=False)
class Fetch:
    """Read entries ``start..end`` from disk (they left the memory window) and hand them to
    :meth:`TokenRingCore.on_fetched`, to be sent to ``peer``."""

    peer: str
    start: int
    end: int


@attrs.frozen
class Send:
    """A request to ``peer``; its reply (or failure) goes back to the core."""

    peer: str
    message: Append | Vote | SnapshotOffer


@attrs.define
class Output:
    """What one core call asks the driver to do, in this order: persist, then send."""

    persist: Persist | None = None
    sends: list[Send] = attrs.field(factory=list)
    fetches: list[Fetch] = attrs.field(factory=list)
    resolved: list[tuple[str, LogPosition]] = attrs.field(factory=list)
    """Submits now committed (entry id, position)."""
    rejected: list[str] = attrs.field(factory=list)
    """Submits refused for lack of quorum (never appended anywhere)."""
    committed: bool = False
    """The commit index moved (or a snapshot was installed)."""

    def merge(self, more: Output) -> None:
        """Add what a follow-up call asked for (its persist is already done)."""
        self.sends += more.sends
        self.fetches += more.fetches
        self.resolved += more.resolved
        self.rejected += more.rejected
        self.committed = self.committed or more.committed


@attrs.frozen
class Status:
    """A snapshot for dashboards."""

    node_id: str
    role: Role
    epoch: int
    hop: int
    holder: str | None
    commit_index: int
    last_index: int
    queued: int
    base_index: int = 0
    """The log starts after this index (0 until the first compaction)."""
    snapshot_index: int = 0
    in_memory: int = 0
    """Log entries held in memory."""
