"""A member's own submits on their way into the log: queued, appended, resolved (no I/O).

Part of :class:`~dspot.tokenring.TokenRingCore`. A submit is *queued* until this member
holds the token (or another member appends the same id), then *appended* at an index, and
*resolved* once that index is committed and still holds it. Its entry may be truncated
(requeued) or covered by a snapshot that does not name it (outcome unknown: dropped, and
the waiting caller times out).
"""

from __future__ import annotations

from collections.abc import Callable

from dspot.tokenring._log import IdWindow
from dspot.tokenring._messages import LogPosition


class Submits:
    """The queue and the pending submits of one member."""

    def __init__(self) -> None:
        self.queue: list[tuple[str, bytes]] = []
        """Submits not yet appended, in order: ``(entry id, data)``."""
        self.pending: dict[str, int] = {}
        """Entry id → index it was appended at (0 while queued)."""
        self._data: dict[str, bytes] = {}
        self._appended_before: set[str] = set()
        """Ids this member appended itself: kept queued when it loses quorum (they may be
        committed already), where an id never appended is refused instead."""

    def __len__(self) -> int:
        return len(self.queue)

    def add(self, entry_id: str, data: bytes, known_at: int | None) -> None:
        """A local submit; ``known_at`` is where the log already has this id, if it does."""
        if entry_id in self.pending:
            return
        self._data[entry_id] = data
        if known_at is not None:
            self.pending[entry_id] = known_at
        else:
            self.pending[entry_id] = 0
            self.queue.append((entry_id, data))

    def cancel(self, entry_id: str) -> None:
        """Nobody waits any more: forget it, and unqueue it if it is still only queued."""
        if self.pending.get(entry_id) == 0:
            self._unqueue(entry_id)
        self.forget(entry_id)

    def forget(self, entry_id: str) -> None:
        self.pending.pop(entry_id, None)
        self._data.pop(entry_id, None)

    def appended_at(self, entry_id: str, index: int) -> None:
        """The log now holds this id at ``index`` (a queued one may have been appended by
        another member: a retry through it)."""
        if self.pending.get(entry_id) == 0:
            self.pending[entry_id] = index
            self._unqueue(entry_id)

    def take(self) -> list[tuple[str, bytes]]:
        """Holder: the queue, to append; each id's index is set with :meth:`place`."""
        queue, self.queue = self.queue, []
        self._appended_before.update(eid for eid, _ in queue)
        return queue

    def place(self, entry_id: str, index: int) -> None:
        if entry_id in self.pending:
            self.pending[entry_id] = index

    def requeue_from(self, start: int, order: Callable[[str], int]) -> None:
        """Entries from ``start`` on were truncated: queue ours again, in log order."""
        requeue = [(eid, self._data[eid]) for eid, idx in self.pending.items() if idx >= start]
        requeue.sort(key=lambda item: order(item[0]))
        for eid, _ in requeue:
            self.pending[eid] = 0
        self.queue = requeue + self.queue

    def appended(self) -> dict[str, int]:
        """Appended submits: id → index."""
        return {eid: idx for eid, idx in self.pending.items() if idx > 0}

    def settle(self, entry_id: str, index: int | None) -> None:
        """After a snapshot install: it is committed at ``index``, or (``None``) its
        outcome is unknown and it is dropped."""
        self._unqueue(entry_id)
        if index is None:
            self.forget(entry_id)
        else:
            self.pending[entry_id] = index

    def reject_unappended(self) -> list[str]:
        """No quorum: refuse queued submits that were never appended anywhere."""
        keep: list[tuple[str, bytes]] = []
        rejected: list[str] = []
        for eid, data in self.queue:
            if eid in self._appended_before:
                keep.append((eid, data))
            else:
                self.forget(eid)
                rejected.append(eid)
        self.queue = keep
        return rejected

    def resolve(self, commit_index: int, ids: IdWindow) -> list[tuple[str, LogPosition]]:
        """Submits now committed where they were appended."""
        resolved: list[tuple[str, LogPosition]] = []
        for eid, idx in list(self.pending.items()):
            if 0 < idx <= commit_index:
                self.forget(eid)
                at = ids.get(eid)
                if at is not None and at[0] == idx:
                    resolved.append((eid, LogPosition(*at)))
                    self._appended_before.discard(eid)
        return resolved

    def _unqueue(self, entry_id: str) -> None:
        self.queue = [(e, d) for e, d in self.queue if e != entry_id]
