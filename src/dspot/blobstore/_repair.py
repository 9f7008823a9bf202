"""Keeping copies where they belong: repair rounds, fetches, scrub and healing.

The driver of :class:`~dspot.blobstore._core.RepairRound`: every ``repair_interval`` (less
often on a large store or while rounds find nothing to do, see :func:`repair_pause`; at once
when the view changes) it asks the owners about the copies held here, carries out the plan
(drop, hand off, ask owners to fetch), and serves ``blob.fetch`` by streaming a copy from
the sources it is given. Scrub re-verifies every copy and heals a corrupt one from another
replica; a read that meets a corrupt block queues the same healing.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Iterator, Sequence
from typing import Protocol

import anyio
import anyio.lowlevel

from dspot.blobstore._config import BlobStoreConfig, BlobStoreMechanism
from dspot.blobstore._core import (
    FetchOrder,
    ReadCursor,
    RepairPlan,
    RepairRound,
    delete_wins,
    heal_sources,
)
from dspot.blobstore._errors import BlobStoreError, IntegrityError, Tombstoned
from dspot.blobstore._local import LocalBlobs
from dspot.blobstore._messages import Done, Fetch, Holding, Hop
from dspot.blobstore._replica import DISK_FAILURES
from dspot.disk import DiskFault
from dspot.env import NodeEnv
from dspot.membership._view import EventKind, Member, RingView
from dspot.rpc import Peer


class Peers(Protocol):
    """What repair asks of other nodes, through the store (a node that cannot help gives
    ``None``, or nothing)."""

    @property
    def address(self) -> str | None:
        """This node's RPC address."""

    async def ask(self, member: Member | Hop, hashes: list[str]) -> list[Holding] | None: ...

    async def order_fetch(self, order: FetchOrder) -> None: ...

    def stream(self, cursor: ReadCursor, sources: list[Hop]) -> AsyncGenerator[bytes, None]:
        """The cursor's range read from ``sources`` in turn, failing over between them."""
        ...


def repair_pause(config: BlobStoreConfig, copies: int, quiet_rounds: int = 0) -> float:
    """Seconds from one periodic repair round to the next on a node holding ``copies``:
    ``repair_interval``, or longer so rounds go through at most ``repair_pace`` copies a
    second. (Copies, not the round's duration: a round that waited out an unreachable owner
    must not put off the next one.) After ``quiet_rounds`` rounds in a row that found nothing
    to do, twice as long for each, up to ``repair_idle_interval``."""
    base = max(config.repair_interval, copies / max(config.repair_pace, 1e-9))
    if quiet_rounds <= 0:
        return base
    return max(base, min(config.repair_idle_interval, base * 2.0 ** min(quiet_rounds, 32)))


