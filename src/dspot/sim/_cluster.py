"""A simulated cluster: N nodes on one :class:`SimNetwork`, each with its own simulated disk.

Each node runs the scenario's node function inside its own cancel scope. Crashing a node
cancels that scope, resets its connections and drops its unsynced disk writes; restarting
runs the node function again with a fresh environment on the same disk. Exceptions that
escape a node are recorded as violations (a node must not die of its own bugs) rather than
tearing down the whole run.
"""

from __future__ import annotations

import logging
import random
import traceback
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import anyio
import anyio.abc
import attrs

from dspot.disk import SimDisk
from dspot.env import EventLoopClock, Mechanism, NodeEnv
from dspot.sim._trace import TraceLog
from dspot.transport import LinkModel, SimNetwork

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
    up: bool = False
    incarnation: int = 0
    handle: Any = None
    """What the node function passed to ``task_status.started`` in its current incarnation."""
    scope: anyio.CancelScope | None = None
    env: NodeEnv | None = None


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
    ) -> None:
        self.seed = seed
        self.duration = duration
        self.heal_at = heal_at
        self.trace = trace
        self.rng = random.Random(f"sim:{seed}")
        self.net = SimNetwork(random.Random(f"net:{seed}"), link=link, tracer=trace.record)
        self.base_link = link
        self.nodes: dict[str, SimNode] = {
            name: SimNode(name, SimDisk(random.Random(f"disk:{seed}:{name}")))
            for name in node_names
        }
        self.violations: list[str] = []
        self.faults = 0
        self.data: dict[str, Any] = {}
        """Scratch space where a scenario's nodes, workload and checker share ground truth."""
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

    def now(self) -> float:
        return anyio.current_time()

    @property
    def names(self) -> list[str]:
        return list(self.nodes)

    def live(self) -> list[str]:
        return [n.name for n in self.nodes.values() if n.up]

    def violation(self, message: str) -> None:
        """Record an invariant violation (also written to the trace)."""
        self.violations.append(message)
        self.trace.record("violation", message=message)

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
        node.env = NodeEnv(
            node_id=name,
            transport=self.net.transport(name),
            disk=node.disk,
            rng=random.Random(f"node:{self.seed}:{name}:{node.incarnation}"),
            clock=EventLoopClock(wall_base=SIM_WALL_BASE),
            logger=logging.getLogger(f"dspot.sim.{name}"),
            trace=self.trace.for_node(name),
            disabled=self.disabled,
        )
        node.handle = await self._tg.start(self._run_node, node)
        node.up = True
        return node.handle

    async def _run_node(self, node: SimNode, *, task_status: anyio.abc.TaskStatus[Any]) -> None:
        assert node.env is not None
        with anyio.CancelScope() as scope:
            node.scope = scope
            try:
                await self._main(node.env, self, task_status=task_status)
            except Exception as exc:
                tb = "".join(traceback.format_exception(exc, limit=-6))
                self.violation(f"node {node.name} died of an exception: {exc!r}\n{tb}")
                node.up = False
                node.handle = None

    def crash(self, name: str) -> None:
        """Kill the node's process: cancel its code, reset its connections, lose unsynced writes."""
        node = self.nodes[name]
        if not node.up:
            return
        node.up = False
        node.handle = None
        if node.scope is not None:
            node.scope.cancel()
        self.net.crash(name)
        node.disk.crash()

    def wipe(self, name: str) -> None:
        """Permanently lose the node's disk (it must be crashed first)."""
        self.nodes[name].disk.wipe()
        self.trace.record("fault.wipe", host=name)
