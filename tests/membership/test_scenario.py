"""The ``membership`` simulation scenario: seeds pass, and sabotage makes the checker bite."""

from __future__ import annotations

import logging
from typing import Any

import attrs
import pytest

from dspot.env import Mechanism
from dspot.membership import MembershipMechanism
from dspot.sim import FaultConfig, RunResult, Simulation, check_seeds, get_scenario, run_seed
from dspot.sim.scenarios.membership import Ground
from dspot.transport import LinkModel


@pytest.fixture(autouse=True)
def _quiet(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL, logger="dspot")


def run(
    seed: int, disabled: frozenset[Mechanism] | set[Mechanism] = frozenset(), **kw: Any
) -> tuple[RunResult, Ground]:
    scenario = attrs.evolve(get_scenario("membership"), **kw)
    data: dict[str, Any] = {}

    def prepare(sim: Simulation) -> None:
        data["sim"] = sim

    result = run_seed(scenario, seed, setup=prepare, disabled=disabled)
    return result, data["sim"].state(Ground)


# A steady 5 % loss and no other fault: every false positive is a violation.
LOSSY = {"faults": FaultConfig(kinds=()), "link": LinkModel(loss=0.05), "heal_fraction": 0.0}


def test_twenty_seeds_pass_under_the_whole_fault_model() -> None:
    results = check_seeds("membership", range(1, 21), jobs=2)
    assert sum(r.faults for r in results) > 100
    assert all(r.faults > 0 for r in results)


def test_a_seed_replays_to_the_same_trace() -> None:
    first, data = run(3)
    again, _ = run(3)
    assert first.trace_hash == again.trace_hash
    assert data.detections_checked > 0  # the detection check had work to do


def test_sabotage_without_suspicion_or_indirect_probes_loss_makes_false_positives() -> None:
    off = {MembershipMechanism.SUSPICION, MembershipMechanism.INDIRECT_PROBES}
    sabotaged = [run(seed, disabled=off, **LOSSY) for seed in (1, 2)]
    assert sum(data.false_positives for _, data in sabotaged) > 0
    assert any("declared running" in v for result, _ in sabotaged for v in result.violations)

    for seed in (1, 2):
        result, data = run(seed, **LOSSY)
        assert result.violations == ()
        assert data.false_positives == 0
