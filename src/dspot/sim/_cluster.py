"""A simulated cluster: N nodes on one :class:`SimNetwork`, each with its own simulated disk.

Each node runs the scenario's node function inside its own cancel scope. Crashing a node
cancels that scope, resets its connections and drops its unsynced disk writes; restarting
runs the node function again with a fresh environment on the same disk. Exceptions that
escape a node are recorded as violations (a node must not die of its own bugs) rather than
tearing down the whole run.

Each node also has a :class:`~dspot.cpu.SimCpu` that prices its work (``env.offload``, its
disk) in virtual time and stalls its network I/O while its event loop is busy, and the
simulation keeps a :class:`~dspot.sim.FaultRecord` of when each node was down.
"""

from __future__ import annotations

import logging
import os
import random
import sys
import traceback
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar, cast

import anyio
import anyio.abc
import attrs

from dspot.cpu import CostModel, CpuGatedTransport, CpuMechanism, SimCpu
from dspot.disk import SimDisk
from dspot.env import EventLoopClock, Mechanism, NodeEnv
from dspot.sim._checks import NODE_DIED
from dspot.sim._faults import FaultRecord, FaultSpan
from dspot.sim._trace import TraceLog
from dspot.transport import LinkModel, SimNetwork, TransportMechanism

SIM_WALL_BASE = 1_767_225_600.0  # virtual wall clock starts at 2026-01-01T00:00:00Z


class NodeMain(Protocol):
    """A node's main function: starts its services, reports a handle, runs until cancelled."""

    def __call__(
        self, env: NodeEnv, sim: Simulation, *, task_status: anyio.abc.TaskStatus[Any]
    ) -> Awaitable[None]: ...


@attrs.define(eq=False)
class SimNode:
    """One node's slot in the cluster; its code may be up or down."""

    name: str
    disk: SimDisk
    cpu: SimCpu
    up: bool = False
    incarnation: int = 0
    handle: Any = None
    """What the node function passed to ``task_status.started`` in its current incarnation."""
    scope: anyio.CancelScope | None = None
    env: NodeEnv | None = None
    down_since: FaultSpan | None = None


S = TypeVar("S")


