"""The built-in ``rpc`` scenario: clean over many seeds, and its checker bites."""

from __future__ import annotations

import pytest

from dspot.rpc import RpcMechanism
from dspot.sim import check_seeds, get_scenario, run_seed


def test_rpc_scenario_holds_over_seeds() -> None:
    results = check_seeds("rpc", range(1, 21))
    assert sum(r.faults for r in results) > 0


@pytest.mark.parametrize("mechanism", [RpcMechanism.DEDUPE, RpcMechanism.BOOT_CHECK])
def test_checker_catches_requests_running_twice_without_at_most_once(
    mechanism: RpcMechanism,
) -> None:
    scenario = get_scenario("rpc")
    found: list[str] = []
    for seed in range(1, 31):
        result = run_seed(scenario, seed, disabled={mechanism})
        found += [v for v in result.violations if "ran 2 times" in v or "ran 3 times" in v]
        if found:
            break
    assert found, f"switching off {mechanism} went unnoticed for 30 seeds"
