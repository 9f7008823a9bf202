"""What the service's simulated run shares between its nodes, clients and checks: the typed
ground truth, kept outside the nodes where crashes cannot touch it (one per run, from
``sim.state(Ground)``)."""

from __future__ import annotations

import random

import anyio.abc
import attrs
from dspot.history import Operation

__all__ = ["Ground"]


@attrs.define
class Ground:
    """One run's ground truth (what the clients saw is in
    :class:`~dspot_spotify.simulation.workload.Clients`)."""

    stream_source: str | None = None
    """The node serving the gateway download in progress, if any (the fault crashes it)."""
    tasks: anyio.abc.TaskGroup | None = None
    """The workload's task group, where crashed nodes are restarted (``None`` before)."""
    history: list[Operation] = attrs.Factory(list)
    """Operations of the clients without log positions, in the order they completed."""
    log_history: dict[int, tuple[int, bytes]] = attrs.Factory(dict)
    """``seq`` → ``(epoch, entry bytes)``, as first applied anywhere: the full log."""
    snapshots: dict[str, int] = attrs.Factory(dict)
    """Snapshots ``taken`` and ``restored`` over the run."""
    snapshot_rng: random.Random | None = None
