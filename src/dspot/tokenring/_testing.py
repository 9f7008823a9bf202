"""Ring views for tests and simulations that do not run real membership.

:class:`StaticView` is a fixed membership whose live set the test scripts by hand;
:class:`OracleView` asks a callback (the simulation's ground truth) who is up.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from dspot.membership import Member, MembershipEvent, MemberState, ring_order


class StaticView:
    """A fixed configured membership; ``down`` members are reported dead."""

    def __init__(self, self_id: str, addresses: dict[str, str]) -> None:
        self._self_id = self_id
        self.addresses = dict(addresses)
        self.down: set[str] = set()
        self._ring = ring_order(sorted(self.addresses))

    @property
    def self_id(self) -> str:
        return self._self_id

    def _member(self, node_id: str) -> Member:
        state = MemberState.DEAD if self._is_down(node_id) else MemberState.ALIVE
        return Member(node_id, self.addresses[node_id], state=state)

    def _is_down(self, node_id: str) -> bool:
        return node_id in self.down

    def members(self) -> list[Member]:
        return [self._member(n) for n in sorted(self.addresses)]

    def live(self) -> list[Member]:
        return [self._member(n) for n in self._ring if not self._is_down(n)]

    def configured(self) -> list[Member]:
        return self.members()

    def get(self, node_id: str) -> Member | None:
        return self._member(node_id) if node_id in self.addresses else None

    def subscribe(self) -> AbstractAsyncContextManager[MemoryObjectReceiveStream[MembershipEvent]]:
        return _no_events()


class OracleView(StaticView):
    """A view fed by ground truth: ``is_up(self_id, other)`` says whether ``other`` is up and
    reachable (both ways) from this node."""

    def __init__(
        self,
        self_id: str,
        addresses: dict[str, str],
        is_up: Callable[[str, str], bool],
    ) -> None:
        super().__init__(self_id, addresses)
        self._is_up = is_up

    def _is_down(self, node_id: str) -> bool:
        return node_id != self.self_id and not self._is_up(self.self_id, node_id)


@asynccontextmanager
async def _no_events() -> AsyncIterator[MemoryObjectReceiveStream[MembershipEvent]]:
    send, receive = anyio.create_memory_object_stream[MembershipEvent](0)
    async with send, receive:
        yield receive


def addresses_for(names: Sequence[str], port: int) -> dict[str, str]:
    """``{name: "name:port"}`` for simulated hosts."""
    return {n: f"{n}:{port}" for n in names}
