"""The catalog's tables as one unit: which they are, a copy of them as a SQLite database of
their own (what a token-ring snapshot of the catalog holds), replacing them from such a copy,
and a digest of what they hold.

**Which tables.** Exactly those :data:`~dspot_spotify.catalog.SCHEMA` and the blob
reference counts (``BLOB_SCHEMA``) create, found by running them on a scratch database
(:func:`layout`): a table added to the schema is in every snapshot without anyone listing
it. The triggers that keep the reference counts are made after the rows are copied, like
the indexes, so copied rows are not counted twice. The full-text tables travel as their
content (their index is rebuilt on restore); their shadow tables, and every table of the
node that is not the catalog's (the token ring's log, the blob index...), stay out.

**A copy.** :func:`export_file` takes it from the database *file* on a connection of its
own: ``VACUUM INTO`` a new file (a consistent read of the last committed state, which does
not block the writer: the database runs in WAL mode), then drops the tables that are not
the catalog's (the copy uses ``auto_vacuum=FULL``, so the file shrinks to the catalog).
:func:`export_rows` builds the same thing in memory from a transaction, for a database
that is not a file (the simulated disk). Both keep every row's ``rowid``, so a restored
catalog is row for row the one that was copied.

**Replacing.** :func:`drop_and_create`, :func:`insert_rows` and :func:`finish_restore` run
inside one write transaction of the caller: drop every catalog table, create it again
without its indexes, copy the rows (in batches, so the caller can yield between them), then
build the indexes and triggers and set the applied position. A crash before the commit
leaves the old catalog as it was.
"""

from __future__ import annotations

import functools
import hashlib
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import attrs

from dspot_spotify.catalog._apply import POSITION_KEYS, set_applied_position
from dspot_spotify.catalog._schema import BLOB_SCHEMA, SCHEMA, LogPosition
from dspot_spotify.catalog._sql import Tx
from dspot_spotify.catalog._sql import exec_ as _exec

__all__ = [
    "BATCH",
    "CatalogTable",
    "CopyPlan",
    "Layout",
    "catalog_digest",
    "database_file",
    "drop_and_create",
    "export_file",
    "export_rows",
    "finish_restore",
    "insert_rows",
    "layout",
    "open_copy",
    "read_plans",
]

BATCH: Final = 2000
"""Rows per batch when a copy is read back (``cursor.fetchmany(BATCH)`` on
``copy.execute(plan.select)``)."""


@attrs.frozen
class CatalogTable:
    """One table of the catalog and the columns a copy carries."""

    name: str
    columns: tuple[str, ...]
    """Every column but a rowid alias (``n INTEGER PRIMARY KEY``): that one travels as the
    rowid, which every copied row keeps."""
    virtual: bool
    """A full-text table: copied by content, its index rebuilt on insert."""


@attrs.frozen
class Layout:
    """The catalog's tables, and its schema split into tables and indexes."""

    tables: tuple[CatalogTable, ...]
    creates: tuple[str, ...]
    """The statements that create tables (in schema order)."""
    indexes: tuple[str, ...]
    """The statements that create indexes and triggers (run after a bulk copy: faster, and
    a trigger must not count the copied rows again)."""
    stored: frozenset[str]
    """Every table the schema makes, full-text shadow tables included."""


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _table_list(conn: Tx) -> list[tuple[str, str, bool]]:
    """``(name, type, without_rowid)`` of the main schema's tables (not SQLite's own)."""
    return [
        (str(r[1]), str(r[2]), bool(r[4]))
        for r in _exec(conn, "PRAGMA main.table_list")
        if not str(r[1]).startswith("sqlite_")
    ]


def _columns(conn: Tx, table: str, *, without_rowid: bool) -> tuple[str, ...]:
    info = _exec(conn, f"PRAGMA main.table_info({_quote(table)})")
    keys = [r for r in info if r[5]]
    alias = None
    if not without_rowid and len(keys) == 1 and str(keys[0][2]).upper() == "INTEGER":
        alias = keys[0][1]
    return tuple(str(r[1]) for r in info if r[1] != alias)


