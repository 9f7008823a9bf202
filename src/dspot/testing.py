"""A kit for testing code built on dspot, as ``trio.testing`` is one for trio.

- :func:`run_with_mock_clock` runs an async function on trio with a ``MockClock`` that jumps
  ahead whenever every task waits, so timeouts and retries are tested in virtual time,
  without sleeping.
- :func:`wait_until` (async, on the running clock) and :func:`poll_until` (blocking, real
  time, for tests that drive real processes) wait for a condition, bounded.
- :class:`ScriptedMembership` and :class:`StaticView` stand in for real membership: members
  and states the test sets by hand, seen by each node through a
  :class:`~dspot.membership.RingView`; :meth:`StaticView.fixed` makes a lone node's view
  of a fixed member list, optionally fed by the simulation's ground truth.
- :func:`free_ports` and :func:`free_port_range` find loopback ports for real-process
  clusters.
"""

from __future__ import annotations

import math
import random
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TypeVar, TypeVarTuple, Unpack

import anyio
import attrs
import trio
import trio.testing
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from dspot.membership import EventKind, Member, MembershipEvent, MemberState, ring_order

__all__ = [
    "OracleReachable",
    "ScriptedMembership",
    "StaticView",
    "free_port_range",
    "free_ports",
    "poll_until",
    "run_with_mock_clock",
    "wait_until",
]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

OracleReachable = Callable[[str, str], bool]
"""``reachable(self_id, other)``: whether ``other`` is up and reachable from ``self_id``."""


# -- clocks and waiting ---------------------------------------------------------------------


def run_with_mock_clock(fn: Callable[[Unpack[Ts]], Awaitable[T]], *args: *Ts) -> T:
    """``fn(*args)`` run on trio under a ``MockClock`` with autojump: virtual time moves on
    as soon as every task is blocked. Returns what ``fn`` returns."""
    return trio.run(fn, *args, clock=trio.testing.MockClock(autojump_threshold=0))


async def wait_until(
    predicate: Callable[[], object], *, timeout: float, step: float = 0.01
) -> None:
    """Check ``predicate`` every ``step`` seconds of the running clock (virtual under a
    ``MockClock``) until it holds; ``TimeoutError`` after ``timeout``."""
    with anyio.fail_after(timeout):
        while True:  # polling on purpose: the condition is whatever the test can observe
            if predicate():
                return
            await anyio.sleep(step)


