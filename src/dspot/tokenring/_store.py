"""The token ring's durable state in the node's SQLite database: the log, the hard state,
the configured membership, and where the log starts (its base and latest snapshot).

Loading reads only what the core keeps in memory: the bounds, the epoch runs, the newest
``memory_entries`` entries and the ids of the newest ``dedupe_window`` ones. Older entries
stay on disk and are read back in ranges (:meth:`LogStore.read`).
"""

from __future__ import annotations

import attrs

from dspot.disk import Database
from dspot.tokenring._log import LogWindow
from dspot.tokenring._messages import Entry, SnapshotMeta
from dspot.tokenring._output import HardState, Persist


@attrs.frozen
class Loaded:
    """What a previous run left, as much as the core keeps in memory."""

    state: HardState
    log: LogWindow
    ids: list[tuple[str, int, int]]
    """``(entry id, index, epoch)`` of the newest entries."""
    snapshot: SnapshotMeta | None
    fresh: bool
    """Nothing was ever stored: a new member, or one whose disk was lost."""


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
        self._base = f"{prefix}_base"

    async def load(self, memory_entries: int, dedupe_window: int) -> Loaded:
        """Create the tables if needed and return what a previous run left."""
        await self.db.executescript(
            f"CREATE TABLE IF NOT EXISTS {self._log} ("
            " seq INTEGER PRIMARY KEY, epoch INTEGER NOT NULL,"
            " entry_id TEXT NOT NULL, data BLOB NOT NULL);"
            f"CREATE TABLE IF NOT EXISTS {self._state} ("
            " id INTEGER PRIMARY KEY CHECK (id = 1), epoch INTEGER NOT NULL,"
            " voted_for TEXT, hop INTEGER NOT NULL, learner INTEGER NOT NULL DEFAULT 0);"
            f"CREATE TABLE IF NOT EXISTS {self._members} (node_id TEXT PRIMARY KEY);"
            f"CREATE TABLE IF NOT EXISTS {self._base} ("
            " id INTEGER PRIMARY KEY CHECK (id = 1),"
            " base_index INTEGER NOT NULL, base_epoch INTEGER NOT NULL,"
            " snap_index INTEGER, snap_epoch INTEGER, name TEXT, size INTEGER,"
            " sha256 TEXT, data_offset INTEGER);"
        )
        columns = await self.db.execute(f"PRAGMA table_info({self._state})", sync=False)
        if "learner" not in {str(c[1]) for c in columns}:  # a table from before learners
            await self.db.executescript(
                f"ALTER TABLE {self._state} ADD COLUMN learner INTEGER NOT NULL DEFAULT 0;"
            )
        async with self.db.transaction(sync=False) as tx:
            state = tx.execute(
                f"SELECT epoch, voted_for, hop, learner FROM {self._state} WHERE id = 1"
            )
            base = tx.execute(
                f"SELECT base_index, base_epoch, snap_index, snap_epoch, name, size, sha256,"
                f" data_offset FROM {self._base} WHERE id = 1"
            )
            [(first, last, count)] = tx.execute(
                f"SELECT MIN(seq), MAX(seq), COUNT(*) FROM {self._log}"
            )
            # One row per epoch change: the core keeps epochs as runs, not per entry.
            runs = tx.execute(
                f"SELECT seq, epoch FROM (SELECT seq, epoch, LAG(epoch) OVER (ORDER BY seq)"
                f" AS prev FROM {self._log}) WHERE prev IS NULL OR prev != epoch ORDER BY seq"
            )
            last = int(last or 0)
            window = tx.execute(
                f"SELECT epoch, entry_id, data FROM {self._log} WHERE seq > ? ORDER BY seq",
                (last - memory_entries,),
            )
            ids = tx.execute(
                f"SELECT entry_id, seq, epoch FROM {self._log}"
                " WHERE seq > ? AND entry_id != '' ORDER BY seq",
                (last - dedupe_window,),
            )
        hard = HardState()
        if state:
            epoch, voted_for, hop, learner = state[0]
            hard = HardState(int(epoch), voted_for, int(hop), bool(learner))
        base_index = base_epoch = 0
        snapshot: SnapshotMeta | None = None
        if base:
            b_index, b_epoch, s_index, s_epoch, name, size, sha, offset = base[0]
            base_index, base_epoch = int(b_index), int(b_epoch)
            if s_index is not None:
                snapshot = SnapshotMeta(
                    int(s_index), int(s_epoch), str(name), int(size), str(sha), int(offset)
                )
        if count and (first != base_index + 1 or count != last - base_index):
            raise RuntimeError(
                f"token ring log has a gap: {count} entries in {first}..{last}, base {base_index}"
            )
        log = LogWindow(
            memory_entries,
            base_index=base_index,
            base_epoch=base_epoch,
            runs=[(int(s), int(e)) for s, e in runs],
            last_index=last if count else base_index,
            entries=[Entry(int(e), str(i), bytes(d)) for e, i, d in window],
        )
        fresh = not state and not count and not base
        ids_ = [(str(i), int(s), int(e)) for i, s, e in ids]
        return Loaded(hard, log, ids_, snapshot, fresh)

    async def read(self, start: int, end: int) -> list[Entry]:
        """Entries ``start..end`` still on disk (fewer, or none, if some are gone)."""
        rows = await self.db.execute(
            f"SELECT seq, epoch, entry_id, data FROM {self._log}"
            " WHERE seq BETWEEN ? AND ? ORDER BY seq",
            (start, end),
            sync=False,
        )
        out: list[Entry] = []
        for seq, epoch, entry_id, data in rows:
            if seq != start + len(out):
                break
            out.append(Entry(int(epoch), str(entry_id), bytes(data)))
        return out

    async def count(self) -> int:
        """Entries on disk."""
        [(n,)] = await self.db.execute(f"SELECT COUNT(*) FROM {self._log}", sync=False)
        return int(n)

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
            if p.trim_to is not None:
                tx.execute(f"DELETE FROM {self._log} WHERE seq <= ?", (p.trim_to,))
                tx.execute(
                    f"INSERT INTO {self._base} (id, base_index, base_epoch) VALUES (1, ?, ?)"
                    " ON CONFLICT (id) DO UPDATE SET base_index = excluded.base_index,"
                    " base_epoch = excluded.base_epoch",
                    (p.trim_to, p.base_epoch),
                )
            if p.snapshot is not None:
                s = p.snapshot
                tx.execute(
                    f"INSERT INTO {self._base} (id, base_index, base_epoch) VALUES (1, 0, 0)"
                    " ON CONFLICT (id) DO NOTHING"
                )
                tx.execute(
                    f"UPDATE {self._base} SET snap_index = ?, snap_epoch = ?, name = ?,"
                    " size = ?, sha256 = ?, data_offset = ? WHERE id = 1",
                    (s.index, s.epoch, s.name, s.size, s.sha256, s.data_offset),
                )
            if p.members:
                tx.executemany(
                    f"INSERT OR IGNORE INTO {self._members} (node_id) VALUES (?)",
                    [(m,) for m in p.members],
                )
            if p.state is not None:
                s2 = p.state
                tx.execute(
                    f"INSERT OR REPLACE INTO {self._state} (id, epoch, voted_for, hop, learner)"
                    " VALUES (1, ?, ?, ?, ?)",
                    (s2.epoch, s2.voted_for, s2.hop, int(s2.learner)),
                )
