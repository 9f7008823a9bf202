"""Probes of a scheduler's order, for the tests of seeded scheduling (trio and the
simulation's loop)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio


def tied_wakeup_order(run: Callable[[Callable[[], Awaitable[None]]], object]) -> list[int]:
    """30 tasks sleeping until the same virtual instant, under ``run`` (which runs an async
    function to its end on a virtual clock): the order they wake in."""
    order: list[int] = []

    async def sleeper(i: int) -> None:
        await anyio.sleep(1)
        order.append(i)

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for i in range(30):
                tg.start_soon(sleeper, i)

    run(main)
    return order
