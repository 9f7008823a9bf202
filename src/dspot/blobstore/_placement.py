"""Where a blob lives: the R successors of its hash on the membership ring."""

from __future__ import annotations

import bisect
import functools
import hashlib
from typing import Literal

import attrs

from dspot.membership._view import Member, ring_order, ring_position

Replication = int | Literal["all"]


@attrs.frozen
class BlobPlacement:
    """``replicas`` copies (an integer, or ``"all"`` for every live member); ``write_quorum``
    synced copies acknowledge an upload."""

    replicas: Replication = 3
    write_quorum: int = 2

    def __attrs_post_init__(self) -> None:
        if self.replicas != "all" and (not isinstance(self.replicas, int) or self.replicas < 1):
            raise ValueError(f"replicas must be a positive integer or 'all', not {self.replicas!r}")
        if self.write_quorum < 1:
            raise ValueError("write_quorum must be at least 1")
        if isinstance(self.replicas, int) and self.write_quorum > self.replicas:
            raise ValueError("write_quorum cannot exceed replicas")

    def count(self, live: int) -> int:
        """How many copies a blob should have with ``live`` members up: min(R, live)."""
        return live if self.replicas == "all" else min(self.replicas, live)

    def owners(self, key: str, live: list[Member]) -> list[Member]:
        """The members that should hold ``key``, in chain order.

        Same answer as :func:`~dspot.membership.ring_successors`, with the ring cached.
        """
        if not live:
            return []
        by_id = {m.node_id: m for m in live}
        ordered, positions = _ring(tuple(sorted(by_id)))
        point = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
        start = bisect.bisect_right(positions, point)
        count = self.count(len(ordered))
        return [by_id[ordered[(start + i) % len(ordered)]] for i in range(count)]


@functools.lru_cache(maxsize=64)
def _ring(ids: tuple[str, ...]) -> tuple[list[str], list[int]]:
    ordered = ring_order(list(ids))
    return ordered, [ring_position(n) for n in ordered]
