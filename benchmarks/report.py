"""Turn the benchmarks' JSON results into the site's report page and its plots.

    python benchmarks/report.py [--run [--quick] [--only NAME ...]] [--data DIR] [--out DIR]

With ``--run`` it first runs every ``benchmarks/bench_*.py`` with ``--json DATA/NAME.json``
(``--quick`` passes reduced sizes so the whole set takes minutes, not an hour); a script that
fails is reported as failed, the others still run. Then it reads every ``DATA/*.json`` (see
``_results.py`` for the format) and writes ``OUT/report.md`` with one section per benchmark —
the machine it ran on, the date, the options, each table with the peer measured in the same
run, a bar chart per table that asks for one, and the targets met or missed.

Defaults: ``DATA = docs/benchmarks/data``, ``OUT = docs/benchmarks`` (the site includes
``report.md``; ``nox -s bench`` runs every benchmark and then this script).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

#: Reduced sizes for ``--quick``: a first look in minutes on a small machine.
QUICK: dict[str, list[str]] = {
    "sim": ["--virtual", "10"],
    "rpc": ["--small", "3000", "--big", "50"],
    "membership": ["--seeds", "10", "--nodes", "5", "--loss", "0", "0.01"],
    "tokenring": ["--entries", "300"],
    "logmemory": ["--entries", "1000", "4000"],
    "http": ["--size-mib", "16", "--seconds", "2", "--idle", "200", "--rounds", "1"],
    "blobstore": ["--mib", "16", "--repair-mib", "64"],
    "gateway": ["--size-mib", "16", "--songs", "1000", "--seconds", "5"],
    "scale": ["--quick"],
}

#: Order of the sections (others follow alphabetically).
ORDER = [
    "sim",
    "rpc",
    "membership",
    "tokenring",
    "logmemory",
    "http",
    "blobstore",
    "gateway",
    "scale",
]


def run_benchmarks(data: Path, quick: bool, only: list[str] | None, timeout: float) -> None:
    """Run each ``bench_*.py`` writing ``data/NAME.json``; failures are recorded, not fatal."""
    data.mkdir(parents=True, exist_ok=True)
    for script in sorted(HERE.glob("bench_*.py")):
        name = script.stem.removeprefix("bench_")
        if only and name not in only:
            continue
        out = data / f"{name}.json"
        cmd = [sys.executable, script.name, "--json", str(out)]
        if quick:
            cmd += QUICK.get(name, [])
        print(f"== {' '.join(cmd[1:])}", flush=True)
        started = time.monotonic()
        try:
            proc = subprocess.run(cmd, cwd=HERE, timeout=timeout, check=False)
            failed = f"exit status {proc.returncode}" if proc.returncode else None
        except subprocess.TimeoutExpired:
            failed = f"no result after {timeout:g} s"
        if failed:
            print(f"!! {script.name}: {failed}", flush=True)
            out.write_text(
                json.dumps({"bench": name, "title": script.name, "failed": failed}, indent=2) + "\n"
            )
        else:
            print(f"   ({time.monotonic() - started:.0f} s)", flush=True)


def load(data: Path) -> list[dict[str, Any]]:
    docs = [json.loads(p.read_text()) for p in sorted(data.glob("*.json"))]

    def key(doc: dict[str, Any]) -> tuple[int, str]:
        name = str(doc.get("bench", ""))
        return (ORDER.index(name) if name in ORDER else len(ORDER), name)

    return sorted(docs, key=key)


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value).replace("|", "\\|")


def markdown_table(table: dict[str, Any]) -> list[str]:
    cols = table["columns"]
    lines = ["| " + " | ".join(cell(c) for c in cols) + " |"]
    lines.append("|" + "|".join(["---"] + ["--:"] * (len(cols) - 1)) + "|")
    for row in table["rows"]:
        lines.append("| " + " | ".join(cell(v) for v in row) + " |")
    return lines


def plot(table: dict[str, Any], path: Path, title: str) -> bool:
    """Draw ``table`` as a grouped bar chart into ``path``; False when there is nothing to draw."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spec = table["plot"]
    xs = spec["x"] if isinstance(spec["x"], list) else [spec["x"]]
    rows = [r for r in table["rows"] if any(isinstance(r[y], int | float) for y in spec["y"])]
    if not rows:
        return False
    labels = [", ".join(str(r[x]) for x in xs) for r in rows]
    series = spec["y"]
    width = 0.8 / len(series)
    fig_width = max(6.0, 0.9 * len(rows) * len(series) + 2)
    fig, ax = plt.subplots(figsize=(fig_width, 3.6))
    try:
        for i, y in enumerate(series):
            values = [r[y] if isinstance(r[y], int | float) else 0 for r in rows]
            positions = [j + (i - (len(series) - 1) / 2) * width for j in range(len(rows))]
            bars = ax.bar(positions, values, width, label=table["columns"][y])
            ax.bar_label(bars, labels=[cell(v) for v in values], fontsize=7, padding=2)
        rotate = len(rows) > 3
        ax.set_xticks(
            range(len(rows)),
            labels,
            rotation=20 if rotate else 0,
            ha="right" if rotate else "center",
        )
        ax.set_ylabel(spec.get("ylabel", ""))
        if spec.get("log"):
            ax.set_yscale("log")
        if len(series) > 1:
            ax.legend(fontsize=8)
        ax.set_title(textwrap.fill(title, int(fig_width * 11)), fontsize=9)
        ax.margins(y=0.15)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)
    return True


