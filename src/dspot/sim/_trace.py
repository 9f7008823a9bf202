"""The simulation's structured trace and its stable hash.

Every event is a kind, the virtual time, and keyword fields; written out it is one JSON line
``{"t": virtual_time, "k": kind, ...fields}``. The hash is SHA-256 over a canonical text of
the events in order (fields in call order, values by ``repr``). Fields must be plain values
built without iterating unordered sets, so the same seed hashes the same in any process.
"""

from __future__ import annotations

import hashlib
import json
from typing import IO, Any

from dspot._wakeup import current_time


class TraceLog:
    """Collects events, hashing them as they come; optionally writes them to a file."""

    def __init__(self, out: IO[str] | None = None) -> None:
        self._hash = hashlib.sha256()
        self._lines: list[str] = []
        self._out = out
        self.count = 0
        self.counts: dict[str, int] = {}

    def record(self, kind: str, /, **fields: Any) -> None:
        try:
            now = current_time()
        except RuntimeError:  # outside the event loop (setup, checks)
            now = -1.0
        # The hash covers a cheap canonical text (fields in call order, values by repr),
        # hashed a few hundred lines at a time; JSON is only built when someone reads it.
        lines = self._lines
        lines.append(f"{now!r}|{kind}|{fields!r}\n")
        if len(lines) >= 256:
            self._flush()
        self.count += 1
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if self._out is not None:
            line = json.dumps(
                {"t": round(now, 9), "k": kind, **fields}, sort_keys=True, default=str
            )
            self._out.write(line + "\n")

    def segment(self, kind: str, conn: int, src: str, dst: str, n: int) -> None:
        """``record(kind, conn=conn, src=src, dst=dst, n=n)``, hashed identically, at a third
        of the cost: the network traces every segment it sends and delivers."""
        if self._out is not None:
            self.record(kind, conn=conn, src=src, dst=dst, n=n)
            return
        try:
            now = current_time()
        except RuntimeError:
            now = -1.0
        lines = self._lines
        lines.append(
            f"{now!r}|{kind}|{{'conn': {conn!r}, 'src': {src!r}, 'dst': {dst!r}, 'n': {n!r}}}\n"
        )
        if len(lines) >= 256:
            self._flush()
        self.count += 1
        self.counts[kind] = self.counts.get(kind, 0) + 1

    def for_node(self, node: str) -> _NodeTracer:
        return _NodeTracer(self, node)

    def _flush(self) -> None:
        self._hash.update("".join(self._lines).encode())
        self._lines.clear()

    @property
    def hexdigest(self) -> str:
        self._flush()
        return self._hash.hexdigest()[:16]


class _NodeTracer:
    __slots__ = ("_log", "_node")

    def __init__(self, log: TraceLog, node: str) -> None:
        self._log = log
        self._node = node

    def __call__(self, kind: str, /, **fields: Any) -> None:
        self._log.record(kind, node=self._node, **fields)


def combined_trace_hash(hashes: list[str]) -> str:
    """The trace hash of a run of several seeds: one seed's own hash, or for more a hash
    over each seed's hash in seed order (so it does not depend on how the seeds were spread
    over processes)."""
    if len(hashes) == 1:
        return hashes[0]
    return hashlib.sha256("\n".join(hashes).encode()).hexdigest()[:16]
