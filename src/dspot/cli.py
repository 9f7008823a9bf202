"""The ``dspot`` command line: ``dspot sim`` runs simulation scenarios over seeds."""

from __future__ import annotations

import argparse
import logging
import random
import sys
import time
from collections.abc import Iterator, Sequence
from typing import IO

import attrs

from dspot.sim import (
    combined_trace_hash,
    get_scenario,
    rerun_command,
    run_seed,
    scenarios,
    trace_hash_in_subprocess,
)
from dspot.sim._scenario import in_processes


def _seed_range(text: str) -> range:
    start, sep, end = text.partition("-")
    try:
        if not sep:
            return range(int(start), int(start) + 1)
        first, last = int(start), int(end)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected A-B, got {text!r}") from None
    if last < first:
        raise argparse.ArgumentTypeError(f"empty seed range {text!r}")
    return range(first, last + 1)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dspot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sim = sub.add_parser("sim", help="run a simulation scenario over seeds")
    sim.add_argument("--list", action="store_true", help="list the registered scenarios")
    sim.add_argument("--scenario", help="scenario name, or module:function returning one")
    seeds = sim.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, help="run one seed")
    seeds.add_argument("--seeds", type=_seed_range, help="run seeds A-B (inclusive)")
    sim.add_argument("--nodes", type=int, help="cluster size (default: the scenario's)")
    sim.add_argument("--duration", type=float, help="virtual seconds per seed")
    hostile = sim.add_mutually_exclusive_group()
    hostile.add_argument(
        "--stranger",
        dest="stranger",
        action="store_true",
        default=None,
        help="run the hostile stranger (garbage to every listener) even if the scenario has none",
    )
    hostile.add_argument(
        "--no-stranger", dest="stranger", action="store_false", help="run without the stranger"
    )
    sim.add_argument(
        "--check-determinism",
        action="store_true",
        help="rerun each seed in a fresh process with another PYTHONHASHSEED and compare hashes",
    )
    sim.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="run seeds in N processes (output and trace hash are the same for any N)",
    )
    sim.add_argument("--trace", metavar="FILE", help="write the trace (JSON lines) of the seeds")
    sim.add_argument("-v", "--verbose", action="store_true", help="log node activity")
    return parser


@attrs.frozen
class _SeedRun:
    """What to run for one seed; picklable, so a worker process can run it."""

    scenario: str
    seed: int
    nodes: int | None
    duration: float | None
    check_determinism: bool
    stranger: bool | None = None


@attrs.frozen
class _SeedOutcome:
    seed: int
    violations: int
    faults: int
    events: int
    trace_hash: str
    report: tuple[str, ...]
    """Lines for stdout: violations and the rerun command, or a determinism failure."""


def _run_seed(job: _SeedRun, trace_out: IO[str] | None = None) -> _SeedOutcome:
    result = run_seed(
        get_scenario(job.scenario),
        job.seed,
        nodes=job.nodes,
        duration=job.duration,
        trace_out=trace_out,
        stranger=job.stranger,
    )
    report: list[str] = []
    violations = len(result.violations)
    if job.check_determinism:
        other = str(random.SystemRandom().randrange(1, 2**32))
        again = trace_hash_in_subprocess(
            job.scenario, job.seed, job.nodes, job.duration, other, job.stranger
        )
        if again != result.trace_hash:
            violations += 1
            report.append(
                f"seed {job.seed}: NOT deterministic: trace hash {result.trace_hash} here, "
                f"{again} in a process with PYTHONHASHSEED={other}"
            )
    if result.violations:
        report.append(f"seed {job.seed}: {len(result.violations)} violations")
        report += [f"  - {message[:400]}" for message in result.violations[:5]]
        cmd = rerun_command(job.scenario, job.seed, job.nodes, job.duration, job.stranger)
        report.append(f"  rerun: {cmd}")
    return _SeedOutcome(
        job.seed, violations, result.faults, result.events, result.trace_hash, tuple(report)
    )


def _worker_init(verbose: bool) -> None:
    _configure_logging(verbose)


def _outcomes(
    jobs: list[_SeedRun], workers: int, trace_out: IO[str] | None
) -> Iterator[_SeedOutcome]:
    """Outcomes in seed order, whether the seeds run here or in ``workers`` processes."""
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield _run_seed(job, trace_out)
        return
    verbose = logging.getLogger().isEnabledFor(logging.INFO)
    yield from in_processes(_run_seed, jobs, workers, initializer=_worker_init, initargs=(verbose,))


def _sim(args: argparse.Namespace) -> int:
    if args.list:
        for name, scenario in scenarios().items():
            print(f"{name:12} {scenario.description}")
        return 0
    if not args.scenario:
        print("dspot sim: --scenario NAME is required (see --list)", file=sys.stderr)
        return 2
    try:
        scenario = get_scenario(args.scenario)
    except (KeyError, ImportError, AttributeError, TypeError) as exc:
        print(f"dspot sim: {exc}", file=sys.stderr)
        return 2
    if args.jobs < 1:
        print("dspot sim: --jobs must be at least 1", file=sys.stderr)
        return 2
    if args.trace and args.jobs > 1:
        print("dspot sim: --trace writes one file from one process: use --jobs 1", file=sys.stderr)
        return 2
    seeds = range(args.seed, args.seed + 1) if args.seed is not None else args.seeds or range(1, 2)
    jobs = [
        _SeedRun(
            args.scenario, seed, args.nodes, args.duration, args.check_determinism, args.stranger
        )
        for seed in seeds
    ]
    out = open(args.trace, "w", encoding="utf-8") if args.trace else None  # noqa: SIM115
    violations = faults = 0
    hashes: list[str] = []
    started = time.perf_counter()
    try:
        for outcome in _outcomes(jobs, args.jobs, out):
            violations += outcome.violations
            faults += outcome.faults
            hashes.append(outcome.trace_hash)
            for line in outcome.report:
                print(line)
            if not outcome.report and len(seeds) > 1:
                elapsed = time.perf_counter() - started
                print(
                    f"seed {outcome.seed}: ok, {outcome.faults} faults, {outcome.events} events, "
                    f"hash {outcome.trace_hash} ({elapsed:.1f}s elapsed)",
                    file=sys.stderr,
                )
    finally:
        if out is not None:
            out.close()
    print(
        f"scenario {scenario.name}: {len(seeds)} seeds, {violations} violations, "
        f"{faults} faults injected, trace-hash {combined_trace_hash(hashes)}"
    )
    return 1 if violations else 0


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.ERROR,
        format="%(levelname)s %(name)s %(message)s",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _configure_logging(getattr(args, "verbose", False))
    if args.command == "sim":
        return _sim(args)
    return 2
