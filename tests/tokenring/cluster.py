"""Token-ring members on one simulated network and simulated disks, in virtual time.

Each member can be crashed (unsynced writes lost), wiped, cut off and restarted. A member
applies either to a list (``apply``) or, with ``ledgers=True``, to the simulation
scenario's :class:`~dspot.sim.scenarios.tokenring.Ledger` (a state machine on the node's
disk that takes snapshots, so the ring compacts).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable

import anyio
import anyio.abc
import anyio.lowlevel

from dspot.disk import SimDisk
from dspot.env import NodeEnv
from dspot.rpc import RpcNode
from dspot.sim.scenarios.tokenring import Ledger, LedgerState
from dspot.testing import StaticView, run_with_mock_clock
from dspot.tokenring import CommittedEntry, LogPosition, TokenRing, TokenRingConfig
from dspot.transport import SimNetwork

SECRET = b"test secret"
PORT = 7100


class Cluster:
    """N token-ring members on one simulated network; each can be stopped and restarted."""

    def __init__(
        self,
        names: list[str],
        tg: anyio.abc.TaskGroup,
        config: TokenRingConfig | None = None,
        *,
        ledgers: bool = False,
    ) -> None:
        self.names = names
        self.config = config or TokenRingConfig()
        self.ledgers = ledgers
        self.net = SimNetwork(random.Random(7))
        self.disks = {n: SimDisk(random.Random(n)) for n in names}
        self.views = {n: StaticView.fixed(n, {m: f"{m}:{PORT}" for m in names}) for n in names}
        self.rings: dict[str, TokenRing] = {}
        self.applied: dict[str, list[CommittedEntry]] = {}
        self.states: dict[str, LedgerState] = {}
        self.scopes: dict[str, anyio.CancelScope] = {}
        self.boots = 0
        self.tg = tg
        self.ledger_class: type[Ledger] = Ledger
        """The state machine of members started from now on (with ``ledgers``)."""

    async def start(
        self,
        name: str,
        *,
        learner: bool = False,
        on_install_step: Callable[[str], Awaitable[None]] | None = None,
    ) -> TokenRing:
        self.boots += 1
        self.net.restart(name)
        ring: TokenRing = await self.tg.start(self._run, name, learner, on_install_step)
        self.rings[name] = ring
        return ring

    async def _run(
        self,
        name: str,
        learner: bool,
        on_install_step: Callable[[str], Awaitable[None]] | None,
        *,
        task_status: anyio.abc.TaskStatus[TokenRing],
    ) -> None:
        env = NodeEnv(
            node_id=name,
            transport=self.net.transport(name),
            disk=self.disks[name],
            rng=random.Random(f"{name}:{self.boots}"),
        )
        applied: list[CommittedEntry] = []
        self.applied[name] = applied

        async def apply(entry: CommittedEntry) -> None:
            applied.append(entry)

        ledger = self.ledger_class(env.disk.db, lambda state: self.states.__setitem__(name, state))
        scope = anyio.CancelScope()
        self.scopes[name] = scope
        try:
            with scope:
                await self._serve(env, ledger, apply, learner, on_install_step, task_status)
        except Exception:
            if not scope.cancel_called:
                raise  # crashed: what its code did after that never happened

    async def _serve(
        self,
        env: NodeEnv,
        ledger: Ledger,
        apply: Callable[[CommittedEntry], Awaitable[None]],
        learner: bool,
        on_install_step: Callable[[str], Awaitable[None]] | None,
        task_status: anyio.abc.TaskStatus[TokenRing],
    ) -> None:
        name = env.node_id
        async with RpcNode(env, listen=f"{name}:{PORT}", secret=SECRET) as rpc:
            if self.ledgers:
                await ledger.open()
            ring = TokenRing(
                env,
                rpc,
                self.views[name],
                self.config,
                apply=None if self.ledgers else apply,
                state_machine=ledger if self.ledgers else None,
                learner=learner,
            )
            ring.on_install_step = on_install_step
            async with ring:
                task_status.started(ring)
                await anyio.sleep_forever()

    def crash(self, name: str) -> None:
        self.scopes[name].cancel()
        self.net.crash(name)
        self.disks[name].crash()

    def isolate(self, name: str) -> None:
        others = [n for n in self.names if n != name]
        self.net.partition([[name], others])
        self.views[name].down = set(others)
        for n in others:
            self.views[n].down = {name}

    def heal(self) -> None:
        self.net.heal()
        for v in self.views.values():
            v.down = set()

    async def fill(self, count: int, prefix: str, via: list[str] | None = None) -> LogPosition:
        """Commit ``count`` entries, submitted ``via`` these members in turn; the last one's
        position."""
        members = via or self.names
        pos = LogPosition(0, 0)
        for i in range(count):
            eid = f"{prefix}{i}"
            pos = await self.rings[members[i % len(members)]].submit(eid.encode(), entry_id=eid)
        return pos


def run(
    test: Callable[[Cluster], Awaitable[None]],
    names: list[str],
    config: TokenRingConfig | None = None,
    *,
    ledgers: bool = False,
) -> None:
    """Start every member, run ``test`` on the cluster in virtual time, stop everything."""

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            cluster = Cluster(names, tg, config, ledgers=ledgers)
            for n in names:
                await cluster.start(n)
            await test(cluster)
            tg.cancel_scope.cancel()

    run_with_mock_clock(main)


class CrashAt:
    """An install-step hook that crashes a member the first time it reaches ``step``."""

    def __init__(self, cluster: Cluster, name: str, step: str) -> None:
        self.cluster = cluster
        self.name = name
        self.step = step
        self.fired = anyio.Event()

    async def __call__(self, at: str) -> None:
        if at == self.step and not self.fired.is_set():
            self.fired.set()
            self.cluster.crash(self.name)
            await anyio.lowlevel.checkpoint()  # cancelled here
