"""The documentation's code runs.

Fenced ``python`` blocks in ``docs/`` whose first line is ``# docs-example: KIND`` are
executed here:

* ``scenario`` (``docs/concepts/simulation.md``): concatenated into the module ``sim_notes``,
  as the page tells readers to save it; its scenario must hold over a few seeds.
* ``pytest`` (same page): executed as a test module next to it; every ``test_*`` function
  in it must pass.
* ``run`` (any page): a standalone program, executed in an empty temporary directory.
* ``tutorial``, ``tutorial-sim`` and ``tutorial-test`` (``docs/tutorial.md``): the service,
  concatenated into the module ``kvdemo``; its simulation scenario, into ``kvdemo_sim``; and
  a test module whose ``test_*`` functions must pass (3 seeds without violations, and the
  sabotage run with some). The service must stay under 100 lines, as the page says.
* ``tutorial-run`` (same page): the service over real TCP on 127.0.0.1 (ports 7300-7303),
  executed like ``run`` with ``kvdemo`` importable.
"""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from dspot.sim import run_seed

DOCS = Path(__file__).resolve().parents[2] / "docs"
SIMULATION_PAGE = "concepts/simulation.md"
TUTORIAL_PAGE = "tutorial.md"
FENCE = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def examples(page: str, kind: str) -> list[str]:
    """The code of every block on ``page`` marked ``# docs-example: kind``, in page order."""
    text = (DOCS / page).read_text(encoding="utf-8")
    return [code for code in FENCE.findall(text) if code.startswith(f"# docs-example: {kind}\n")]


def run_blocks() -> list[tuple[str, int]]:
    found = []
    for path in sorted(DOCS.rglob("*.md")):
        page = path.relative_to(DOCS).as_posix()
        found += [(page, i) for i in range(len(examples(page, "run")))]
    return found


def load_module(name: str, code: str) -> types.ModuleType:
    """Execute ``code`` as module ``name`` (left in ``sys.modules`` for imports)."""
    module = types.ModuleType(name)
    module.__file__ = f"<docs example {name}>"
    sys.modules[name] = module
    exec(compile(code, module.__file__, "exec"), module.__dict__)
    return module


@pytest.fixture
def sim_notes() -> Iterator[types.ModuleType]:
    blocks = examples(SIMULATION_PAGE, "scenario")
    assert blocks, f"no '# docs-example: scenario' block in {SIMULATION_PAGE}"
    try:
        yield load_module("sim_notes", "\n".join(blocks))
    finally:
        sys.modules.pop("sim_notes", None)


@pytest.fixture
def tutorial() -> Iterator[types.ModuleType]:
    """``kvdemo`` and ``kvdemo_sim`` from the tutorial; yields ``kvdemo_sim``."""
    names = {"kvdemo": "tutorial", "kvdemo_sim": "tutorial-sim"}
    try:
        for name, kind in names.items():
            blocks = examples(TUTORIAL_PAGE, kind)
            assert blocks, f"no '# docs-example: {kind}' block in {TUTORIAL_PAGE}"
            module = load_module(name, "\n".join(blocks))
        yield module
    finally:
        for name in names:
            sys.modules.pop(name, None)


def test_tutorial_service_is_under_100_lines() -> None:
    blocks = examples(TUTORIAL_PAGE, "tutorial")
    lines = [line for code in blocks for line in code.splitlines()[1:]]  # minus the markers
    assert len(lines) < 100
    text = (DOCS / TUTORIAL_PAGE).read_text(encoding="utf-8")
    assert f"**{len(lines)} lines**" in text, f"the page should say the service is {len(lines)}"


def test_tutorial_tests_pass(tutorial: types.ModuleType) -> None:
    assert tutorial.build() is tutorial.SCENARIO
    blocks = examples(TUTORIAL_PAGE, "tutorial-test")
    assert blocks, f"no '# docs-example: tutorial-test' block in {TUTORIAL_PAGE}"
    try:
        module = load_module("test_kvdemo", "\n".join(blocks))
        tests = [getattr(module, name) for name in vars(module) if name.startswith("test_")]
        assert len(tests) == 2, "the tutorial's test module: the scenario, and the sabotage"
        for test in tests:
            test()
    finally:
        sys.modules.pop("test_kvdemo", None)


def test_tutorial_runs_over_tcp(
    tutorial: types.ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    [code] = examples(TUTORIAL_PAGE, "tutorial-run")
    monkeypatch.chdir(tmp_path)
    try:
        load_module("kvdemo_tcp", code)
    finally:
        sys.modules.pop("kvdemo_tcp", None)
    assert (tmp_path / "data" / "audit").is_dir()


def test_example_scenario_holds_over_seeds(sim_notes: types.ModuleType) -> None:
    results = [run_seed(sim_notes.SCENARIO, seed) for seed in (1, 2, 3)]
    assert [r.violations for r in results] == [(), (), ()]
    assert sum(r.faults for r in results) > 0
    assert sim_notes.build() is sim_notes.SCENARIO


def test_example_pytest_module_passes(sim_notes: types.ModuleType) -> None:
    blocks = examples(SIMULATION_PAGE, "pytest")
    assert blocks, f"no '# docs-example: pytest' block in {SIMULATION_PAGE}"
    try:
        module = load_module("test_sim_notes", "\n".join(blocks))
        tests = [getattr(module, name) for name in vars(module) if name.startswith("test_")]
        assert tests, "the pytest example defines no test"
        for test in tests:
            test()
    finally:
        sys.modules.pop("test_sim_notes", None)


def test_every_page_has_its_runnable_examples() -> None:
    pages = {page for page, _ in run_blocks()}
    assert {
        "concepts/transport.md",
        "concepts/rpc.md",
        "concepts/disk.md",
        "concepts/membership.md",
        "concepts/tokenring.md",
        "concepts/registry.md",
        "concepts/http.md",
    } <= pages


@pytest.mark.parametrize(("page", "index"), run_blocks())
def test_runnable_example(
    page: str, index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    name = f"docs_example_{index}"
    try:
        load_module(name, examples(page, "run")[index])
    finally:
        sys.modules.pop(name, None)
