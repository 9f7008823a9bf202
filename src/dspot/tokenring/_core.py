"""The token ring's state machine, with no I/O (sans-I/O): messages and timer ticks in,
messages, disk writes, disk reads and submit outcomes out.

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

*The log on disk, a window in memory.* The log lives on disk; the core keeps its bounds,
the epoch of every position (as runs, one per epoch change) and only the newest
``memory_entries`` entries (:class:`~dspot.tokenring._log.LogWindow`). A holder that must
send older entries asks the driver to read them (:class:`Fetch`) and sends them from
:meth:`on_fetched`, after checking that their epochs still match its log.

*Compaction and snapshots.* With a state machine that takes snapshots, a member snapshots
its applied state every ``compact_every`` entries and then drops its log up to
``keep_entries`` before the snapshot: the log starts after the **base index**, whose epoch
it remembers. A holder whose log no longer holds what a member needs (its next index is at
or below the holder's base) sends its latest snapshot instead, in checksummed chunks
(:class:`SnapshotOffer`). The member installs it (:meth:`install_snapshot`) and reports
the snapshot's index as its match, and the holder continues from there by log transfer:
the entries after the snapshot (its *tail*) follow as appends.

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
5. *Compaction drops only what a snapshot covers*: a snapshot is taken at the applied
   index, never past the commit index, and the log is trimmed only up to the snapshot.
   Committed entries are the same in every log (2), so the dropped prefix is one every
   member has or will get from the snapshot. No entry a majority still lacks (an
   uncommitted one) is ever dropped: such an entry may exist on this member only, and
   trimming it would strand the lagging majority, which needs it to commit or to
   overwrite it. The base's epoch stands in for the dropped entries in log matching:
   positions up to the base are committed, hence equal to the holder's, so an append
   whose ``prev_index`` is below the base matches there and its entries up to the base
   are skipped. The last epoch and index used for votes are the base's when the log is
   empty, which is committed state, so "at least as up to date" keeps its meaning.
6. *Snapshot install keeps the tail*: a member ignores a snapshot its commit index already
   covers. Otherwise the driver first makes the whole file durable and checks its
   checksum, then one transaction records the snapshot as the new base and drops the log:
   only up to the snapshot index if the log holds the snapshot's last entry (same index
   and epoch: the log equals the holder's up to there by log matching, and the entries
   after it may have been acknowledged and counted for a commit, so they must stay);
   else all of it (it conflicts with a committed entry, so nothing in it after the
   conflict is committed). The match it reports is the snapshot index, so the holder
   sends the tail, and commits count only entries the member really holds. The state
   machine is restored from the file after that transaction; a crash before it leaves
   the old base, log and state (a half-received file is discarded), a crash after it
   leaves the new base and the durable file, and the restore is redone at start. The
   configured membership lives apart from the log; an install only adds the members the
   snapshot names.
7. *A member that lost its disk is a learner*: it no longer holds what it acknowledged, nor
   remembers its votes, so its vote could elect a log without a committed entry (whose
   majority counted it). A learner neither votes nor stands until its log has matched a
   holder's whole log (``Append.holder_last``), which holds every committed entry; it then
   counts as having voted for that holder in that epoch, and waits out any election
   begun before it lost its disk. With k learners a committed entry is on at least
   q - k voters and an election needs q of the other n - k, and (q - k) + q > n - k: the
   overlap of 2 survives as long as learners do not vote.

Duplicate submits: entries carry ids; before appending, the holder skips an id in its
**id window** (:class:`~dspot.tokenring._log.IdWindow`: ids with their index and epoch).
Every log that contains an entry at index ``i`` shares the holder's prefix before ``i``
(log matching), so an id present in the holder's window is never appended twice. The
window is bounded: an id is forgotten once its entry is ``dedupe_window`` entries below
the commit index *and* every live member's log has reached it (the holder sends that
``floor`` with its appends), so a lagging member that still has a submit queued learns
that it committed before its id goes. A snapshot carries the ids its taker still
remembered, so installing one forgets no more than replaying the log would. Beyond the
window a resubmission with an old id is appended again; ``submit`` documents it.

Limits: majorities are counted against the configured membership the driver passes in (the
durably remembered union of every member seen in ``RingView.configured()``, less those that
left gracefully) but never against fewer than ``TokenRingConfig.min_members`` (set it to
the initial cluster size when bootstrapping). The configured membership must change one
member at a time (majorities of consecutive configurations then overlap). A member more
than one batch behind is skipped as token target until it catches up.
"""

from __future__ import annotations

from collections.abc import Sequence

from dspot.tokenring._config import TokenRingMechanism
from dspot.tokenring._core_state import CoreState
from dspot.tokenring._log import IdWindow
from dspot.tokenring._messages import (
    Append,
    AppendReply,
    Entry,
    InstallSnapshot,
    InstallSnapshotReply,
    SnapshotMeta,
    Vote,
    VoteReply,
)
from dspot.tokenring._output import (
    Fetch,
    Output,
    Role,
    SnapshotOffer,
)


