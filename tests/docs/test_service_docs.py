"""The generated parts of the documentation: the REST API page and the benchmark report.

* ``docs/_hooks/openapi.py`` must render every path and method of the service's OpenAPI
  document (so the page cannot silently drop an endpoint), with parameters, responses and
  working links to the schemas.
* ``benchmarks/report.py`` must turn the benchmarks' JSON results into a page that shows
  every figure with its peers, the machine and the date, and a plot where one is asked for.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def hook() -> ModuleType:
    return load(ROOT / "docs" / "_hooks" / "openapi.py", "openapi_hook")


@pytest.fixture
def report() -> ModuleType:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        return load(ROOT / "benchmarks" / "report.py", "bench_report")
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


def test_api_page_lists_every_operation_of_the_document(hook: ModuleType) -> None:
    doc = hook.load_document()
    markdown = hook.render(doc)
    expected = {
        (method.upper(), path)
        for path, item in doc["paths"].items()
        for method in hook.METHODS
        if method in item
    }
    rendered = set(re.findall(r"^### `([A-Z]+) (\S+)`$", markdown, re.MULTILINE))
    assert rendered == expected
    assert ("GET", "/api/cluster") in rendered
    # Every schema link points at a rendered schema heading.
    anchors = set(re.findall(r"\{#(schema-[a-z0-9_-]+)\}", markdown))
    links = set(re.findall(r"\(#(schema-[a-z0-9_-]+)\)", markdown))
    assert links and links <= anchors


def test_api_page_renders_parameters_bodies_and_responses(hook: ModuleType) -> None:
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1"},
        "paths": {
            "/api/songs/{song_id}": {
                "patch": {
                    "tags": ["songs"],
                    "summary": "Edit a song",
                    "parameters": [
                        {"name": "song_id", "in": "path", "required": True, "schema": {}},
                        {"$ref": "#/components/parameters/Position"},
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/x/Song"}}},
                    },
                    "responses": {"200": {"description": "the | song"}},
                }
            },
            "/healthz": {"get": {"summary": "health", "security": [], "responses": {}}},
        },
        "components": {
            "parameters": {
                "Position": {"name": "X-Log-Position", "in": "header", "schema": {"type": "string"}}
            },
            "schemas": {
                "Song": {
                    "type": "object",
                    "required": ["id"],
                    "properties": {"id": {"type": "string"}, "genres": {"type": "array"}},
                }
            },
        },
    }
    markdown = hook.render(doc)
    assert "## Songs" in markdown and "## Other" in markdown
    assert "### `PATCH /api/songs/{song_id}`" in markdown
    assert "| `X-Log-Position` | header | no | `string` |" in markdown  # $ref resolved
    assert "Request body (required): `application/json` [`Song`](#schema-song)" in markdown
    assert "| 200 | the \\| song |  |" in markdown  # pipes escaped inside tables
    assert "No authentication." in markdown
    assert "### `Song` {#schema-song}" in markdown
    assert "| `genres` | array of any | no |  |" in markdown


def test_api_page_marker_is_required(hook: ModuleType) -> None:
    from mkdocs.exceptions import PluginError

    class File:
        src_uri = hook.PAGE

    class Page:
        file = File()

    with pytest.raises(PluginError, match="marker"):
        hook.on_page_markdown("# REST API\n", page=Page(), config=None, files=None)
    assert (ROOT / "docs" / hook.PAGE).read_text().count(hook.MARKER) == 1


def result(bench: str, **extra: Any) -> dict[str, Any]:
    return {
        "bench": bench,
        "title": f"{bench} title",
        "date": "2026-11-27T23:00:00Z",
        "machine": {"line": "machine: x86_64, 2 cores, Linux, Python 3.11.7", "load": 1.5},
        "args": {"size_mib": 16, "servers": ["a", "b"], "quick": False},
        "tables": [],
        "targets": [],
        "notes": [],
        **extra,
    }


def test_report_shows_figures_with_peers_machine_and_targets(
    report: ModuleType, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    table = {
        "title": "download",
        "columns": ["server", "MiB/s", "vs nginx"],
        "rows": [["gateway", 151, 0.34], ["nginx", 444, 1.0], ["node | plain", 261, None]],
        "plot": None,
        "note": "same file",
    }
    (data / "gateway.json").write_text(
        json.dumps(
            result(
                "gateway",
                tables=[table],
                targets=[{"text": "gateway >= 0.4x nginx", "met": False}],
            )
        )
    )
    (data / "sim.json").write_text(json.dumps(result("sim")))
    (data / "http.json").write_text(
        json.dumps({"bench": "http", "title": "bench_http.py", "failed": "exit status 1"})
    )
    out = tmp_path / "out"
    page = report.write_report(report.load(data), out, "python benchmarks/report.py").read_text()
    # Known benchmarks in their fixed order, failures reported rather than dropped.
    assert page.index("## sim title") < page.index("bench_http.py") < page.index("## gateway")
    assert "`bench_http.py` did not finish: exit status 1." in page
    assert "| gateway | 151 | 0.34 |" in page and "| nginx | 444 | 1.00 |" in page
    assert "| node \\| plain | 261 | - |" in page
    assert "machine: x86_64, 2 cores, Linux, Python 3.11.7" in page
    assert "2026-11-27T23:00:00Z" in page and "load average 1.5" in page
    assert "`bench_gateway.py --size-mib 16 --servers a b`" in page
    assert "- gateway >= 0.4x nginx: **not met**" in page
    assert "*same file*" in page
    assert not list(out.glob("*.png"))


def test_report_draws_the_plots_a_table_asks_for(report: ModuleType, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    table = {
        "title": "RPC",
        "columns": ["measure", "dspot", "raw"],
        "rows": [["calls/s", 3692, 12899], ["MB/s", 1026, None]],
        "plot": {"x": 0, "y": [1, 2], "ylabel": "per second", "log": True},
    }
    (data / "rpc.json").write_text(json.dumps(result("rpc", tables=[table])))
    out = tmp_path / "out"
    stale = out / "old-1.png"
    out.mkdir()
    stale.write_bytes(b"x")
    page = report.write_report(report.load(data), out, "cmd").read_text()
    assert "![RPC](rpc-1.png)" in page
    png = (out / "rpc-1.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 1000
    assert not stale.exists()  # plots of an earlier report are removed
