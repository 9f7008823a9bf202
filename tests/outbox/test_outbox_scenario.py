"""The ``outbox`` scenario holds over seeds (its checkers' sabotages are run by
``tests/sim/test_checks.py``)."""

from __future__ import annotations

from dspot.sim import check_seeds


def test_outbox_scenario_holds_over_seeds() -> None:
    results = check_seeds("outbox", range(1, 11))
    assert sum(r.faults for r in results) > 0
