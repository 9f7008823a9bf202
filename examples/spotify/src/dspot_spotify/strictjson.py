"""Strict JSON scalars for cattrs: one spelling per value, no coercion.

cattrs' default hooks coerce (``str(123)`` is ``"123"``, ``int("3")`` is 3, ``None`` becomes
``"None"``). The catalog log and the HTTP API both want the opposite: a value of the wrong
JSON type is an error that names its field. :func:`make_strict` installs hooks that accept
only the JSON type itself:

* ``int``: a JSON integer (``true`` is not 1, ``1.5`` and ``"3"`` are not integers);
* ``float``: a JSON number; ``bool``: ``true`` or ``false``;
* ``str``: a JSON string that is valid Unicode text (a lone surrogate such as ``"\\ud800"``,
  which JSON can spell but UTF-8 cannot store, is refused here, not by the database later);
* ``tuple[str, ...]``: a JSON array of such strings.

The errors are ``TypeError`` / ``ValueError``, which cattrs collects with the field's path.
"""

from __future__ import annotations

from typing import Any, TypeVar

import cattrs

__all__ = ["make_strict", "valid_text"]

C = TypeVar("C", bound=cattrs.Converter)


def valid_text(value: str) -> str:
    """``value`` if it can be stored as UTF-8; ``ValueError`` for a lone surrogate."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("not valid Unicode text (a lone surrogate)") from None
    return value


def _strict(kind: type[Any], *accept: type[Any]) -> Any:
    """A structure hook that accepts only JSON values of the right type (no coercion)."""

    def hook(value: Any, _: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, accept or (kind,)):
            raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
        return kind(value)

    return hook


def _bool(value: Any, _: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected bool, got {type(value).__name__}")
    return value


def _str(value: Any, _: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected str, got {type(value).__name__}")
    return valid_text(value)


def _str_tuple(value: Any, _: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError("expected a list of strings")
    return tuple(valid_text(v) for v in value)


def make_strict(converter: C) -> C:
    """Install the strict hooks on ``converter`` and return it."""
    converter.register_structure_hook(int, _strict(int))
    converter.register_structure_hook(float, _strict(float, int, float))
    converter.register_structure_hook(bool, _bool)
    converter.register_structure_hook(str, _str)
    converter.register_structure_hook_func(lambda t: t == tuple[str, ...], _str_tuple)
    return converter
