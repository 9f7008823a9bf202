"""The documentation's code runs.

Fenced ``python`` blocks in ``docs/`` whose first line is ``# docs-example: KIND`` are
executed here:

* ``scenario`` (``docs/concepts/simulation.md``): concatenated into the module ``sim_notes``,
  as the page tells readers to save it; its scenario must hold over a few seeds.
* ``pytest`` (same page): executed as a test module next to it; every ``test_*`` function
  in it must pass.
* ``run`` (any page): a standalone program, executed in an empty temporary directory.
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
