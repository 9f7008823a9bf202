"""The simulation's scheduler: a virtual-time asyncio loop whose schedule the seed fixes."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.to_thread
import pytest

from dspot.sim import SimulationDeadlock, VirtualTimeLoop, run_virtual
from tests.helpers.scheduling import tied_wakeup_order


def test_time_jumps_to_the_next_timer() -> None:
    async def main() -> tuple[float, float]:
        start = anyio.current_time()
        await anyio.sleep(3600)
        return start, anyio.current_time()

    wall = time.perf_counter()
    start, end = run_virtual(main, 1)
    assert end - start == 3600
    assert time.perf_counter() - wall < 5  # an hour of virtual time, no real waiting


def test_a_run_where_everything_waits_forever_is_reported_not_hung() -> None:
    async def main() -> None:
        await anyio.Event().wait()

    with pytest.raises(SimulationDeadlock, match="every task waits"):
        run_virtual(main, 1)


def test_threads_are_refused() -> None:
    async def main() -> None:
        await anyio.to_thread.run_sync(time.sleep, 0)

    with pytest.raises(RuntimeError, match="runs no threads"):
        run_virtual(main, 1)


Main = Callable[[], Awaitable[None]]


def _run_on(loop: type[VirtualTimeLoop], seed: int) -> Callable[[Main], None]:
    """Runs an async function to its end on ``loop`` seeded with ``seed``."""

    def run(main: Main) -> None:
        anyio.run(main, backend="asyncio", backend_options={"loop_factory": lambda: loop(seed)})

    return run


def _tied_wakeup_order(seed: int) -> list[int]:
    return tied_wakeup_order(_run_on(VirtualTimeLoop, seed))


def test_tied_tasks_run_in_an_order_the_seed_fixes() -> None:
    assert _tied_wakeup_order(5) == _tied_wakeup_order(5)
    assert _tied_wakeup_order(5) != _tied_wakeup_order(6)
    assert sorted(_tied_wakeup_order(5)) == list(range(30))


def _cancellation_order(seed: int, padding: list[int], loop: type[VirtualTimeLoop]) -> list[int]:
    """Cancel 30 sleeping tasks at once: the order they see it in.

    anyio delivers a cancellation to a scope's tasks by iterating a ``set``, that is in an
    order that follows the tasks' memory addresses; ``padding`` allocates objects of
    different sizes between the tasks, moving them to other addresses, as another
    process, hash seed or checkout path would.
    """
    order: list[int] = []

    async def sleeper(i: int) -> None:
        try:
            await anyio.sleep(10)
        finally:
            order.append(i)

    async def main() -> None:
        keep: list[Any] = []
        async with anyio.create_task_group() as tg:
            for i in range(30):
                keep.append(bytearray(padding[i]))
                tg.start_soon(sleeper, i)
            await anyio.sleep(1)
            tg.cancel_scope.cancel()

    _run_on(loop, seed)(main)
    return order


_LAYOUTS = [
    [64] * 30,
    [(i * 97) % 700 + 16 for i in range(30)],
    [4000 - 100 * i for i in range(30)],
]


def test_cancellation_order_does_not_depend_on_memory_addresses() -> None:
    orders = {tuple(_cancellation_order(3, layout, VirtualTimeLoop)) for layout in _LAYOUTS}
    assert len(orders) == 1
    assert _cancellation_order(3, _LAYOUTS[0], VirtualTimeLoop) != _cancellation_order(
        4, _LAYOUTS[0], VirtualTimeLoop
    )


class _FifoLoop(VirtualTimeLoop):
    """The loop without its canonical ordering: plain asyncio FIFO."""

    def _order(self, batch: list[Any]) -> None:
        pass


def test_without_canonical_order_addresses_decide() -> None:
    """The reason the ordering exists: FIFO follows anyio's set iteration, so addresses."""
    orders = {tuple(_cancellation_order(3, layout, _FifoLoop)) for layout in _LAYOUTS}
    assert len(orders) > 1
