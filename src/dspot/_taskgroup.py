"""A task group entered by hand, for the ``__aenter__`` of a component that runs tasks for
as long as it is open (RPC, membership, the token ring)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
import anyio.abc


async def enter_task_group(
    start: Callable[[anyio.abc.TaskGroup], Awaitable[object]],
) -> anyio.abc.TaskGroup:
    """A new task group, entered, with ``start(group)`` done in it (start the component's
    tasks there). If ``start`` fails, the group is cancelled and left before the error goes
    on, so nothing keeps running behind a failed ``__aenter__``. The caller leaves the group
    (``__aexit__``) when the component closes."""
    tg = anyio.create_task_group()
    await tg.__aenter__()
    try:
        await start(tg)
    except BaseException:
        tg.cancel_scope.cancel()
        await tg.__aexit__(None, None, None)
        raise
    return tg
