"""Checking a recorded history of client operations against what a replicated store promises.

A chaos run (or any test that drives a store from several clients) records every operation
as an :class:`Operation`: which client, when it was invoked and when it completed, its
:class:`Outcome` (``ok``, ``failed``: certainly not applied, ``unknown``: may have been
applied, now or later), the values it wrote and the values it read, keyed by object. Keys
are registers: a write sets a key's value (``None`` is "absent": never created, or
deleted) and a read observes one. :func:`check` then looks for:

* **never-written**: a read (or the final state) shows a value no write could have put
  there — no ``ok`` or ``unknown`` write of that value invoked before the read completed;
* **failed-write-seen**: it shows a value that only a write reported ``failed`` wrote;
* **lost-write**: the final state, read after every fault healed, holds a value written
  *before* an acknowledged write to the same key began — that acknowledged write is gone;
* **read-your-writes**: a client reads a key older than its own acknowledged write of it;
* **monotonic-reads**: a client reads a key older than a value it already read there.

Both session checks bind an operation to what the client saw acknowledged *before invoking
it*: a client may have several requests in flight, and a read that overlaps a write of the
same client may see the value before it.

"Older" is decided without trusting the store: write *a* precedes write *b* when *a* was
acknowledged before *b* was invoked (real time; an ``unknown`` write never completes, so it
may take effect any time after its invocation and precedes nothing), or when both were
acknowledged with a log position (:attr:`Operation.version`) and *a*'s is lower. The initial
value precedes every write. Values of one key should be unique (a client tags what it
writes), so that a value read names the write that made it. The model assumes the store
orders writes to one key (one replicated log does); it does not ask reads to be
linearizable, only the session guarantees above.

The module has no I/O: histories come and go as JSON lines (:func:`dump_jsonl`,
:func:`load_jsonl`), and a :class:`Report` is data.
"""

from __future__ import annotations

import enum
import heapq
import itertools
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeAlias

import attrs
import cattrs

__all__ = [
    "Operation",
    "Outcome",
    "Report",
    "Value",
    "Violation",
    "ViolationKind",
    "check",
    "dump_jsonl",
    "freeze",
    "load_jsonl",
]

Value: TypeAlias = Any
"""A JSON-able value; lists are turned into tuples (:func:`freeze`) so values compare."""


class Outcome(enum.Enum):
    """How an operation ended, as far as its client could tell."""

    OK = "ok"
    FAILED = "failed"
    """Certainly not applied (e.g. refused before anything was written)."""
    UNKNOWN = "unknown"
    """May have been applied, now or later (a timeout, a broken connection, a 502)."""


class ViolationKind(enum.Enum):
    NEVER_WRITTEN = "never-written"
    FAILED_WRITE_SEEN = "failed-write-seen"
    LOST_WRITE = "lost-write"
    READ_YOUR_WRITES = "read-your-writes"
    MONOTONIC_READS = "monotonic-reads"

    @property
    def session(self) -> bool:
        """Whether this is a per-client session guarantee (not a property of the data)."""
        return self in (ViolationKind.READ_YOUR_WRITES, ViolationKind.MONOTONIC_READS)


def freeze(value: Any) -> Value:
    """``value`` with lists as tuples and dicts as sorted tuples of pairs (hashable)."""
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((str(k), freeze(v)) for k, v in value.items()))
    return value


def _frozen_map(m: Mapping[str, Any]) -> dict[str, Value]:
    return {str(k): freeze(v) for k, v in m.items()}


def _version(v: Iterable[int] | None) -> tuple[int, ...] | None:
    return None if v is None else tuple(int(x) for x in v)


@attrs.frozen(kw_only=True)
class Operation:
    """One client operation. ``complete`` is when the client stopped waiting (for an
    ``unknown`` outcome: when it gave up)."""

    client: str
    name: str
    invoke: float
    complete: float
    outcome: Outcome
    writes: dict[str, Value] = attrs.field(factory=dict, converter=_frozen_map)
    reads: dict[str, Value] = attrs.field(factory=dict, converter=_frozen_map)
    version: tuple[int, ...] | None = attrs.field(default=None, converter=_version)
    """For an acknowledged write: the log position it committed at (orders writes)."""
    detail: dict[str, Any] = attrs.field(factory=dict)
    """Anything else worth showing (status, error, node); not checked."""

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK


@attrs.frozen(kw_only=True)
class Violation:
    kind: ViolationKind
    client: str
    key: str
    op: int | None
    """Index in the history of the operation that shows it (None: the final state)."""
    message: str


@attrs.frozen
class Report:
    """What :func:`check` found, and how much it looked at."""

    violations: tuple[Violation, ...]
    operations: int
    reads_checked: int
    writes_acknowledged: int
    keys: int

    def of(self, kind: ViolationKind) -> list[Violation]:
        return [v for v in self.violations if v.kind is kind]

    def counts(self) -> dict[str, int]:
        """Violations per kind (every kind listed, zeros included)."""
        return {k.value: len(self.of(k)) for k in ViolationKind}


_converter = cattrs.Converter()
_converter.register_unstructure_hook(tuple, lambda t: [_converter.unstructure(x) for x in t])
_converter.register_structure_hook(tuple[int, ...] | None, lambda v, _: _version(v))


def dump_jsonl(history: Iterable[Operation]) -> str:
    """The history as JSON lines, one operation per line."""
    return "".join(json.dumps(_converter.unstructure(op), sort_keys=True) + "\n" for op in history)


def load_jsonl(text: str) -> list[Operation]:
    """A history from :func:`dump_jsonl`'s format (blank lines skipped)."""
    return [_converter.structure(json.loads(line), Operation) for line in text.splitlines() if line]


# -- checking ----------------------------------------------------------------------------------


