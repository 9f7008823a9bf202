"""The node's event hub: what happens on a node, fanned out to ``/api/events`` subscribers.

The events themselves are the attrs classes of :mod:`dspot_spotify.api.cluster` (their JSON
shapes are in the OpenAPI document); the hub carries their JSON form.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

__all__ = ["Event", "EventHub"]

Event = dict[str, Any]
"""One JSON-able event of :class:`EventHub` (``{"type": ..., ...}``)."""


class EventHub:
    """Fans the node's events out to subscribers without ever making the publisher wait.

    Each subscriber has a bounded queue; one that falls ``queue_size`` events behind is
    dropped (its stream ends), so a slow WebSocket client costs the node nothing.
    """

    def __init__(self, queue_size: int = 256) -> None:
        self.queue_size = queue_size
        self._subscribers: set[MemoryObjectSendStream[Event]] = set()

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def publish(self, event: Mapping[str, Any]) -> None:
        """Queue ``event`` for every subscriber (never blocks)."""
        for send in list(self._subscribers):
            try:
                send.send_nowait(dict(event))
            except anyio.WouldBlock:
                self._subscribers.discard(send)
                send.close()  # the subscriber reads what is queued, then its stream ends
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._subscribers.discard(send)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[MemoryObjectReceiveStream[Event]]:
        """Events from now on until the block exits, or until this subscriber is dropped."""
        send, receive = anyio.create_memory_object_stream[Event](self.queue_size)
        self._subscribers.add(send)
        try:
            async with receive:
                yield receive
        finally:
            self._subscribers.discard(send)
            send.close()