@functools.cache
def layout() -> Layout:
    """The catalog's tables, found by running :data:`SCHEMA` and ``BLOB_SCHEMA`` on a
    scratch database."""
    conn = sqlite3.connect(":memory:")
    try:
        creates: list[str] = []
        indexes: list[str] = []
        seen: set[tuple[str, str]] = set()
        for stmt in (*SCHEMA, *BLOB_SCHEMA):
            conn.execute(stmt)
            rows = conn.execute("SELECT name, type FROM sqlite_master").fetchall()
            now = {(str(r[0]), str(r[1])) for r in rows}
            made = {kind for _name, kind in now - seen}
            (indexes if made <= {"index", "trigger"} and made else creates).append(stmt)
            seen = now
        listed = _table_list(conn)
        tables = sorted(
            (
                CatalogTable(name, _columns(conn, name, without_rowid=wr), kind == "virtual")
                for name, kind, wr in listed
                if kind in ("table", "virtual")
            ),
            key=lambda t: t.name,
        )
        stored = frozenset(name for name, _kind, _wr in listed)
        return Layout(tuple(tables), tuple(creates), tuple(indexes), stored)
    finally:
        conn.close()


def _select(table: CatalogTable, columns: Sequence[str], *, rowid: bool) -> str:
    cols = ", ".join(_quote(c) for c in columns)
    if rowid:
        cols = f"rowid, {cols}" if cols else "rowid"
        return f"SELECT {cols} FROM {_quote(table.name)} ORDER BY rowid"
    return f"SELECT {cols} FROM {_quote(table.name)}"


def _insert(table: CatalogTable, columns: Sequence[str], *, rowid: bool) -> str:
    names = (["rowid"] if rowid else []) + [_quote(c) for c in columns]
    return (
        f"INSERT INTO {_quote(table.name)} ({', '.join(names)}) "
        f"VALUES ({', '.join('?' * len(names))})"
    )


def _has_rowid(conn: Tx, table: str) -> bool:
    return not any(name == table and wr for name, _kind, wr in _table_list(conn))


# -- taking a copy --------------------------------------------------------------------------


def export_file(source: Path, dest: Path) -> None:
    """Write to ``dest`` (which must not exist) a SQLite database holding the catalog tables
    of the database file ``source``, as last committed. Blocking: run it off the event loop.
    """
    keep = layout().stored
    conn = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)
    try:
        # Read-only is enough: VACUUM INTO reads one consistent snapshot (a WAL reader, so
        # the node's writer goes on meanwhile). auto_vacuum=FULL on the copy lets it shrink
        # when the tables that are not the catalog's are dropped below.
        conn.execute("PRAGMA auto_vacuum = FULL")
        conn.execute("VACUUM INTO ?", (str(dest),))
    finally:
        conn.close()
    out = sqlite3.connect(dest, isolation_level=None)
    try:
        for name, kind, _wr in _table_list(out):
            if name not in keep and kind != "shadow":
                out.execute(f"DROP TABLE {_quote(name)}")
        views = "SELECT type, name FROM sqlite_master WHERE type IN ('view', 'trigger')"
        for kind, name in out.execute(views).fetchall():
            out.execute(f"DROP {kind.upper()} IF EXISTS {_quote(name)}")
    finally:
        out.close()


def export_rows(tx: Tx) -> bytes:
    """The same copy as :func:`export_file`, built in memory from a transaction of the
    catalog's database (for a database that is not a file); returns its bytes."""
    plan = layout()
    out = sqlite3.connect(":memory:", isolation_level=None)
    try:
        out.execute("BEGIN")
        for stmt in plan.creates:
            out.execute(stmt)
        for table in plan.tables:
            rowid = _has_rowid(tx, table.name)
            rows = _exec(tx, _select(table, table.columns, rowid=rowid))
            out.executemany(_insert(table, table.columns, rowid=rowid), rows)
        for stmt in plan.indexes:
            out.execute(stmt)
        out.execute("COMMIT")
        return out.serialize()
    finally:
        out.close()


