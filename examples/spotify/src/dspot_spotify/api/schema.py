"""JSON Schema (2020-12, as OpenAPI 3.1 uses it) generated from the API's attrs classes.

The classes are the one definition of every JSON shape: the cattrs converter writes and reads
them, and :class:`SchemaBuilder` turns them into ``components/schemas`` of the OpenAPI
document, from which the web frontend's TypeScript types are generated in turn.

* An attrs class becomes a named object schema (``$ref``), its properties in field order.
  A schema name is the class name without a trailing ``View`` (the catalog's read views are
  the API's ``Song``, ``Album``...); a generic class applied to one class is named after
  both (``Page[Song]`` is ``SongPage``). Two classes under one name are an error.
* Every field of a response is always written, so all of them are ``required``; in a
  request body a field with a default may be left out. Objects allow no other properties.
* ``str``, ``int``, ``float``, ``bool``, ``None``, ``Literal[...]``, ``X | Y``,
  ``tuple[X, ...]`` / ``list[X]``, ``Mapping[str, X]`` and nested attrs classes map to
  their JSON Schema forms.
* ``attrs.field(metadata={"json_schema": {...}})`` adds keywords to a property (a
  ``description``, ``minimum``, ``pattern``...); the first paragraph of a class docstring
  becomes the schema's ``description``.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal

import attrs

__all__ = ["SCHEMA_KEY", "Schema", "SchemaBuilder", "json_schema"]

Schema = dict[str, Any]
SCHEMA_KEY: Final = "json_schema"
"""The attrs field metadata key whose dict is merged into the property's schema."""

_SCALARS: Final[Mapping[Any, str]] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    type(None): "null",
}
Role = Literal["request", "response"]


def json_schema(**keywords: Any) -> dict[str, Any]:
    """Field metadata adding JSON Schema ``keywords`` (``attrs.field(metadata=...)``)."""
    return {SCHEMA_KEY: keywords}


def _description(cls: type[Any]) -> str | None:
    doc = inspect.getdoc(cls)
    if not doc:
        return None
    return " ".join(doc.split("\n\n")[0].split()).replace("``", "`")


class SchemaBuilder:
    """Collects the named schemas that the types given to :meth:`schema` need."""

    def __init__(self) -> None:
        self.schemas: dict[str, Schema] = {}
        self._owners: dict[str, tuple[Any, Role]] = {}

    def ref(self, name: str) -> Schema:
        """A reference to the component schema ``name``."""
        return {"$ref": f"#/components/schemas/{name}"}

    def name_of(self, tp: Any) -> str:
        """The component name of an attrs class (or a generic one applied to a class)."""
        origin = typing.get_origin(tp)
        if origin is not None and attrs.has(origin):
            args = typing.get_args(tp)
            return "".join(self.name_of(a) for a in args) + origin.__name__
        name: str = tp.__name__
        return name.removesuffix("View") or name

    def named(self, name: str, tp: Any, role: Role = "response") -> Schema:
        """Register ``tp`` (a union, say) under ``name``; a reference to it."""
        if self._claim(name, ("alias", tp), role):
            self.schemas[name] = {}  # placeholder: recursion ends here
            self.schemas[name] = self.schema(tp, role)
        return self.ref(name)

    def schema(self, tp: Any, role: Role = "response") -> Schema:
        """The schema of ``tp``: inline for scalars and containers, a reference for classes."""
        if tp in _SCALARS:
            return {"type": _SCALARS[tp]}
        if tp is Any:
            return {}
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin is Literal:
            values = list(args)
            kinds = sorted({_SCALARS[type(v)] for v in values})
            out: Schema = {"type": kinds[0] if len(kinds) == 1 else kinds}
            out.update({"const": values[0]} if len(values) == 1 else {"enum": values})
            return out
        if origin in (typing.Union, types.UnionType):
            return self._union(args, role)
        if origin in (tuple, list, Sequence):
            item = args[0] if args else Any
            if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
                raise TypeError(f"fixed-length tuples have no JSON form: {tp}")
            return {"type": "array", "items": self.schema(item, role)}
        if origin in (dict, Mapping):
            return {"type": "object", "additionalProperties": self.schema(args[1], role)}
        if attrs.has(origin or tp):
            return self._class(tp, role)
        raise TypeError(f"no JSON schema for {tp!r}")

    def _union(self, args: tuple[Any, ...], role: Role) -> Schema:
        if all(a in _SCALARS for a in args):
            return {"type": [_SCALARS[a] for a in args]}
        return {"oneOf": [self.schema(a, role) for a in args]}

    def _claim(self, name: str, owner: Any, role: Role) -> bool:
        """Reserve ``name`` for ``owner``; True if it is new. A class whose fields have
        defaults cannot be both a request and a response (``required`` differs)."""
        seen = self._owners.get(name)
        if seen is None:
            self._owners[name] = (owner, role)
            return True
        if seen[0] != owner:
            raise TypeError(f"two shapes are named {name}: {seen[0]!r} and {owner!r}")
        cls = typing.get_origin(owner) or owner
        defaults = attrs.has(cls) and any(f.default is not attrs.NOTHING for f in attrs.fields(cls))
        if seen[1] != role and defaults:
            raise TypeError(f"{name} is both a request and a response shape, with defaults")
        return False

    def _class(self, tp: Any, role: Role) -> Schema:
        name = self.name_of(tp)
        if not self._claim(name, tp, role):
            return self.ref(name)
        self.schemas[name] = {}  # placeholder: a class may refer to itself
        cls = typing.get_origin(tp) or tp
        bound = dict(zip(getattr(cls, "__parameters__", ()), typing.get_args(tp), strict=False))
        hints = typing.get_type_hints(cls)
        props: dict[str, Schema] = {}
        required: list[str] = []
        for field in attrs.fields(cls):
            ftype = _substitute(hints.get(field.name, field.type), bound)
            prop = self.schema(ftype, role)
            extra = field.metadata.get(SCHEMA_KEY)
            if extra:
                prop = {**prop, **extra} if "$ref" not in prop else {"allOf": [prop], **extra}
            props[field.name] = prop
            if role == "response" or field.default is attrs.NOTHING:
                required.append(field.name)
        out: Schema = {"type": "object"}
        if (text := _description(cls)) is not None:
            out["description"] = text
        out["properties"] = props
        if required:
            out["required"] = required
        out["additionalProperties"] = False
        self.schemas[name] = out
        return self.ref(name)


def _substitute(tp: Any, bound: Mapping[Any, Any]) -> Any:
    """``tp`` with the type variables of a generic class replaced by its arguments."""
    if isinstance(tp, typing.TypeVar):
        return bound.get(tp, Any)
    args = typing.get_args(tp)
    origin = typing.get_origin(tp)
    if not args or origin is None or origin is Literal:
        return tp
    new = tuple(_substitute(a, bound) for a in args)
    if origin in (typing.Union, types.UnionType):
        return typing.Union[new]  # noqa: UP007 (a runtime-built union)
    generic: Any = origin
    return generic[new]
