"""What the token ring's core keeps of the log in memory: a bounded window, not the log.

The log lives on disk (``LogStore``). In memory the core keeps:

* :class:`LogWindow`: where the log starts and ends, the epoch of every position in it (as
  runs: one ``(first index, epoch)`` pair per epoch change, not one number per entry), and
  the newest ``capacity`` entries themselves. Older entries are read back from disk when a
  lagging member needs them.
* :class:`IdWindow`: the ids of recent entries with their position, for duplicate
  suppression. Ids are forgotten once they are old enough (see ``TokenRingCore``).

Both are plain data structures with no I/O; their size is bounded by configuration, not by
the length of the log (the epoch runs grow with the number of elections whose entries are
still in the log, not with the number of entries).
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterable, Sequence

from dspot.tokenring._messages import Entry


class LogWindow:
    """Positions ``base_index + 1 .. last_index`` of the log, the newest entries in memory.

    ``base_index`` is where the log was compacted (0 if never): entries up to it are gone,
    covered by a snapshot, and only the epoch of the entry at ``base_index`` is known.
    """

    def __init__(
        self,
        capacity: int,
        *,
        base_index: int = 0,
        base_epoch: int = 0,
        runs: Sequence[tuple[int, int]] = (),
        last_index: int | None = None,
        entries: Sequence[Entry] = (),
    ) -> None:
        """``runs`` are ``(first index, epoch)`` for the entries after ``base_index``;
        ``entries`` are the newest entries (ending at ``last_index``)."""
        if capacity < 1:
            raise ValueError("the window must hold at least one entry")
        self.capacity = capacity
        self.base_index = base_index
        self._starts: list[int] = [base_index]
        self._epochs: list[int] = [base_epoch]
        for start, epoch in runs:
            if start <= base_index or start <= self._starts[-1]:
                raise ValueError(f"epoch run at {start} out of order")
            if epoch != self._epochs[-1]:
                self._starts.append(start)
                self._epochs.append(epoch)
        self.last_index = base_index + len(entries) if last_index is None else last_index
        if len(entries) > self.last_index - base_index:
            raise ValueError("more entries than positions in the log")
        self._entries: deque[Entry] = deque(entries[-capacity:] if entries else ())
        if last_index is None and not runs:
            # A log given entry by entry (tests): derive the runs from the entries.
            self._starts, self._epochs = [base_index], [base_epoch]
            for i, e in enumerate(entries, base_index + 1):
                self._note_epoch(i, e.epoch)

    # -- queries --------------------------------------------------------------------------

    @property
    def base_epoch(self) -> int:
        return self._epochs[0]

    @property
    def first_index(self) -> int:
        """The first position still in the log."""
        return self.base_index + 1

    @property
    def window_start(self) -> int:
        """The first position whose entry is in memory."""
        return self.last_index - len(self._entries) + 1

    @property
    def last_epoch(self) -> int:
        return self._epochs[-1]

    def __len__(self) -> int:
        """Entries in memory."""
        return len(self._entries)

    def epoch_at(self, index: int) -> int | None:
        """The epoch of the entry at ``index``; ``None`` outside ``base_index..last_index``
        (0 for index 0)."""
        if index < self.base_index or index > self.last_index:
            return None
        return self._epochs[bisect.bisect_right(self._starts, index) - 1]

    def run_start(self, index: int) -> int:
        """The first position (after ``base_index``) with the same epoch as ``index``."""
        k = bisect.bisect_right(self._starts, index) - 1
        return max(self._starts[k], self.base_index + 1)

    def runs(self) -> list[tuple[int, int]]:
        """``(first index, epoch)`` of every epoch run, the base's included."""
        return list(zip(self._starts, self._epochs, strict=True))

    def entry(self, index: int) -> Entry | None:
        """The entry at ``index`` if it is in memory."""
        start = self.window_start
        if start <= index <= self.last_index:
            return self._entries[index - start]
        return None

    def entries(self, start: int, end: int) -> list[Entry] | None:
        """Entries ``start..end`` (inclusive) if all are in memory, else ``None``."""
        if end < start:
            return []
        first = self.window_start
        if start < first or end > self.last_index:
            return None
        return [self._entries[i - first] for i in range(start, end + 1)]

    def in_memory(self) -> list[Entry]:
        return list(self._entries)

    # -- changes --------------------------------------------------------------------------

    def append(self, entry: Entry) -> int:
        """Add ``entry`` at the end; return its index. The oldest entry in memory may go."""
        self.last_index += 1
        self._note_epoch(self.last_index, entry.epoch)
        self._entries.append(entry)
        if len(self._entries) > self.capacity:
            self._entries.popleft()
        return self.last_index

    def truncate(self, start: int) -> None:
        """Drop positions ``start..last_index`` (never at or below ``base_index``)."""
        if start > self.last_index:
            return
        if start <= self.base_index:
            raise ValueError(f"cannot truncate at {start}: the log starts after {self.base_index}")
        for _ in range(min(len(self._entries), self.last_index - start + 1)):
            self._entries.pop()
        self.last_index = start - 1
        k = bisect.bisect_right(self._starts, self.last_index)
        del self._starts[max(k, 1) :]
        del self._epochs[max(k, 1) :]

    def compact(self, upto: int) -> int:
        """Forget positions up to ``upto`` (the log now starts after it); return the epoch
        of the entry at ``upto``, which becomes the base epoch."""
        epoch = self.epoch_at(upto)
        if epoch is None or upto > self.last_index:
            raise ValueError(f"cannot compact to {upto}: the log holds {self.base_index + 1}..")
        k = bisect.bisect_right(self._starts, upto) - 1
        self._starts = [upto, *self._starts[k + 1 :]]
        self._epochs = [epoch, *self._epochs[k + 1 :]]
        self.base_index = upto
        while self._entries and self.window_start <= upto:
            self._entries.popleft()
        return epoch

    def reset(self, base_index: int, base_epoch: int) -> None:
        """Discard the whole log: it now starts after ``base_index`` (a snapshot's index)."""
        self._entries.clear()
        self.base_index = self.last_index = base_index
        self._starts, self._epochs = [base_index], [base_epoch]

    def _note_epoch(self, index: int, epoch: int) -> None:
        if epoch != self._epochs[-1]:
            self._starts.append(index)
            self._epochs.append(epoch)


