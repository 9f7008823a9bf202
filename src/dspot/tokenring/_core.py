"""The token ring's state machine, with no I/O (sans-I/O): messages and timer ticks in,
messages, disk writes and submit outcomes out.

Theory of operation
-------------------
One log, totally ordered. Position ``seq`` is a dense 1-based index; each entry also
carries the **epoch** in which it was assigned. A member is a FOLLOWER, a CANDIDATE or the
HOLDER of the token. Only the holder appends entries, and it may only append while it
holds the token.

*Token circulation.* The holder appends what its own members queued (``submit``), sends
appends to every live member, and after ``hold_time`` passes the token to the next live
member in ring order. A pass is an append with ``token=True`` that carries every entry the
target lacks; the target checks that its log matches the holder's at ``prev_index``,
stores the entries and the new **hop** number durably, and only then takes the token. The
old holder stops appending as soon as it sends the pass, and becomes a follower when the
pass is taken, or when its outcome is unknown (timeout: the target may have it).

*Epochs = terms.* Within one epoch the token moves from holder to holder, and each new
holder's log equals the old holder's log (it matched at the old holder's last entry and
took the rest), so all entries of one epoch form **one chain**: two logs holding an entry
of epoch ``e`` at index ``i`` are identical up to ``i`` (log matching). A duplicated or
late pass is refused because the target persisted the highest hop it took.

*Regeneration.* A member that hears from no holder for ``token_timeout`` (randomised)
becomes a candidate for ``epoch + 1`` and asks every configured member for its vote. A
member votes at most once per epoch (the vote is persisted before the reply) and only for
a candidate whose log is at least as up to date as its own (last epoch, then length). A
candidate with votes from a majority of ``RingView.configured()`` holds the token at hop
0 and appends a no-op (so earlier entries can commit). A member that still hears from a
holder refuses to vote (so a returning node cannot disrupt a working ring), and a member
whose view shows no majority does not stand at all.

*Commit = durable on a majority.* Every member writes entries with ``sync=True`` before it
acknowledges them. The holder moves the commit index to the highest index of the
**current epoch** stored on a majority of the configured membership (itself included once
its own write is synced); earlier entries commit with it. Members learn the commit index
from appends and apply entries in order.

Why this is safe (the argument is Raft's, with token passes added):

1. *One chain per epoch*: a candidate needs a majority of votes and each member votes once
   per epoch, so each epoch is generated once; passes within it keep one chain (above).
2. *A committed entry survives*: it is durable on a majority M. A candidate for a later
   epoch needs votes from a majority V, and V ∩ M holds a member with the entry; that
   member only votes for a log at least as up to date as its own, which (by 1 and
   induction over epochs) contains the entry. So every later holder has every committed
   entry, and followers only truncate entries that conflict with a holder's log, which
   are never committed ones. No two members ever apply different entries at one ``seq``,
   and no ``(epoch, seq)`` is assigned twice.
3. *A minority cannot fork the log*: it can neither elect (no majority of votes) nor
   commit (no majority of durable copies). An old holder cut off in a minority still
   appends nothing that commits, and steps down after ``token_timeout`` without hearing
   from a majority; ``submit`` there raises :class:`NoQuorum` ("read-only, no quorum").
   Majority acknowledgement is what makes this hold even when the views are wrong:
   counting the holder's *view* alone would let a one-way partition or a stale view let
   two sides commit.
4. *Fsync before ack* matters for 2: a member that acknowledged an entry and then lost it
   in a crash could vote for a log without it.

Duplicate submits: entries carry ids; before appending, the holder skips an id already in
its log. Every log that contains an entry at index ``i`` shares the holder's prefix before
``i`` (log matching), so no id is ever present twice in any log.

Limits: majorities are counted against the configured membership the driver passes in (the
durably remembered union of every member seen in ``RingView.configured()``, less those that
left gracefully) but never against fewer than ``TokenRingConfig.min_members`` (set it to
the initial cluster size when bootstrapping). The configured membership must change one
member at a time (majorities of consecutive configurations then overlap). There is no log
compaction yet: a new or returning member catches up by log transfer, ``max_batch``
entries per append, and is skipped as token target until it is within one batch.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Sequence

import attrs

from dspot.tokenring._config import TokenRingConfig
from dspot.tokenring._messages import Append, AppendReply, Entry, LogPosition, Vote, VoteReply

NEVER = float("inf")


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


@attrs.define
class Persist:
    """A disk write the driver must make durable before sending anything from the same
    output: drop entries from ``truncate_from`` on, then store ``entries`` (seq → entry)."""

    truncate_from: int | None = None
    entries: dict[int, Entry] = attrs.field(factory=dict)
    state: HardState | None = None
    upto: int = 0
    """The log's last index once this write is done (for :meth:`TokenRingCore.persisted`)."""