class Repairer:
    """Repair, fetch, scrub and heal for one node's copies."""

    def __init__(
        self,
        env: NodeEnv,
        view: RingView,
        local: LocalBlobs,
        config: BlobStoreConfig,
        peers: Peers,
    ) -> None:
        self.env = env
        self.view = view
        self.local = local
        self.config = config
        self.placement = config.placement
        self._peers = peers
        self._rng = env.child_rng("blobstore.repair")
        self._fetching: dict[str, anyio.Event] = {}
        self._heal_queue: list[str] = []
        self._wake_repair = anyio.Event()
        self._wake_scrub = anyio.Event()
        self.under = 0
        self.quiet_rounds = 0
        """Periodic rounds in a row that found nothing to do (they back off, see
        :func:`repair_pause`)."""
        self._changes_seen = -1
        self.fetched = 0
        self.handed_off = 0
        self.corrupt = 0
        self.healed = 0

    async def run(self) -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._watch_view)
            tg.start_soon(self._repair_loop)
            if self.env.enabled(BlobStoreMechanism.SCRUB):
                tg.start_soon(self._scrub_loop)

    # -- repair ------------------------------------------------------------------------------

    async def _watch_view(self) -> None:
        wake = (EventKind.DEAD, EventKind.JOINED, EventKind.LEFT, EventKind.ALIVE)
        async with self.view.subscribe() as events:
            async for event in events:
                if event.kind in wake:
                    self._wake_repair.set()

    async def _repair_loop(self) -> None:
        pause = self.config.repair_interval
        while True:
            with anyio.move_on_after(pause):
                await self._wake_repair.wait()
            self._wake_repair = anyio.Event()
            await anyio.sleep(self._rng.uniform(0.0, 0.2))  # let a burst of events settle
            try:
                await self.repair_once()
            except (DiskFault, anyio.ClosedResourceError):
                raise
            except BlobStoreError as exc:
                self.env.log(30, "blob.repair.error", error=repr(exc))
            pause = repair_pause(self.config, self.local.count, self.quiet_rounds)

    async def repair_once(self) -> None:
        """One anti-entropy round over every copy this node holds (see :class:`RepairRound`)."""
        cfg = self.config
        live = self.view.live()
        changes, self._changes_seen = self._changes_seen, self.local.changes
        held = self.local.held()
        horizon = self.env.clock.wall() - cfg.tombstone_ttl
        oldest = self.local.oldest_tombstone()
        if oldest is not None and oldest < horizon:
            await self.local.expire_tombstones(horizon)
        if not live:
            return
        # A round goes through the copies a window at a time (asks, answers and plan of one
        # window at once), so its memory is bounded by the window, not by the store: one
        # round over 10,000 copies peaked at 9.4 MiB of Python objects, growing with the
        # store, against 5.1 MiB in windows of 4,096.
        unreachable: set[str] = set()
        under = acted = 0
        for start in range(0, len(held), REPAIR_WINDOW):
            # Stamped a window at a time: a copy dropped since the round began is left out.
            window = self.local.stamped(held[start : start + REPAIR_WINDOW])
            found = await self._repair_window(window, live, unreachable)
            under += found.under_replicated
            acted += len(found.drops) + len(found.fetches)
        self.under = under
        quiet = not (under or acted or unreachable) and changes == self.local.changes
        self.quiet_rounds = self.quiet_rounds + 1 if quiet else 0

    async def _repair_window(
        self, held: Sequence[tuple[str, float]], live: list[Member], unreachable: set[str]
    ) -> RepairPlan:
        """Repair ``held`` (part of a round); owners in ``unreachable`` (which it extends)
        are not asked. Returns the plan it carried out."""
        cfg = self.config
        # Owners and the plan cost about 10 us a copy: done in slices, the loop runs between
        # them. (A worker thread would not help: pure-Python work holds the GIL, and the loop
        # then waits for it at every system call.)
        round_ = RepairRound(self.view.self_id, self._peers.address, live, (), self.placement)
        for part in _slices(held):
            round_.add(part)
            await anyio.lowlevel.checkpoint()

        async def query(node: str) -> None:
            for batch in round_.batches(node, cfg.repair_batch):
                items = await self._peers.ask(round_.members[node], batch)
                if items is None:
                    round_.unreachable(node)
                    unreachable.add(node)
                    return
                round_.record(node, items)

        async with anyio.create_task_group() as tg:
            for node in sorted(round_.asks):
                if node in unreachable:
                    round_.unreachable(node)
                else:
                    tg.start_soon(query, node)
        parts = []
        for part in _slices(held):
            parts.append(round_.plan_part(part))
            await anyio.lowlevel.checkpoint()
        plan = RepairPlan.concat(parts)
        for drop in plan.drops:
            if drop.deleted_at is not None:
                await self.local.drop(drop.sha256, deleted_at=drop.deleted_at)
                self.env.trace("blob.tombstone.adopted", sha256=drop.sha256)
            elif await self.local.drop(drop.sha256):
                self.handed_off += 1
                self.env.trace("blob.handed_off", sha256=drop.sha256)
        limiter = anyio.Semaphore(cfg.repair_parallel)

        async def order_fetch(order: FetchOrder) -> None:
            try:
                await self._peers.order_fetch(order)
            finally:
                limiter.release()

        async with anyio.create_task_group() as tg:
            for order in plan.fetches:
                await limiter.acquire()
                tg.start_soon(order_fetch, order)
        return plan

    # -- copying between replicas ------------------------------------------------------------

    async def on_fetch(self, req: Fetch, peer: Peer) -> Done:
        if delete_wins(self.local.tombstone(req.sha256), req.stored_at):
            return Done(False, "deleted")
        ok = await self._fetch(req.sha256, req.sources, stored_at=req.stored_at, replace=False)
        return Done(ok, "" if ok else "no source could serve it")

    async def _fetch(
        self, sha256: str, sources: list[Hop], *, stored_at: float, replace: bool
    ) -> bool:
        """Copy ``sha256`` here from ``sources``; ``replace`` swaps out a corrupt copy."""
        while True:
            busy = self._fetching.get(sha256)
            if busy is None:
                break
            await busy.wait()
        if not replace and self.local.get(sha256) is not None:
            return True
        me = self.view.self_id
        sources = [s for s in sources if s.node != me]
        if not sources:
            return False
        done = anyio.Event()
        self._fetching[sha256] = done
        ingest = self.local.ingest(self.env.ids())
        cursor = ReadCursor(sha256, 0, None, self.config.read_passes)
        try:
            with anyio.fail_after(self.config.fetch_timeout):
                async with contextlib.aclosing(self._peers.stream(cursor, sources)) as stream:
                    async for data in stream:
                        await ingest.write(data)
                if replace:
                    await self.local.replace(ingest, sha256)
                else:
                    await ingest.commit(sha256, stored_at=stored_at, sync=True)
        except (BlobStoreError, IntegrityError, Tombstoned, TimeoutError, *DISK_FAILURES) as exc:
            await ingest.abort()
            self.env.trace("blob.fetch.fail", sha256=sha256, error=type(exc).__name__)
            return False
        finally:
            done.set()
            del self._fetching[sha256]
        self.fetched += 1
        self.env.trace("blob.fetched", sha256=sha256, replace=replace)
        return True

    # -- scrub and heal ----------------------------------------------------------------------

    def found_corrupt(self, sha256: str) -> None:
        """A read met a block that fails its checksum: heal the copy soon."""
        self._queue_heal(sha256)
        self._wake_scrub.set()

    def _queue_heal(self, sha256: str, **by: str) -> None:
        self.corrupt += 1
        self.env.trace("blob.corrupt", sha256=sha256, **by)
        if sha256 not in self._heal_queue:
            self._heal_queue.append(sha256)

    async def _scrub_loop(self) -> None:
        next_full = self.env.clock.now() + self.config.scrub_interval
        while True:
            wait = max(0.0, next_full - self.env.clock.now())
            with anyio.move_on_after(wait):
                await self._wake_scrub.wait()
            self._wake_scrub = anyio.Event()
            if self.env.clock.now() >= next_full:
                await self.scrub_once()
                next_full = self.env.clock.now() + self.config.scrub_interval
            await self._heal_queued()

    async def scrub_once(self) -> int:
        """Verify every local copy; queue corrupt ones for healing. Returns how many."""
        bad = 0
        for sha in self.local.held():
            copy = self.local.get(sha)
            if copy is None:
                continue
            if not await self.local.verify(copy):
                bad += 1
                self._queue_heal(sha, by="scrub")
        await self._heal_queued()
        return bad

    async def _heal_queued(self) -> None:
        while self._heal_queue:
            sha = self._heal_queue.pop(0)
            copy = self.local.get(sha)
            if copy is None or await self.local.verify(copy):
                continue  # gone, or the failure was a transient read error
            sources = heal_sources(sha, self.view.self_id, self.view.live(), self.placement)
            if await self._fetch(sha, sources, stored_at=copy.stored_at, replace=True):
                self.healed += 1
            else:
                self.env.trace("blob.heal.fail", sha256=sha)


REPAIR_SLICE = 256
"""Copies a repair round handles between two turns of the event loop (a few ms)."""


REPAIR_WINDOW = 4096
"""Copies a repair round handles at once (asked about, answered, planned, acted on)."""


def _slices(held: Sequence[tuple[str, float]]) -> Iterator[Sequence[tuple[str, float]]]:
    for i in range(0, len(held), REPAIR_SLICE):
        yield held[i : i + REPAIR_SLICE]
