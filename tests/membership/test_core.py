"""The SWIM core driven back to back, without an event loop (h11's ConnectionPair style).

:class:`Wire` holds several cores, delivers every message they send at once (a request's
reply goes straight back to the sender), drops what a test says to drop, and moves a
manual clock from one core deadline to the next.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import attrs

from dspot.membership import (
    EventKind,
    Gossip,
    Member,
    MembershipConfig,
    MembershipCore,
    MembershipEvent,
    MembershipMechanism,
    MemberState,
    Output,
    Ping,
    ring_order,
)

CONFIG = MembershipConfig()


class Wire:
    def __init__(self, config: MembershipConfig = CONFIG, seed: int = 1) -> None:
        self.config = config
        self.seed = seed
        self.now = 0.0
        self.cores: dict[str, MembershipCore] = {}
        self.down: set[str] = set()
        self.drop: Callable[[str, str], bool] = lambda src, dst: False
        self.events: dict[str, list[MembershipEvent]] = {}
        self.sent = 0

    def add(self, name: str, seeds: list[str] = (), **kw: object) -> MembershipCore:  # type: ignore[assignment]
        core = MembershipCore(
            name,
            f"{name}:1",
            config=kw.pop("config", self.config),  # type: ignore[arg-type]
            rng=random.Random(f"{self.seed}:{name}:{len(self.cores)}"),
            seeds=[f"{s}:1" for s in seeds],
            now=self.now,
            meta=kw.pop("meta", None),  # type: ignore[arg-type]
        )
        self.cores[name] = core
        self.down.discard(name)
        self.events.setdefault(name, [])
        self.handle(name, core.start(self.now))
        return core

    def handle(self, name: str, out: Output) -> None:
        self.events[name].extend(out.events)
        for send in out.sends:
            dst = send.address.split(":")[0]
            self.sent += 1
            if dst in self.down or name in self.down or self.drop(name, dst):
                continue
            target = self.cores.get(dst)
            if target is None:
                continue
            answer = target.receive(send.message, self.now)
            self.handle(dst, attrs.evolve(answer, reply=None))
            if answer.reply is not None and not self.drop(dst, name):
                self.handle(name, self.cores[name].receive(answer.reply, self.now))

    def run(self, seconds: float) -> None:
        end = self.now + seconds
        while True:
            up = [n for n in sorted(self.cores) if n not in self.down]
            name = min(up, key=lambda n: self.cores[n].next_deadline())
            deadline = self.cores[name].next_deadline()
            if deadline > end:
                self.now = end
                return
            self.now = max(self.now, deadline)
            self.handle(name, self.cores[name].tick(self.now))

    def state(self, observer: str, subject: str) -> MemberState | None:
        member = self.cores[observer].get(subject)
        return member.state if member is not None else None

    def kinds(self, observer: str, subject: str) -> list[EventKind]:
        return [e.kind for e in self.events[observer] if e.member.node_id == subject]


def cluster(names: list[str], **kw: object) -> Wire:
    wire = Wire(**kw)  # type: ignore[arg-type]
    for i, name in enumerate(names):
        wire.add(name, seeds=[] if i == 0 else [names[0]])
    wire.run(2.0)
    return wire


def test_nodes_join_through_a_seed_and_learn_everyone() -> None:
    wire = cluster(["a", "b", "c", "d"])
    for name in "abcd":
        core = wire.cores[name]
        assert core.joined
        assert [m.node_id for m in core.members()] == ["a", "b", "c", "d"]
        assert all(m.state is MemberState.ALIVE for m in core.members())
        assert [m.node_id for m in core.live()] == ring_order(["a", "b", "c", "d"])
    assert wire.kinds("d", "a") == [EventKind.JOINED]
    assert wire.kinds("a", "d") == [EventKind.JOINED]


def test_a_joiner_whose_seeds_are_down_retries_until_one_answers() -> None:
    wire = Wire()
    wire.add("b", seeds=["a"])
    wire.run(3.0)
    assert not wire.cores["b"].joined
    wire.add("a")
    wire.run(CONFIG.join_retry_interval + 0.1)
    assert wire.cores["b"].joined
    assert wire.state("a", "b") is MemberState.ALIVE


def test_crashed_node_is_suspected_then_declared_dead_by_everyone_in_time() -> None:
    wire = cluster(["a", "b", "c", "d", "e"])
    crash_at = wire.now
    wire.down.add("e")
    bound = CONFIG.detection_bound(5)
    wire.run(bound)
    for name in "abcd":
        assert wire.state(name, "e") is MemberState.DEAD
        assert wire.kinds(name, "e")[-1] is EventKind.DEAD
        assert [m.node_id for m in wire.cores[name].live()] == ring_order(["a", "b", "c", "d"])
        assert "e" in [m.node_id for m in wire.cores[name].configured()]
    assert EventKind.SUSPECT in [k for n in "abcd" for k in wire.kinds(n, "e")]
    assert wire.now - crash_at <= bound


def test_a_suspected_live_node_refutes_with_a_higher_incarnation() -> None:
    wire = cluster(["a", "b", "c"])
    c = wire.cores["c"]
    accusation = attrs.evolve(c.me, state=MemberState.SUSPECT)
    b = wire.cores["b"]
    # b tells a that c is suspect, and tells c too.
    out_a = wire.cores["a"].receive(Gossip(b.me, (accusation,)), wire.now)
    assert [e.kind for e in out_a.events] == [EventKind.SUSPECT]
    wire.handle("a", attrs.evolve(out_a, events=[]))
    wire.handle("c", c.receive(Gossip(b.me, (accusation,)), wire.now))
    assert c.incarnation == 1
    wire.run(0.5)
    assert wire.state("a", "c") is MemberState.ALIVE
    assert wire.cores["a"].get("c").incarnation == 1  # type: ignore[union-attr]
    assert wire.kinds("a", "c")[-1] is EventKind.ALIVE
    wire.run(5.0)
    assert wire.state("a", "c") is MemberState.ALIVE


def test_without_refutation_a_suspected_live_node_is_declared_dead() -> None:
    wire = cluster(["a", "b", "c"])
    c = wire.cores["c"]
    c.disabled = frozenset({MembershipMechanism.REFUTE})
    accusation = attrs.evolve(c.me, state=MemberState.SUSPECT)
    wire.handle("a", wire.cores["a"].receive(Gossip(wire.cores["b"].me, (accusation,)), wire.now))
    wire.run(5.0)
    assert c.incarnation == 0
    assert wire.state("a", "c") is MemberState.DEAD
    assert wire.state("b", "c") is MemberState.DEAD


def test_indirect_probes_keep_a_node_behind_a_broken_link_alive() -> None:
    def broken(src: str, dst: str) -> bool:
        return {src, dst} == {"a", "c"}

    wire = cluster(["a", "b", "c"])
    wire.drop = broken
    wire.run(20.0)
    assert EventKind.SUSPECT not in wire.kinds("a", "c")
    assert wire.state("a", "c") is MemberState.ALIVE

    # The same broken link without indirect probes: a suspects c (c then refutes via b).
    wire = cluster(["a", "b", "c"], config=attrs.evolve(CONFIG, indirect_checks=0))
    wire.drop = broken
    wire.run(20.0)
    assert EventKind.SUSPECT in wire.kinds("a", "c")
    assert wire.cores["c"].incarnation > 0


def test_graceful_leave_then_rejoin_with_a_higher_incarnation() -> None:
    wire = cluster(["a", "b", "c"])
    wire.handle("c", wire.cores["c"].leave(wire.now))
    for name in "ab":
        assert wire.state(name, "c") is MemberState.LEFT
        assert wire.kinds(name, "c")[-1] is EventKind.LEFT
        assert "c" not in [m.node_id for m in wire.cores[name].configured()]
    left_inc = wire.cores["a"].get("c").incarnation  # type: ignore[union-attr]
    wire.run(5.0)
    assert wire.state("a", "c") is MemberState.LEFT  # nobody suspects a member that left
    wire.add("c", seeds=["a"])
    wire.run(2.0)
    for name in "ab":
        member = wire.cores[name].get("c")
        assert member is not None and member.state is MemberState.ALIVE
        assert member.incarnation > left_inc
        assert wire.kinds(name, "c")[-1] is EventKind.JOINED


def test_a_dead_member_comes_back_after_a_restart() -> None:
    wire = cluster(["a", "b", "c"])
    wire.down.add("c")
    wire.run(CONFIG.detection_bound(3))
    assert wire.state("a", "c") is MemberState.DEAD
    wire.add("c", seeds=["a"])  # a fresh core: incarnation 0, below the dead record
    wire.run(2.0)
    assert wire.cores["c"].incarnation >= 1
    for name in "ab":
        assert wire.state(name, "c") is MemberState.ALIVE
        assert wire.kinds(name, "c")[-1] is EventKind.JOINED


def test_metadata_updates_spread_with_membership() -> None:
    wire = Wire()
    wire.add("a", meta={"version": "1"})
    wire.add("b", seeds=["a"], meta={"version": "1", "services": "blob"})
    wire.add("c", seeds=["a"])
    wire.run(2.0)
    assert dict(wire.cores["c"].get("b").meta) == {"version": "1", "services": "blob"}  # type: ignore[union-attr]
    wire.handle("b", wire.cores["b"].update_meta({"version": "2"}, wire.now))
    wire.run(1.0)
    for name in "ac":
        assert dict(wire.cores[name].get("b").meta) == {"version": "2"}  # type: ignore[union-attr]
        assert wire.kinds(name, "b")[-1] is EventKind.UPDATED


def test_a_healed_partition_merges_again() -> None:
    names = ["a", "b", "c", "d"]
    wire = cluster(names)
    left, right = {"a", "b"}, {"c", "d"}
    wire.drop = lambda src, dst: (src in left) != (dst in left)
    wire.run(10.0)
    assert wire.state("a", "c") is MemberState.DEAD
    assert wire.state("c", "a") is MemberState.DEAD
    assert right  # both sides kept their own half alive
    assert wire.state("a", "b") is MemberState.ALIVE and wire.state("c", "d") is MemberState.ALIVE
    wire.drop = lambda src, dst: False
    wire.run(CONFIG.push_pull_interval + 2 * CONFIG.reconnect_interval + 2.0)
    views = [[(m.node_id, m.state, m.incarnation) for m in wire.cores[n].members()] for n in names]
    assert all(v == views[0] for v in views)
    assert all(state is MemberState.ALIVE for _, state, _ in views[0])


def test_ping_for_another_node_gets_no_ack() -> None:
    wire = cluster(["a", "b"])
    a, b = wire.cores["a"], wire.cores["b"]
    assert b.receive(Ping(a.me, 99, "someone-else"), wire.now).reply is None
    assert b.receive(Ping(a.me, 99, "b"), wire.now).reply is not None


def test_stale_news_never_overrides_newer_news() -> None:
    wire = cluster(["a", "b"])
    a = wire.cores["a"]
    b_rec = a.get("b")
    assert b_rec is not None
    newer = attrs.evolve(b_rec, incarnation=5)
    a.receive(Gossip(b_rec, (newer,)), wire.now)
    for stale in (
        attrs.evolve(b_rec, incarnation=4, state=MemberState.SUSPECT),
        attrs.evolve(b_rec, incarnation=4, state=MemberState.DEAD),
        attrs.evolve(b_rec, incarnation=3, meta={"x": "y"}),
    ):
        out = a.receive(Gossip(wire.cores["b"].me, (stale,)), wire.now)
        assert out.events == []
        assert a.get("b") == newer
    dead = attrs.evolve(newer, state=MemberState.DEAD)
    assert [e.kind for e in a.receive(Gossip(newer, (dead,)), wire.now).events] == [EventKind.DEAD]


def test_same_seed_same_messages() -> None:
    def transcript(seed: int) -> list[str]:
        wire = Wire(seed=seed)
        log: list[str] = []
        original = wire.handle

        def spy(name: str, out: Output) -> None:
            log.extend(
                f"{wire.now:.6f} {name} {s.address} {type(s.message).__name__}" for s in out.sends
            )
            original(name, out)

        wire.handle = spy  # type: ignore[method-assign]
        for i, name in enumerate("abcde"):
            wire.add(name, seeds=[] if i == 0 else ["a"])
        wire.down.add("c")
        wire.run(10.0)
        return log

    assert transcript(7) == transcript(7)
    assert transcript(7) != transcript(8)


def test_member_record_round_trips_the_wire() -> None:
    from dspot import wire

    member = Member("n1", "n1:7100", 3, MemberState.SUSPECT, {"version": "2"})
    name, body, payload = wire.encode_body(Gossip(member, (member,)))
    assert wire.decode_body(name, wire.loads(wire.dumps(body)), payload) == Gossip(
        member, (member,)
    )


def test_a_restart_before_anyone_noticed_still_spreads_the_new_metadata() -> None:
    wire = Wire()
    wire.add("a")
    wire.add("b", seeds=["a"], meta={"boot": "1"})
    wire.run(1.0)
    wire.add("b", seeds=["a"], meta={"boot": "2"})  # same incarnation 0, other metadata
    wire.run(1.0)
    seen = wire.cores["a"].get("b")
    assert seen is not None and dict(seen.meta) == {"boot": "2"}
    assert seen.incarnation == wire.cores["b"].incarnation == 1
