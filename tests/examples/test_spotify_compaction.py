"""The service's simulation scenario with log compaction: snapshots are taken and installed
(after a long cut-off, a lost disk, crashes mid-install), every node's catalog equals
replaying the whole history, and the check says so when a snapshot is wrong."""

from __future__ import annotations

import sqlite3

import attrs
import pytest
from dspot_spotify.catalog import snapshot
from dspot_spotify.simulation import scenario
from dspot_spotify.simulation.ground import Ground

from dspot.sim import Simulation, run_seed

SEED = 3


def test_nodes_take_and_install_snapshots_and_end_with_the_history() -> None:
    sims: list[Simulation] = []
    result = run_seed(scenario(), SEED, setup=sims.append)
    assert result.violations == ()
    ground = sims[0].state(Ground)
    counts = ground.snapshots
    assert counts["taken"] >= 50 and counts["restored"] >= 1, counts
    assert len(ground.log_history) >= 100


def test_the_state_check_catches_a_snapshot_without_a_table(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Sabotage: a restore leaves the accounts out. A node that installs a snapshot ends
    without the users the others have, and its catalog is no longer the history replayed."""
    plans = snapshot.read_plans

    def without_users(copy: sqlite3.Connection) -> list[snapshot.CopyPlan]:
        return [p for p in plans(copy) if p.table.name != "users"]

    monkeypatch.setattr(snapshot, "read_plans", without_users)
    violations = run_seed(scenario(), SEED).violations
    assert any(v.startswith("state:") for v in violations), violations


def test_the_state_check_catches_a_restore_one_entry_ahead(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Sabotage: a restore records the position after the snapshot's, so the first entry of
    its tail is skipped as already applied."""
    finish = snapshot.finish_restore

    def ahead(tx: snapshot.Tx, position: snapshot.LogPosition) -> None:
        finish(tx, attrs.evolve(position, seq=position.seq + 1))

    monkeypatch.setattr(snapshot, "finish_restore", ahead)
    violations = run_seed(scenario(), SEED).violations
    assert any(v.startswith("state:") for v in violations), violations