class Simulation:
    """The world of one seeded run: network, nodes, clock, trace, recorded violations."""

    def __init__(
        self,
        *,
        seed: int,
        node_names: list[str],
        node_main: NodeMain,
        duration: float,
        heal_at: float,
        trace: TraceLog,
        link: LinkModel,
        costs: CostModel | None = None,
        workers: int = 4,
    ) -> None:
        self.seed = seed
        self.duration = duration
        self.heal_at = heal_at
        self.trace = trace
        self.rng = random.Random(f"sim:{seed}")
        self.net = SimNetwork(
            random.Random(f"net:{seed}"),
            link=link,
            tracer=trace.record,
            segment_tracer=trace.segment,
        )
        self.base_link = link
        self.nodes: dict[str, SimNode] = {}
        for name in node_names:
            disk = SimDisk(random.Random(f"disk:{seed}:{name}"))
            disk.cpu = SimCpu(costs, workers=workers)
            self.nodes[name] = SimNode(name, disk, disk.cpu)
        self.record = FaultRecord()
        """When each node was down and (recorded by the nemesis) which links were cut."""
        self.violations: list[str] = []
        self.tripped: list[str] = []
        """The check that reported each of :attr:`violations` (same order)."""
        self.faults = 0
        self._state: dict[type, object] = {}
        self.disabled: frozenset[Mechanism] = frozenset()
        """Mechanisms every node is built without (``NodeEnv.disabled``): sabotage tests."""
        self._main = node_main
        self._tg: anyio.abc.TaskGroup | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def run(
        self,
        workload: Callable[[Simulation], Awaitable[None]],
        nemesis: Any,
        stranger: Any = None,
    ) -> None:
        self.net.checksum = TransportMechanism.CHECKSUM not in self.disabled
        async with anyio.create_task_group() as tg:
            self._tg = tg
            for name in self.nodes:
                await self.start(name)
            if nemesis is not None:
                tg.start_soon(nemesis.run, self)
            if stranger is not None:
                tg.start_soon(stranger.run, self)
            await workload(self)
            tg.cancel_scope.cancel()
        for node in self.nodes.values():
            node.up = False

    def state(self, kind: type[S]) -> S:
        """This run's one instance of ``kind``, made with ``kind()`` on first use: the typed
        ground truth a scenario's nodes, workload and checks share (one attrs class per
        scenario, fields with defaults)."""
        found = self._state.get(kind)
        if found is None:
            found = self._state[kind] = kind()
        return cast(S, found)

    def now(self) -> float:
        return anyio.current_time()

    @property
    def names(self) -> list[str]:
        return list(self.nodes)

    def live(self) -> list[str]:
        return [n.name for n in self.nodes.values() if n.up]

    def violation(self, message: str, *, check: str) -> None:
        """Record an invariant violation found by the check named ``check`` (one of the
        scenario's :class:`~dspot.sim.Check` s); also written to the trace."""
        self.violations.append(message)
        self.tripped.append(check)
        self.trace.record("violation", check=check, message=message)

    def fault(self, kind: str, **fields: Any) -> None:
        """Count an injected fault (the network and disks trace the details)."""
        self.faults += 1
        self.trace.record(f"nemesis.{kind}", **fields)

    def op(self, kind: str, /, **fields: Any) -> None:
        """Trace a client operation."""
        self.trace.record(f"op.{kind}", **fields)

    # -- node control ----------------------------------------------------------------------

    async def start(self, name: str) -> Any:
        node = self.nodes[name]
        if node.up:
            return node.handle
        assert self._tg is not None
        node.incarnation += 1
        self.net.restart(name)
        if node.down_since is not None:
            self.record.end(node.down_since, self.now())
            node.down_since = None
        node.cpu.inline = CpuMechanism.OFFLOAD in self.disabled
        node.env = NodeEnv(
            node_id=name,
            transport=CpuGatedTransport(
                self.net.transport(name, contain=TransportMechanism.CONTAIN not in self.disabled),
                node.cpu,
            ),
            disk=node.disk,
            rng=random.Random(f"node:{self.seed}:{name}:{node.incarnation}"),
            clock=EventLoopClock(wall_base=SIM_WALL_BASE),
            logger=logging.getLogger(f"dspot.sim.{name}"),
            trace=self.trace.for_node(name),
            offload=node.cpu.offload,
            cpu=node.cpu,
            disabled=self.disabled,
        )
        node.handle = await self._tg.start(self._run_node, node)
        node.up = True
        return node.handle

    def _went_down(self, node: SimNode) -> None:
        node.up = False
        node.handle = None
        node.cpu.reset()
        if node.down_since is None:
            node.down_since = self.record.begin("down", self.now(), nodes=(node.name,))

    async def _run_node(self, node: SimNode, *, task_status: anyio.abc.TaskStatus[Any]) -> None:
        assert node.env is not None
        scope = anyio.CancelScope()
        try:
            with scope:
                node.scope = scope
                await self._main(node.env, self, task_status=task_status)
        except Exception as exc:
            if scope.cancel_called:
                return  # crashed: what its code did after that never happened
            tb = portable_traceback(exc, limit=-6)
            self.violation(f"node {node.name} died of an exception: {exc!r}\n{tb}", check=NODE_DIED)
            self._went_down(node)

    def crash(self, name: str) -> None:
        """Kill the node's process: cancel its code, reset its connections, lose unsynced writes."""
        node = self.nodes[name]
        if not node.up:
            return
        self._went_down(node)
        if node.scope is not None:
            node.scope.cancel()
        self.net.crash(name)
        node.disk.crash()

    def wipe(self, name: str) -> None:
        """Permanently lose the node's disk (it must be crashed first)."""
        self.nodes[name].disk.wipe()
        self.trace.record("fault.wipe", host=name)


def portable_traceback(exc: BaseException, *, limit: int | None = None) -> str:
    """``exc``'s traceback with each file named relative to the ``sys.path`` entry it was
    imported from (``dspot/rpc.py``, not ``/home/me/src/dspot/rpc.py``): violation messages
    go into the trace, whose hash must not depend on where the code is checked out."""
    te = traceback.TracebackException.from_exception(exc, limit=limit)
    roots = sorted((os.path.join(os.path.abspath(p), "") for p in sys.path if p), key=len)
    pending = [te]
    while pending:
        item = pending.pop()
        for frame in item.stack:
            frame.filename = _relative_to(frame.filename, roots)
        pending += [e for e in (item.__cause__, item.__context__) if e is not None]
        pending += getattr(item, "exceptions", None) or []
    return "".join(te.format())


def _relative_to(filename: str, roots: list[str]) -> str:
    for root in reversed(roots):  # the longest matching entry: the innermost package root
        if filename.startswith(root):
            return filename[len(root) :]
    return os.path.basename(filename)
