"""The token ring's durable state in the node's SQLite database: the log and the hard state."""

from __future__ import annotations

from dspot.disk import Database
from dspot.tokenring._core import HardState, Persist
from dspot.tokenring._messages import Entry


class LogStore:
    """Reads and writes one ring's tables. ``sync=False`` exists only for sabotage tests."""

    def __init__(self, db: Database, prefix: str = "tokenring") -> None:
        if not prefix.isidentifier():
            raise ValueError(f"table prefix must be an identifier, not {prefix!r}")
        self.db = db
        self.sync = True
        self._log = f"{prefix}_log"
        self._state = f"{prefix}_state"
        self._members = f"{prefix}_members"

    async def load(self) -> tuple[HardState, list[Entry]]:
        """Create the tables if needed and return what a previous run left."""
        await self.db.executescript(
            f"CREATE TABLE IF NOT EXISTS {self._log} ("
            " seq INTEGER PRIMARY KEY, epoch INTEGER NOT NULL,"
            " entry_id TEXT NOT NULL, data BLOB NOT NULL);"
            f"CREATE TABLE IF NOT EXISTS {self._state} ("
            " id INTEGER PRIMARY KEY CHECK (id = 1), epoch INTEGER NOT NULL,"
            " voted_for TEXT, hop INTEGER NOT NULL);"
            f"CREATE TABLE IF NOT EXISTS {self._members} (node_id TEXT PRIMARY KEY);"
        )
        async with self.db.transaction(sync=False) as tx:
            rows = tx.execute(f"SELECT seq, epoch, entry_id, data FROM {self._log} ORDER BY seq")
            state = tx.execute(f"SELECT epoch, voted_for, hop FROM {self._state} WHERE id = 1")
        entries: list[Entry] = []
        for seq, epoch, entry_id, data in rows:
            if seq != len(entries) + 1:
                raise RuntimeError(f"token ring log has a gap before seq {seq}")
            entries.append(Entry(int(epoch), str(entry_id), bytes(data)))
        hard = HardState()
        if state:
            epoch, voted_for, hop = state[0]
            hard = HardState(int(epoch), voted_for, int(hop))
        return hard, entries

    async def load_members(self) -> list[str]:
        """The configured membership this member has seen (see :meth:`save_members`)."""
        rows = await self.db.query(f"SELECT node_id FROM {self._members} ORDER BY node_id")
        return [str(r[0]) for r in rows]

    async def save_members(self, members: list[str]) -> None:
        """Remember the configured membership durably, so a restart cannot shrink it."""
        async with self.db.transaction(sync=True) as tx:
            tx.execute(f"DELETE FROM {self._members}")
            tx.executemany(
                f"INSERT INTO {self._members} (node_id) VALUES (?)", [(m,) for m in members]
            )

    async def write(self, p: Persist) -> None:
        """Apply one :class:`Persist` atomically; durable on return (unless sabotaged)."""
        async with self.db.transaction(sync=self.sync) as tx:
            if p.truncate_from is not None:
                tx.execute(f"DELETE FROM {self._log} WHERE seq >= ?", (p.truncate_from,))
            if p.entries:
                tx.executemany(
                    f"INSERT OR REPLACE INTO {self._log} (seq, epoch, entry_id, data)"
                    " VALUES (?, ?, ?, ?)",
                    [(i, e.epoch, e.entry_id, e.data) for i, e in sorted(p.entries.items())],
                )
            if p.state is not None:
                s = p.state
                tx.execute(
                    f"INSERT OR REPLACE INTO {self._state} (id, epoch, voted_for, hop)"
                    " VALUES (1, ?, ?, ?)",
                    (s.epoch, s.voted_for, s.hop),
                )
