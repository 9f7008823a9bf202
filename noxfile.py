"""Task runner: one session per job. ``nox -s lint types docs frontend tests`` is what CI runs."""

from __future__ import annotations

import glob
import os

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["lint", "types", "docs", "frontend", "tests"]

PYTHON = "3.11"


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The test suite (fast: the long seed sweeps live in the ``sim`` session).

    A few tests need more than Python packages: the end-to-end tests the built web frontend
    (``nox -s frontend``) and Chromium (``apt-get install chromium``), the check of the
    frontend's generated API types its npm packages (``cd frontend && npm ci``). Without
    them those tests are skipped, and the summary says what is missing; on CI (``CI=true``)
    they fail instead.
    """
    session.install("-e", ".[test]", *_examples())
    for missing in _missing_for_tests():
        session.warn(f"{missing}: the tests that need it will be skipped")
    # The slowest tests, so the run's time budget (25 minutes on two cores) stays visible.
    session.run("pytest", "-q", "--durations=25", *session.posargs)


def _missing_for_tests() -> list[str]:
    """What the suite's optional prerequisites lack on this machine."""
    import os
    import shutil

    missing = []
    if not os.path.exists("frontend/dist/index.html"):
        missing.append("no built frontend (nox -s frontend)")
    if not os.path.exists("frontend/node_modules/.bin/openapi-typescript"):
        missing.append("no frontend npm packages (cd frontend && npm ci)")
    if shutil.which("chromium") is None:
        missing.append("no chromium on PATH (apt-get install chromium)")
    return missing


@nox.session(python=PYTHON)
def screenshots(session: nox.Session) -> None:
    """Refresh the documentation's screenshots: run the end-to-end tests (they need the
    built frontend and Chromium, and fail without them here) and copy what they saved in
    ``build/screenshots`` to ``docs/assets/screenshots``."""
    import shutil
    from pathlib import Path

    session.install("-e", ".[test]", *_examples())
    shots = Path("build/screenshots")
    shutil.rmtree(shots, ignore_errors=True)
    session.run("pytest", "-q", "tests/e2e", *session.posargs, env={"CI": "true"})
    for png in sorted(shots.glob("*.png")):
        shutil.copy2(png, Path("docs/assets/screenshots") / png.name)
        session.log(f"refreshed docs/assets/screenshots/{png.name}")


def _examples() -> list[str]:
    """Editable installs of the example service, once it has a package."""
    return ["-e", "examples/spotify[test]"] if glob.glob("examples/spotify/pyproject.toml") else []


@nox.session(python=False)
def frontend(session: nox.Session) -> None:
    """The React frontend: install the locked packages, type-check and build it into
    ``frontend/dist`` (the gateway serves it; the end-to-end tests need it), run Vitest."""
    with session.chdir("frontend"):
        session.run("npm", "ci", "--no-audit", "--no-fund", external=True)
        session.run("npm", "run", "format:check", external=True)
        session.run("npm", "test", external=True)
        session.run("npm", "run", "build", external=True)


@nox.session(python=PYTHON)
def sim(session: nox.Session) -> None:
    """The long seed sweep: every built-in scenario over 200 seeds, plus a replay check.

    ``nox -s sim -- 1-50`` sweeps other seeds; seeds run in one process per core
    (``DSPOT_SIM_JOBS`` overrides), which changes neither the output nor the trace hash.
    """
    session.install("-e", ".", *_examples())
    seeds = session.posargs[0] if session.posargs else "1-200"
    jobs = os.environ.get("DSPOT_SIM_JOBS", str(os.cpu_count() or 1))
    listing = session.run("dspot", "sim", "--list", silent=True)
    names = [line.split()[0] for line in str(listing).splitlines() if line.strip()]
    if _examples():
        names.append("dspot_spotify.simulation:scenario")
    for name in names:
        session.run("dspot", "sim", "--scenario", name, "--seeds", seeds, "--jobs", jobs)
        session.run(
            "dspot",
            "sim",
            "--scenario",
            name,
            "--seeds",
            "1-3",
            "--check-determinism",
            "--jobs",
            jobs,
        )


@nox.session(python=PYTHON)
def chaos(session: nox.Session) -> None:
    """The chaos run on real processes in network namespaces (root; ``ip``, ``tc``, ``nft``):
    ``nox -s chaos -- --nodes 5 --duration 300`` (arguments go to ``python -m
    dspot_spotify.chaos``; the report lands in ``chaos-out/``)."""
    session.install("-e", ".[test]", *_examples())
    session.run("python", "-m", "dspot_spotify.chaos", *session.posargs)


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
    session.install("-e", ".", "-e", "examples/spotify", "mkdocs-material", "mkdocstrings[python]")
    session.run("mkdocs", "build", "--strict")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Run every benchmark, then write the report the site includes.

    Each ``benchmarks/bench_*.py`` prints its figures next to a peer measured in the same run
    and writes them to ``docs/benchmarks/data/NAME.json``; ``benchmarks/report.py`` turns those
    into ``docs/benchmarks/report.md`` and its plots. ``nox -s bench -- --quick`` runs reduced
    sizes; ``-- --only http gateway`` runs some. nginx, curl and wrk come from Debian
    (``apt-get install nginx curl wrk``); a missing peer is skipped with a note.
    """
    session.install("-e", ".[test,bench]", *_examples())
    session.run("python", "benchmarks/report.py", "--run", *session.posargs)


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """The music service on this machine: 3 nodes behind the HTTPS gateway, with demo music.

    Builds the web frontend first when npm is installed (else the gateway serves the API and
    a page saying how to build it). Options go to ``dspot-spotify up``:
    ``nox -s demo -- --nodes 5 --port 9443``. Ctrl-C stops it; ``spotify-data/`` keeps the
    data (and the development CA) for the next run.
    """
    import os
    import shutil

    session.install("-e", ".", "-e", "examples/spotify")
    args = list(session.posargs)
    if shutil.which("npm") and os.path.exists("frontend/package.json"):
        with session.chdir("frontend"):
            stamp, lock = "node_modules/.package-lock.json", "package-lock.json"  # npm writes stamp
            if not os.path.exists(stamp) or os.path.getmtime(stamp) < os.path.getmtime(lock):
                session.run("npm", "ci", "--no-audit", "--no-fund", external=True)
            session.run("npm", "run", "build", external=True)
        if "--frontend" not in args:
            args += ["--frontend", "frontend/dist"]
    else:
        session.log("npm not found: skipping the web frontend (the API is served all the same)")
    session.run("dspot-spotify", "up", *args)
