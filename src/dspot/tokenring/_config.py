"""Configuration of a token ring: every timing knob in one place, with its reasoning."""

from __future__ import annotations

import attrs

from dspot.env import Mechanism


class TokenRingMechanism(Mechanism):
    """What sabotage tests can build a token ring without (``NodeEnv.disabled``)."""

    EPOCH_CHECK = "tokenring.epoch_check"
    """Refuse appends from a holder of an older epoch (off: follow it as if current)."""
    MAJORITY = "tokenring.majority"
    """Commit only on a majority of the configured members (off: a quorum of one)."""
    EPOCH_BUMP = "tokenring.epoch_bump"
    """A candidate regenerating the token takes a higher epoch (off: keeps its own)."""
    TRIM_GUARD = "tokenring.trim_guard"
    """Trim only entries a snapshot covers (off: keep just the newest ``keep_entries``)."""
    SNAPSHOT_TAIL = "tokenring.snapshot_tail"
    """Offer a snapshot as the state at its own index, so the tail follows by log transfer
    (off: as the state at the commit index, so the member never gets the tail)."""
    FSYNC = "tokenring.fsync"
    """Make entries and votes durable before acknowledging them."""
    LEARNER = "tokenring.learner"
    """A member back from a disk loss (``learner=True``) votes only once caught up (off:
    it votes at once, and may elect a log without an entry it had acknowledged)."""


@attrs.frozen
class TokenRingConfig:
    """Timing and sizing of a :class:`~dspot.tokenring.TokenRing`.

    The defaults suit a LAN or the simulation (RTT well under 100 ms, disk sync a few ms).
    Rule of thumb: ``heartbeat_interval`` < ``rpc_timeout`` < ``token_timeout``.
    """

    heartbeat_interval: float = 0.25
    """How often the holder sends (possibly empty) appends to every live member. They carry
    the commit index, prove the token is alive, and bring back who has submits queued."""
    hold_time: float = 0.02
    """Least time a holder keeps the token (batching what arrives meanwhile). It passes the
    token on once its entries are committed and some member has submits queued."""
    idle_hold_time: float = 1.0
    """With nothing queued anywhere (that it knows of), the holder keeps the token this long
    before passing it on anyway: the token keeps circulating, at little cost."""
    token_timeout: float = 1.5
    """A member that hears from no holder for this long (plus a random extra of up to the
    same again, so members rarely collide) regenerates the token with a higher epoch. A
    holder that hears from no majority for this long gives the token up."""
    rpc_timeout: float = 1.0
    """Deadline of one append or vote request. A token pass that times out counts as lost
    (the target may have taken it), so the old holder steps down."""
    submit_timeout: float = 10.0
    """Default wait in :meth:`TokenRing.submit` before :class:`CommitTimeout`."""
    commit_notify: bool = True
    """The holder tells every live member at once when the commit index moves (an append
    with no new entries), instead of letting it ride on the next heartbeat: members apply a
    committed entry one round trip after the holder instead of up to ``heartbeat_interval``
    later. Off only to measure the difference."""
    max_batch: int = 256
    """Most entries in one append; a member further behind catches up over several, and
    is skipped as token target until it is within one batch of the holder."""
    tick_interval: float = 0.25
    """Longest the driver sleeps between timer checks (it also wakes on every event)."""
    min_members: int = 1
    """Majorities are never counted against fewer members than this. Set it to the initial
    cluster size when bootstrapping: separately started members that do not know each other
    yet must not each take themselves for a majority. After that, a member remembers every
    member it has seen configured (durably), so a restart cannot shrink its majorities."""
    table_prefix: str = "tokenring"
    """SQLite table prefix on the node's disk (and folder of its snapshot files), so several
    rings can share one database."""
    memory_entries: int = 4096
    """Most log entries held in memory (the newest). The log lives on disk; a member that
    needs older entries (one catching up, or applying after a restart) reads them back.
    At least ``max_batch``."""
    compact_every: int = 10_000
    """With a state machine that takes snapshots: take one once this many entries were
    applied since the last, and drop the log up to ``keep_entries`` before it. Without one
    the log is never compacted."""
    keep_entries: int = 1_000
    """Entries kept before the latest snapshot after a compaction, so that a member a
    little behind catches up from the log rather than by a snapshot transfer."""
    dedupe_window: int = 10_000
    """Ids of (at least) the last this many entries are remembered, so a submit retried
    with the same id within that many later entries is not appended twice. An id is kept
    longer while some live member has not yet reached its entry."""
    snapshot_chunk: int = 512 * 1024
    """Bytes per snapshot-transfer request."""

    def __attrs_post_init__(self) -> None:
        if self.max_batch < 1 or self.memory_entries < self.max_batch:
            raise ValueError("memory_entries must be at least max_batch (and that at least 1)")
        if self.compact_every < 1 or self.keep_entries < 0 or self.dedupe_window < 0:
            raise ValueError("compact_every must be positive, keep/dedupe windows non-negative")
        if self.snapshot_chunk < 1:
            raise ValueError("snapshot_chunk must be positive")
