"""Fixtures for the example service's tests: a SQLite adapter, the tagged song most tests
upload, and real-process clusters (:mod:`tests.helpers.processes`; in-process ones are in
:mod:`tests.examples.simcluster`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from dspot_spotify import catalog

from tests.examples.catalog_log import Log
from tests.examples.simcluster import tagged_flac
from tests.helpers.processes import ProcessCluster, process_cluster


class SqliteTx:
    """A tiny transaction adapter over ``sqlite3``: ``execute`` returns every row, like
    ``dspot.disk.Transaction``."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()
    ) -> list[tuple[Any, ...]]:
        cur = self.conn.execute(sql, params)
        try:
            return cur.fetchall()
        finally:
            cur.close()


class Db:
    """One in-memory catalog replica: ``tx()`` opens a transaction, ``q`` reads."""

    def __init__(self) -> None:
        self.conn = sqlite3.connect(":memory:", isolation_level=None)
        self.q = SqliteTx(self.conn)
        with self.tx() as tx:
            catalog.create_schema(tx)

    @contextmanager
    def tx(self) -> Iterator[SqliteTx]:
        self.conn.execute("BEGIN")
        try:
            yield self.q
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def dump(self) -> list[tuple[str, list[tuple[Any, ...]]]]:
        """Every table's rows, sorted: two replicas with equal dumps have equal state."""
        names = [
            r[0]
            for r in self.conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '%fts%' "
                "ORDER BY name"
            )
        ]
        return [
            (n, sorted(self.conn.execute(f"SELECT * FROM {n}").fetchall(), key=repr)) for n in names
        ]


@pytest.fixture
def db() -> Db:
    return Db()


@pytest.fixture
def log(db: Db) -> Log:
    """A catalog log feeding ``db`` from position (1, 1)."""
    return Log(db)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[ProcessCluster]:
    """Node and gateway processes of one test (:class:`ProcessCluster`), all killed at its
    end."""
    with process_cluster(tmp_path / "processes") as cluster:
        yield cluster


@pytest.fixture(scope="module")
def song_file(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A tagged FLAC with a cover (:func:`~tests.examples.simcluster.tagged_flac`)."""
    return tagged_flac(tmp_path_factory.mktemp("audio") / "song.flac")
