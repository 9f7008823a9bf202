"""A virtual-time asyncio event loop: the simulation's scheduler.

Theory of operation. :class:`VirtualTimeLoop` is an ordinary asyncio loop with two changes.

* **Virtual time.** There is no I/O to wait for, so when no callback is ready the clock jumps
  straight to the earliest timer. ``loop.time()`` (and so ``anyio.current_time()``) is that
  virtual clock; a run of minutes of virtual time takes as long as its callbacks take.
  Nothing ready and no timer left means every task waits for something that cannot happen:
  the loop raises :class:`SimulationDeadlock` instead of hanging.
* **One seed, one schedule.** asyncio runs each batch of ready callbacks first in, first
  out, and everything in the simulation happens in an order fixed by the seed, except where
  a library iterates a set of objects (anyio delivers a cancellation to the tasks of a
  cancel scope in ``set`` order, which follows memory addresses). So within each batch the
  loop puts the task steps in a canonical order (the order the tasks were created in), then
  shuffles them with an RNG seeded from the run's seed, as trio does for Hypothesis: the
  shuffle explores interleavings a plain FIFO would never try, and the same seed shuffles
  the same way in every process. Plain callbacks (timers, future callbacks) keep their FIFO
  positions, as asyncio promises.

asyncio's tasks and futures are implemented in C, which makes a task switch here several
times cheaper than under trio's ``MockClock`` (``benchmarks/bench_sim.py`` compares both).
Threads would let real time leak in, so the loop refuses them.
"""

from __future__ import annotations

import asyncio
import asyncio.base_events
import heapq
import itertools
import random
import threading
from collections.abc import Callable, Coroutine
from contextvars import Context, copy_context
from typing import Any, TypeVar, TypeVarTuple, Unpack

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")

_RESOLUTION = 1e-9  # timers this close to "now" are due (virtual times are exact floats)


class SimulationDeadlock(RuntimeError):
    """Every task waits and no timer is set: nothing can ever happen again."""


class _NoIO:
    """Stands in for the selector: the simulation does no real I/O."""

    def select(self, timeout: float | None) -> list[Any]:
        return []

    def close(self) -> None:
        pass


class _Handle(asyncio.Handle):
    """asyncio's Handle without the debug-mode bookkeeping (this loop never runs in debug
    mode): a ready callback is the unit of work of the simulation, made millions of times."""

    __slots__ = ()

    def __init__(
        self,
        callback: Callable[..., object],
        args: tuple[Any, ...],
        loop: asyncio.AbstractEventLoop,
        context: Context | None,
    ) -> None:
        self._context = context if context is not None else copy_context()
        self._loop = loop
        self._callback = callback
        self._args = args
        self._cancelled = False
        self._repr = None
        self._source_traceback = None

    def cancel(self) -> None:
        self._cancelled = True
        self._callback = None  # type: ignore[assignment]  # as asyncio's cancel does
        self._args = None  # type: ignore[assignment]


class _TimerHandle(asyncio.TimerHandle, _Handle):
    """asyncio's TimerHandle, made as :class:`_Handle` is."""

    __slots__ = ()
    _loop: VirtualTimeLoop

    def __init__(
        self,
        when: float,
        callback: Callable[..., object],
        args: tuple[Any, ...],
        loop: VirtualTimeLoop,
        context: Context | None,
    ) -> None:
        _Handle.__init__(self, callback, args, loop, context)
        self._when = when
        self._scheduled = True

    def cancel(self) -> None:
        if not self._cancelled:
            if self._scheduled:
                self._loop._timer_cancelled_count += 1
            self._cancelled = True
            self._callback = None  # type: ignore[assignment]  # as asyncio's cancel does
            self._args = None  # type: ignore[assignment]