@attrs.frozen
class Send:
    """A request to ``peer``; its reply (or failure) goes back to the core."""

    peer: str
    message: Append | Vote


@attrs.define
class Output:
    """What one core call asks the driver to do, in this order: persist, then send."""

    persist: Persist | None = None
    sends: list[Send] = attrs.field(factory=list)
    resolved: list[tuple[str, LogPosition]] = attrs.field(factory=list)
    """Submits now committed (entry id, position)."""
    rejected: list[str] = attrs.field(factory=list)
    """Submits refused for lack of quorum (never appended anywhere)."""
    committed: bool = False
    """The commit index moved."""


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


class TokenRingCore:
    """The state machine of one member. Not thread-safe; the driver serialises calls.

    The driver feeds it the view (:meth:`set_view`), timer ticks (:meth:`tick`), requests
    (:meth:`on_append`, :meth:`on_vote`), replies and failures of what it sent, and the
    completion of disk writes (:meth:`persisted`). Each call returns an :class:`Output`.
    """

    def __init__(
        self,
        node_id: str,
        config: TokenRingConfig,
        *,
        rng: random.Random,
        now: float,
        state: HardState = HardState(),
        log: Sequence[Entry] = (),
    ) -> None:
        self.node_id = node_id
        self.config = config
        self._rng = rng
        self.epoch = state.epoch
        self.voted_for = state.voted_for
        self.hop = state.hop
        self.log: list[Entry] = list(log)
        self.ids: dict[str, int] = {}
        for i, e in enumerate(self.log, 1):
            if not e.is_noop:
                self.ids[e.entry_id] = i
        self.commit_index = 0
        self.durable_index = len(self.log)
        self.role = Role.FOLLOWER
        self.holder: str | None = None
        self.last_heard = now
        self.election_deadline = now
        self._reset_election(now)
        # the view
        self.live: tuple[str, ...] = ()
        self.configured: tuple[str, ...] = ()
        # holder state
        self.next_index: dict[str, int] = {}
        self.match_index: dict[str, int] = {}
        self.inflight: dict[str, Append] = {}
        self.last_ack: dict[str, float] = {}
        self.peer_pending: dict[str, int] = {}
        self.sent_commit: dict[str, int] = {}
        """Holder: the commit index each peer was last sent (to tell it when it moves)."""
        self.acquired_at = 0.0
        self.quorum_seen_at = 0.0
        """Holder: when a majority (itself included) last answered it, or its predecessor."""
        self.last_broadcast = 0.0
        self.passing_to: str | None = None
        self.pass_retry_at = 0.0
        self.draining = False
        # candidate state
        self.votes: list[str] = []
        # submits
        self.queue: list[tuple[str, bytes]] = []
        self.pending: dict[str, int] = {}
        """Entry id → index it was appended at (0 while queued)."""
        self._appended_before: set[str] = set()
        self._out = Output()
        # Switched off only by sabotage tests, to show the checkers notice.
        self.epoch_check_enabled = True
        self.majority_enabled = True
        self.epoch_bump_enabled = True

    # -- queries --------------------------------------------------------------------------

    @property
    def last_index(self) -> int:
        return len(self.log)

    @property
    def last_epoch(self) -> int:
        return self.log[-1].epoch if self.log else 0

    def epoch_at(self, index: int) -> int:
        return self.log[index - 1].epoch if 0 < index <= len(self.log) else 0

    def quorum(self) -> int:
        """How many members make a majority of the configured membership."""
        if not self.majority_enabled:
            return 1
        return max(len(self.configured), self.config.min_members) // 2 + 1

    def view_has_quorum(self) -> bool:
        """Whether this member sees a majority of the configured membership live."""
        live = sum(1 for n in self.live if n in self.configured)
        return bool(self.configured) and live >= self.quorum()

    def position_of(self, entry_id: str) -> LogPosition | None:
        """Where a committed entry with this id is, if it is committed."""
        idx = self.ids.get(entry_id)
        if idx is None or idx > self.commit_index:
            return None
        return LogPosition(idx, self.epoch_at(idx))

    def status(self) -> Status:
        return Status(
            self.node_id, self.role, self.epoch, self.hop, self.holder,
            self.commit_index, self.last_index, len(self.queue),
        )  # fmt: skip

    def next_deadline(self, now: float) -> float:
        """When :meth:`tick` next has something to do (absent other input); after ``now``."""
        if self.role is Role.HOLDER:
            due = self.last_broadcast + self.config.heartbeat_interval
            if self.passing_to is None:
                for pass_at in (
                    self.acquired_at + self.config.hold_time,
                    self.acquired_at + self.config.idle_hold_time,
                ):
                    if pass_at > now:
                        due = min(due, pass_at)
                        break
            return due
        return self.election_deadline

    # -- inputs ---------------------------------------------------------------------------

    def set_view(self, live: Sequence[str], configured: Sequence[str]) -> None:
        """The ring view: live members in ring order, and the configured membership."""
        self.live = tuple(live)
        self.configured = tuple(configured)

    def tick(self, now: float) -> Output:
        """Timers: heartbeats, token passing, step-down, regeneration, NoQuorum."""
        cfg = self.config
        if self.role is Role.HOLDER:
            if now - self.quorum_seen_at >= cfg.token_timeout:
                self._step_down(now)
            else:
                self._append_queued()
                if now >= self.last_broadcast + cfg.heartbeat_interval:
                    self._broadcast(now)
                self._maybe_pass(now)
        elif now >= self.election_deadline:
            if self.view_has_quorum():
                self._start_election(now)
            else:
                self._reset_election(now)
        if not self.view_has_quorum() and self.queue:
            keep: list[tuple[str, bytes]] = []
            for eid, data in self.queue:
                if eid in self._appended_before:
                    keep.append((eid, data))
                else:
                    self.pending.pop(eid, None)
                    self._out.rejected.append(eid)
            self.queue = keep
        return self._take()

    def enqueue(self, entry_id: str, data: bytes, now: float) -> Output:
        """Queue a local submit; it is appended when this member holds the token."""
        if not entry_id:
            raise ValueError("entry id must not be empty")
        if entry_id not in self.pending:
            idx = self.ids.get(entry_id)
            if idx is not None:
                self.pending[entry_id] = idx
                self._resolve()
            else:
                self.pending[entry_id] = 0
                self.queue.append((entry_id, data))
                if self.role is Role.HOLDER:
                    self._append_queued()
        return self._take()

    def cancel(self, entry_id: str) -> None:
        """Nobody waits for this entry any more: drop it if it is still only queued."""
        if self.pending.pop(entry_id, None) == 0:
            self.queue = [(e, d) for e, d in self.queue if e != entry_id]

    def persisted(self, upto: int) -> Output:
        """The driver made a :class:`Persist` with this ``upto`` durable."""
        self.durable_index = min(upto, self.last_index)
        self._advance_commit()
        return self._take()

    def on_append(self, msg: Append, now: float) -> tuple[AppendReply, Output]:
        if msg.epoch < self.epoch:
            if self.epoch_check_enabled:
                return self._append_reply(False, 0, 0, False), self._take()
            self._adopt_epoch(msg.epoch)  # sabotage: follow an old holder as if current
        if msg.epoch > self.epoch:
            self._adopt_epoch(msg.epoch)
        if self.role is Role.CANDIDATE:
            self._become_follower(now)
        if msg.epoch == self.epoch:
            self.last_heard = now
            self._reset_election(now)
            if self.role is Role.FOLLOWER and msg.hop >= self.hop:
                self.holder = msg.holder
        reply_epoch = self.epoch
        prev = msg.prev_index
        if prev > self.last_index:
            reply = AppendReply(reply_epoch, False, 0, self.last_index + 1, False, len(self.queue))
            return reply, self._take()
        if self.epoch_at(prev) != msg.prev_epoch:
            bad = self.epoch_at(prev)
            k = prev
            while k > 1 and self.epoch_at(k - 1) == bad:
                k -= 1
            reply = AppendReply(reply_epoch, False, 0, max(k, 1), False, len(self.queue))
            return reply, self._take()
        idx = prev
        for entry in msg.entries():
            idx += 1
            if idx <= self.last_index:
                if self.log[idx - 1].epoch == entry.epoch:
                    continue
                if idx <= self.commit_index:
                    # Proof says this cannot happen; refuse rather than fork the log.
                    reply = AppendReply(reply_epoch, False, 0, idx, False, len(self.queue))
                    return reply, self._take()
                self._truncate(idx)
            self._append_entry(entry)
        match = msg.last_index
        if msg.commit > self.commit_index:
            self._commit_to(min(msg.commit, match))
        took = False
        if msg.token and msg.epoch == self.epoch and msg.hop > self.hop:
            self.hop = msg.hop
            self._save_state()
            self._become_holder(now, wanted=msg.wanted, seen=now - max(0.0, msg.contact_age))
            took = True
        return AppendReply(reply_epoch, True, match, 0, took, len(self.queue)), self._take()

    def on_append_reply(self, peer: str, msg: Append, reply: AppendReply, now: float) -> Output:
        if self.inflight.get(peer) is msg:
            del self.inflight[peer]
        if reply.epoch > self.epoch:
            self._adopt_epoch(reply.epoch)
            self._become_follower(now)
            return self._take()
        if self.role is not Role.HOLDER or msg.epoch != self.epoch:
            return self._take()
        self.last_ack[peer] = now
        self.peer_pending[peer] = reply.pending
        before = self.next_index.get(peer, self.last_index + 1)
        if self._quorum_contact(now):
            self.quorum_seen_at = now
        if reply.ok:
            match = min(reply.match_index, msg.last_index)
            self.match_index[peer] = max(self.match_index.get(peer, 0), match)
            self.next_index[peer] = self.match_index[peer] + 1
        else:
            hint = reply.conflict_index or self.next_index.get(peer, 1) - 1
            self.next_index[peer] = max(
                self.match_index.get(peer, 0) + 1, min(hint, msg.prev_index)
            )
        if msg.token and self.passing_to == peer:
            self.passing_to = None
            if reply.took_token:
                self._become_follower(now, holder=peer, hop=msg.hop)
                return self._take()
            if reply.ok:  # matched but refused the token (stale hop): something is off
                self._step_down(now)
                return self._take()
            # The target's log did not match: catch it up, try again after a heartbeat.
            self.pass_retry_at = now + self.config.heartbeat_interval
        self._advance_commit()
        if self.role is Role.HOLDER:
            # Resend at once while it makes progress; a refusal that does not move us back
            # waits for the next heartbeat instead of spinning.
            progress = reply.ok or self.next_index[peer] < before
            if progress and self.next_index[peer] <= self.last_index:
                self._replicate(peer)
            else:
                self._notify_commit(peer)
            self._maybe_pass(now)
        return self._take()

    def on_send_failed(self, peer: str, msg: Append | Vote, now: float) -> Output:
        """A request got no reply (timeout, connection lost, peer down)."""
        if isinstance(msg, Append):
            if self.inflight.get(peer) is msg:
                del self.inflight[peer]
            if (
                msg.token
                and self.passing_to == peer
                and self.role is Role.HOLDER
                and msg.epoch == self.epoch
            ):
                # The target may have taken the token: never hold it twice.
                self.passing_to = None
                self._become_follower(now, hop=msg.hop)
        return self._take()

    def on_vote(self, msg: Vote, now: float) -> tuple[VoteReply, Output]:
        if msg.epoch < self.epoch:
            return VoteReply(self.epoch, False), self._take()
        if msg.epoch > self.epoch:
            if self._sticky(now):
                return VoteReply(self.epoch, False), self._take()
            self._adopt_epoch(msg.epoch)
        up_to_date = (msg.last_epoch, msg.last_index) >= (self.last_epoch, self.last_index)
        if self.voted_for in (None, msg.candidate) and up_to_date:
            if self.voted_for is None:
                self.voted_for = msg.candidate
                self._save_state()
            self.last_heard = now
            self._reset_election(now)
            return VoteReply(self.epoch, True), self._take()
        return VoteReply(self.epoch, False), self._take()

    def on_vote_reply(self, peer: str, msg: Vote, reply: VoteReply, now: float) -> Output:
        if reply.epoch > self.epoch:
            self._adopt_epoch(reply.epoch)
            return self._take()
        if self.role is not Role.CANDIDATE or msg.epoch != self.epoch or not reply.granted:
            return self._take()
        if peer not in self.votes:
            self.votes.append(peer)
        if self._counted(self.votes) >= self.quorum():
            self._become_holder(now)
        return self._take()

    # -- internals: roles -----------------------------------------------------------------

    def _take(self) -> Output:
        out, self._out = self._out, Output()
        return out

    def _persist(self) -> Persist:
        if self._out.persist is None:
            self._out.persist = Persist()
        p = self._out.persist
        p.upto = self.last_index
        return p

    def _save_state(self) -> None:
        self._persist().state = HardState(self.epoch, self.voted_for, self.hop)

    def _reset_election(self, now: float) -> None:
        t = self.config.token_timeout
        self.election_deadline = now + t + self._rng.uniform(0, t)

    def _counted(self, members: Sequence[str]) -> int:
        return sum(1 for m in members if m in self.configured)

    def _sticky(self, now: float) -> bool:
        """Whether a working holder is known, so a vote for a new epoch would disrupt it."""
        if self.role is Role.HOLDER:
            return now - self.quorum_seen_at < self.config.token_timeout
        return (
            self.role is Role.FOLLOWER
            and self.holder is not None
            and now - self.last_heard < self.config.token_timeout
        )

    def _quorum_contact(self, now: float) -> bool:
        since = now - self.config.token_timeout
        heard = [self.node_id] + [p for p, t in self.last_ack.items() if t >= since]
        return self._counted(heard) >= self.quorum()

    def _adopt_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.voted_for = None
        self.hop = -1
        self.holder = None
        if self.role is not Role.FOLLOWER:
            self._clear_holding()
            self.role = Role.FOLLOWER
        self._save_state()

    def _clear_holding(self) -> None:
        self.next_index.clear()
        self.match_index.clear()
        self.inflight.clear()
        self.last_ack.clear()
        self.peer_pending.clear()
        self.sent_commit.clear()
        self.passing_to = None
        self.draining = False
        self.votes = []

    def _become_follower(self, now: float, *, holder: str | None = None, hop: int = -1) -> None:
        self._clear_holding()
        self.role = Role.FOLLOWER
        self.holder = holder
        self.hop = max(self.hop, hop)
        self.last_heard = now
        self._reset_election(now)

    def _step_down(self, now: float) -> None:
        self._become_follower(now)

    def _start_election(self, now: float) -> None:
        if self.epoch_bump_enabled:
            self.epoch += 1
        self.voted_for = self.node_id
        self.hop = -1
        self.holder = None
        self._clear_holding()
        self.role = Role.CANDIDATE
        self.votes = [self.node_id]
        self._save_state()
        self._reset_election(now)
        if self._counted(self.votes) >= self.quorum():
            self._become_holder(now)
            return
        vote = Vote(self.epoch, self.node_id, self.last_index, self.last_epoch)
        for peer in self.configured:
            if peer != self.node_id:
                self._out.sends.append(Send(peer, vote))

    def _become_holder(
        self, now: float, wanted: Sequence[str] = (), seen: float | None = None
    ) -> None:
        elected = self.role is Role.CANDIDATE
        voters = self.votes
        self._clear_holding()
        self.role = Role.HOLDER
        self.holder = self.node_id
        self.acquired_at = now
        self.quorum_seen_at = now if seen is None else seen
        self.last_broadcast = now
        for p in voters:
            self.last_ack[p] = now
        for p in wanted:
            if p != self.node_id:
                self.peer_pending[p] = 1
        if elected:
            self.hop = 0
            self._save_state()
            self._append_entry(Entry(self.epoch, "", b""))
            self._broadcast(now)
        self._append_queued()

    # -- internals: the log ---------------------------------------------------------------

    def _append_entry(self, entry: Entry) -> None:
        self.log.append(entry)
        idx = len(self.log)
        if not entry.is_noop:
            self.ids[entry.entry_id] = idx
            if self.pending.get(entry.entry_id) == 0:
                # Someone else appended our queued submit (a retry through another member).
                self.pending[entry.entry_id] = idx
                self.queue = [(e, d) for e, d in self.queue if e != entry.entry_id]
        self._persist().entries[idx] = entry

    def _truncate(self, start: int) -> None:
        """Drop entries from ``start`` on (they conflict with the holder's log)."""
        requeue: list[tuple[str, bytes]] = []
        for idx in range(start, len(self.log) + 1):
            e = self.log[idx - 1]
            if self.ids.get(e.entry_id) == idx:
                del self.ids[e.entry_id]
            if self.pending.get(e.entry_id) == idx:
                self.pending[e.entry_id] = 0
                requeue.append((e.entry_id, e.data))
        del self.log[start - 1 :]
        self.durable_index = min(self.durable_index, start - 1)
        p = self._persist()
        p.truncate_from = start if p.truncate_from is None else min(p.truncate_from, start)
        for idx in [i for i in p.entries if i >= start]:
            del p.entries[idx]
        self.queue = requeue + self.queue

    def _append_queued(self) -> None:
        """Holder: assign positions to queued submits (skipping ids already in the log)."""
        if (
            self.role is not Role.HOLDER
            or self.passing_to is not None
            or self.draining
            or not self.queue
        ):
            return
        if not self.view_has_quorum():
            return
        for eid, data in self.queue:
            self._appended_before.add(eid)
            idx = self.ids.get(eid)
            if idx is None:
                self._append_entry(Entry(self.epoch, eid, data))
                idx = self.last_index
            if eid in self.pending:
                self.pending[eid] = idx
        self.queue = []
        for peer in self.live:
            if peer != self.node_id:
                self._replicate(peer)

    def _commit_to(self, index: int) -> None:
        if index > self.commit_index:
            self.commit_index = index
            self._out.committed = True
            self._resolve()
            if self.role is Role.HOLDER:
                for peer in self.live:
                    self._notify_commit(peer)

    def _notify_commit(self, peer: str) -> None:
        """Holder: send ``peer`` the commit index if it has not been sent it yet (an append
        in flight to it is answered first; its reply comes back here)."""
        if (
            self.config.commit_notify
            and peer != self.node_id
            and peer not in self.inflight
            and self.sent_commit.get(peer, 0) < self.commit_index
        ):
            self._replicate(peer)

    def _resolve(self) -> None:
        for eid, idx in list(self.pending.items()):
            if 0 < idx <= self.commit_index:
                del self.pending[eid]
                if self.log[idx - 1].entry_id == eid:
                    self._out.resolved.append((eid, LogPosition(idx, self.epoch_at(idx))))
                    self._appended_before.discard(eid)

    def _advance_commit(self) -> None:
        if self.role is not Role.HOLDER:
            return
        matches = sorted(
            (
                self.durable_index if p == self.node_id else self.match_index.get(p, 0)
                for p in self.configured
            ),
            reverse=True,
        )
        q = self.quorum()
        if len(matches) < q:
            return
        n = matches[q - 1]
        if n > self.commit_index and self.epoch_at(n) == self.epoch:
            self._commit_to(n)

    # -- internals: sending ---------------------------------------------------------------

    def _broadcast(self, now: float) -> None:
        self.last_broadcast = now
        for peer in self.live:
            if peer != self.node_id:
                self._replicate(peer)

    def _replicate(self, peer: str, *, token: bool = False, now: float = 0.0) -> None:
        if peer in self.inflight:
            return
        nxt = min(self.next_index.get(peer, self.last_index + 1), self.last_index + 1)
        self.next_index[peer] = nxt
        end = self.last_index if token else min(self.last_index, nxt - 1 + self.config.max_batch)
        msg = Append.build(
            epoch=self.epoch,
            hop=self.hop + 1 if token else self.hop,
            holder=self.node_id,
            prev_index=nxt - 1,
            prev_epoch=self.epoch_at(nxt - 1),
            commit=self.commit_index,
            token=token,
            entries=self.log[nxt - 1 : end],
            wanted=[p for p, n in self.peer_pending.items() if n > 0] if token else (),
            contact_age=now - self.quorum_seen_at if token else 0.0,
        )
        self.inflight[peer] = msg
        self.sent_commit[peer] = self.commit_index
        self._out.sends.append(Send(peer, msg))

    def _maybe_pass(self, now: float) -> None:
        if (
            self.role is not Role.HOLDER
            or self.passing_to is not None
            or now < self.acquired_at + self.config.hold_time
            or now < self.pass_retry_at
        ):
            return
        if now < self.acquired_at + self.config.idle_hold_time:
            if not any(n > 0 for n in self.peer_pending.values()):
                return
            # Others wait: append nothing more (our own callers must not starve them),
            # and pass once what we appended is committed.
            self.draining = True
            if self.commit_index < self.last_index:
                return
        target = self._pass_target()
        if target is None or target in self.inflight:
            return
        self.passing_to = target
        self._replicate(target, token=True, now=now)

    def _pass_target(self) -> str | None:
        """The next live member in ring order that is within one batch of our log."""
        ring = list(self.live)
        if self.node_id not in ring:
            return None
        start = ring.index(self.node_id)
        for i in range(1, len(ring)):
            peer = ring[(start + i) % len(ring)]
            if peer not in self.configured:
                continue
            nxt = self.next_index.get(peer, self.last_index + 1)
            if self.last_index - nxt + 1 <= self.config.max_batch:
                return peer
        return None

    def _append_reply(self, ok: bool, match: int, conflict: int, took: bool) -> AppendReply:
        return AppendReply(self.epoch, ok, match, conflict, took, len(self.queue))
