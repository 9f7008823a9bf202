"""Every built-in scenario in CI: a seed sweep, and replay from another checkout.

For each scenario registered in :mod:`dspot.sim.scenarios`: ``SWEEP`` seeds must pass (seeds
no other test uses: each scenario's own tests start at seed 1), and the first two must give
the same trace hashes when run again in a fresh interpreter, with another
``PYTHONHASHSEED``, from a copy of the library at another path (a second checkout: trace
hashes must not depend on where the code lives). A last test does the same for a run that
fails, whose violation carries a traceback.

Time budget: about two minutes on two unloaded cores for all of it (each scenario's sweep
is 20 seeds of its default length, in two processes; ``nox -s sim`` runs the long 200-seed
sweeps).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import dspot
from dspot.sim import check_seeds, combined_trace_hash, scenarios

SWEEP = range(101, 121)
REPLAYED = SWEEP[:2]


@pytest.fixture(scope="module")
def elsewhere(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of ``src/dspot`` under another, longer path: the second checkout."""
    root = tmp_path_factory.mktemp("second") / "a" / "different" / "checkout" / "src"
    shutil.copytree(
        Path(dspot.__file__).parent, root / "dspot", ignore=shutil.ignore_patterns("__pycache__")
    )
    return root


def _dspot_sim(where: Path, hashseed: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(where), PYTHONHASHSEED=hashseed)
    code = "import dspot, sys; assert dspot.__file__.startswith(sys.argv[1]), dspot.__file__"
    subprocess.run([sys.executable, "-c", code, str(where)], env=env, check=True, cwd=where)
    return subprocess.run(
        [sys.executable, "-m", "dspot", "sim", *args],
        env=env,
        cwd=where,
        capture_output=True,
        text=True,
        check=False,
    )


def _summary_hash(out: subprocess.CompletedProcess[str]) -> str:
    last = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
    assert " trace-hash " in last, out.stdout[-2000:] + out.stderr[-2000:]
    return last.rsplit(" ", 1)[-1]


@pytest.mark.parametrize("name", sorted(scenarios()))
def test_scenario_sweep_passes_and_replays_from_another_checkout(
    name: str, elsewhere: Path
) -> None:
    results = check_seeds(name, SWEEP, jobs=2)
    assert sum(r.faults for r in results) > 0
    here = combined_trace_hash([r.trace_hash for r in results[: len(REPLAYED)]])
    seeds = f"{REPLAYED[0]}-{REPLAYED[-1]}"
    out = _dspot_sim(elsewhere, "4242", "--scenario", name, "--seeds", seeds)
    assert out.returncode == 0, out.stdout[-2000:]
    assert _summary_hash(out) == here


_CRASHING = textwrap.dedent(
    """
    import anyio
    from dspot.sim import FaultConfig, Scenario

    async def node(env, sim, *, task_status):
        task_status.started(None)
        await anyio.sleep(1)
        raise RuntimeError(f"{env.node_id} gives up")

    def scenario():
        return Scenario(
            name="crashing", description="", node=node, check=lambda sim: None,
            nodes=2, duration=2, faults=FaultConfig(kinds=()),
        )
    """
)


def test_a_failing_run_replays_from_another_checkout(elsewhere: Path, tmp_path: Path) -> None:
    """A node that dies leaves a violation with its traceback in the trace: the file
    names in it must not make the hash depend on the checkout's path."""
    hashes = []
    for where, hashseed in ((elsewhere, "1"), (tmp_path / "another" / "place", "2")):
        if not (where / "dspot").exists():
            shutil.copytree(elsewhere / "dspot", where / "dspot")
        (where / "crashing_scenario.py").write_text(_CRASHING)
        out = _dspot_sim(where, hashseed, "--scenario", "crashing_scenario:scenario")
        assert out.returncode == 1
        assert "died of an exception" in out.stdout and "gives up" in out.stdout
        hashes.append(_summary_hash(out))
    assert hashes[0] == hashes[1]


def test_seeds_checked_in_processes_match_one_process_and_name_a_failing_seed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    one = check_seeds("rpc", range(1, 4), duration=5.0)
    two = check_seeds("rpc", range(1, 4), duration=5.0, jobs=2)
    assert [(r.seed, r.trace_hash) for r in two] == [(r.seed, r.trace_hash) for r in one]
    (tmp_path / "crashing_scenario.py").write_text(_CRASHING)
    monkeypatch.syspath_prepend(str(tmp_path))  # the workers import it by name
    with pytest.raises(AssertionError, match=r"seed 2: 2 violations.*gives up"):
        check_seeds("crashing_scenario:scenario", [2, 3], jobs=2)