def write_report(docs: list[dict[str, Any]], out: Path, command: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.png"):
        old.unlink()
    lines = [
        "# Benchmark report",
        "",
        f"Generated by `{command}` from the JSON results in `docs/benchmarks/data/`. What each",
        "benchmark measures and its options are described on the [benchmarks](../benchmarks.md)",
        "page. Every figure sits next to the peer measured **in the same run on the same",
        "machine**; compare figures within a table, not across machines or runs.",
        "",
    ]
    if "--quick" in command:
        lines += [
            '!!! note "A quick run"',
            "    Sections were run with **reduced sizes** (`--quick`: fewer seeds, entries,",
            "    rounds and bytes than the defaults) unless their options line says otherwise,",
            "    on a machine shared with other work. They show what the report looks like;",
            "    run `nox -s bench` on your own machine for figures to compare.",
            "",
        ]
    machines = sorted({d["machine"]["line"] for d in docs if "machine" in d})
    dates = sorted(d["date"] for d in docs if "date" in d)
    if machines:
        lines += ["Machines:", ""] + [f"- `{m}`" for m in machines] + [""]
    if dates:
        lines += [f"Runs between {dates[0]} and {dates[-1]} (UTC).", ""]
    for doc in docs:
        lines += [f"## {doc.get('title', doc['bench'])}", ""]
        if "failed" in doc:
            lines += [f"`bench_{doc['bench']}.py` did not finish: {doc['failed']}.", ""]
            continue
        m = doc["machine"]
        args = " ".join(
            f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in doc["args"].items()
            if v is not None and v is not False and not k.startswith("_")
        )
        lines += [
            f"`bench_{doc['bench']}.py {args}` — run {doc['date']} on `{m['line']}`, "
            f"load average {m['load']} at the start.",
            "",
        ]
        for i, table in enumerate(doc["tables"]):
            lines += [f"**{table['title']}**", "", *markdown_table(table), ""]
            if table.get("note"):
                lines += [f"*{table['note']}*", ""]
            if table.get("plot"):
                png = out / f"{doc['bench']}-{i + 1}.png"
                if plot(table, png, table["title"]):
                    lines += [f"![{table['title']}]({png.name})", ""]
        if doc.get("targets"):
            lines += ["Targets:", ""]
            for t in doc["targets"]:
                mark = {True: "met", False: "**not met**", None: "not measured"}[t["met"]]
                lines.append(f"- {t['text']}: {mark}")
            lines.append("")
        for note in doc.get("notes", []):
            lines += [note, ""]
    report = out / "report.md"
    report.write_text("\n".join(lines).rstrip() + "\n")
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="store_true", help="run the benchmarks first")
    parser.add_argument("--quick", action="store_true", help="with --run: reduced sizes")
    parser.add_argument("--only", nargs="*", help="with --run: these benchmarks (sim, rpc, ...)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per benchmark")
    parser.add_argument("--data", type=Path, default=ROOT / "docs" / "benchmarks" / "data")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks")
    args = parser.parse_args()
    if args.run:
        run_benchmarks(args.data, args.quick, args.only, args.timeout)
    command = "python benchmarks/report.py" + (" --run" if args.run else "")
    command += " --quick" if args.quick else ""
    report = write_report(load(args.data), args.out, command)
    print(f"wrote {report}")


if __name__ == "__main__":
    main()
