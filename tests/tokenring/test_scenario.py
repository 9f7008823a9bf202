"""The ``tokenring`` simulation scenario: a seed sweep, and sabotage that its checkers catch.

Each sabotage here switches off a safety mechanism the registry of checks does not already
use (``tests/sim/test_checks.py`` runs the others) and must make the scenario report a
violation on some seed; the same seeds pass with the mechanism on (``test_seeds_pass``
covers them).
"""

from __future__ import annotations

import re

import attrs
import pytest

from dspot.sim import FaultConfig, Simulation, check_seeds, get_scenario, run_seed
from dspot.sim.scenarios.tokenring import POWER_LOSS, Ground
from dspot.tokenring import TokenRingMechanism


def test_seeds_pass() -> None:
    results = check_seeds("tokenring", range(1, 21), jobs=2)
    assert sum(r.faults for r in results) > 0


def test_snapshots_are_taken_and_installed_and_installs_are_cut_short() -> None:
    sims: list[Simulation] = []
    scenario = get_scenario("tokenring")
    for seed in (1, 2, 3):
        assert run_seed(scenario, seed, setup=sims.append).violations == ()
    grounds = [s.state(Ground) for s in sims]
    taken = [g.snapshots.get("taken", 0) for g in grounds]
    restored = [g.snapshots.get("restored", 0) for g in grounds]
    assert min(taken) >= 50 and sum(restored) >= 3, (taken, restored)
    assert all(g.wiped for g in grounds)  # every seed lost a disk at least once


def test_power_loss_is_survived_with_fsync() -> None:
    scenario = attrs.evolve(get_scenario("tokenring"), faults=POWER_LOSS)
    result = run_seed(scenario, 1)
    assert result.faults > 0
    assert result.violations == ()


def _violations(sabotage: str, seeds: list[int], faults: FaultConfig | None = None) -> list[str]:
    scenario = get_scenario("tokenring")
    if faults is not None:
        scenario = attrs.evolve(scenario, faults=faults)

    found: list[str] = []
    for seed in seeds:
        found += run_seed(
            scenario, seed, disabled={TokenRingMechanism[sabotage.upper()]}
        ).violations
        if found:
            break
    return found


@pytest.mark.parametrize(
    ("sabotage", "seeds", "faults", "expect"),
    [
        # keeping just the newest entries: entries no snapshot covers, which the others
        # still need (not yet on a majority), are gone
        ("trim_guard", [3, 4], None, "final log|did not converge|after heal"),
        # a member back from a disk loss votes at once: it may elect a log without an
        # entry it had acknowledged
        ("learner", list(range(1, 6)), None, "differs from replaying|fork at seq|final log"),
    ],
)
def test_sabotage_is_caught(
    sabotage: str, seeds: list[int], faults: FaultConfig | None, expect: str
) -> None:
    found = _violations(sabotage, seeds, faults)
    assert found, f"switching off {sabotage} went unnoticed on seeds {seeds}"
    assert any(re.search(expect, v) for v in found), found[:3]
