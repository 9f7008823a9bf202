"""The SWIM membership state machine, without I/O.

Theory of operation
-------------------

:class:`MembershipCore` is a plain object. The driver feeds it three kinds of input, each
with the current time: ``receive(message)`` for a message from a peer (or the response to
one of ours), ``tick()`` when :meth:`MembershipCore.next_deadline` has passed, and the local
commands ``start`` / ``update_meta`` / ``leave``. Each returns an :class:`Output`: messages to
send (:class:`Send`), :class:`MembershipEvent` s for subscribers, and for a request the reply
that goes back in the RPC response. Nothing here awaits, reads a clock or draws randomness
except from the injected ``rng``, so two cores can be wired back to back in a unit test.

Each member record has an *incarnation* that only its owner raises. Updates about a member
are ordered by (incarnation, state) the SWIM way:

* ``ALIVE i`` replaces any live record with a lower incarnation, and a dead or left one with
  a lower incarnation (a restart);
* ``SUSPECT i`` replaces ``ALIVE j`` for ``i >= j`` and ``SUSPECT j`` for ``i > j``;
* ``DEAD i`` / ``LEFT i`` replace live records with ``i >= j``; ``LEFT`` also replaces
  ``DEAD`` of the same incarnation (a graceful leave explains a death).

Failure detection, once per ``probe_interval``: ping the next member of a randomly ordered
round robin; if no ack by ``probe_timeout``, ask ``indirect_checks`` others to ping it; if still no
ack (direct or forwarded) when the round ends, mark it ``SUSPECT`` and tell it so directly.
A suspect that does not *refute* (re-announce itself ``ALIVE`` with a higher incarnation)
within the suspicion timeout is declared ``DEAD``. A node that hears any non-alive news about
itself, or a record of itself with a higher incarnation (it restarted), refutes.

Dissemination: updates are queued and piggybacked on every message, each a bounded number of
times (fewest-sent first), and pushed to a few random members every ``gossip_interval``.
Anti-entropy: a full push-pull state exchange on join, with a random live member every
``push_pull_interval`` and with a random dead member every ``reconnect_interval`` (the way
healed partitions merge). In a state exchange a remote ``DEAD`` only makes a live member a
``SUSPECT`` here (as memberlist does): the accused gets the chance to refute.

Events: ``JOINED`` when a member becomes live from unknown, dead or left (a restart is a
join); ``ALIVE`` when a suspect refutes; ``SUSPECT``, ``DEAD``, ``LEFT``; ``UPDATED`` when a
live member's metadata or address changes. A member first heard of as dead or left is
recorded without an event.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

import attrs

from dspot.env import Mechanism
from dspot.membership._config import MembershipConfig, MembershipMechanism
from dspot.membership._messages import Ack, Gossip, Message, Ping, PingReq, Sync, SyncReply
from dspot.membership._view import EventKind, Member, MembershipEvent, MemberState, ring_order

_LIVE = (MemberState.ALIVE, MemberState.SUSPECT)


@attrs.frozen
class Send:
    """A message for the driver to send. ``node_id`` is None for a seed not yet known."""

    address: str
    message: Message
    node_id: str | None = None


@attrs.define
class Output:
    """What one input produced."""

    sends: list[Send] = attrs.field(factory=list)
    events: list[MembershipEvent] = attrs.field(factory=list)
    reply: Message | None = None


@attrs.define
class _Probe:
    target: str
    incarnation: int
    seq: int
    indirect_at: float
    acked: bool = False
    indirect_sent: bool = False


@attrs.frozen
class _Forward:
    address: str
    seq: int
    expires: float


class MembershipCore:
    """One node's SWIM state: the member table, the probe round, the gossip queue."""

    def __init__(
        self,
        node_id: str,
        address: str,
        *,
        config: MembershipConfig | None = None,
        rng: random.Random,
        meta: Mapping[str, str] | None = None,
        seeds: Sequence[str] = (),
        now: float = 0.0,
        disabled: frozenset[Mechanism] = frozenset(),
    ) -> None:
        self.config = config or MembershipConfig()
        self.self_id = node_id
        self.address = address
        self.disabled = disabled
        """:class:`MembershipMechanism` s switched off (``NodeEnv.disabled``): sabotage only."""
        self._rng = rng
        self._members: dict[str, Member] = {
            node_id: Member(node_id, address, 0, MemberState.ALIVE, dict(meta or {}))
        }
        self._seeds = [s for s in seeds if s != address]
        self.joined = not self._seeds
        self.leaving = False
        self._suspect_until: dict[str, float] = {}
        self._queue: dict[str, tuple[Member, int]] = {}
        self._probe: _Probe | None = None
        self._probe_order: list[str] = []
        self._probe_index = 0
        self._forwards: dict[int, _Forward] = {}
        self._seq = 0
        self._now = now
        # Stagger the periodic timers so nodes started together do not act in lockstep.
        cfg = self.config
        self._next_probe = now + rng.uniform(0.0, cfg.probe_interval)
        self._next_gossip = now + rng.uniform(0.0, cfg.gossip_interval)
        self._next_push_pull = now + rng.uniform(0.5, 1.0) * cfg.push_pull_interval
        self._next_reconnect = now + rng.uniform(0.5, 1.0) * cfg.reconnect_interval
        self._next_join = now

    # -- the view ---------------------------------------------------------------------------

    @property
    def me(self) -> Member:
        return self._members[self.self_id]

    @property
    def incarnation(self) -> int:
        return self.me.incarnation

    def members(self) -> list[Member]:
        """Every known member, whatever its state, ordered by node id."""
        return [self._members[k] for k in sorted(self._members)]

    def live(self) -> list[Member]:
        """Alive or suspect members, self included, in ring order."""
        ids = [m.node_id for m in self._members.values() if m.state in _LIVE]
        return [self._members[k] for k in ring_order(ids)]

    def configured(self) -> list[Member]:
        """Members that have not gracefully left, ordered by node id."""
        return [m for m in self.members() if m.state is not MemberState.LEFT]

    def get(self, node_id: str) -> Member | None:
        return self._members.get(node_id)

    def cluster_size(self) -> int:
        return sum(1 for m in self._members.values() if m.state in _LIVE)

    def next_deadline(self) -> float:
        """When :meth:`tick` next has work to do."""
        if self.leaving:
            return float("inf")
        times = [self._next_probe, self._next_push_pull, self._next_reconnect]
        if self._queue:
            times.append(self._next_gossip)  # gossip rounds only run when there is news
        if not self.joined:
            times.append(self._next_join)
        if self._probe is not None and not self._probe.acked and not self._probe.indirect_sent:
            times.append(self._probe.indirect_at)
        times.extend(self._suspect_until.values())
        times.extend(f.expires for f in self._forwards.values())
        return min(times)

    # -- commands ---------------------------------------------------------------------------

    def start(self, now: float) -> Output:
        """Begin: ask the seeds for their state (a no-op for the first node)."""
        out = Output()
        self._now = now
        if not self.joined:
            self._send_join(out)
        return out

    def update_meta(self, meta: Mapping[str, str], now: float) -> Output:
        """Replace our metadata and spread it (a new incarnation carries it)."""
        out = Output()
        self._now = now
        if self.leaving:
            return out
        me = attrs.evolve(self.me, incarnation=self.incarnation + 1, meta=dict(meta))
        self._members[self.self_id] = me
        self._enqueue(me)
        out.events.append(MembershipEvent(EventKind.UPDATED, me))
        return out

    def leave(self, now: float) -> Output:
        """Announce a graceful leave to every live member; the core goes quiet afterwards."""
        out = Output()
        self._now = now
        if self.leaving:
            return out
        me = attrs.evolve(self.me, incarnation=self.incarnation + 1, state=MemberState.LEFT)
        self._members[self.self_id] = me
        self.leaving = True
        for member in self._others(_LIVE):
            out.sends.append(Send(member.address, Gossip(me, (me,)), member.node_id))
        out.events.append(MembershipEvent(EventKind.LEFT, me))
        return out

    # -- input ------------------------------------------------------------------------------

    def receive(self, message: Message, now: float) -> Output:
        """A message from a peer, or the response to one of our requests."""
        out = Output()
        self._now = now
        if self.leaving:
            return out
        sync = isinstance(message, (Sync, SyncReply))
        self._apply(message.origin, out, from_sync=False)
        if isinstance(message, (Sync, SyncReply)):
            for member in message.members:
                self._apply(member, out, from_sync=True)
        else:
            for member in message.updates:
                self._apply(member, out, from_sync=False)
        sender = message.origin.node_id
        if isinstance(message, Ping):
            if message.target == self.self_id:
                out.reply = Ack(self.me, message.seq, self._piggyback(sender))
        elif isinstance(message, Ack):
            self._on_ack(message, out)
        elif isinstance(message, PingReq):
            self._seq += 1
            self._forwards[self._seq] = _Forward(
                message.origin.address, message.seq, now + self.config.probe_interval
            )
            ping = Ping(self.me, self._seq, message.target, self._piggyback(message.target))
            out.sends.append(Send(message.target_address, ping, message.target))
        elif isinstance(message, Sync):
            out.reply = SyncReply(self.me, tuple(self.members()))
        if sync:
            self.joined = True  # a state exchange either way means someone knows us
        return out

    def tick(self, now: float) -> Output:
        """Run every timer that is due at ``now``."""
        out = Output()
        self._now = now
        if self.leaving:
            return out
        cfg = self.config
        for node_id in sorted(self._suspect_until):
            if self._suspect_until[node_id] <= now:
                del self._suspect_until[node_id]
                member = self._members[node_id]
                if member.state is MemberState.SUSPECT:
                    self._set(attrs.evolve(member, state=MemberState.DEAD), EventKind.DEAD, out)
        for seq in sorted(self._forwards):
            if self._forwards[seq].expires <= now:
                del self._forwards[seq]
        probe = self._probe
        if (
            probe is not None
            and not probe.acked
            and not probe.indirect_sent
            and probe.indirect_at <= now
        ):
            self._send_indirect(probe, out)
        if self._next_probe <= now:
            self._next_probe = now + cfg.probe_interval
            self._finish_round(out)
            self._start_round(out)
        if self._next_gossip <= now and self._queue:
            self._next_gossip = now + cfg.gossip_interval
            for member in self._sample(self._others(_LIVE), cfg.gossip_fanout):
                gossip = Gossip(self.me, self._piggyback(member.node_id))
                out.sends.append(Send(member.address, gossip, member.node_id))
        if not self.joined and self._next_join <= now:
            self._send_join(out)
        if self._next_push_pull <= now:
            self._next_push_pull = now + cfg.push_pull_interval
            targets = self._sample(self._others(_LIVE), 1)
            for member in targets:
                self._send_sync(member.address, member.node_id, out)
        if self._next_reconnect <= now:
            self._next_reconnect = now + cfg.reconnect_interval
            dead = self._others((MemberState.DEAD,))
            for member in self._sample(dead, 1):
                self._send_sync(member.address, member.node_id, out)
            if self.joined and not self._others(_LIVE) and not dead and self._seeds:
                # Alone, knowing nobody to reconnect to: go back to the seeds.
                self._send_join(out)
        return out

    # -- probing ----------------------------------------------------------------------------

    def _start_round(self, out: Output) -> None:
        self._probe = None
        target = self._next_target()
        if target is None:
            return
        self._seq += 1
        self._probe = _Probe(
            target.node_id,
            target.incarnation,
            self._seq,
            indirect_at=self._now + self.config.probe_timeout,
        )
        ping = Ping(self.me, self._seq, target.node_id, self._piggyback(target.node_id))
        out.sends.append(Send(target.address, ping, target.node_id))

    def _next_target(self) -> Member | None:
        """The next live member of a round robin over a random permutation.

        New members are inserted at random positions (as memberlist does) but the order is
        otherwise kept from pass to pass, so a member waits at most one pass (one interval
        per other member) between two probes from this node.
        """
        for _ in range(2):
            while self._probe_index < len(self._probe_order):
                node_id = self._probe_order[self._probe_index]
                self._probe_index += 1
                member = self._members.get(node_id)
                if member is not None and member.state in _LIVE:
                    return member
            live = [m.node_id for m in self._others(_LIVE)]
            order = [n for n in self._probe_order if n in live]
            for node_id in live:
                if node_id not in order:
                    order.insert(self._rng.randint(0, len(order)), node_id)
            self._probe_order = order
            self._probe_index = 0
        return None

    def _send_indirect(self, probe: _Probe, out: Output) -> None:
        probe.indirect_sent = True
        target = self._members.get(probe.target)
        if target is None or target.state not in _LIVE:
            return
        helpers = [m for m in self._others((MemberState.ALIVE,)) if m.node_id != probe.target]
        fanout = self.config.indirect_checks
        if MembershipMechanism.INDIRECT_PROBES in self.disabled:
            fanout = 0
        for helper in self._sample(helpers, fanout):
            request = PingReq(
                self.me, probe.seq, target.node_id, target.address, self._piggyback(helper.node_id)
            )
            out.sends.append(Send(helper.address, request, helper.node_id))

    def _finish_round(self, out: Output) -> None:
        probe = self._probe
        if probe is None or probe.acked or MembershipMechanism.DETECTION in self.disabled:
            return
        member = self._members.get(probe.target)
        if member is None or member.state is not MemberState.ALIVE:
            return
        if member.incarnation != probe.incarnation:
            return  # it refuted or restarted during the round
        if MembershipMechanism.SUSPICION in self.disabled:
            self._set(attrs.evolve(member, state=MemberState.DEAD), EventKind.DEAD, out)
            return
        suspect = attrs.evolve(member, state=MemberState.SUSPECT)
        self._set(suspect, EventKind.SUSPECT, out)
        # Tell the accused at once, so it can refute before the timeout.
        out.sends.append(
            Send(member.address, Gossip(self.me, self._piggyback(member.node_id)), member.node_id)
        )

    def _on_ack(self, ack: Ack, out: Output) -> None:
        probe = self._probe
        if probe is not None and ack.seq == probe.seq:
            probe.acked = True
            return
        forward = self._forwards.pop(ack.seq, None)
        if forward is not None:
            reply = Ack(self.me, forward.seq, ())
            out.sends.append(Send(forward.address, reply, None))

    # -- joining and anti-entropy -----------------------------------------------------------

    def _send_join(self, out: Output) -> None:
        self._next_join = self._now + self.config.join_retry_interval
        for seed in self._seeds:
            out.sends.append(Send(seed, Sync(self.me, tuple(self.members()), join=True), None))

    def _send_sync(self, address: str, node_id: str, out: Output) -> None:
        out.sends.append(Send(address, Sync(self.me, tuple(self.members())), node_id))

    # -- applying updates -------------------------------------------------------------------

    def _apply(self, update: Member, out: Output, *, from_sync: bool) -> None:
        if update.node_id == self.self_id:
            self._about_me(update)
            return
        current = self._members.get(update.node_id)
        state = update.state
        if current is None:
            if state is MemberState.ALIVE:
                self._set(update, EventKind.JOINED, out)
            elif state in (MemberState.DEAD, MemberState.LEFT):
                # Learned of a member only after it went away: record it, no event.
                self._members[update.node_id] = update
            return
        inc, cur_inc = update.incarnation, current.incarnation
        if state is MemberState.ALIVE:
            if inc <= cur_inc:
                return
            if current.state is MemberState.SUSPECT:
                kind: EventKind | None = EventKind.ALIVE
            elif current.state is MemberState.ALIVE:
                same = current.address == update.address and dict(current.meta) == dict(update.meta)
                kind = None if same else EventKind.UPDATED
            else:
                kind = EventKind.JOINED
            self._set(update, kind, out)
        elif state is MemberState.SUSPECT or (state is MemberState.DEAD and from_sync):
            suspect = attrs.evolve(update, state=MemberState.SUSPECT)
            if current.state is MemberState.ALIVE and inc >= cur_inc:
                self._set(suspect, EventKind.SUSPECT, out)
            elif current.state is MemberState.SUSPECT and inc > cur_inc:
                self._set(suspect, None, out, restart_timer=False)
        elif state is MemberState.DEAD:
            if current.state in _LIVE and inc >= cur_inc:
                self._set(update, EventKind.DEAD, out)
        elif state is MemberState.LEFT:
            replaces = inc > cur_inc or (inc == cur_inc and current.state is not MemberState.LEFT)
            if replaces:
                self._set(update, EventKind.LEFT, out)

    def _about_me(self, update: Member) -> None:
        if self.leaving:
            return
        me = self.me
        if update.incarnation < me.incarnation:
            return
        if (
            update.incarnation == me.incarnation
            and update.state is MemberState.ALIVE
            and update.address == me.address
            and dict(update.meta) == dict(me.meta)
        ):
            return
        # Someone holds news of us at least as new as ours that is wrong (suspect, dead,
        # left) or from a previous life (we restarted, maybe with other metadata): outbid it.
        if MembershipMechanism.REFUTE in self.disabled:
            return
        fresh = attrs.evolve(me, incarnation=update.incarnation + 1, state=MemberState.ALIVE)
        self._members[self.self_id] = fresh
        self._enqueue(fresh)

    def _set(
        self,
        member: Member,
        kind: EventKind | None,
        out: Output,
        *,
        restart_timer: bool = True,
    ) -> None:
        self._members[member.node_id] = member
        if member.state is MemberState.SUSPECT:
            if restart_timer or member.node_id not in self._suspect_until:
                timeout = self.config.suspicion_timeout(self.cluster_size())
                self._suspect_until[member.node_id] = self._now + timeout
        else:
            self._suspect_until.pop(member.node_id, None)
        self._enqueue(member)
        if kind is not None:
            out.events.append(MembershipEvent(kind, member))

    # -- gossip queue -----------------------------------------------------------------------

    def _enqueue(self, member: Member) -> None:
        self._queue[member.node_id] = (member, 0)

    def _piggyback(self, to: str) -> tuple[Member, ...]:
        """Updates to carry on a message to ``to``, fewest-sent first; counts the sends."""
        picked: list[Member] = []
        about_them = self._members.get(to)
        skip = None
        if about_them is not None and about_them.state is not MemberState.ALIVE:
            picked.append(about_them)  # so it can refute
            skip = to
        limit = self.config.retransmits(self.cluster_size())
        ranked = sorted(self._queue.items(), key=lambda kv: (kv[1][1], kv[0]))
        for node_id, (member, sent) in ranked:
            if len(picked) >= self.config.max_piggyback:
                break
            if node_id == skip:
                continue
            picked.append(member)
            if sent + 1 >= limit:
                del self._queue[node_id]
            else:
                self._queue[node_id] = (member, sent + 1)
        return tuple(picked)

    # -- helpers ----------------------------------------------------------------------------

    def _others(self, states: Sequence[MemberState]) -> list[Member]:
        return [
            self._members[k]
            for k in sorted(self._members)
            if k != self.self_id and self._members[k].state in states
        ]

    def _sample(self, members: list[Member], k: int) -> list[Member]:
        if k <= 0 or not members:
            return []
        return self._rng.sample(members, min(k, len(members)))


__all__ = ["MembershipCore", "Output", "Send"]
