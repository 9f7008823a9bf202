"""The ground truth of a run's faults: which node was down and which links were cut, when.

:class:`~dspot.sim.Simulation` records every crash and restart; the
:class:`~dspot.sim.Nemesis` records the network faults it injects. Checkers ask it whether a
node was up, or reachable from everyone, throughout a stretch of virtual time, and so tell a
legitimate failure detection from a false one.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

__all__ = ["FaultRecord", "FaultSpan"]

NETWORK_KINDS = frozenset({"partition", "isolate", "one_way"})
"""Kinds whose span carries the directed pairs that could not talk (:attr:`FaultSpan.cut`)."""


@attrs.define
class FaultSpan:
    """One fault from ``start`` until ``end`` (``None``: still active when the run ended)."""

    kind: str
    start: float
    end: float | None = None
    nodes: tuple[str, ...] = ()
    """The nodes it hit directly (the crashed node, the node with a slow disk)."""
    cut: frozenset[tuple[str, str]] = frozenset()
    """Directed ``(src, dst)`` pairs that could not talk while it lasted."""
    degraded: bool = False
    """Whether it degraded every link (loss or latency spikes)."""

    def overlaps(self, start: float, end: float) -> bool:
        return self.start <= end and (self.end is None or self.end >= start)

    def cuts_off(self, node: str) -> bool:
        return any(node in pair for pair in self.cut)


class FaultRecord:
    """Every fault of one run, in the order they began."""

    def __init__(self) -> None:
        self.spans: list[FaultSpan] = []

    def begin(
        self,
        kind: str,
        at: float,
        *,
        nodes: Iterable[str] = (),
        cut: Iterable[tuple[str, str]] = (),
        degraded: bool = False,
    ) -> FaultSpan:
        span = FaultSpan(kind, at, None, tuple(nodes), frozenset(cut), degraded)
        self.spans.append(span)
        return span

    @staticmethod
    def end(span: FaultSpan, at: float) -> None:
        if span.end is None:
            span.end = at

    def up_throughout(self, node: str, start: float, end: float) -> bool:
        """Whether ``node`` was running for all of ``[start, end]``."""
        return not any(
            s.kind == "down" and node in s.nodes and s.overlaps(start, end) for s in self.spans
        )

    def reachable_throughout(self, node: str, start: float, end: float) -> bool:
        """Whether every link to and from ``node`` worked normally for all of ``[start, end]``
        (no partition, isolation or one-way block touching it, no loss or latency spike)."""
        return not any(
            s.overlaps(start, end) and (s.degraded or s.cuts_off(node)) for s in self.spans
        )
