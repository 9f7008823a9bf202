"""The verdict of a chaos run and what it writes under ``--out``: ``summary.md`` (the
findings, the faults, the operations per client), ``history.jsonl`` (written as the run
goes) and ``timeline.png`` (operations per client over time, faults shaded)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
from dspot.history import Operation, Outcome, Report, ViolationKind

from dspot_spotify.chaos.nemesis import Fault

if TYPE_CHECKING:
    from dspot_spotify.chaos.final import Convergence
    from dspot_spotify.chaos.settings import Settings

__all__ = ["Finding", "assess", "write"]


@attrs.frozen
class Finding:
    name: str
    ok: bool
    fatal: bool
    text: str


def kind_of(client: str) -> str:
    """A client's kind, from its name ``cN-KIND`` (``cN-KIND@GATEWAY`` for a kind that keeps
    its gateway)."""
    name = client.partition("@")[0]
    return name.split("-", 1)[1] if "-" in name else name


def assess(
    *,
    settings: Settings,
    ops: Sequence[Operation],
    history: Report,
    catalogs: Mapping[str, Mapping[str, str]],
    convergence: Convergence,
    bad_downloads: Sequence[str],
    deaths: Mapping[str, list[tuple[float, int]]],
    alive: Mapping[str, bool],
    exit_codes: Mapping[str, int | None],
    errors: Sequence[str],
    session_kinds: Mapping[str, str],
) -> list[Finding]:
    def show(kinds: Sequence[ViolationKind], only: set[str] | None = None) -> tuple[int, str]:
        found = [
            v for k in kinds for v in history.of(k) if only is None or kind_of(v.client) in only
        ]
        lines = "; ".join(f"{v.client} {v.key[:24]}: {v.message}" for v in found[:5])
        return len(found), lines

    out = []
    n, text = show([ViolationKind.LOST_WRITE])
    out.append(
        Finding(
            "no acknowledged write lost",
            n == 0,
            True,
            text or f"{history.writes_acknowledged} acknowledged writes all in the final state",
        )
    )
    n, text = show([ViolationKind.NEVER_WRITTEN, ViolationKind.FAILED_WRITE_SEEN])
    out.append(
        Finding(
            "no read of a state never written",
            n == 0,
            True,
            text or f"{history.reads_checked} values read, each written",
        )
    )
    session = [ViolationKind.READ_YOUR_WRITES, ViolationKind.MONOTONIC_READS]
    n, text = show(session)
    out.append(
        Finding(
            f"read-your-writes and monotonic reads, every client ({', '.join(session_kinds)})",
            n == 0,
            True,
            text or "no read older than the client's writes or reads",
        )
    )
    wrong = [
        f"{op.client} at {op.invoke:.1f} s: {op.detail.get('bytes')} bytes"
        for op in ops
        if op.name == "download" and op.ok and op.detail.get("got") != op.detail.get("song")
    ]
    downloads = sum(1 for op in ops if op.name == "download" and op.ok)
    out.append(
        Finding(
            "every download byte-identical",
            not wrong and not bad_downloads,
            True,
            "; ".join([*wrong, *bad_downloads][:5])
            or f"{downloads} downloads during the run and every song after it",
        )
    )
    same = len({tuple(sorted(c.items())) for c in catalogs.values()}) == 1
    out.append(
        Finding(
            "after heal, every node has the same catalog and R copies of every song",
            convergence.converged and same,
            True,
            f"converged in {convergence.seconds:.1f} s (bound {settings.heal_bound:g} s), "
            f"R = {convergence.replication}, {len(next(iter(catalogs.values()), {}))} songs"
            if convergence.converged and same
            else f"positions {convergence.positions}, "
            f"under-replicated {convergence.under_replicated}, "
            f"catalogs {'equal' if same else 'differ'}",
        )
    )
    bad_exit = {k: v for k, v in exit_codes.items() if v not in (0, None)}
    dead = {k: v for k, v in alive.items() if not v}
    out.append(
        Finding(
            "no process died except by the nemesis",
            not deaths and not dead and not bad_exit,
            True,
            f"unasked deaths {dict(deaths)}, down at the end {sorted(dead)}, "
            f"exit statuses {bad_exit}"
            if deaths or dead or bad_exit
            else "every exit was a kill -9 by the nemesis; clean SIGTERM exits at the end",
        )
    )
    writes_ok = sum(1 for op in ops if op.writes and op.ok)
    idle = sorted({op.client for op in ops} - {op.client for op in ops if op.ok})
    out.append(
        Finding(
            "the workload made progress, every client",
            writes_ok > 0 and not idle,
            True,
            f"{writes_ok} acknowledged writes of "
            f"{sum(1 for op in ops if op.writes)}"
            + (f"; no operation succeeded for {idle}" if idle else ""),
        )
    )
    out.append(
        Finding(
            "the harness ran cleanly",
            not errors,
            True,
            "; ".join(errors[:5]) or "no client or nemesis errors",
        )
    )
    return out


def write(
    out: Path,
    *,
    settings: Settings,
    findings: Sequence[Finding],
    ops: Sequence[Operation],
    faults: Sequence[Fault],
    history: Report,
    span: tuple[float, float, float],
) -> None:
    lines = [
        "# Chaos run",
        "",
        f"`{' '.join(settings.argv) or '(defaults)'}` — seed {settings.seed}, "
        f"{settings.nodes} nodes, {settings.gateways} gateways, nemesis "
        f"{','.join(settings.nemesis) or 'none'}, clients {', '.join(settings.clients)}"
        + (f", **sabotage {', '.join(settings.sabotage)}**" if settings.sabotage else ""),
        "",
        f"Workload from {span[0]:.1f} s, faults healed at {span[1]:.1f} s, run over at "
        f"{span[2]:.1f} s.",
        "",
        "| check | result | detail |",
        "|---|---|---|",
    ]
    for f in findings:
        verdict = "pass" if f.ok else ("**FAIL**" if f.fatal else "reported")
        lines.append(f"| {f.name} | {verdict} | {f.text.replace('|', '/')} |")
    lines += ["", "## Operations", "", "| client | ok | failed | unknown |", "|---|---|---|---|"]
    per: dict[str, Counter[str]] = {}
    for op in ops:
        per.setdefault(op.client, Counter())[op.outcome.value] += 1
    for client, c in sorted(per.items()):
        lines.append(f"| {client} | {c['ok']} | {c['failed']} | {c['unknown']} |")
    names = Counter(op.name for op in ops)
    lines += ["", "By kind: " + ", ".join(f"{k} {v}" for k, v in sorted(names.items())), ""]
    lines += ["Violations by kind: " + ", ".join(f"{k} {v}" for k, v in history.counts().items())]
    lines += ["", "## Faults", ""]
    for fault in faults:
        end = f"{fault.end:7.2f}" if fault.end is not None else "   open"
        lines.append(f"    {fault.start:7.2f} - {end} s  {fault.kind:9} {fault.what}")
    (out / "summary.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    plot(out / "timeline.png", ops, faults, span)


_COLOURS = {"partition": "tab:red", "flaky": "tab:orange", "kill": "black", "pause": "tab:purple"}
_OUTCOME = {Outcome.OK: "tab:green", Outcome.FAILED: "tab:blue", Outcome.UNKNOWN: "tab:red"}


def plot(
    path: Path, ops: Sequence[Operation], faults: Sequence[Fault], span: tuple[float, float, float]
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    clients = sorted({op.client for op in ops})
    row = {c: i for i, c in enumerate(clients)}
    fig, (ax, fx) = plt.subplots(
        2,
        1,
        figsize=(12, 2 + 0.5 * len(clients) + 0.25 * len(faults) ** 0.5 * 4),
        sharex=True,
        gridspec_kw={"height_ratios": [max(1, len(clients)), 2]},
    )
    for outcome, colour in _OUTCOME.items():
        xs = [op.invoke for op in ops if op.outcome is outcome]
        ys = [
            row[op.client] + (0.15 if op.writes else -0.15) for op in ops if op.outcome is outcome
        ]
        ax.scatter(xs, ys, s=4, c=colour, label=outcome.value, marker="|")
    ax.set_yticks(range(len(clients)), clients)
    ax.legend(loc="upper right", fontsize=7, ncol=3)
    ax.set_title("operations per client (writes above, reads below the line)", fontsize=9)
    kinds = sorted({f.kind for f in faults})
    for f in faults:
        end = f.end if f.end is not None else span[1]
        ax.axvspan(f.start, end, color=_COLOURS.get(f.kind, "grey"), alpha=0.06)
        y = kinds.index(f.kind)
        fx.plot(
            [f.start, end],
            [y, y],
            lw=6,
            color=_COLOURS.get(f.kind, "grey"),
            alpha=0.6,
            solid_capstyle="butt",
        )
    fx.set_yticks(range(len(kinds)), kinds)
    fx.axvline(span[1], color="green", ls="--", lw=1)
    fx.set_xlabel("seconds since start (dashed: everything healed)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
