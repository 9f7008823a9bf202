"""The ``blobstore`` scenario holds over seeds, and each checker bites."""

from __future__ import annotations

import pytest

from dspot.sim import check_seeds, get_scenario, run_seed


def test_blobstore_scenario_holds_over_seeds() -> None:
    results = check_seeds("blobstore", range(1, 11))
    assert sum(r.faults for r in results) > 0


@pytest.mark.parametrize(
    ("mechanism", "symptom"),
    [
        ("sabotage_sync", "that a crash would lose"),
        ("sabotage_repair", "after heal, want"),
    ],
)
def test_blobstore_checker_bites(mechanism: str, symptom: str) -> None:
    scenario = get_scenario("blobstore")
    for seed in range(1, 11):
        result = run_seed(scenario, seed, setup=lambda sim: sim.data.__setitem__(mechanism, True))
        if any(symptom in v for v in result.violations):
            return
    pytest.fail(f"switching off {mechanism} went unnoticed for 10 seeds")


def test_blobstore_on_real_swim_membership_holds() -> None:
    check_seeds("blobstore-swim", range(1, 4))
