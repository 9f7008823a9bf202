"""SQL plumbing shared by the catalog modules: the transaction protocol and row helpers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol


class Tx(Protocol):
    """What the catalog needs from a transaction: sqlite3-style ``execute`` yielding rows.

    Satisfied by ``sqlite3.Connection`` / ``sqlite3.Cursor`` and by
    :class:`dspot.disk.Transaction` (which returns a list of tuples).
    """

    def execute(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ..., /
    ) -> Iterable[Sequence[Any]]:
        """Run one statement; iterate over the rows it produced."""
        ...


def exec_(tx: Tx, sql: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
    """Every row a statement produced."""
    return list(tx.execute(sql, params))


def one(tx: Tx, sql: str, params: Sequence[Any] = ()) -> Sequence[Any] | None:
    """The first row, or None."""
    rows = exec_(tx, sql, params)
    return rows[0] if rows else None


def scalar(tx: Tx, sql: str, params: Sequence[Any] = ()) -> Any:
    """The first column of the first row, or None."""
    row = one(tx, sql, params)
    return None if row is None else row[0]


def marks(values: Sequence[Any]) -> str:
    """``?, ?, ?``: one placeholder per value (``NULL`` for none, so ``IN ()`` stays valid)."""
    return ",".join("?" * len(values)) or "NULL"


def values_by_id(
    tx: Tx, sql: str, params: Sequence[Any], ids: Sequence[str], *, chunk: int = 500
) -> dict[str, int]:
    """``{id: value}`` from ``sql``, whose rows are ``(id, integer)`` and which ends with
    ``IN ({marks})``: run for ``ids`` (deduplicated) ``chunk`` at a time, after ``params``."""
    out: dict[str, int] = {}
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), chunk):
        part = unique[start : start + chunk]
        for item_id, value in exec_(tx, sql.format(marks=marks(part)), [*params, *part]):
            out[str(item_id)] = int(value)
    return out
