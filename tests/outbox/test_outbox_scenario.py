"""The ``outbox`` scenario holds over seeds, and its checker bites when a mechanism is off."""

from __future__ import annotations

import pytest

from dspot.sim import check_seeds, get_scenario, run_seed


def test_outbox_scenario_holds_over_seeds() -> None:
    results = check_seeds("outbox", range(1, 11))
    assert sum(r.faults for r in results) > 0


@pytest.mark.parametrize(
    ("mechanism", "symptom"),
    [
        ("sabotage_inbox", "applied 2 times"),
        ("sabotage_sync_before_send", "never kept"),
    ],
)
def test_outbox_checker_bites(mechanism: str, symptom: str) -> None:
    scenario = get_scenario("outbox")
    for seed in range(1, 11):
        result = run_seed(scenario, seed, setup=lambda sim: sim.data.__setitem__(mechanism, True))
        if any(symptom in v for v in result.violations):
            return
    pytest.fail(f"switching off {mechanism} went unnoticed for 10 seeds")
