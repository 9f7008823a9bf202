"""The ``dspot`` command line: ``dspot sim`` runs simulation scenarios over seeds."""

from __future__ import annotations

import argparse
import logging
import random
import sys
import time
from collections.abc import Sequence

from dspot.sim import get_scenario, rerun_command, run_seed, scenarios, trace_hash_in_subprocess


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
    sim.add_argument("--trace", metavar="FILE", help="write the trace (JSON lines) of the seeds")
    sim.add_argument("-v", "--verbose", action="store_true", help="log node activity")
    return parser


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
    seeds = range(args.seed, args.seed + 1) if args.seed is not None else args.seeds or range(1, 2)
    out = open(args.trace, "w", encoding="utf-8") if args.trace else None  # noqa: SIM115
    violations = faults = 0
    last_hash = ""
    started = time.perf_counter()
    try:
        for seed in seeds:
            result = run_seed(
                scenario,
                seed,
                nodes=args.nodes,
                duration=args.duration,
                trace_out=out,
                stranger=args.stranger,
            )
            violations += len(result.violations)
            faults += result.faults
            last_hash = result.trace_hash
            if args.check_determinism:
                other = str(random.SystemRandom().randrange(1, 2**32))
                again = trace_hash_in_subprocess(
                    args.scenario, seed, args.nodes, args.duration, other, args.stranger
                )
                if again != result.trace_hash:
                    violations += 1
                    print(
                        f"seed {seed}: NOT deterministic: trace hash {result.trace_hash} here, "
                        f"{again} in a process with PYTHONHASHSEED={other}"
                    )
            if result.violations:
                print(f"seed {seed}: {len(result.violations)} violations")
                for message in result.violations[:5]:
                    print(f"  - {message[:400]}")
                cmd = rerun_command(args.scenario, seed, args.nodes, args.duration, args.stranger)
                print(f"  rerun: {cmd}")
            elif len(seeds) > 1:
                elapsed = time.perf_counter() - started
                print(
                    f"seed {seed}: ok, {result.faults} faults, {result.events} events, "
                    f"hash {result.trace_hash} ({elapsed:.1f}s elapsed)",
                    file=sys.stderr,
                )
    finally:
        if out is not None:
            out.close()
    print(
        f"scenario {scenario.name}: {len(seeds)} seeds, {violations} violations, "
        f"{faults} faults injected, trace-hash {last_hash}"
    )
    return 1 if violations else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if getattr(args, "verbose", False) else logging.ERROR,
        format="%(levelname)s %(name)s %(message)s",
    )
    if args.command == "sim":
        return _sim(args)
    return 2
