"""mkdocs hook: the example service's REST API page, generated from its OpenAPI document.

``docs/service/api.md`` holds the marker ``<!-- openapi -->``; at build time it is replaced
by one section per path and method (summary, description, parameters, request body,
responses) and the component schemas, rendered from the document that
``dspot_spotify.api.openapi`` generates from the routes the router serves and the attrs
classes they answer. The page therefore cannot drift from the code: a test checks that the
document's paths and methods equal the router's, and that real answers fit its schemas.

The build fails (``PluginError``) when the document cannot be produced, rather than publishing
a page without the API.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

MARKER = "<!-- openapi -->"
PAGE = "service/api.md"
METHODS = ("get", "head", "post", "put", "patch", "delete", "options")
MODULE = "dspot_spotify.api.openapi"


def load_document() -> dict[str, Any]:
    """The service's OpenAPI document as a dict."""
    try:
        module = importlib.import_module(MODULE)
    except ModuleNotFoundError as e:
        src = Path(__file__).resolve().parents[2] / "examples" / "spotify" / "src"
        if e.name == "dspot_spotify" and str(src) not in sys.path:
            sys.path.insert(0, str(src))
            return load_document()
        raise PluginError(
            f"docs/{PAGE} needs {MODULE} (pip install -e examples/spotify): {e}"
        ) from e
    doc = module.document()
    if not isinstance(doc, dict) or "paths" not in doc:
        raise PluginError(f"{MODULE}.document() returned no OpenAPI document")
    return doc


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def schema_text(schema: dict[str, Any] | None) -> str:
    """A short type expression for a JSON schema (``Song``, ``array of Song``, ``string``)."""
    if not schema:
        return ""
    if "$ref" in schema:
        name = _ref_name(schema["$ref"])
        return f"[`{name}`](#schema-{name.lower()})"
    for key in ("oneOf", "anyOf"):
        if key in schema:
            return " or ".join(schema_text(s) for s in schema[key])
    if "allOf" in schema:
        return " and ".join(schema_text(s) for s in schema["allOf"])
    kind = schema.get("type", "object" if "properties" in schema else "")
    if isinstance(kind, list):
        kind = " or ".join(str(k) for k in kind)
    if kind == "array":
        return f"array of {schema_text(schema.get('items')) or 'any'}"
    text = f"`{kind}`" if kind else "any"
    if "enum" in schema:
        text += " (" + ", ".join(f"`{v}`" for v in schema["enum"]) + ")"
    if "const" in schema:
        text += f" (`{schema['const']}`)"
    if "format" in schema:
        text += f" ({schema['format']})"
    return text


def cell(text: Any) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def resolve(doc: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    """Follow a ``$ref`` to ``#/components/...`` once."""
    ref = item.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return item
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node.get(part, {}) if isinstance(node, dict) else {}
    return node if isinstance(node, dict) else item


def render_operation(doc: dict[str, Any], path: str, method: str, op: dict[str, Any]) -> list[str]:
    out = [f"### `{method.upper()} {path}`", ""]
    if op.get("summary"):
        out += [cell(op["summary"]), ""]
    if op.get("description"):
        out += [op["description"].strip(), ""]
    security = op.get("security", doc.get("security"))
    if security == []:
        out += ["No authentication.", ""]
    elif security:
        out += ["Authentication: " + ", ".join(f"`{k}`" for s in security for k in s) + ".", ""]
    params = [resolve(doc, p) for p in op.get("parameters", [])]
    if params:
        out += ["| parameter | in | required | type | description |", "|---|---|---|---|---|"]
        for p in params:
            out.append(
                f"| `{p.get('name', '')}` | {p.get('in', '')} | "
                f"{'yes' if p.get('required') else 'no'} | {schema_text(p.get('schema'))} | "
                f"{cell(p.get('description', ''))} |"
            )
        out.append("")
    body = op.get("requestBody")
    if body:
        body = resolve(doc, body)
        content = body.get("content", {})
        kinds = ", ".join(
            f"`{mime}`" + (f" {schema_text(c.get('schema'))}" if c.get("schema") else "")
            for mime, c in content.items()
        )
        required = " (required)" if body.get("required") else ""
        desc = f" — {cell(body['description'])}" if body.get("description") else ""
        out += [f"Request body{required}: {kinds}{desc}", ""]
    responses = op.get("responses", {})
    if responses:
        out += ["| status | description | content |", "|---|---|---|"]
        for status, resp in responses.items():
            resp = resolve(doc, resp)
            content = ", ".join(
                f"`{mime}`" + (f" {schema_text(c.get('schema'))}" if c.get("schema") else "")
                for mime, c in (resp.get("content") or {}).items()
            )
            out.append(f"| {status} | {cell(resp.get('description', ''))} | {content} |")
        out.append("")
    return out


def render_schema(name: str, schema: dict[str, Any]) -> list[str]:
    out = [f"### `{name}` {{#schema-{name.lower()}}}", ""]
    if schema.get("description"):
        out += [schema["description"].strip(), ""]
    props = schema.get("properties") or {}
    if not props:
        return [*out, f"Type: {schema_text(schema) or 'any'}.", ""]
    required = set(schema.get("required", []))
    out += ["| field | type | required | description |", "|---|---|---|---|"]
    for field, sub in props.items():
        out.append(
            f"| `{field}` | {schema_text(sub)} | {'yes' if field in required else 'no'} | "
            f"{cell(sub.get('description', ''))} |"
        )
    return [*out, ""]


def render(doc: dict[str, Any]) -> str:
    """The markdown for the whole document, grouped by the operations' first tag."""
    info = doc.get("info", {})
    lines = [
        f"Generated from the service's OpenAPI {doc.get('openapi', '')} document "
        f"(*{cell(info.get('title', ''))}*, version {cell(info.get('version', ''))}), "
        "also served at `GET /api/openapi.json`.",
        "",
    ]
    groups: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, item in doc.get("paths", {}).items():
        for method in METHODS:
            op = item.get(method)
            if isinstance(op, dict):
                tag = (op.get("tags") or ["other"])[0]
                groups.setdefault(tag, []).append((path, method, op))
    for tag, ops in groups.items():
        lines += [f"## {tag.capitalize()}", ""]
        for path, method, op in ops:
            lines += render_operation(doc, path, method, op)
    schemas = doc.get("components", {}).get("schemas", {})
    if schemas:
        lines += ["## Schemas", ""]
        for name, schema in schemas.items():
            lines += render_schema(name, schema)
    return "\n".join(lines)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    if MARKER not in markdown:
        raise PluginError(f"docs/{PAGE} lost its {MARKER} marker")
    return markdown.replace(MARKER, render(load_document()))
