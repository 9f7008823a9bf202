"""Griffe extension for the docs build: render dspot's reST-flavoured docstrings as Markdown.

dspot's docstrings are prose written for Sphinx-style readers: ``:class:`~dspot.x.Y```
roles and ``Text::`` literal-block markers. mkdocstrings renders docstrings as Markdown, where
those would show up verbatim. This extension rewrites them when the docs are built (the
source is untouched):

* ``:role:`~a.b.C``` becomes a link titled ``C`` (``a.b.C`` without the tilde). Links are
  *optional* autorefs: a target that is not rendered anywhere (``anyio.EndOfStream``, a
  relative name that cannot be resolved) degrades to plain code instead of failing the
  strict build.
* Relative targets (``:meth:`crash```) are resolved against the enclosing class and module.
* A line ending in ``::`` before an indented block loses one colon (Markdown has no
  literal-block marker; the indented block is already code).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?P<role>[a-z]+):`(?P<tilde>~?)(?P<target>[^`<>]+?)(?:\(\))?`")
_LITERAL = re.compile(r"::$", re.MULTILINE)


def _resolve(obj: griffe.Object, target: str) -> str:
    """The absolute path of ``target`` as seen from ``obj`` (unchanged if not found)."""
    if target.startswith("dspot."):
        return target
    head, _, rest = target.partition(".")
    scope: Any = obj
    while scope is not None:
        member = scope.members.get(head) if hasattr(scope, "members") else None
        if member is not None:
            path = member.target_path if member.is_alias else member.path
            return f"{path}.{rest}" if rest else path
        scope = scope.parent
    return target


def _rewrite(obj: griffe.Object, text: str) -> str:
    def link(match: re.Match[str]) -> str:
        target = match["target"].strip()
        title = target.rsplit(".", 1)[-1] if match["tilde"] else target
        if match["role"] in ("func", "meth"):
            title += "()"
        identifier = _resolve(obj, target)
        return f'<autoref identifier="{identifier}" optional><code>{title}</code></autoref>'

    text = _ROLE.sub(link, text)
    return _LITERAL.sub(":", text)


def _walk(obj: griffe.Object) -> None:
    if obj.docstring is not None:
        obj.docstring.value = _rewrite(obj, obj.docstring.value)
    for member in obj.members.values():
        if not member.is_alias:
            _walk(member)  # type: ignore[arg-type]


class RstRoles(griffe.Extension):
    """Rewrite reST roles and literal markers in every docstring, once the package is loaded
    (so relative names can be resolved against the whole tree)."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        _walk(pkg)