class IdWindow:
    """Recent entry ids → ``(index, epoch)``, oldest first; forgets from the old end."""

    def __init__(self, items: Iterable[tuple[str, int, int]] = ()) -> None:
        self._at: dict[str, tuple[int, int]] = {}
        self._order: deque[tuple[int, str]] = deque()
        for eid, index, epoch in sorted(items, key=lambda t: t[1]):
            self.add(eid, index, epoch)

    def __len__(self) -> int:
        return len(self._at)

    def __contains__(self, entry_id: str) -> bool:
        return entry_id in self._at

    def get(self, entry_id: str) -> tuple[int, int] | None:
        return self._at.get(entry_id)

    def add(self, entry_id: str, index: int, epoch: int) -> None:
        if self._order and index <= self._order[-1][0]:
            raise ValueError(f"id {entry_id!r} at {index} is not after the newest id")
        self._at[entry_id] = (index, epoch)
        self._order.append((index, entry_id))

    def forget_upto(self, index: int) -> None:
        """Forget ids of entries at or below ``index``."""
        while self._order and self._order[0][0] <= index:
            _, eid = self._order.popleft()
            del self._at[eid]

    def truncate(self, start: int) -> None:
        """Forget ids of entries at or above ``start``."""
        while self._order and self._order[-1][0] >= start:
            _, eid = self._order.pop()
            del self._at[eid]

    def items(self, upto: int | None = None) -> list[tuple[str, int, int]]:
        """``(id, index, epoch)`` oldest first, up to ``upto`` if given."""
        return [
            (eid, idx, self._at[eid][1]) for idx, eid in self._order if upto is None or idx <= upto
        ]
