"""The chaos run on real processes in network namespaces (short versions; the long run is
``nox -s chaos``). Skipped only where namespaces cannot be created; in CI (root) they run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from dspot_spotify.chaos.netns import can_create_namespaces

WHY = can_create_namespaces()
if WHY is not None and os.environ.get("CI"):
    raise RuntimeError(f"the chaos tests must run in CI, but: {WHY}")
pytestmark = pytest.mark.skipif(WHY is not None, reason=f"chaos run impossible here: {WHY}")


def chaos(out: Path, *args: str) -> tuple[int, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "dspot_spotify.chaos", "--out", str(out), *args],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    summary = out / "summary.md"
    text = proc.stdout + proc.stderr + (summary.read_text() if summary.exists() else "")
    return proc.returncode, text


def test_short_run_passes_every_check(tmp_path: Path) -> None:
    """3 nodes, 1 gateway, 60 s under every fault: every check passes, and what the run
    made is gone afterwards."""
    code, text = chaos(tmp_path, "--nodes", "3", "--gateways", "1", "--duration", "60")
    assert code == 0, text
    assert "passed (seed 1)" in text
    for name in ("summary.md", "history.jsonl", "timeline.png", "run.log"):
        assert (tmp_path / name).stat().st_size > 0
    leftovers = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert "dsc-" not in "".join(
        line for line in leftovers.splitlines() if line.split("-")[1:2] == [str(os.getpid())]
    )


def test_a_node_acknowledging_before_sync_fails_the_run(tmp_path: Path) -> None:
    """Sabotage: uploads acknowledged before W copies are synced, and kill -9 in between,
    lose acknowledged songs; the run must fail and say how to rerun it.

    A song is lost only if the node that acknowledged it is killed within the write-behind
    delay (a write-behind whose replica died is retried on the others). With a 3 s delay
    seed 3 once lost nothing, and in one CI run neither seed 3 nor 4 did; the delay is now
    10 s (seeds 3 to 6 each caught it by hand), and seed 4 still runs when seed 3 passes:
    the sabotage must fail one of the two."""
    sabotage_fails_one_seed(
        tmp_path,
        (3, 4),
        ("--nodes", "3", "--gateways", "1", "--duration", "45", "--heal-bound", "30"),
        ("--nemesis", "kill"),
        sabotage="ack-before-sync",
        check="every download byte-identical",
    )


def test_a_gateway_forwarding_no_positions_fails_the_run(tmp_path: Path) -> None:
    """Sabotage: the gateways forward no log positions. Clients that send none (curl, a
    Subsonic app) read older state than they saw acknowledged once a node falls behind
    (cut off by a partition, but still reached by the gateway); the session check is fatal
    and fails the run.

    Whether a read lands on a node while it is behind depends on real timing: seed 1 caught
    it in every run but one seen (a CI run where no node fell behind at a read), so a second
    seed runs when the first one passes; the sabotage must fail one of the two."""
    sabotage_fails_one_seed(
        tmp_path,
        (1, 2),
        ("--nodes", "3", "--gateways", "1", "--duration", "60", "--heal-bound", "30"),
        ("--nemesis", "partition", "--clients", "rest-plain,rest-plain,subsonic,subsonic"),
        sabotage="no-log-positions",
        check="read-your-writes and monotonic reads",
    )


def sabotage_fails_one_seed(
    tmp_path: Path,
    seeds: tuple[int, ...],
    *args: tuple[str, ...],
    sabotage: str,
    check: str,
) -> None:
    """Run the harness with ``args`` and ``--sabotage`` under each seed in turn until one
    fails; it must fail on ``check`` and say how to rerun it. Whether a sabotage bites in a
    given seed depends on real timing, so a second seed runs when the first passes."""
    texts = []
    for seed in seeds:
        code, text = chaos(
            tmp_path / f"seed{seed}",
            *(a for group in args for a in group),
            *("--seed", str(seed), "--sabotage", sabotage),
        )
        if code != 0:
            assert code == 1, text
            assert f"FAIL  {check}" in text
            assert f"FAILED (seed {seed}); rerun with:" in text
            assert f"--sabotage {sabotage}" in text
            return
        texts.append(text)
    raise AssertionError("no seed caught the sabotage:\n" + "\n".join(texts))
