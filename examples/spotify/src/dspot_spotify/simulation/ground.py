"""What the service's simulated run shares between its nodes, clients and checks: the typed
ground truth, kept outside the nodes where crashes cannot touch it (one per run, from
``sim.state(Ground)``)."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import anyio.abc
import attrs
from dspot.history import Operation

if TYPE_CHECKING:
    from dspot_spotify.simulation.cluster import SimGateway
    from dspot_spotify.simulation.workload import Download, Song

__all__ = ["Ground"]


@attrs.define
class Ground:
    """One run's ground truth."""

    songs: dict[str, Song] = attrs.Factory(dict)
    """Songs the clients uploaded and were told exist, by id."""
    failed: list[tuple[str, str, float, str]] = attrs.Factory(list)
    """``(client, operation, started, error)`` of every failed client operation."""
    succeeded: list[tuple[str, str, float]] = attrs.Factory(list)
    """``(client, operation, started)`` of every successful client operation."""
    downloads: list[Download] = attrs.Factory(list)
    """Every download through the gateway."""
    stream_source: str | None = None
    """The node serving the gateway download in progress, if any (the fault crashes it)."""
    gateway: SimGateway | None = None
    gateway_resumed: int = 0
    """Downloads the gateway resumed on another node, over the run."""
    tasks: anyio.abc.TaskGroup | None = None
    """The workload's task group, where crashed nodes are restarted (``None`` before)."""
    history: list[Operation] = attrs.Factory(list)
    """Operations of the clients without log positions, in the order they completed."""
    log_history: dict[int, tuple[int, bytes]] = attrs.Factory(dict)
    """``seq`` → ``(epoch, entry bytes)``, as first applied anywhere: the full log."""
    snapshots: dict[str, int] = attrs.Factory(dict)
    """Snapshots ``taken`` and ``restored`` over the run."""
    snapshot_rng: random.Random | None = None
