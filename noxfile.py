"""Task runner: one session per job. ``nox -s lint types docs tests`` is what CI runs."""

from __future__ import annotations

import glob

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["lint", "types", "docs", "frontend", "tests"]

PYTHON = "3.11"


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The test suite (fast: the long seed sweeps live in the ``sim`` session)."""
    session.install("-e", ".[test]", *_examples())
    session.run("pytest", "-q", *session.posargs)


def _examples() -> list[str]:
    """Editable installs of the example service, once it has a package."""
    return ["-e", "examples/spotify[test]"] if glob.glob("examples/spotify/pyproject.toml") else []


@nox.session(python=False)
def frontend(session: nox.Session) -> None:
    """The React frontend: install the locked packages, type-check and build it into
    ``frontend/dist`` (the gateway serves it; the end-to-end tests need it), run Vitest."""
    with session.chdir("frontend"):
        session.run("npm", "ci", "--no-audit", "--no-fund", external=True)
        session.run("npm", "run", "build", external=True)
        session.run("npm", "test", external=True)


@nox.session(python=PYTHON)
def sim(session: nox.Session) -> None:
    """The long seed sweep: every built-in scenario over 200 seeds, plus a replay check."""
    session.install("-e", ".", *_examples())
    seeds = session.posargs[0] if session.posargs else "1-200"
    listing = session.run("dspot", "sim", "--list", silent=True)
    names = [line.split()[0] for line in str(listing).splitlines() if line.strip()]
    if _examples():
        names.append("dspot_spotify.simulation:scenario")
    for name in names:
        session.run("dspot", "sim", "--scenario", name, "--seeds", seeds)
        session.run("dspot", "sim", "--scenario", name, "--seeds", "1-3", "--check-determinism")


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install("ruff>=0.6")
    paths = ["src", "tests", "benchmarks", "examples", "noxfile.py"]
    session.run("ruff", "check", *paths)
    session.run("ruff", "format", "--check", *paths)


@nox.session(python=PYTHON)
def types(session: nox.Session) -> None:
    """mypy --strict over the library."""
    session.install("-e", ".[dev]", *_examples())
    session.run("mypy")
    if _examples():
        session.run("mypy", "examples/spotify/src/dspot_spotify")


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Build the documentation site (strict: warnings are errors)."""
    session.install("-e", ".", "mkdocs-material", "mkdocstrings[python]")
    session.run("mkdocs", "build", "--strict")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Run every benchmark; each prints its figures next to a peer measured in the same run.

    nginx and wrk come from Debian (``apt-get install nginx wrk``); a missing peer is
    skipped with a note.
    """
    session.install("-e", ".[test,bench]")
    for script in sorted(glob.glob("benchmarks/bench_*.py")):
        session.log(f"== {script}")
        session.run("python", script)


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """The main job until the example service lands: a simulated cluster under faults."""
    session.install("-e", ".")
    session.run("dspot", "sim", "--list")
    session.run("dspot", "sim", "--scenario", "rpc", "--seeds", "1-20", "--check-determinism")