@attrs.frozen
class _Write:
    """A write of one key: ``op`` is None for the initial value."""

    op: int | None
    invoke: float
    end: float  # when it certainly took effect, if it did (inf: unknown)
    version: tuple[int, ...] | None
    outcome: Outcome
    client: str

    def precedes(self, other: _Write) -> bool:
        """Whether every order of the key's writes puts ``self`` before ``other``."""
        if self.op is None:
            return other.op is not None
        if other.op is None:
            return False
        if self.end < other.invoke:
            return True
        return (
            self.version is not None and other.version is not None and self.version < other.version
        )


_UNWRITTEN = {
    ViolationKind.NEVER_WRITTEN: "which no write wrote",
    ViolationKind.FAILED_WRITE_SEEN: "which only a failed write wrote",
}
_INITIAL = _Write(None, -math.inf, -math.inf, None, Outcome.OK, "")


def check(
    history: Sequence[Operation],
    *,
    final: Mapping[str, Value] | None = None,
    final_keys: Iterable[str] | None = None,
) -> Report:
    """Check ``history`` (in any order; indices refer to it) and, when given, the ``final``
    values read after every fault healed (keys missing from ``final`` but named in
    ``final_keys`` are taken as ``None``, absent)."""
    writes: dict[str, dict[Value, list[_Write]]] = defaultdict(lambda: defaultdict(list))
    acked: dict[str, list[_Write]] = defaultdict(list)
    for i, op in enumerate(history):
        for key, value in op.writes.items():
            end = op.complete if op.ok else math.inf
            w = _Write(i, op.invoke, end, op.version if op.ok else None, op.outcome, op.client)
            writes[key][value].append(w)
            if op.ok:
                acked[key].append(w)
    violations: list[Violation] = []
    reads_checked = 0

    def candidates(key: str, value: Value, before: float) -> list[_Write] | ViolationKind:
        found = [_INITIAL] if value is None else []
        possible = writes.get(key, {}).get(value, [])
        found += [w for w in possible if w.outcome is not Outcome.FAILED and w.invoke <= before]
        if found:
            return found
        failed = any(w.outcome is Outcome.FAILED and w.invoke <= before for w in possible)
        return ViolationKind.FAILED_WRITE_SEEN if failed else ViolationKind.NEVER_WRITTEN

    # Per client, in invocation order: what each key must not go back behind. What an
    # operation saw or wrote binds the client's operations invoked once it completed, not
    # those it overlapped (a client may have several requests in flight).
    by_client: dict[str, list[int]] = defaultdict(list)
    for i, op in enumerate(history):
        by_client[op.client].append(i)
    for client, indices in by_client.items():
        indices.sort(key=lambda i: (history[i].invoke, i))
        floors: dict[str, list[_Write]] = defaultdict(list)
        later: list[tuple[float, int, str, _Write]] = []  # raises not in force yet
        order = itertools.count()
        for i in indices:
            op = history[i]
            while later and later[0][0] <= op.invoke:
                _, _, key, write = heapq.heappop(later)
                _raise_floor(floors[key], write)
            if op.ok:
                for key, value in op.reads.items():
                    reads_checked += 1
                    found = candidates(key, value, op.complete)
                    if isinstance(found, ViolationKind):
                        violations.append(
                            Violation(
                                kind=found,
                                client=client,
                                key=key,
                                op=i,
                                message=f"{op.name} read {value!r}, {_UNWRITTEN[found]}",
                            )
                        )
                        continue
                    behind = [f for f in floors[key] if all(c.precedes(f) for c in found)]
                    if behind:
                        f = behind[0]
                        own = (
                            f.op is not None and f.client == client and key in history[f.op].writes
                        )
                        kind = (
                            ViolationKind.READ_YOUR_WRITES if own else ViolationKind.MONOTONIC_READS
                        )
                        violations.append(
                            Violation(
                                kind=kind,
                                client=client,
                                key=key,
                                op=i,
                                message=f"{op.name} read {value!r}, older than what this client "
                                f"{'wrote' if own else 'read'} in operation {f.op}",
                            )
                        )
                        continue
                    seen = min(found, key=lambda w: w.invoke)
                    heapq.heappush(later, (op.complete, next(order), key, seen))
                for key in op.writes:
                    write = next(w for w in acked[key] if w.op == i)
                    heapq.heappush(later, (op.complete, next(order), key, write))

    if final is not None:
        keys = set(final) | set(final_keys or ())
        for key in sorted(keys):
            value = freeze(final.get(key))
            found = candidates(key, value, math.inf)
            if isinstance(found, ViolationKind):
                violations.append(
                    Violation(
                        kind=found,
                        client="final",
                        key=key,
                        op=None,
                        message=f"the final state holds {value!r}, {_UNWRITTEN[found]}",
                    )
                )
                continue
            lost = [w for w in acked.get(key, []) if all(c.precedes(w) for c in found)]
            for w in lost:
                assert w.op is not None
                violations.append(
                    Violation(
                        kind=ViolationKind.LOST_WRITE,
                        client=w.client,
                        key=key,
                        op=w.op,
                        message=f"acknowledged {history[w.op].name} of "
                        f"{history[w.op].writes[key]!r} is lost: the final state holds {value!r}",
                    )
                )
    return Report(
        violations=tuple(violations),
        operations=len(history),
        reads_checked=reads_checked,
        writes_acknowledged=sum(len(v) for v in acked.values()),
        keys=len(set(writes) | set(final or ())),
    )


def _raise_floor(floor: list[_Write], w: _Write) -> None:
    """Add ``w`` to a key's floor, dropping the writes it supersedes."""
    if any(w.precedes(f) or w == f for f in floor):
        return
    floor[:] = [f for f in floor if not f.precedes(w)]
    floor.append(w)
