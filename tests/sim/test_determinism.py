"""Replay: one seed, one schedule, one trace hash — in this process and in others."""

from __future__ import annotations

import os
import subprocess
import sys

from dspot.sim import (
    TraceLog,
    combined_trace_hash,
    deterministic_trio,
    get_scenario,
    run_seed,
    scheduler_pinning_available,
    trace_hash_in_subprocess,
)
from dspot.testing import run_with_mock_clock
from tests.helpers.scheduling import tied_wakeup_order


def _tied_wakeup_order(seed: int) -> list[int]:
    with deterministic_trio(seed):
        return tied_wakeup_order(run_with_mock_clock)


def test_trio_still_offers_deterministic_scheduling() -> None:
    # If a trio upgrade removes the private hook, replay is gone: this must fail loudly.
    assert scheduler_pinning_available()


def test_pinned_scheduler_orders_tied_tasks_by_seed() -> None:
    assert _tied_wakeup_order(5) == _tied_wakeup_order(5)
    assert _tied_wakeup_order(5) != _tied_wakeup_order(6)


def test_unpinned_scheduler_is_not_reproducible() -> None:
    """The reason the pinning exists: without it trio shuffles ties differently each run."""

    runs = {tuple(tied_wakeup_order(run_with_mock_clock)) for _ in range(8)}
    assert len(runs) > 1


def test_same_seed_same_trace_hash_in_process() -> None:
    scenario = get_scenario("rpc")
    first = run_seed(scenario, 11, duration=12)
    second = run_seed(scenario, 11, duration=12)
    assert first.trace_hash == second.trace_hash
    assert first.faults > 0
    assert run_seed(scenario, 12, duration=12).trace_hash != first.trace_hash


def test_same_seed_same_trace_hash_across_processes_with_other_hash_seeds() -> None:
    here = run_seed(get_scenario("rpc"), 3, duration=12).trace_hash
    for hashseed in ("1", "987654"):
        assert trace_hash_in_subprocess("rpc", 3, None, 12, hashseed) == here


def test_cli_prints_the_summary_line_and_rerun_command() -> None:
    env = dict(os.environ, PYTHONHASHSEED="0")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "dspot",
            "sim",
            "--scenario",
            "rpc",
            "--seeds",
            "1-2",
            "--duration",
            "10",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    last = out.stdout.strip().splitlines()[-1]
    assert last.startswith("scenario rpc: 2 seeds, 0 violations, ")
    assert " faults injected, trace-hash " in last
    listed = subprocess.run(
        [sys.executable, "-m", "dspot", "sim", "--list"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "rpc" in listed.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "dspot", "sim", "--scenario", "nope"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2 and "unknown scenario" in bad.stderr


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONHASHSEED="0")
    return subprocess.run(
        [sys.executable, "-m", "dspot", "sim", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def test_jobs_change_neither_the_output_nor_the_trace_hash() -> None:
    """Seeds in 1 or 3 worker processes: the same lines in the same order, and a summary
    hash over every seed's trace hash in seed order."""
    args = ("--scenario", "rpc", "--seeds", "1-4", "--duration", "6")
    one, three = _cli(*args, "--jobs", "1"), _cli(*args, "--jobs", "3")
    assert one.returncode == three.returncode == 0, one.stdout + one.stderr + three.stderr
    assert one.stdout == three.stdout
    progress = [line.split(" (")[0] for line in one.stderr.splitlines()]
    assert progress == [line.split(" (")[0] for line in three.stderr.splitlines()]
    scenario = get_scenario("rpc")
    hashes = [run_seed(scenario, seed, duration=6).trace_hash for seed in range(1, 5)]
    assert one.stdout.strip().endswith(f"trace-hash {combined_trace_hash(hashes)}")
    assert (
        _cli("--scenario", "rpc", "--seed", "2", "--duration", "6")
        .stdout.strip()
        .endswith(
            f"trace-hash {hashes[1]}"  # one seed: its own hash, as --check-determinism compares
        )
    )


def test_trio_scheduler_still_replays() -> None:
    """``loop="trio"``: the previous scheduler, kept as a second schedule for any seed."""
    scenario = get_scenario("rpc")
    first = run_seed(scenario, 11, duration=6, loop="trio")
    assert first.trace_hash == run_seed(scenario, 11, duration=6, loop="trio").trace_hash
    assert first.trace_hash != run_seed(scenario, 11, duration=6).trace_hash
    assert first.violations == ()


def test_a_segment_event_hashes_as_the_same_general_event() -> None:
    general, segment = TraceLog(), TraceLog()
    general.record("net.send", conn=3, src="n1", dst="n'2", n=10)
    segment.segment("net.send", 3, "n1", "n'2", 10)
    assert general.hexdigest == segment.hexdigest
    assert general.count == segment.count == 1
