"""Who holds which song's audio, shared by a node's cluster documents.

Every open web app polls the cluster document (``/api/cluster``, the event stream's hello),
and every scrape of ``/metrics`` needs it; at 100,000 songs one survey
(:func:`dspot_spotify.survey.survey`) is several passes over 100,000 hashes on each member.
So a node's :class:`Surveys` shares one survey among concurrent callers and reuses it for
:data:`SURVEY_MAX_AGE` seconds while the catalog position, the members asked and the live
voters stay the same. What it keeps is small (the members' totals, at most ``listed``
songs), not the song list or who holds each song. Its own passes give the event loop a turn
every :data:`SLICE` hashes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Final

import anyio
import anyio.lowlevel
import attrs
from dspot.env import Clock
from dspot.membership import Member

from dspot_spotify import catalog

__all__ = ["SLICE", "SURVEY_MAX_AGE", "Holdings", "MemberStatus", "Statuses", "Surveys"]

SLICE: Final = 4096
"""Hashes handled between two turns of the event loop (a multiple of 8: whole bitmap
bytes). One pass over 100,000 in a single turn held the loop for 12 to 76 ms."""
SURVEY_MAX_AGE: Final = 2.0
"""Seconds a finished survey answers later callers, while the catalog position and the live
members are unchanged."""


@attrs.frozen
class MemberStatus:
    """One member's answer: applied log position, blob totals, and which asked hashes it
    holds (indexes into the list that was asked about)."""

    log_position: catalog.LogPosition
    blobs: int
    bytes: int
    held: frozenset[int]
    loop_lag_worst_ms: float = 0.0
    loop_lag_p99_ms: float = 0.0
    orphaned_bytes: int = 0


Statuses = dict[str, MemberStatus | None]
"""Each asked member's status by node id (None: no answer in time)."""


@attrs.frozen
class Holdings:
    """One survey's outcome: each asked member's status (None: no answer in time; its
    ``held`` left empty once the copies are counted), the number of songs, and those with
    fewer than ``wanted`` copies on the live voters (how many, and the first ``listed`` of
    them as ``(id, title, copies)``)."""

    statuses: Statuses
    songs: int
    under: int
    under_listed: list[tuple[str, str, int]]


_Key = tuple[object, ...]


class Surveys:
    """One node's surveys for its cluster documents: concurrent callers with the same
    question share one survey, and a finished one answers the same question for
    ``max_age`` seconds. The question is the catalog position, the members asked, the live
    voters and the copies wanted; a change of any of them starts a new survey at once."""

    def __init__(
        self,
        clock: Clock,
        position: Callable[[], catalog.LogPosition | None],
        songs: Callable[[], Awaitable[list[tuple[str, str, str]]]],
        ask: Callable[[Sequence[Member], Sequence[str]], Awaitable[Statuses]],
        max_age: float = SURVEY_MAX_AGE,
    ) -> None:
        """``position``: the replica's applied position; ``songs``: every song's
        ``(id, title, audio sha256)`` read from it; ``ask``: each member's status for a
        list of hashes (:func:`dspot_spotify.survey.survey`)."""
        self.clock = clock
        self.position = position
        self.songs = songs
        self.ask = ask
        self.max_age = max_age
        self.surveys = 0
        """Surveys run (each asks every member once)."""
        self._done: tuple[_Key, float, Holdings] | None = None
        self._running: tuple[_Key, anyio.Event] | None = None

    async def holdings(
        self, asked: Sequence[Member], live: Sequence[Member], wanted: int, *, listed: int
    ) -> Holdings:
        """Who holds what, as of at most ``max_age`` seconds ago."""
        clock = self.clock
        position = self.position()
        key: _Key = (
            position,
            tuple(sorted(m.node_id for m in asked)),
            tuple(sorted(m.node_id for m in live)),
            wanted,
            listed,
        )
        while True:
            done = self._done
            if done is not None and done[0] == key and clock.now() - done[1] <= self.max_age:
                return done[2]
            running = self._running
            if running is None or running[0] != key:
                break
            await running[1].wait()  # then take its result, or run one if it failed
        mine = (key, anyio.Event())
        self._running = mine
        try:
            started = clock.now()
            found = await self._survey(asked, live, wanted, listed)
            self._done = (key, started, found)
            return found
        finally:
            if self._running is mine:
                self._running = None
            mine[1].set()

    async def _survey(
        self, asked: Sequence[Member], live: Sequence[Member], wanted: int, listed: int
    ) -> Holdings:
        songs = await self.songs()
        self.surveys += 1
        index: dict[str, int] = {}
        slot: list[int] = []  # song k's audio is hashes[slot[k]]
        for k, (_, _, sha) in enumerate(songs):
            if k and not k % SLICE:
                await anyio.lowlevel.checkpoint()
            slot.append(index.setdefault(sha, len(index)))
        hashes = list(index)
        del index
        statuses = await self.ask(asked, hashes)
        copies = [0] * len(hashes)
        for m in live:
            status = statuses.get(m.node_id)
            for n, i in enumerate(status.held if status is not None else ()):
                if n and not n % SLICE:
                    await anyio.lowlevel.checkpoint()
                copies[i] += 1
        under = 0
        under_listed: list[tuple[str, str, int]] = []
        for k, i in enumerate(slot):
            if k and not k % SLICE:
                await anyio.lowlevel.checkpoint()
            if copies[i] < wanted:
                under += 1
                if len(under_listed) < listed:
                    song_id, title, _ = songs[k]
                    under_listed.append((song_id, title, copies[i]))
        kept: Statuses = {
            n: None if st is None else attrs.evolve(st, held=frozenset())
            for n, st in statuses.items()
        }
        return Holdings(kept, len(songs), under, under_listed)
