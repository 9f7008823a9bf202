"""JSON from outside, parsed with limits checked before the parser runs.

``json.loads`` recurses once per nesting level, so a body of 50,000 ``[`` ends in
``RecursionError`` (or, worse, a stack overflow in C code that does not check), and it
raises half a dozen exception types for other bad input. :func:`loads_limited` checks the
size and the nesting depth first, with a byte-level scan that runs at C speed, and turns
every failure into one :class:`JsonRejected` subclass, so callers (the RPC wire, HTTP
request bodies) have one thing to catch.

The depth scan works on UTF-8 bytes (multi-byte characters never contain ASCII bytes):
escaped backslashes and escaped quotes are removed, what is left between quotes is string
content, and of the rest only the brackets count. Peeling every innermost ``[]``/``{}`` pair
once per round, a document of depth ``d`` is empty after ``d`` rounds; anything left after
``max_depth`` rounds is nested deeper (or unbalanced, which the parser would refuse anyway).
"""

from __future__ import annotations

import json
import re
from typing import Any

import cattrs

_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_INNERMOST = re.compile(rb"\[\]|\{\}")


class JsonRejected(ValueError):
    """The document was refused: not JSON, too large, too deep, or not valid text."""


class JsonTooLarge(JsonRejected):
    """The document is longer than allowed."""


class JsonTooDeep(JsonRejected):
    """Arrays and objects are nested deeper than allowed."""


def nesting_exceeds(data: bytes, max_depth: int) -> bool:
    """Whether parsing ``data`` could nest deeper than ``max_depth`` arrays/objects.

    True for a deeper document, and for an unbalanced one with more than ``max_depth``
    openers (the parser would refuse it, but only after recursing into it).
    """
    if data.count(b"[") + data.count(b"{") <= max_depth:
        return False  # cannot be deeper than its number of openers
    if b"\\" in data:
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    brackets = b"".join(data.split(b'"')[::2]).translate(None, _NOT_BRACKETS)
    for _ in range(max_depth):
        if not brackets:
            return False
        peeled = _INNERMOST.sub(b"", brackets)  # one pass: exactly one level per round
        if len(peeled) == len(brackets):
            return True  # unbalanced: nothing more can be peeled
        brackets = peeled
    return bool(brackets)


def loads_limited(
    data: bytes,
    *,
    max_depth: int,
    max_size: int | None = None,
    reject_lone_surrogates: bool = False,
) -> Any:
    """Parse UTF-8 JSON ``data`` or raise :class:`JsonRejected` (never anything else).

    ``reject_lone_surrogates`` also refuses ``"\\ud800"`` escapes that do not form a pair:
    such a string parses, but cannot be encoded again (a database or a response would fail
    later, far from the input that caused it).
    """
    if max_size is not None and len(data) > max_size:
        raise JsonTooLarge(f"JSON document of {len(data)} bytes exceeds {max_size} bytes")
    if nesting_exceeds(data, max_depth):
        raise JsonTooDeep(f"JSON nested deeper than {max_depth} levels (or unbalanced)")
    try:
        text = data.decode("utf-8")
        value = json.loads(text)
        if reject_lone_surrogates and _SURROGATE_ESCAPE.search(data):
            # Only reached when an escape that may be a surrogate is present: re-encoding
            # is the exact test (a pair encodes, a lone half does not).
            json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeError as exc:
        raise JsonRejected(f"not valid UTF-8 text: {exc}") from None
    except (ValueError, RecursionError, MemoryError, OverflowError, TypeError) as exc:
        raise JsonRejected(f"not valid JSON: {exc}") from None
    return value


def _strict_str(value: Any, _: type) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {_json_type(value)}")
    return value


def _strict_int(value: Any, _: type) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"expected an integer, got {_json_type(value)}")
    return value


def _strict_float(value: Any, _: type) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise TypeError(f"expected a number, got {_json_type(value)}")
    return float(value)


def _strict_bool(value: Any, _: type) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {_json_type(value)}")
    return value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def strict_primitives(converter: cattrs.Converter) -> None:
    """Make ``converter`` refuse JSON of the wrong type for ``str``/``int``/``float``/``bool``.

    cattrs coerces by default (``str(123)``, ``str(None)``, ``int("7")``), so a client's
    ``{"name": null}`` would be stored as ``"None"``. Wire and HTTP converters call this.
    """
    converter.register_structure_hook(str, _strict_str)
    converter.register_structure_hook(int, _strict_int)
    converter.register_structure_hook(float, _strict_float)
    converter.register_structure_hook(bool, _strict_bool)
