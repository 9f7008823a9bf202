"""One chaos run: build the network, start the cluster, run the workload under the nemesis,
heal, check, report, and remove everything it made (also on failure, SIGTERM or Ctrl-C)."""

from __future__ import annotations

import json
import secrets
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

import attrs
from dspot.history import ViolationKind, check

from dspot_spotify.chaos import report
from dspot_spotify.chaos.clients import run_clients
from dspot_spotify.chaos.final import final_user_state, node_catalogs, wait_converged
from dspot_spotify.chaos.nemesis import Nemesis
from dspot_spotify.chaos.netns import Topology, sweep
from dspot_spotify.chaos.procs import Cluster
from dspot_spotify.chaos.settings import SESSION_KINDS, Settings
from dspot_spotify.chaos.workload import Library, Recorder

__all__ = ["Settings", "run"]


class _Interrupted(Exception):
    pass


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise _Interrupted(signal.Signals(signum).name)


def run(s: Settings) -> int:
    """The run; 0 if every check passed."""
    s.out.mkdir(parents=True, exist_ok=True)
    log_file = open(s.out / "run.log", "w", encoding="utf-8")  # noqa: SIM115
    t0 = time.monotonic()

    def say(line: str) -> None:
        stamped = f"[{time.monotonic() - t0:7.2f}] {line}"
        print(stamped, flush=True)
        log_file.write(stamped + "\n")
        log_file.flush()

    stale = sweep()
    if stale:
        say(f"removed {len(stale)} namespaces left by earlier runs")
    topo = Topology(secrets.token_hex(3), s.nodes, s.gateways)
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    cluster: Cluster | None = None
    nemesis: Nemesis | None = None
    stop = threading.Event()
    try:
        say(f"network: {s.nodes} nodes, {s.gateways} gateways, namespaces {topo.prefix}*")
        topo.create()
        cluster = Cluster(topo, s.out / "members", t0, sabotage=s.sabotage)
        cluster.start()
        say("cluster up: every node sees a quorum, every gateway every node")
        recorder = Recorder(s.out / "history.jsonl", t0)
        library = Library()
        errors: list[str] = []
        threads = run_clients(
            namespace=topo.hosts["clients"].ns,
            gateway_urls=cluster.gateway_urls(),
            ca=cluster.ca,
            kinds=list(s.clients),
            seed=s.seed,
            recorder=recorder,
            library=library,
            stop=stop,
            errors=errors,
        )
        nemesis = Nemesis(topo, cluster, s.nemesis, s.seed, t0, say)
        work_start = time.monotonic() - t0
        if s.nemesis:
            nemesis.start()
        time.sleep(max(0.0, s.duration - 10.0))
        nemesis.stop() if s.nemesis else None
        heal_at = time.monotonic() - t0
        say("healed: every fault is over; the workload runs on for 10 s")
        time.sleep(10.0)
        stop.set()
        for _, t in threads:
            t.join(timeout=30)
        recorder.close()
        say(f"workload over: {len(recorder.ops)} operations")
        clients = [c for c, _ in threads]
        conv = wait_converged(
            topo.hosts["ops"].ns, cluster.node_urls(), clients[0].name, s.heal_bound
        )
        say(
            f"convergence after {conv.seconds:.1f} s: {conv.converged} "
            f"(positions {conv.positions}, under-replicated {conv.under_replicated})"
        )
        catalogs = node_catalogs(topo.hosts["ops"].ns, cluster.node_urls(), clients[0].name)
        final, bad_downloads = final_user_state(topo.hosts["clients"].ns, clients, library)
        some = next(iter(catalogs.values()))
        for sha in library.songs:
            final[f"song:{sha}"] = some.get(sha)
        # Only what the history wrote: a playlist whose creation timed out was never named.
        written = {k for op in recorder.ops for k in op.writes}
        final = {k: v for k, v in final.items() if k in written}
        history_report = check(recorder.ops, final=final, final_keys=written)
        deaths = {m.name: m.deaths for m in cluster.members.values() if m.deaths}
        alive = {m.name: m.alive() for m in cluster.members.values()}
        codes = cluster.stop()
        findings = report.assess(
            settings=s,
            ops=recorder.ops,
            history=history_report,
            catalogs=catalogs,
            convergence=conv,
            bad_downloads=bad_downloads,
            deaths=deaths,
            alive=alive,
            exit_codes=codes,
            errors=errors + nemesis.errors,
            session_kinds=SESSION_KINDS,
        )
        faults = nemesis.faults
        report.write(
            s.out,
            settings=s,
            findings=findings,
            ops=recorder.ops,
            faults=faults,
            history=history_report,
            span=(work_start, heal_at, time.monotonic() - t0),
        )
        say(f"summary: {s.out / 'summary.md'}; plot: {s.out / 'timeline.png'}")
        failed = [f for f in findings if f.fatal and not f.ok]
        for f in findings:
            say(f"{'PASS' if f.ok else ('FAIL' if f.fatal else 'note')}  {f.name}: {f.text}")
        if failed:
            say(f"FAILED (seed {s.seed}); rerun with: {rerun_command(s)}")
            return 1
        say(f"passed (seed {s.seed})")
        return 0
    except _Interrupted as e:
        say(f"interrupted by {e}; cleaning up")
        return 130
    except Exception as e:
        say(f"the run broke: {e!r} (seed {s.seed}); rerun with: {rerun_command(s)}")
        raise
    finally:
        stop.set()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        with _ignoring_signals():
            if nemesis is not None and s.nemesis:
                nemesis._stop.set()
            if cluster is not None:
                for m in cluster.members.values():
                    if m.alive():
                        m.stop(timeout=5)
            topo.destroy()
            say("network removed")
            log_file.close()


class _ignoring_signals:
    """A second Ctrl-C while cleaning up must not leave namespaces behind."""

    def __enter__(self) -> None:
        self.old = {
            sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)
        }

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self.old.items():
            signal.signal(sig, handler)


def rerun_command(s: Settings) -> str:
    args = s.argv or ("--seed", str(s.seed))
    args = tuple(a for a in args)
    if "--seed" not in args:
        args = (*args, "--seed", str(s.seed))
    return f"{sys.executable} -m dspot_spotify.chaos " + " ".join(args)


def save_settings(s: Settings) -> str:
    return json.dumps(
        attrs.asdict(s, value_serializer=lambda i, a, v: str(v) if isinstance(v, Path) else v)
    )


_ = ViolationKind
