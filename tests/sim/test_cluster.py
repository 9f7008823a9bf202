"""The simulated cluster's crash semantics, seen from a node's code."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.abc
import attrs

from dspot.env import NodeEnv
from dspot.sim import FaultConfig, NodeMain, Scenario, Simulation, TraceLog, run_seed
from dspot.transport import LinkModel


def _without_faults(
    name: str, node: NodeMain, *, nodes: int, duration: float, **more: Any
) -> Scenario:
    """A scenario of ``nodes`` nodes running ``node`` with no fault injected (no check
    unless ``more`` gives one)."""
    more.setdefault("check", lambda sim: None)
    return Scenario(
        name=name,
        description="",
        node=node,
        nodes=nodes,
        duration=duration,
        faults=FaultConfig(kinds=()),
        **more,
    )


@attrs.define
class _Seen:
    seen: list[list[str]] = attrs.Factory(list)
    files: list[str] = attrs.Factory(list)


async def _writer(env: NodeEnv, sim: Simulation, *, task_status: anyio.abc.TaskStatus[Any]) -> None:
    db = env.disk.db
    await db.executescript("CREATE TABLE IF NOT EXISTS notes (text TEXT)")
    rows = await db.execute("SELECT text FROM notes ORDER BY text")
    sim.state(_Seen).seen.append([r[0] for r in rows])
    task_status.started(env.node_id)
    if not rows:
        async with db.transaction(sync=True) as tx:
            tx.execute("INSERT INTO notes VALUES ('synced')")
        async with db.transaction(sync=False) as tx:
            tx.execute("INSERT INTO notes VALUES ('unsynced')")
        async with env.disk.create("f/synced") as f:
            await f.write(b"kept")
            await f.commit(sync=True)
        async with env.disk.create("f/unsynced") as f:
            await f.write(b"lost")
            await f.commit(sync=False)
    await anyio.sleep_forever()


async def _crash_and_restart(sim: Simulation) -> None:
    await anyio.sleep(1)
    sim.crash("n1")
    await sim.start("n1")
    files = await sim.nodes["n1"].disk.list_files()
    sim.state(_Seen).files = files


def test_crash_keeps_synced_writes_and_loses_unsynced_ones() -> None:
    def check(sim: Simulation) -> None:
        seen = sim.state(_Seen)
        if seen.seen != [[], ["synced"]]:
            sim.violation(f"saw {seen.seen}", check="seen")
        if seen.files != ["f/synced"]:
            sim.violation(f"files {seen.files}", check="files")

    scenario = _without_faults(
        "crash-disk", _writer, nodes=1, duration=2, check=check, workload=_crash_and_restart
    )
    assert run_seed(scenario, 1).violations == ()


def test_node_exceptions_become_violations_not_a_dead_simulation() -> None:
    async def buggy(
        env: NodeEnv, sim: Simulation, *, task_status: anyio.abc.TaskStatus[Any]
    ) -> None:
        task_status.started(None)
        await anyio.sleep(0.5)
        raise KeyError("bug in node code")

    result = run_seed(_without_faults("buggy", buggy, nodes=2, duration=1), 1)
    assert len(result.violations) == 2
    assert "bug in node code" in result.violations[0]


def test_what_a_crashed_node_does_before_its_next_checkpoint_is_not_a_bug() -> None:
    # A crash cancels the node's code, which stops at its next checkpoint: a task already
    # woken up runs on until then, and may fail because its disk was reset. That never
    # happened in the dead process; an exception in a live node still counts.
    async def node(
        env: NodeEnv, sim: Simulation, *, task_status: anyio.abc.TaskStatus[Any]
    ) -> None:
        task_status.started(None)
        await anyio.sleep(0.5)
        if env.node_id == "n1":
            sim.crash("n1")
        raise KeyError(f"{env.node_id} after the crash")

    result = run_seed(_without_faults("zombie", node, nodes=2, duration=1), 1)
    assert len(result.violations) == 1
    assert "n2 after the crash" in result.violations[0]


def test_state_is_one_typed_instance_per_kind_and_per_run() -> None:
    def make() -> Simulation:
        return Simulation(
            seed=1,
            node_names=["n1"],
            node_main=_writer,
            duration=1.0,
            heal_at=0.0,
            trace=TraceLog(),
            link=LinkModel(),
        )

    sim = make()
    seen = sim.state(_Seen)
    seen.files.append("x")
    assert sim.state(_Seen) is seen  # the same object wherever it is asked for
    assert make().state(_Seen).files == []  # another run starts from the defaults


def test_scenarios_is_callable_after_a_scenario_module_was_imported() -> None:
    # Importing a built-in scenario's module first binds dspot.sim.scenarios to the package.
    import subprocess
    import sys

    code = (
        "import dspot.sim.scenarios.rpc\n"
        "from dspot.sim import scenarios\n"
        "assert 'rpc' in scenarios() and 'outbox' in scenarios()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