# -- reading a copy back --------------------------------------------------------------------


def open_copy(path: Path | None = None, image: bytes | None = None) -> sqlite3.Connection:
    """A read-only connection to a copy: the file ``path``, or the bytes ``image``.

    Usable from any one thread at a time (the caller reads it through its offload)."""
    if path is not None:
        conn = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False
        )
    else:
        conn = sqlite3.connect(":memory:", check_same_thread=False)
        conn.deserialize(image or b"")
    try:
        conn.execute("PRAGMA query_only = ON")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # a database at all?
    except sqlite3.DatabaseError:
        conn.close()
        raise
    return conn


@attrs.frozen
class CopyPlan:
    """How one table of a copy is read and written back."""

    table: CatalogTable
    select: str
    insert: str


def read_plans(copy: sqlite3.Connection) -> list[CopyPlan]:
    """For each catalog table the copy holds, the columns both sides have.

    A table or column the copy lacks stays empty or takes its default (a copy taken by an
    older version); one only the copy has is left out (a newer one)."""
    there = {name: wr for name, kind, wr in _table_list(copy) if kind in ("table", "virtual")}
    plans = []
    for table in layout().tables:
        if table.name not in there:
            continue
        wr = there[table.name]
        theirs = set(_columns(copy, table.name, without_rowid=wr))
        cols = [c for c in table.columns if c in theirs]
        plans.append(
            CopyPlan(
                table,
                _select(table, cols, rowid=not wr),
                _insert(table, cols, rowid=not wr),
            )
        )
    return plans


# -- replacing the catalog ------------------------------------------------------------------


def drop_and_create(tx: Tx) -> None:
    """Drop every catalog table and create it again, empty and without its indexes."""
    plan = layout()
    for table in plan.tables:
        _exec(tx, f"DROP TABLE IF EXISTS {_quote(table.name)}")
    for stmt in plan.creates:
        _exec(tx, stmt)


def insert_rows(tx: Any, plan: CopyPlan, rows: Sequence[Sequence[Any]]) -> None:
    """Insert one batch of a copy's rows (``tx`` needs ``executemany``)."""
    tx.executemany(plan.insert, rows)


def finish_restore(tx: Tx, position: LogPosition) -> None:
    """Build the indexes and record ``position`` as the last one applied."""
    for stmt in layout().indexes:
        _exec(tx, stmt)
    set_applied_position(tx, position)


# -- comparing ------------------------------------------------------------------------------


def catalog_digest(tx: Tx) -> str:
    """A sha256 over every row (with its rowid) of every catalog table but the applied
    position: two replicas with the same digest hold the same catalog, row for row. (The
    position is left out because the ring's no-op entries are never applied: a replica that
    restored a snapshot taken at a no-op stands there, one that applied the log stands at the
    last entry before it.)"""
    h = hashlib.sha256()
    for table in layout().tables:
        rowid = _has_rowid(tx, table.name)
        h.update(f"\0table {table.name}\0".encode())
        for row in _exec(tx, _select(table, table.columns, rowid=rowid)):
            if table.name == "catalog_meta" and row[1] in POSITION_KEYS:
                continue
            h.update(repr(tuple(row)).encode())
            h.update(b"\n")
    return h.hexdigest()


def database_file(tx: Tx) -> str:
    """The file of the transaction's main database (``""`` for one in memory, which keeps
    its journal in memory too: SQLite may still give such a database a made-up name)."""
    if str(_exec(tx, "PRAGMA main.journal_mode")[0][0]).lower() == "memory":
        return ""
    for row in _exec(tx, "PRAGMA database_list"):
        if row[1] == "main":
            return str(row[2] or "")
    return ""
