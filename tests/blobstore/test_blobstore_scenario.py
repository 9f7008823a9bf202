"""The ``blobstore`` scenario holds over seeds (its checkers' sabotages are run by
``tests/sim/test_checks.py``)."""

from __future__ import annotations

from dspot.sim import check_seeds


def test_blobstore_scenario_holds_over_seeds() -> None:
    results = check_seeds("blobstore", range(1, 11))
    assert sum(r.faults for r in results) > 0


def test_blobstore_on_real_swim_membership_holds() -> None:
    check_seeds("blobstore-swim", range(1, 4))