class TokenRingCore(CoreState):
    """The state machine of one member. Not thread-safe; the driver serialises calls.

    The driver feeds it the view (:meth:`set_view`), timer ticks (:meth:`tick`), requests
    (:meth:`on_append`, :meth:`on_vote`, :meth:`on_snapshot_chunk`), replies and failures
    of what it sent, entries it read (:meth:`on_fetched`), snapshots it installed or took
    (:meth:`install_snapshot`, :meth:`compacted`) and the completion of disk writes
    (:meth:`persisted`). Each call returns an :class:`Output`.
    """

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
            if self.view_has_quorum() and not self.learner:
                self._start_election(now)
            else:
                self._reset_election(now)
        if not self.view_has_quorum() and self.submits.queue:
            self._out.rejected += self.submits.reject_unappended()
        return self._take()

    def enqueue(self, entry_id: str, data: bytes, now: float) -> Output:
        """Queue a local submit; it is appended when this member holds the token."""
        if not entry_id:
            raise ValueError("entry id must not be empty")
        if entry_id not in self.submits.pending:
            at = self.ids.get(entry_id)
            self.submits.add(entry_id, data, at[0] if at else None)
            if at is not None:
                self._resolve()
            elif self.role is Role.HOLDER:
                self._append_queued()
        return self._take()

    def cancel(self, entry_id: str) -> None:
        """Nobody waits for this entry any more: drop it if it is still only queued."""
        self.submits.cancel(entry_id)

    def persisted(self, upto: int) -> Output:
        """The driver made a :class:`Persist` with this ``upto`` durable."""
        self.durable_index = min(upto, self.last_index)
        self._advance_commit()
        return self._take()

    def on_append(self, msg: Append, now: float) -> tuple[AppendReply, Output]:
        if not self._hear(msg.epoch, msg.hop, msg.holder, now):
            return self._append_reply(False, 0, 0, False), self._take()
        prev, prev_epoch = msg.prev_index, msg.prev_epoch
        entries = msg.entries()
        if prev < self.base_index:
            # Positions up to the base are committed, the same as the holder's (5).
            skip = min(self.base_index - prev, len(entries))
            entries = entries[skip:]
            prev += skip
            prev_epoch = self.log.base_epoch if prev == self.base_index else prev_epoch
        if prev > self.last_index:
            reply = self._append_reply(False, 0, self.last_index + 1, False)
            return reply, self._take()
        if prev >= self.base_index and self.epoch_at(prev) != prev_epoch:
            hint = self.log.run_start(prev)
            reply = self._append_reply(False, 0, hint, False)
            return reply, self._take()
        idx = prev
        for entry in entries:
            idx += 1
            if idx <= self.last_index:
                if self.epoch_at(idx) == entry.epoch:
                    continue
                if idx <= self.commit_index:
                    # Proof says this cannot happen; refuse rather than fork the log.
                    reply = self._append_reply(False, 0, idx, False)
                    return reply, self._take()
                self._truncate(idx)
            self._append_entry(entry)
        match = msg.last_index
        if self.learner and msg.epoch == self.epoch and 0 <= msg.holder_last <= match:
            self._graduate(msg.holder, now)
        self.floor = min(msg.floor, match)
        if msg.commit > self.commit_index:
            self._commit_to(min(msg.commit, match))
        self._forget_ids()
        took = False
        if msg.token and msg.epoch == self.epoch and msg.hop > self.hop:
            self.hop = msg.hop
            self._save_state()
            self._become_holder(now, wanted=msg.wanted, seen=now - max(0.0, msg.contact_age))
            took = True
        self._trim_naively()
        return self._append_reply(True, match, 0, took), self._take()

    def on_append_reply(self, peer: str, msg: Append, reply: AppendReply, now: float) -> Output:
        if self.inflight.get(peer) is msg:
            del self.inflight[peer]
        if reply.epoch > self.epoch:
            self._adopt_epoch(reply.epoch)
            self._become_follower(now)
            return self._take()
        if self.role is not Role.HOLDER or msg.epoch != self.epoch:
            return self._take()
        self._acked(peer, now)
        self.peer_pending[peer] = reply.pending
        before = self.next_index.get(peer, self.last_index + 1)
        if reply.ok:
            self._matched(peer, min(reply.match_index, msg.last_index))
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

    def on_fetched(self, fetch: Fetch, entries: Sequence[Entry], now: float) -> Output:
        """Entries the driver read for ``fetch``: send them, if they still fit the log."""
        peer = fetch.peer
        if self.inflight.get(peer) is not fetch:
            return self._take()
        del self.inflight[peer]
        fits = len(entries) == fetch.end - fetch.start + 1 and all(
            self.log.epoch_at(i) == e.epoch for i, e in enumerate(entries, fetch.start)
        )
        prev_epoch = self.log.epoch_at(fetch.start - 1)
        if self.role is Role.HOLDER and fits and prev_epoch is not None:
            self._send_append(peer, fetch.start, prev_epoch, list(entries))
        return self._take()

    def on_snapshot_reply(
        self, peer: str, offer: SnapshotOffer, reply: InstallSnapshotReply, now: float
    ) -> Output:
        if self.inflight.get(peer) is offer:
            del self.inflight[peer]
        if reply.epoch > self.epoch:
            self._adopt_epoch(reply.epoch)
            self._become_follower(now)
            return self._take()
        if self.role is not Role.HOLDER or offer.epoch != self.epoch or not reply.ok:
            return self._take()
        self._acked(peer, now)
        if reply.installed:
            self._matched(peer, min(reply.match_index, offer.meta.index))
            self._advance_commit()
            if self.next_index[peer] <= self.last_index:
                self._replicate(peer)
        return self._take()

    def on_send_failed(self, peer: str, msg: Append | Vote | SnapshotOffer, now: float) -> Output:
        """A request got no reply (timeout, connection lost, peer down)."""
        if isinstance(msg, Append | SnapshotOffer) and self.inflight.get(peer) is msg:
            del self.inflight[peer]
        if (
            isinstance(msg, Append)
            and msg.token
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
        if self.learner or now < self.vote_after:
            return VoteReply(self.epoch, False), self._take()
        if self.voted_for in (None, msg.candidate) and up_to_date:
            if self.voted_for is None:
                self.voted_for = msg.candidate
                self._save_state()
            self.last_heard = now
            self._reset_election(now)
            return VoteReply(self.epoch, True), self._take()
        return VoteReply(self.epoch, False), self._take()

    def _graduate(self, holder: str, now: float) -> None:
        """A learner's log now holds every committed entry: it may vote (7)."""
        self.learner = False
        # It may have voted before its disk was lost: count that vote as given to this
        # epoch's holder, and keep out of elections still running from before.
        if self.voted_for is None:
            self.voted_for = holder
        self.vote_after = now + 2 * self.config.token_timeout + self.config.rpc_timeout
        self._save_state()

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

    # -- snapshots ------------------------------------------------------------------------

    def on_snapshot_chunk(
        self, msg: InstallSnapshot, now: float
    ) -> tuple[InstallSnapshotReply | None, Output]:
        """A chunk of a snapshot from a holder: a reply to send at once (stale sender, or
        a snapshot this member's commit index already covers), or ``None``: take the chunk
        (and, after the last one, :meth:`install_snapshot`)."""
        if not self._hear(msg.epoch, msg.hop, msg.holder, now):
            return InstallSnapshotReply(self.epoch, False), self._take()
        if msg.index <= self.commit_index:
            return InstallSnapshotReply(self.epoch, True, True, msg.index), self._take()
        return None, self._take()

    def install_snapshot(
        self, meta: SnapshotMeta, ids: Sequence[tuple[str, int, int]], members: Sequence[str]
    ) -> tuple[InstallSnapshotReply, Output]:
        """The driver holds the whole snapshot ``meta`` durably, checksum verified: make it
        this member's base (6). ``ids`` and ``members`` come from the snapshot's header."""
        if meta.index <= self.commit_index:  # meanwhile caught up by other means
            return InstallSnapshotReply(self.epoch, True, True, meta.index), self._take()
        p = self._persist()
        theirs = [t for t in ids if t[1] <= meta.index]
        if self.log.epoch_at(meta.index) == meta.epoch:
            # Our log equals the holder's up to the snapshot: keep the tail after it, and
            # every id we remember (ours up to there are committed ones too).
            self.log.compact(meta.index)
            ours = self.ids.items()
            known = {t[0] for t in ours}
            self.ids = IdWindow(ours + [t for t in theirs if t[0] not in known])
        else:
            # Our log conflicts with a committed entry: nothing in it after the conflict is
            # committed. Drop it all; what the snapshot does not name is decided below.
            appended = self.submits.appended()
            self._truncate(self.base_index + 1)
            self.log.reset(meta.index, meta.epoch)
            self.durable_index = meta.index
            self.ids = IdWindow(theirs)
            for eid, idx in appended.items():
                at = self.ids.get(eid)
                if at is not None:  # committed, the snapshot says where
                    self.submits.settle(eid, at[0])
                elif idx <= meta.index:
                    # Committed at idx or overwritten there, and the snapshot's taker
                    # forgot which: the outcome is unknown, the submitter times out.
                    self.submits.settle(eid, None)
        p.trim_to = meta.index
        p.base_epoch = meta.epoch
        p.snapshot = meta
        p.members = tuple(members)
        p.upto = self.last_index
        self.snapshot = meta
        self._commit_to(meta.index)
        self._out.committed = True
        return InstallSnapshotReply(self.epoch, True, True, meta.index), self._take()

    def compacted(self, meta: SnapshotMeta) -> Output:
        """The driver stored a snapshot of the applied state at ``meta.index``: make it the
        latest and drop the log up to ``keep_entries`` before it (5)."""
        if meta.index > self.commit_index:
            raise ValueError(f"snapshot at {meta.index} is past the commit index")
        if self.snapshot is not None and meta.index <= self.snapshot.index:
            return self._take()
        self.snapshot = meta
        p = self._persist()
        p.snapshot = meta
        if TokenRingMechanism.TRIM_GUARD not in self.disabled:
            self._trim(meta.index - self.config.keep_entries)
        else:
            self._trim_naively()
        return self._take()
