"""Machine-readable results: every ``bench_*.py`` takes ``--json PATH`` and writes one of these.

The document is what ``report.py`` turns into ``docs/benchmarks/report.md`` and its plots::

    {"bench": "http", "title": "...", "date": "2026-11-27T23:10:00Z",
     "machine": {"line": "machine: ...", "cpu": ..., "cores": ..., "system": ..., "python": ...,
                 "load": 1.23},
     "args": {...the script's options...},
     "tables": [{"title": "...", "columns": ["server", "MiB/s", ...], "rows": [[...], ...],
                 "plot": {"x": 0, "y": [1], "ylabel": "MiB/s", "log": false} | null,
                 "note": "..."}],
     "targets": [{"text": "download >= 0.4x nginx", "met": true | false | null}],
     "notes": ["..."]}

A table's first columns name what was measured and the peer measured in the same run sits in
another row of the same table, so a figure is never shown without its peer.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import platform
from pathlib import Path
from typing import Any

from _machine import machine_line


def add_json_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--json PATH`` (write the figures there as well as printing them)."""
    parser.add_argument(
        "--json", metavar="PATH", default=None, help="also write the figures as JSON to PATH"
    )


def machine() -> dict[str, Any]:
    """The machine the run is on, as a dict (and the one-line form every script prints)."""
    return {
        "line": machine_line(),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "load": round(os.getloadavg()[0], 2),
    }


class Results:
    """The figures of one run of one benchmark script, collected while it prints them."""

    def __init__(self, bench: str, title: str, args: argparse.Namespace) -> None:
        self.doc: dict[str, Any] = {
            "bench": bench,
            "title": title,
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "machine": machine(),
            "args": {k: v for k, v in vars(args).items() if k != "json"},
            "tables": [],
            "targets": [],
            "notes": [],
        }
        self.path: str | None = getattr(args, "json", None)

    def table(
        self,
        title: str,
        columns: list[str],
        rows: list[list[Any]],
        *,
        plot: dict[str, Any] | None = None,
        note: str | None = None,
    ) -> None:
        """Add a table; ``plot`` = ``{"x": col, "y": [cols], "ylabel": str}`` draws a bar chart."""
        self.doc["tables"].append(
            {"title": title, "columns": columns, "rows": rows, "plot": plot, "note": note}
        )

    def target(self, text: str, met: bool | None) -> None:
        """A target from the issue and whether this run met it (None: not measured)."""
        self.doc["targets"].append({"text": text, "met": met})

    def note(self, text: str) -> None:
        self.doc["notes"].append(text)

    def example_missing(self, module: str) -> bool:
        """Whether ``module`` of the example service cannot be imported; if so, says so, notes
        it in the document and writes it (the benchmark then stops)."""
        try:
            importlib.import_module(module)
        except ImportError as e:
            print(f"skipping: the example service is not installed ({e})")
            self.note("Not run: the example service is not installed.")
            self.write()
            return True
        return False

    def write(self) -> None:
        """Write the document to ``--json PATH`` (nothing when the option was not given)."""
        if self.path:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            Path(self.path).write_text(json.dumps(self.doc, indent=2, default=str) + "\n")
