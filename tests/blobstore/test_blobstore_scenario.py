"""The ``blobstore`` scenario holds over seeds (its checkers' sabotages are run by
``tests/sim/test_checks.py``)."""

from __future__ import annotations

from dspot.sim import check_seeds


def test_blobstore_scenario_holds_over_seeds() -> None:
    results = check_seeds("blobstore", range(1, 11), jobs=2)
    assert sum(r.faults for r in results) > 0


def test_blobstore_on_real_swim_membership_holds() -> None:
    check_seeds("blobstore-swim", range(1, 4))


def test_a_wiped_node_rejoining_into_a_partition_deletes_nothing_alone() -> None:
    """Seed 153: n3, wiped and restarted inside a partition, knew only itself; its delete
    reached no owner yet was acknowledged, and the blob was back after heal."""
    check_seeds("blobstore-swim", [153])


def test_a_delete_during_the_final_read_is_no_violation() -> None:
    """Seed 131 (with the stranger): a client deleted a blob while the end check read it."""
    check_seeds("blobstore-swim", [131])
