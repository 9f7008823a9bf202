"""Scenarios: a node function, a workload and a checker, run over seeds.

A scenario is registered by name (:func:`register`); user code can also be named as
``module:function`` where the function returns a :class:`Scenario`. :func:`run_seed` runs
one seed on the virtual-time asyncio loop (:mod:`dspot.sim._loop`), whose schedule the seed
fixes, and returns the violations, the number of faults injected and the trace hash.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import shlex
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import IO, Any, Literal, TypeVar

import anyio
import attrs
import trio.testing

from dspot.cpu import CostModel
from dspot.env import Mechanism
from dspot.sim._checks import Check, check_names
from dspot.sim._cluster import NodeMain, Simulation
from dspot.sim._determinism import deterministic_trio
from dspot.sim._loop import run_virtual
from dspot.sim._nemesis import FaultConfig, Nemesis
from dspot.sim._stranger import Stranger, StrangerConfig
from dspot.sim._trace import TraceLog
from dspot.transport import LinkModel

_T = TypeVar("_T")
_R = TypeVar("_R")
Workload = Callable[[Simulation], Awaitable[None]]
Checker = Callable[[Simulation], None]


async def wait_until_end(sim: Simulation) -> None:
    """The default workload: the nodes do the work; just let virtual time run out."""
    await anyio.sleep(sim.duration)


@attrs.frozen
class Scenario:
    """What runs in each simulated node, what clients do, and what must hold afterwards.

    ``check`` runs after the run ends and reports problems with ``sim.violation``.
    ``heal_fraction`` of the duration is spent under faults; the rest is for liveness.
    """

    name: str
    description: str
    node: NodeMain
    check: Checker
    workload: Workload = wait_until_end
    nodes: int = 5
    duration: float = 30.0
    heal_fraction: float = 0.6
    faults: FaultConfig = attrs.field(factory=FaultConfig)
    link: LinkModel = attrs.field(factory=LinkModel)
    nemesis: Callable[[FaultConfig], Nemesis] = Nemesis
    costs: CostModel = attrs.field(factory=CostModel)
    """What the nodes' work costs in virtual time (see :class:`~dspot.cpu.SimCpu`)."""
    workers: int = 4
    """Worker slots per node: how much offloaded work overlaps."""
    stranger: StrangerConfig | None = None
    """The hostile stranger's attacks (``None``: no stranger unless ``run_seed`` asks for
    one). Every built-in scenario has one: ``stranger=StrangerConfig()``."""
    checks: tuple[Check, ...] = ()
    """What ``check`` (and the nodes and workload) verify, by name, each with the sabotage
    that shows it bites. Empty: the names are not verified (user scenarios)."""


_registry: dict[str, Scenario] = {}


def register(scenario: Scenario) -> Scenario:
    """Make ``scenario`` available to ``dspot sim --scenario NAME``."""
    _registry[scenario.name] = scenario
    return scenario


def _load_builtins() -> None:
    importlib.import_module("dspot.sim.scenarios")
    # Importing the subpackage binds ``dspot.sim.scenarios`` to it, hiding the function of
    # that name ``dspot.sim`` exports (``from dspot.sim import scenarios`` would then get
    # the package): put the function back.
    package = sys.modules["dspot.sim"]
    if getattr(package, "scenarios", None) is not scenarios:
        package.scenarios = scenarios  # type: ignore[attr-defined]


def scenarios() -> dict[str, Scenario]:
    """Every registered scenario, built-ins included, by name."""
    _load_builtins()
    return dict(sorted(_registry.items()))


def get_scenario(name: str) -> Scenario:
    """A registered scenario, or ``module:function`` returning one."""
    if ":" in name:
        module, _, func = name.partition(":")
        factory = getattr(importlib.import_module(module), func)
        scenario = factory()
        if not isinstance(scenario, Scenario):
            raise TypeError(f"{name} returned {type(scenario).__name__}, not a Scenario")
        return scenario
    found = scenarios().get(name)
    if found is None:
        known = ", ".join(scenarios())
        raise KeyError(f"unknown scenario {name!r} (known: {known})")
    return found


@attrs.frozen
class RunResult:
    """The outcome of one seed."""

    scenario: str
    seed: int
    violations: tuple[str, ...]
    checks: tuple[str, ...]
    """The name of the check that reported each violation (same order)."""
    faults: int
    trace_hash: str
    events: int
    virtual_seconds: float


