"""The token ring core's state and internal transitions: roles, the log, sending.

:class:`CoreState` is the half of :class:`~dspot.tokenring.TokenRingCore` that its inputs
(in ``_core.py``, with the theory of operation and the safety argument) build on. No I/O.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import attrs

from dspot.env import Mechanism
from dspot.tokenring._config import TokenRingConfig, TokenRingMechanism
from dspot.tokenring._log import IdWindow, LogWindow
from dspot.tokenring._messages import Append, AppendReply, Entry, LogPosition, SnapshotMeta, Vote
from dspot.tokenring._output import (
    Fetch,
    HardState,
    Output,
    Persist,
    Role,
    Send,
    SnapshotOffer,
    Status,
)
from dspot.tokenring._submits import Submits


class CoreState:
    """State of one member and the transitions its inputs share (see ``TokenRingCore``)."""

    def __init__(
        self,
        node_id: str,
        config: TokenRingConfig,
        *,
        rng: random.Random,
        now: float,
        state: HardState | None = None,
        log: LogWindow | Sequence[Entry] = (),
        ids: IdWindow | None = None,
        snapshot: SnapshotMeta | None = None,
        applied: int = 0,
        disabled: frozenset[Mechanism] = frozenset(),
    ) -> None:
        """``log`` is what the store loaded (or, in tests, the entries of a whole log),
        ``ids`` the remembered entry ids (derived from ``log`` if not given), ``snapshot``
        the latest one stored, ``applied`` how far the state machine durably applied,
        ``disabled`` the :class:`TokenRingMechanism` s switched off (sabotage tests only)."""
        self.node_id = node_id
        self.config = config
        self._rng = rng
        state = state or HardState()
        self.epoch = state.epoch
        self.voted_for = state.voted_for
        self.hop = state.hop
        self.learner = state.learner
        self.vote_after = 0.0
        """A member that just stopped being a learner votes only after this time."""
        if not isinstance(log, LogWindow):
            log = LogWindow(config.memory_entries, entries=log)
        self.log = log
        if ids is None:
            ids = IdWindow(
                (e.entry_id, i, e.epoch)
                for i, e in enumerate(log.in_memory(), log.window_start)
                if not e.is_noop
            )
        self.ids = ids
        self.snapshot = snapshot
        self.commit_index = max(snapshot.index if snapshot else 0, min(applied, log.last_index))
        self.durable_index = log.last_index
        self.floor = 0
        """Every live member's log reaches this index (as the holder last said)."""
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
        self.inflight: dict[str, Append | SnapshotOffer | Fetch] = {}
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
        self.submits = Submits()
        self._out = Output()
        self.disabled = disabled
        """Mechanisms switched off (``NodeEnv.disabled``): sabotage tests only."""

    # -- queries --------------------------------------------------------------------------

    @property
    def last_index(self) -> int:
        return self.log.last_index

    @property
    def last_epoch(self) -> int:
        return self.log.last_epoch

    @property
    def base_index(self) -> int:
        """The log starts after this index (entries up to it were compacted away)."""
        return self.log.base_index

    def epoch_at(self, index: int) -> int:
        """The epoch of the entry at ``index`` (0 if unknown: outside the log)."""
        return self.log.epoch_at(index) or 0

    def quorum(self) -> int:
        """How many members make a majority of the configured membership."""
        if TokenRingMechanism.MAJORITY in self.disabled:
            return 1
        return max(len(self.configured), self.config.min_members) // 2 + 1

    def view_has_quorum(self) -> bool:
        """Whether this member sees a majority of the configured membership live."""
        live = sum(1 for n in self.live if n in self.configured)
        return bool(self.configured) and live >= self.quorum()

    def position_of(self, entry_id: str) -> LogPosition | None:
        """Where a committed entry with this id is, if it is committed (and remembered)."""
        at = self.ids.get(entry_id)
        if at is None or at[0] > self.commit_index:
            return None
        return LogPosition(*at)

    def status(self) -> Status:
        return Status(
            self.node_id, self.role, self.epoch, self.hop, self.holder,
            self.commit_index, self.last_index, len(self.submits), self.base_index,
            self.snapshot.index if self.snapshot else 0, len(self.log),
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

    def ids_upto(self, index: int) -> list[tuple[str, int, int]]:
        """Remembered ``(id, index, epoch)`` up to ``index``: what a snapshot there carries."""
        return self.ids.items(upto=index)

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
        self._persist().state = HardState(self.epoch, self.voted_for, self.hop, self.learner)

    def _reset_election(self, now: float) -> None:
        t = self.config.token_timeout
        self.election_deadline = now + t + self._rng.uniform(0, t)

    def _counted(self, members: Sequence[str]) -> int:
        return sum(1 for m in members if m in self.configured)

    def _hear(self, epoch: int, hop: int, holder: str, now: float) -> bool:
        """A holder's request: adopt its epoch (or refuse a stale one) and its holdership."""
        if epoch < self.epoch:
            if TokenRingMechanism.EPOCH_CHECK not in self.disabled:
                return False
            self._adopt_epoch(epoch)  # sabotage: follow an old holder as if current
        if epoch > self.epoch:
            self._adopt_epoch(epoch)
        if self.role is Role.CANDIDATE:
            self._become_follower(now)
        self.last_heard = now
        self._reset_election(now)
        if self.role is Role.FOLLOWER and hop >= self.hop:
            self.holder = holder
        return True

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

    def _acked(self, peer: str, now: float) -> None:
        self.last_ack[peer] = now
        if self._quorum_contact(now):
            self.quorum_seen_at = now

    def _matched(self, peer: str, match: int) -> None:
        self.match_index[peer] = max(self.match_index.get(peer, 0), match)
        self.next_index[peer] = self.match_index[peer] + 1

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
        if TokenRingMechanism.EPOCH_BUMP not in self.disabled:
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
        idx = self.log.append(entry)
        if not entry.is_noop:
            self.ids.add(entry.entry_id, idx, entry.epoch)
            self.submits.appended_at(entry.entry_id, idx)
        self._persist().entries[idx] = entry

    def _truncate(self, start: int) -> None:
        """Drop entries from ``start`` on (they conflict with the holder's log)."""
        if start > self.last_index:
            return
        self.submits.requeue_from(start, lambda eid: (self.ids.get(eid) or (0, 0))[0])
        self.ids.truncate(start)
        self.log.truncate(start)
        self.durable_index = min(self.durable_index, start - 1)
        p = self._persist()
        p.truncate_from = start if p.truncate_from is None else min(p.truncate_from, start)
        for idx in [i for i in p.entries if i >= start]:
            del p.entries[idx]

    def _trim(self, upto: int) -> None:
        """Drop the log up to ``upto`` (bounded by what the log holds)."""
        upto = min(upto, self.last_index)
        if upto <= self.base_index:
            return
        p = self._persist()
        p.base_epoch = self.log.compact(upto)
        p.trim_to = upto

    def _trim_naively(self) -> None:
        """Sabotage only: keep the newest ``keep_entries`` entries, covered or not."""
        if TokenRingMechanism.TRIM_GUARD in self.disabled:
            self._trim(self.last_index - self.config.keep_entries)

    def _append_queued(self) -> None:
        """Holder: assign positions to queued submits (skipping ids already in the log)."""
        if (
            self.role is not Role.HOLDER
            or self.passing_to is not None
            or self.draining
            or not self.submits.queue
        ):
            return
        if not self.view_has_quorum():
            return
        for eid, data in self.submits.take():
            at = self.ids.get(eid)
            if at is None:
                self._append_entry(Entry(self.epoch, eid, data))
                self.submits.place(eid, self.last_index)
            else:
                self.submits.place(eid, at[0])
        self._trim_naively()
        for peer in self.live:
            if peer != self.node_id:
                self._replicate(peer)

    def _commit_to(self, index: int) -> None:
        if index > self.commit_index:
            self.commit_index = index
            self._out.committed = True
            self._resolve()
            self._forget_ids()
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
        self._out.resolved += self.submits.resolve(self.commit_index, self.ids)

    def _forget_ids(self) -> None:
        """Forget ids old enough that no live member still needs them (the id window)."""
        self.ids.forget_upto(min(self.commit_index - self.config.dedupe_window, self.floor))

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
        live = [
            self.durable_index if p == self.node_id else self.match_index.get(p, 0)
            for p in self.live
            if p in self.configured
        ]
        self.floor = min(live, default=0)
        self._forget_ids()
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
        if nxt <= self.base_index:
            self._offer_snapshot(peer)
            return
        end = self.last_index if token else min(self.last_index, nxt - 1 + self.config.max_batch)
        entries = self.log.entries(nxt, end)
        if entries is None:
            fetch = Fetch(peer, nxt, end)
            self.inflight[peer] = fetch
            self._out.fetches.append(fetch)
            return
        self._send_append(peer, nxt, self.epoch_at(nxt - 1), entries, token=token, now=now)

    def _send_append(
        self,
        peer: str,
        start: int,
        prev_epoch: int,
        entries: list[Entry],
        *,
        token: bool = False,
        now: float = 0.0,
    ) -> None:
        msg = Append.build(
            epoch=self.epoch,
            hop=self.hop + 1 if token else self.hop,
            holder=self.node_id,
            prev_index=start - 1,
            prev_epoch=prev_epoch,
            commit=self.commit_index,
            token=token,
            entries=entries,
            wanted=[p for p, n in self.peer_pending.items() if n > 0] if token else (),
            contact_age=now - self.quorum_seen_at if token else 0.0,
            floor=self.floor,
            holder_last=self.last_index,
        )
        self.inflight[peer] = msg
        self.sent_commit[peer] = self.commit_index
        self._out.sends.append(Send(peer, msg))

    def _offer_snapshot(self, peer: str) -> None:
        meta = self.snapshot
        if meta is None or meta.index < self.base_index:
            return  # a gap between snapshot and log (only a sabotaged trim makes one)
        if TokenRingMechanism.SNAPSHOT_TAIL in self.disabled:
            c = self.commit_index
            meta = attrs.evolve(meta, index=c, epoch=self.epoch_at(c))
        offer = SnapshotOffer(self.epoch, self.hop, self.node_id, meta)
        self.inflight[peer] = offer
        self._out.sends.append(Send(peer, offer))

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
        """The next live member in ring order whose missing entries are all in memory and
        make at most one batch."""
        ring = list(self.live)
        if self.node_id not in ring:
            return None
        start = ring.index(self.node_id)
        lowest = max(self.log.window_start, self.base_index + 1)
        for i in range(1, len(ring)):
            peer = ring[(start + i) % len(ring)]
            if peer not in self.configured:
                continue
            nxt = self.next_index.get(peer, self.last_index + 1)
            if self.last_index - nxt + 1 <= self.config.max_batch and nxt >= lowest:
                return peer
        return None

    def _append_reply(self, ok: bool, match: int, conflict: int, took: bool) -> AppendReply:
        return AppendReply(self.epoch, ok, match, conflict, took, len(self.submits))