class VirtualTimeLoop(asyncio.base_events.BaseEventLoop):
    """An asyncio loop on a virtual clock, scheduling ready tasks in an order fixed by ``seed``.

    Use through :func:`run_virtual` (or as anyio's ``loop_factory``).
    """

    def __init__(self, seed: int | str = 0, *, start: float = 0.0) -> None:
        super().__init__()
        self._now = start
        self._selector = _NoIO()
        self._clock_resolution = _RESOLUTION
        self._shuffle = random.Random(f"schedule:{seed}").shuffle
        self._task_order: dict[int, int] = {}
        self._task_counter = itertools.count()
        self._timers: list[tuple[float, int, Any]] = []  # (when, seq, asyncio.TimerHandle)
        self._timer_cancelled_count = 0
        self._timer_counter = itertools.count()

    # -- the clock -----------------------------------------------------------------------

    def time(self) -> float:
        return self._now

    # -- tasks ---------------------------------------------------------------------------

    def create_task(  # type: ignore[override]
        self,
        coro: Coroutine[Any, Any, _T],
        *,
        name: str | None = None,
        context: Context | None = None,
    ) -> asyncio.Task[_T]:
        self._check_closed()  # type: ignore[attr-defined]
        task = asyncio.Task(coro, loop=self, name=name, context=context)
        # Keyed by id: a live task's id is unique, and a new task at a reused address
        # overwrites the dead one's entry, so the map stays as small as the live set's
        # address range.
        self._task_order[id(task)] = next(self._task_counter)
        return task

    # -- no threads, no I/O ----------------------------------------------------------------

    def call_soon_threadsafe(
        self,
        callback: Callable[[Unpack[_Ts]], object],
        *args: *_Ts,
        context: Context | None = None,
    ) -> asyncio.Handle:
        raise RuntimeError("the simulation runs no threads (offload CPU work with env.offload)")

    def run_in_executor(
        self, executor: Any, func: Callable[[Unpack[_Ts]], _T], *args: *_Ts
    ) -> asyncio.Future[_T]:
        raise RuntimeError("the simulation runs no threads (offload CPU work with env.offload)")

    def _write_to_self(self) -> None:
        pass

    def _process_events(self, event_list: list[Any]) -> None:
        pass

    # -- timers --------------------------------------------------------------------------

    def call_at(
        self,
        when: float,
        callback: Callable[[Unpack[_Ts]], object],
        *args: *_Ts,
        context: Context | None = None,
    ) -> asyncio.TimerHandle:
        # Same as asyncio's, but the heap holds (when, sequence, handle): compared in C,
        # not by TimerHandle.__lt__ in Python, and ties fire in the order they were set.
        if self._closed:  # type: ignore[attr-defined]
            raise RuntimeError("Event loop is closed")
        timer = _TimerHandle(when, callback, args, self, context)
        heapq.heappush(self._timers, (when, next(self._timer_counter), timer))
        return timer

    def call_soon(
        self,
        callback: Callable[[Unpack[_Ts]], object],
        *args: *_Ts,
        context: Context | None = None,
    ) -> asyncio.Handle:
        if self._closed:  # type: ignore[attr-defined]
            raise RuntimeError("Event loop is closed")
        handle = _Handle(callback, args, self, context)
        self._ready.append(handle)  # type: ignore[attr-defined]
        return handle

    # -- one iteration ---------------------------------------------------------------------

    def _run_once(self) -> None:
        """Run ready callbacks, batch after batch, until time must move on or the loop stops."""
        timers = self._timers
        ready: Any = self._ready  # type: ignore[attr-defined]
        if self._timer_cancelled_count > 100 and self._timer_cancelled_count * 2 > len(timers):
            # Mostly cancelled timers (call deadlines that did not expire): rebuild the heap.
            kept = []
            for item in timers:
                if item[2]._cancelled:
                    item[2]._scheduled = False
                else:
                    kept.append(item)
            heapq.heapify(kept)
            timers[:] = kept
            self._timer_cancelled_count = 0
        while timers and timers[0][2]._cancelled:
            self._timer_cancelled_count -= 1
            heapq.heappop(timers)[2]._scheduled = False
        if not ready and not self._stopping:  # type: ignore[attr-defined]
            if not timers:
                hint = ""
                if threading.active_count() > 1:  # anyio's worker threads stay for a while
                    hint = " (is one waiting for a thread? the simulation runs no threads)"
                raise SimulationDeadlock(
                    f"at virtual time {self._now:.6f}s every task waits and no timer is set{hint}"
                )
            when = timers[0][0]
            if when > self._now:
                self._now = when  # the jump: nothing can happen before the next timer
        end = self._now + _RESOLUTION
        while True:
            while timers and timers[0][0] < end:
                handle = heapq.heappop(timers)[2]
                handle._scheduled = False
                ready.append(handle)
            n = len(ready)
            if n == 1:
                handle = ready.popleft()
                if not handle._cancelled:
                    handle._run()
            elif n:
                batch = [ready.popleft() for _ in range(n)]
                self._order(batch)
                for handle in batch:
                    if not handle._cancelled:
                        handle._run()
            if not ready or self._stopping:  # type: ignore[attr-defined]
                return

    def _order(self, batch: list[Any]) -> None:
        """Put the task steps of ``batch`` in canonical order, then shuffle them (seeded)."""
        order = self._task_order
        slots: list[int] = []
        keyed: list[tuple[int, Any]] = []
        for i, handle in enumerate(batch):
            task = getattr(handle._callback, "__self__", None)
            if isinstance(task, asyncio.Task):
                slots.append(i)
                key = order.get(id(task))
                if key is None:  # a task made without create_task: numbered when first seen
                    key = order[id(task)] = next(self._task_counter)
                keyed.append((key, handle))
        if len(keyed) < 2:
            return
        keyed.sort(key=_first)
        steps = [handle for _, handle in keyed]
        self._shuffle(steps)
        for i, handle in zip(slots, steps, strict=True):
            batch[i] = handle


def _first(item: tuple[int, Any]) -> int:
    return item[0]


def run_virtual(main: Callable[[], Coroutine[Any, Any, _T]], seed: int | str) -> _T:
    """Run ``main()`` with anyio on a :class:`VirtualTimeLoop` seeded with ``seed``."""
    import anyio

    def factory() -> asyncio.AbstractEventLoop:
        return VirtualTimeLoop(seed)

    return anyio.run(main, backend="asyncio", backend_options={"loop_factory": factory})
