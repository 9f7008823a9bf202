"""``python -m dspot_spotify.chaos``: one chaos run (see the package docstring)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from dspot_spotify.chaos.nemesis import KINDS
from dspot_spotify.chaos.netns import can_create_namespaces
from dspot_spotify.chaos.run import Settings, run
from dspot_spotify.chaos.settings import SABOTAGES
from dspot_spotify.chaos.workload import CLIENT_KINDS


def _list(choices: Sequence[str]) -> Callable[[str], tuple[str, ...]]:
    def parse(text: str) -> tuple[str, ...]:
        items = tuple(x.strip() for x in text.split(",") if x.strip())
        if items == ("all",):
            return tuple(choices)
        if items == ("none",):
            return ()
        bad = [x for x in items if x not in choices]
        if bad:
            raise argparse.ArgumentTypeError(f"unknown {bad}; choose from {', '.join(choices)}")
        return items

    return parse


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m dspot_spotify.chaos", description=__doc__)
    p.add_argument("--nodes", type=int, default=5, help="node hosts (default 5)")
    p.add_argument("--gateways", type=int, default=2, choices=(1, 2), help="gateway hosts (2)")
    p.add_argument("--duration", type=float, default=300.0, help="seconds of workload (300)")
    p.add_argument("--seed", type=int, default=1, help="seeds the nemesis and the clients")
    p.add_argument(
        "--nemesis",
        type=_list(KINDS),
        default=KINDS,
        help=f"comma-separated faults: {','.join(KINDS)}, all or none (all)",
    )
    p.add_argument(
        "--clients",
        type=_list(CLIENT_KINDS),
        default=("rest-session", "rest-session", "rest-plain", "subsonic"),
        help="comma-separated client kinds, one per client",
    )
    p.add_argument("--out", type=Path, default=Path("chaos-out"), help="output directory")
    p.add_argument(
        "--heal-bound",
        type=float,
        default=120.0,
        help="seconds after heal to converge with R copies (120)",
    )
    p.add_argument(
        "--sabotage",
        action="append",
        default=[],
        choices=sorted(SABOTAGES),
        help="switch on a deliberate bug the checks must catch: "
        + "; ".join(f"{k}: {v}" for k, v in SABOTAGES.items()),
    )
    args = p.parse_args(args_list)
    if args.nodes < 3 or args.duration < 20:
        p.error("--nodes must be at least 3 and --duration at least 20")
    why = can_create_namespaces()
    if why is not None:
        print(f"chaos: {why}", file=sys.stderr)
        return 2
    return run(
        Settings(
            nodes=args.nodes,
            gateways=args.gateways,
            duration=args.duration,
            seed=args.seed,
            nemesis=args.nemesis,
            clients=args.clients,
            out=args.out,
            heal_bound=args.heal_bound,
            sabotage=tuple(args.sabotage),
            argv=tuple(args_list),
        )
    )


if __name__ == "__main__":
    sys.exit(main())