def poll_until(
    predicate: Callable[[], object], *, timeout: float, what: str, step: float = 0.1
) -> None:
    """Blocking: check ``predicate`` every ``step`` seconds of real time until it holds;
    ``AssertionError`` naming ``what`` after ``timeout`` (for tests of real processes)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(step)


# -- loopback ports -------------------------------------------------------------------------


def _listening_ports() -> range:
    """Ports a test server may take: below the kernel's ephemeral range.

    The kernel hands ports from ``ip_local_port_range`` to outgoing connections, so a port
    found free there can be taken as a source port between the check and the server's
    ``bind``; the cluster's own connections between nodes make that likely.
    """
    low = 32768
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return range(10000, max(low, 10000 + 2000))


def _bindable(ports: range) -> bool:
    socks: list[socket.socket] = []
    try:
        for port in ports:
            s = socket.socket()
            socks.append(s)
            s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        for s in socks:
            s.close()


def free_ports(n: int) -> list[int]:
    """``n`` distinct loopback ports free right now, outside the ephemeral range."""
    found: list[int] = []
    while len(found) < n:
        port = free_port_range(1)
        if port not in found:
            found.append(port)
    return found


_handed_out: set[int] = set()
"""Ports this process has handed out: free when found, but the caller binds them later, so
two calls (a range for the nodes, a port for the gateway) must never overlap."""


def free_port_range(n: int) -> int:
    """A base port such that ``base .. base + n - 1`` are all free on loopback.

    The ports lie below the kernel's ephemeral range, where no outgoing connection takes
    them between this check and the caller's ``bind``, and none of them was handed out
    before by this process (the caller of an earlier call may not have bound it yet).
    """
    allowed = _listening_ports()
    rng = random.Random()
    for _ in range(500):
        base = rng.randrange(allowed.start, allowed.stop - n)
        ports = range(base, base + n)
        if _handed_out.isdisjoint(ports) and _bindable(ports):
            _handed_out.update(ports)
            return base
    raise RuntimeError("no free port range")


# -- scripted membership --------------------------------------------------------------------

_EVENT_FOR_STATE = {
    MemberState.ALIVE: EventKind.ALIVE,
    MemberState.SUSPECT: EventKind.SUSPECT,
    MemberState.DEAD: EventKind.DEAD,
    MemberState.LEFT: EventKind.LEFT,
}
_UP = (MemberState.ALIVE, MemberState.SUSPECT)


class ScriptedMembership:
    """Members and their states, changed by calls; events go to every subscribed view.

    One directory shared by every node's :class:`StaticView` gives each the same states at
    the same instant, like a perfect failure detector that cannot tell a partition from a
    healthy network.
    """

    def __init__(self) -> None:
        self._members: dict[str, Member] = {}
        self._ring: list[str] | None = None  # node ids in ring order, made on demand
        self._subscribers: list[MemoryObjectSendStream[MembershipEvent]] = []

    @classmethod
    def of(cls, addresses: Mapping[str, str]) -> ScriptedMembership:
        """A directory with every ``{node_id: address}`` alive."""
        directory = cls()
        for node_id, address in addresses.items():
            directory.add(node_id, address)
        return directory

    @classmethod
    def on_port(cls, names: list[str], port: int) -> ScriptedMembership:
        """A directory of ``names``, every one alive at ``name:port`` (a simulation's nodes)."""
        return cls.of({n: f"{n}:{port}" for n in names})

    def view(self, self_id: str) -> StaticView:
        """Node ``self_id``'s view of this directory."""
        return StaticView(self, self_id)

    def add(self, node_id: str, address: str) -> None:
        """Add (or re-add) a member as alive; subscribers see ``JOINED``."""
        member = Member(node_id=node_id, address=address, state=MemberState.ALIVE)
        old = self._members.get(node_id)
        if old is not None:
            member = attrs.evolve(member, incarnation=old.incarnation + 1)
        self._set(member)
        self._publish(MembershipEvent(EventKind.JOINED, member))

    def put(self, member: Member) -> None:
        """Set a member as given (metadata included); subscribers see ``UPDATED``."""
        self._set(member)
        self._publish(MembershipEvent(EventKind.UPDATED, member))

    def set_state(self, node_id: str, state: MemberState) -> None:
        """Change a member's state; no event when it is unchanged."""
        old = self._members[node_id]
        if old.state is state:
            return
        member = attrs.evolve(old, state=state, incarnation=old.incarnation + 1)
        self._members[node_id] = member
        self._publish(MembershipEvent(_EVENT_FOR_STATE[state], member))

    def state(self, node_id: str) -> MemberState | None:
        member = self._members.get(node_id)
        return None if member is None else member.state

    def get(self, node_id: str) -> Member | None:
        return self._members.get(node_id)

    def members(self) -> list[Member]:
        """Every member, ordered by node id."""
        return [self._members[k] for k in sorted(self._members)]

    def in_ring_order(self) -> list[Member]:
        """Every member, in ring order."""
        if self._ring is None:
            self._ring = ring_order(list(self._members))
        return [self._members[n] for n in self._ring]

    def _set(self, member: Member) -> None:
        if member.node_id not in self._members:
            self._ring = None
        self._members[member.node_id] = member

    def _publish(self, event: MembershipEvent) -> None:
        for stream in list(self._subscribers):
            try:
                stream.send_nowait(event)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._subscribers.remove(stream)

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[MemoryObjectReceiveStream[MembershipEvent]]:
        """Events from now on, until the block exits."""
        send, receive = anyio.create_memory_object_stream[MembershipEvent](math.inf)
        self._subscribers.append(send)
        try:
            yield receive
        finally:
            if send in self._subscribers:
                self._subscribers.remove(send)
            send.close()
            receive.close()


class StaticView:
    """One node's :class:`~dspot.membership.RingView` over a :class:`ScriptedMembership`.

    On top of the directory's states, this node sees as dead every member in :attr:`down`
    and, when ``reachable`` is given, every other member it says this node cannot reach (the
    simulation's ground truth). Those local changes publish no events.
    """

    def __init__(
        self,
        directory: ScriptedMembership,
        self_id: str,
        *,
        reachable: OracleReachable | None = None,
    ) -> None:
        self.directory = directory
        self._self_id = self_id
        self._reachable = reachable
        self.down: set[str] = set()
        """Members this view reports dead whatever the directory says."""
        self.joined = True
        """What :attr:`~dspot.membership.RingView.joined` answers (a test may clear it)."""

    @classmethod
    def fixed(
        cls,
        self_id: str,
        addresses: Mapping[str, str],
        *,
        reachable: OracleReachable | None = None,
    ) -> StaticView:
        """A view of its own fixed directory: ``{node_id: address}`` all alive."""
        return cls(ScriptedMembership.of(addresses), self_id, reachable=reachable)

    @property
    def self_id(self) -> str:
        return self._self_id

    def _sees_down(self, node_id: str) -> bool:
        if node_id in self.down:
            return True
        reachable = self._reachable
        return (
            reachable is not None
            and node_id != self._self_id
            and not reachable(self._self_id, node_id)
        )

    def _seen(self, member: Member) -> Member:
        if member.state in _UP and self._sees_down(member.node_id):
            return attrs.evolve(member, state=MemberState.DEAD)
        return member

    def members(self) -> list[Member]:
        return [self._seen(m) for m in self.directory.members()]

    def live(self) -> list[Member]:
        seen = (self._seen(m) for m in self.directory.in_ring_order())
        return [m for m in seen if m.state in _UP]

    def configured(self) -> list[Member]:
        return [m for m in self.members() if m.state is not MemberState.LEFT]

    def get(self, node_id: str) -> Member | None:
        member = self.directory.get(node_id)
        return None if member is None else self._seen(member)

    def update_meta(self, meta: Mapping[str, str]) -> None:
        """Publish this node's metadata (as membership gossips it): ``UPDATED`` for all."""
        me = self.directory.get(self._self_id)
        if me is None:
            raise KeyError(f"{self._self_id} is not in the directory")
        self.directory.put(attrs.evolve(me, meta=dict(meta), incarnation=me.incarnation + 1))

    def subscribe(self) -> AbstractAsyncContextManager[MemoryObjectReceiveStream[MembershipEvent]]:
        return self.directory.subscribe()
