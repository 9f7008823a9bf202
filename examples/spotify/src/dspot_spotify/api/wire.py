"""The REST API's JSON: one strict cattrs converter, and how request input is read.

:data:`API_JSON` writes every response body and reads every request body. It is strict
(:mod:`dspot_spotify.strictjson`): ``123`` is not a name, ``null`` is not a title, ``"3"``
is not a track number, and a string JSON can spell but UTF-8 cannot store (a lone
surrogate) is refused; extra keys are refused too. Its errors name the field.

What a request gets for bad input (the limits are checked before anything is parsed):

=========================================  ==============================================
a ``Content-Type`` that is not JSON        415
a JSON body over :data:`MAX_JSON_BODY`     413
not UTF-8 JSON, nested deeper than         400
:data:`MAX_JSON_DEPTH`, a lone surrogate
not an object, a wrong type, an unknown    422 naming the field
or missing field
an integer query parameter that is not     422 (``?limit=x``, ``?page=0``)
an integer, or below its minimum
one above its maximum                      400 (``?page=99999999999999999999``)
=========================================  ==============================================

:func:`read_json` is where a request body is read; :class:`IntParam` describes (for the
OpenAPI document) and reads (for the handler) one bounded integer query parameter.
:func:`patch_of` derives a PATCH body class from a log entry class: the same field types,
each one optional (:data:`UNCHANGED` when absent).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any, Final, TypeVar, cast

import attrs
import cattrs
from cattrs.preconf.json import JsonConverter, make_converter
from dspot.http import HTTPError, JsonLimits, Request

from dspot_spotify.strictjson import make_strict

__all__ = [
    "API_JSON",
    "JSON_LIMITS",
    "MAX_JSON_BODY",
    "MAX_JSON_DEPTH",
    "UNCHANGED",
    "IntParam",
    "changes",
    "patch_of",
    "read_json",
]

T = TypeVar("T")

API_JSON: Final[JsonConverter] = make_strict(make_converter(forbid_extra_keys=True))
"""The converter of every REST request and response body."""

MAX_JSON_BODY: Final = 64 * 1024
"""Largest JSON request body, in bytes (uploads are not JSON)."""
MAX_JSON_DEPTH: Final = 32
"""Deepest nesting of arrays and objects in a JSON request body."""
JSON_LIMITS: Final = JsonLimits(max_size=MAX_JSON_BODY, max_depth=MAX_JSON_DEPTH)
"""What :func:`read_json` enforces (a body without ``Content-Type`` is read as JSON: the
command-line tools and older clients send none)."""
_DOCUMENT: Final = cast("type[Any]", Any)  # cattrs passes Any through: the parsed document


async def read_json(request: Request, cls: type[T]) -> T:
    """The request body as ``cls``, read by the library's :meth:`Request.json
    <dspot.http.Request.json>` within :data:`JSON_LIMITS`: 415 if its ``Content-Type`` is
    not JSON, 413 if too big, 400 if not JSON, too deep or a lone surrogate, 422 (naming the
    field) if it is not an object of that shape."""
    raw = await request.json(_DOCUMENT, limits=JSON_LIMITS)
    if not isinstance(raw, dict):
        raise HTTPError(422, "the body must be a JSON object")
    try:
        return API_JSON.structure(raw, cls)
    except (cattrs.BaseValidationError, ValueError, TypeError, KeyError) as e:
        errors = (
            cattrs.transform_error(e, format_exception=_reason)
            if isinstance(e, cattrs.BaseValidationError)
            else [str(e)]
        )
        raise HTTPError(422, "; ".join(errors), extensions={"errors": errors}) from None


def _reason(exc: BaseException, tp: Any) -> str:
    """Why one field failed: the strict hooks' own words (``expected str, got int``), else
    cattrs' description."""
    if type(exc) in (TypeError, ValueError) and exc.args and str(exc).startswith(_OURS):
        return str(exc)
    return cattrs.v.format_exception(exc, tp)


_OURS: Final = ("expected ", "not valid Unicode")


@attrs.frozen
class IntParam:
    """A bounded integer query parameter: its name, default and range, and its text for the
    OpenAPI document."""

    name: str
    default: int
    low: int
    high: int
    description: str

    def schema(self) -> dict[str, Any]:
        """Its JSON Schema in the OpenAPI document."""
        return {
            "type": "integer",
            "minimum": self.low,
            "maximum": self.high,
            "default": self.default,
        }

    def read(self, request: Request) -> int:
        """Its value in ``request`` (the default when absent or empty)."""
        text = request.query.get(self.name)
        if text is None or text == "":
            return self.default
        if not re.fullmatch(r"[+-]?[0-9]+", text.strip()):
            raise HTTPError(422, f"query parameter {self.name} must be an integer")
        if len(text.strip().lstrip("+-")) > len(str(self.high)):
            raise HTTPError(400, f"query parameter {self.name} must be at most {self.high}")
        value = int(text)
        if value < self.low:
            raise HTTPError(422, f"query parameter {self.name} must be {self.low} or more")
        if value > self.high:
            raise HTTPError(400, f"query parameter {self.name} must be at most {self.high}")
        return value


@attrs.frozen
class _Unchanged:
    """The value of a PATCH field the body leaves out."""

    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED: Final = _Unchanged()


def patch_of(entry: type[Any], editable: Collection[str], name: str) -> type[Any]:
    """A PATCH body class: the ``editable`` fields of the log entry class ``entry``, with
    their types, every one optional (``UNCHANGED`` when the body leaves it out). ``null``
    is a value where the entry's type allows it (it clears the field)."""
    fields = {f.name: f for f in attrs.fields(attrs.resolve_types(entry))}
    unknown = set(editable) - set(fields)
    if unknown:
        raise ValueError(f"{entry.__name__} has no field(s) {sorted(unknown)}")
    cls = attrs.make_class(
        name,
        {n: attrs.field(type=fields[n].type, default=UNCHANGED) for n in editable},
        frozen=True,
        kw_only=True,
    )
    cls.__doc__ = f"The {', '.join(editable)} to change; a field left out stays as it is."
    return cls


def changes(patch: Any) -> dict[str, Any]:
    """The fields a PATCH body sets (those not :data:`UNCHANGED`)."""
    values: dict[str, Any] = attrs.asdict(patch, recurse=False)
    return {k: v for k, v in values.items() if v is not UNCHANGED}