def run_seed(
    scenario: Scenario,
    seed: int,
    *,
    nodes: int | None = None,
    duration: float | None = None,
    trace_out: IO[str] | None = None,
    setup: Callable[[Simulation], None] | None = None,
    loop: Literal["asyncio", "trio"] = "asyncio",
    disabled: Iterable[Mechanism] = (),
    stranger: bool | None = None,
) -> RunResult:
    """Run one seed of ``scenario`` to completion in virtual time.

    ``stranger``: True runs the hostile stranger even if the scenario has none (with its
    config, or the default one), False runs none, None follows the scenario.

    ``disabled``: mechanisms every node is built without, for sabotage tests (so is
    ``setup``, which runs before the nodes start, for anything else a test must arrange).
    ``loop="trio"`` runs the seed on trio's ``MockClock`` instead, its scheduler pinned by
    :func:`deterministic_trio`: another schedule for the same seed (and the benchmark's
    peer); it replays too, but its hashes differ from the default loop's.
    """
    n = nodes or scenario.nodes
    length = float(duration or scenario.duration)
    trace = TraceLog(trace_out)
    sim = Simulation(
        seed=seed,
        node_names=[f"n{i}" for i in range(1, n + 1)],
        node_main=scenario.node,
        duration=length,
        heal_at=length * scenario.heal_fraction,
        trace=trace,
        link=scenario.link,
        costs=scenario.costs,
        workers=scenario.workers,
    )
    sim.disabled = frozenset(disabled)
    if setup is not None:
        setup(sim)
    nemesis = scenario.nemesis(scenario.faults) if scenario.faults.kinds else None
    stranger_config = scenario.stranger
    if stranger is True and stranger_config is None:
        stranger_config = StrangerConfig()
    hostile = Stranger(stranger_config) if stranger_config and stranger is not False else None
    trace.record("sim.start", scenario=scenario.name, seed=seed, nodes=n, duration=length)

    async def main() -> None:
        await sim.run(scenario.workload, nemesis, hostile)

    if loop == "trio":
        clock = trio.testing.MockClock(autojump_threshold=0)
        with deterministic_trio(seed):
            anyio.run(main, backend="trio", backend_options={"clock": clock})
    else:
        run_virtual(main, seed)
    scenario.check(sim)
    trace.record("sim.end", violations=len(sim.violations), faults=sim.faults)
    unknown = sorted(set(sim.tripped) - check_names(scenario)) if scenario.checks else []
    if unknown:
        raise ValueError(f"scenario {scenario.name} reported unregistered checks {unknown}")
    return RunResult(
        scenario=scenario.name,
        seed=seed,
        violations=tuple(sim.violations),
        checks=tuple(sim.tripped),
        faults=sim.faults,
        trace_hash=trace.hexdigest,
        events=trace.count,
        virtual_seconds=length,
    )


def _stranger_flag(stranger: bool | None) -> list[str]:
    return [] if stranger is None else ["--stranger" if stranger else "--no-stranger"]


def rerun_command(
    name: str, seed: int, nodes: int | None, duration: float | None, stranger: bool | None = None
) -> str:
    """The exact command that reruns one seed."""
    parts = ["dspot", "sim", "--scenario", name, "--seed", str(seed)]
    if nodes is not None:
        parts += ["--nodes", str(nodes)]
    if duration is not None:
        parts += ["--duration", f"{duration:g}"]
    return shlex.join(parts + _stranger_flag(stranger))


def trace_hash_in_subprocess(
    name: str,
    seed: int,
    nodes: int | None,
    duration: float | None,
    hashseed: str,
    stranger: bool | None = None,
) -> str:
    """Run one seed in a fresh interpreter with another ``PYTHONHASHSEED``; its trace hash."""
    cmd = [sys.executable, "-m", "dspot", "sim", "--scenario", name, "--seed", str(seed)]
    if nodes is not None:
        cmd += ["--nodes", str(nodes)]
    if duration is not None:
        cmd += ["--duration", f"{duration:g}"]
    cmd += _stranger_flag(stranger)
    env = dict(os.environ, PYTHONHASHSEED=hashseed)
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    last = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
    if "trace-hash" not in last:
        raise RuntimeError(f"subprocess run failed: {out.stderr[-2000:]}")
    return last.rsplit(" ", 1)[-1]


def in_processes(
    fn: Callable[[_T], _R],
    items: Sequence[_T],
    jobs: int,
    *,
    initializer: Callable[..., object] | None = None,
    initargs: tuple[Any, ...] = (),
) -> Iterator[_R]:
    """``map(fn, items)``, results in order, run in ``jobs`` fresh (spawned) processes, or
    here when ``jobs`` is 1 or there is one item. ``fn`` and the items must pickle; a
    worker imports what it needs by name, so ``module:function`` scenarios work too."""
    if jobs <= 1 or len(items) <= 1:
        yield from map(fn, items)
        return
    pool = ProcessPoolExecutor(
        max_workers=min(jobs, len(items)),
        mp_context=multiprocessing.get_context("spawn"),
        initializer=initializer,
        initargs=initargs,
    )
    try:
        yield from pool.map(fn, items)
    finally:
        pool.shutdown(cancel_futures=True)  # a caller that stops early waits for no more


def _run_named(job: tuple[str, int, int | None, float | None]) -> RunResult:
    name, seed, nodes, duration = job
    return run_seed(get_scenario(name), seed, nodes=nodes, duration=duration)


def check_seeds(
    name: str, seeds: Iterable[int], *, jobs: int = 1, **kwargs: int | float | None
) -> list[RunResult]:
    """Run ``seeds`` (in ``jobs`` processes) and fail (AssertionError) on the first
    violation in seed order, naming the rerun command.

    This is the pytest integration: ``check_seeds("rpc", range(1, 21))`` in a test.
    """
    get_scenario(name)  # an unknown name fails here, not in a worker
    results = []
    nodes, duration = kwargs.get("nodes"), kwargs.get("duration")
    n = int(nodes) if nodes is not None else None
    d = float(duration) if duration is not None else None
    for result in in_processes(_run_named, [(name, seed, n, d) for seed in seeds], jobs):
        if result.violations:
            cmd = rerun_command(name, result.seed, n, d)
            raise AssertionError(
                f"scenario {name} seed {result.seed}: {len(result.violations)} violations, first: "
                f"{result.violations[0]}\nrerun: {cmd}"
            )
        results.append(result)
    return results
