"""Parking one task until another wakes it: the message path's lighter ``anyio.Event``.

RPC and the simulated network park and wake a task for every message. anyio's ``Event``,
``Lock`` and cancel scopes cost several microseconds each, which made them most of the cost
of a message; a :class:`Waiter` is one future on asyncio (implemented in C) with its
deadline as one loop timer, and a trio ``Event`` under a trio cancel scope on trio. A wait
is cancelled by anyio cancel scopes like any other wait.

Rules that keep this cheap: a waiter is used by one waiting task, once; ``wake`` may be
called any number of times, by anyone, before or after the wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from typing import Any, Protocol


class Waiter(Protocol):
    """One task waits until :meth:`wake`, or until a deadline passes."""

    def wake(self) -> None:
        """Let the waiting task continue (now, or as soon as it waits). Idempotent."""
        ...

    def wake_at(self, when: float) -> None:
        """Wake the task at event-loop time ``when`` — or earlier, so the waiting task
        must check why it woke."""
        ...

    @property
    def woken(self) -> bool:
        """Whether :meth:`wake` was called."""
        ...

    async def wait(self, deadline: float | None = None) -> bool:
        """Wait until woken (True) or until loop time ``deadline`` (False)."""
        ...

    def __await__(self) -> Generator[Any, Any, Any]:
        """``await waiter``: wait until woken, with no coroutine frame of its own."""
        ...


def _expire(fut: asyncio.Future[bool]) -> None:
    if not fut.done():
        fut.set_result(False)


def _wake(fut: asyncio.Future[bool]) -> None:
    if not fut.done():
        fut.set_result(True)


_Future = asyncio.Future  # the C future; loop.create_future() adds a Python call


class _AsyncioWaiter:
    __slots__ = ("_fut", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._fut: asyncio.Future[bool] = _Future(loop=loop)

    def wake(self) -> None:
        if not self._fut.done():
            self._fut.set_result(True)

    def wake_at(self, when: float) -> None:
        self._loop.call_at(when, _wake, self._fut)

    @property
    def woken(self) -> bool:
        fut = self._fut
        return fut.done() and not fut.cancelled() and fut.result()

    def __await__(self) -> Generator[Any, Any, Any]:
        return self._fut.__await__()

    async def wait(self, deadline: float | None = None) -> bool:
        fut = self._fut
        if deadline is None or fut.done():
            return await fut
        timer = self._loop.call_at(deadline, _expire, fut)
        try:
            return await fut
        finally:
            timer.cancel()


class _TrioWaiter:
    __slots__ = ("_event",)

    def __init__(self) -> None:
        import trio

        self._event = trio.Event()

    def wake(self) -> None:
        self._event.set()

    def wake_at(self, when: float) -> None:
        # trio has no loop timers: wake now, the waiter waits out the rest itself.
        self._event.set()

    @property
    def woken(self) -> bool:
        return self._event.is_set()

    def __await__(self) -> Generator[Any, Any, Any]:
        return self._event.wait().__await__()

    async def wait(self, deadline: float | None = None) -> bool:
        import trio

        if deadline is None:
            await self._event.wait()
            return True
        with trio.move_on_at(deadline):
            await self._event.wait()
        return self._event.is_set()


def waiter() -> Waiter:
    """A new :class:`Waiter` for the running event loop (asyncio or trio)."""
    try:
        return _AsyncioWaiter(asyncio.get_running_loop())
    except RuntimeError:
        return _TrioWaiter()


def current_time() -> float:
    """The running loop's clock (virtual in the simulation), cheaper than anyio's lookup."""
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        import trio

        return trio.current_time()


__all__ = ["Waiter", "current_time", "waiter"]
