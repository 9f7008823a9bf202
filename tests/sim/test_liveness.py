"""Liveness first: the ``liveness`` scenario, its sabotage, and the fault-aware check itself."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from dspot.cpu import CpuMechanism
from dspot.sim import (
    Declaration,
    RunResult,
    Simulation,
    TraceLog,
    check_no_false_deaths,
    declarations,
    get_scenario,
    run_seed,
)
from dspot.sim.scenarios import liveness
from dspot.transport import LinkModel


@pytest.fixture(autouse=True)
def _quiet(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL, logger="dspot")


def run(seed: int, *, inline: bool = False) -> tuple[RunResult, dict[str, Any]]:
    box: dict[str, Simulation] = {}

    disabled = {CpuMechanism.OFFLOAD} if inline else set()
    result = run_seed(
        get_scenario("liveness"), seed, setup=lambda sim: box.update(sim=sim), disabled=disabled
    )
    return result, box["sim"].state(liveness.Ground).summary


def test_offloaded_flood_keeps_every_member_alive_and_every_loop_quick() -> None:
    for seed in (1, 2):
        result, data = run(seed)
        assert result.violations == ()
        summary = data
        assert summary["work"] > 3000  # the users kept the workers busy all along
        assert summary["deaths"] > 0  # crashes were detected...
        assert summary["excused"] == summary["deaths"]  # ...and every death was a real fault
        assert summary["worst_lag"] < 0.01
    again, _ = run(2)
    assert again.trace_hash == result.trace_hash


def test_sabotage_the_same_work_on_the_loop_gets_live_members_declared_dead() -> None:
    result, data = run(1, inline=True)
    assert data["false_deaths"] > 0
    assert any("dead at" in v and "liveness first" in v for v in result.violations)
    assert any("event loop lagged" in v and "scrypt" in v for v in result.violations)


def _bare_sim() -> Simulation:
    async def idle(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("not run")

    return Simulation(
        seed=1,
        node_names=["a", "b", "c"],
        node_main=idle,
        duration=100.0,
        heal_at=60.0,
        trace=TraceLog(),
        link=LinkModel(),
    )


def test_check_excuses_deaths_near_crashes_and_cuts_and_reports_the_rest() -> None:
    sim = _bare_sim()
    rec = sim.record
    rec.end(rec.begin("down", 10.0, nodes=["a"]), 12.0)  # a crashed, back at 12
    rec.end(rec.begin("partition", 30.0, cut=[("b", "c"), ("c", "b")]), 33.0)
    rec.end(rec.begin("loss", 50.0, degraded=True), 51.0)
    rec.end(rec.begin("partition", 70.0, cut=[("a", "b"), ("b", "a")]), 71.0)
    log = declarations(sim)
    log += [
        Declaration(11.0, "b", "a", "dead", 0),  # a was down: right
        Declaration(14.0, "c", "a", "dead", 0),  # a back only 2 s ago: within grace
        Declaration(20.0, "b", "a", "dead", 1),  # a up and reachable since 15: false
        Declaration(35.0, "a", "c", "dead", 0),  # c was cut off until 33: excused
        Declaration(35.0, "b", "a", "suspect", 1),  # suspicions are not deaths
        Declaration(52.0, "a", "b", "dead", 0),  # loss spike on every link: excused
        Declaration(75.0, "b", "c", "dead", 0),  # the cut at 70 did not touch c: false
    ]
    summary = check_no_false_deaths(sim, grace=5.0)
    assert summary == {"deaths": 6, "excused": 4, "false_deaths": 2, "suspicions": 1}
    assert len(sim.violations) == 2
    assert sim.violations[0].startswith("b declared a dead at 20.000s")
    assert sim.violations[1].startswith("b declared c dead at 75.000s")
