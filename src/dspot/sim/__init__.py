"""Deterministic simulation: a seeded cluster on a simulated network, with faults and checks.

Re-exports only; see ``_scenario.py`` for running, ``_cluster.py`` for the world a scenario
sees, ``_nemesis.py`` for fault injection, ``_stranger.py`` for the hostile stranger,
``_faults.py`` for the record of what it did, ``_liveness.py`` for the liveness-first check
and ``_trace.py`` for the replay hash.
"""

from dspot.sim._checks import (
    COMMON_CHECKS,
    NODE_DIED,
    STRANGER_500,
    STRANGER_CRASH,
    STRANGER_SERVED,
    Check,
    Sabotage,
    check_names,
)
from dspot.sim._cluster import SIM_WALL_BASE, NodeMain, SimNode, Simulation
from dspot.sim._determinism import deterministic_trio, scheduler_pinning_available
from dspot.sim._faults import FaultRecord, FaultSpan
from dspot.sim._liveness import (
    Declaration,
    check_no_false_deaths,
    declarations,
    watch_membership,
)
from dspot.sim._loop import SimulationDeadlock, VirtualTimeLoop, run_virtual
from dspot.sim._nemesis import FAULT_KINDS, FaultConfig, Nemesis
from dspot.sim._scenario import (
    RunResult,
    Scenario,
    check_seeds,
    get_scenario,
    register,
    rerun_command,
    run_seed,
    scenarios,
    trace_hash_in_subprocess,
    wait_until_end,
)
from dspot.sim._stranger import ATTACKS, Stranger, StrangerConfig
from dspot.sim._trace import TraceLog, combined_trace_hash

__all__ = [
    "ATTACKS",
    "COMMON_CHECKS",
    "FAULT_KINDS",
    "NODE_DIED",
    "SIM_WALL_BASE",
    "STRANGER_500",
    "STRANGER_CRASH",
    "STRANGER_SERVED",
    "Check",
    "Declaration",
    "FaultConfig",
    "FaultRecord",
    "FaultSpan",
    "Nemesis",
    "NodeMain",
    "RunResult",
    "Sabotage",
    "Scenario",
    "SimNode",
    "Simulation",
    "SimulationDeadlock",
    "Stranger",
    "StrangerConfig",
    "TraceLog",
    "VirtualTimeLoop",
    "check_names",
    "check_no_false_deaths",
    "check_seeds",
    "combined_trace_hash",
    "declarations",
    "deterministic_trio",
    "get_scenario",
    "register",
    "rerun_command",
    "run_seed",
    "run_virtual",
    "scenarios",
    "scheduler_pinning_available",
    "trace_hash_in_subprocess",
    "wait_until_end",
    "watch_membership",
]
