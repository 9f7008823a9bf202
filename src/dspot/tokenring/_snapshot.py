"""Snapshots: what a state machine implements so the ring can compact its log, the snapshot
file, and its transfer in checksummed chunks.

A snapshot is one node-local file (``dspot.disk``): the ring's header (the snapshot's
position, the entry ids it still remembers for duplicate suppression, the configured
membership) followed by the state machine's own bytes, in whatever format it likes. The
file is written through a :class:`~dspot.disk.FileWriter`, so it appears under its name
only when complete and synced; its sha256 is computed once, as the bytes go by.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import AsyncIterator, Sequence
from typing import Protocol, runtime_checkable

import attrs

from dspot.disk import Disk, FileWriter
from dspot.env import Offload, run_inline
from dspot.tokenring._messages import CommittedEntry, SnapshotMeta

MAGIC = b"DSPOTSN1"
_LEN = struct.Struct(">I")


@attrs.frozen
class SnapshotHeader:
    """The ring's part of a snapshot file."""

    index: int
    epoch: int
    ids: list[tuple[str, int, int]]
    """``(entry id, index, epoch)`` the taker remembered, for duplicate suppression."""
    members: list[str]
    """The configured membership the taker knew."""


class SnapshotWriter:
    """Where a state machine writes its snapshot. Bytes go to the file and the checksum."""

    def __init__(self, writer: FileWriter, offload: Offload = run_inline) -> None:
        self._writer = writer
        self._offload = offload
        self._hash = hashlib.sha256()
        self.size = 0

    async def write(self, data: bytes) -> None:
        """Append ``data`` to the snapshot."""
        if not data:
            return
        await self._writer.write(data)
        if len(data) >= 64 * 1024:
            await self._offload(self._hash.update, data)
        else:
            self._hash.update(data)
        self.size += len(data)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


class SnapshotReader:
    """A stored snapshot's state-machine part, for :meth:`StateMachine.restore_snapshot`.

    ``index`` and ``epoch`` are the position the state will be at once restored."""

    def __init__(self, disk: Disk, meta: SnapshotMeta) -> None:
        self._disk = disk
        self._meta = meta
        self.index = meta.index
        self.epoch = meta.epoch
        self.size = meta.size - meta.data_offset

    async def read(self, offset: int = 0, length: int | None = None) -> bytes:
        """Up to ``length`` bytes (all by default) from ``offset`` of the state's bytes."""
        if length is None:
            length = max(0, self.size - offset)
        length = max(0, min(length, self.size - offset))
        return await self._disk.read(self._meta.name, self._meta.data_offset + offset, length)

    async def chunks(self, size: int = 1024 * 1024) -> AsyncIterator[bytes]:
        """The state's bytes, ``size`` at a time."""
        offset = 0
        while offset < self.size:
            data = await self.read(offset, size)
            if not data:
                raise EOFError(f"snapshot {self._meta.name} ends early at {offset}")
            offset += len(data)
            yield data


@runtime_checkable
class StateMachine(Protocol):
    """An application state built by applying the log, that can be snapshotted.

    Give one to :class:`~dspot.tokenring.TokenRing` (``state_machine=``) instead of an
    ``apply`` callback to let the ring compact its log. The ring calls these methods from
    one task, never two at once, so a snapshot always reflects exactly the entries applied.
    Every member of a ring must use the same kind (all snapshot, or none).
    """

    async def apply(self, entry: CommittedEntry) -> None:
        """Apply the next committed entry (positions only grow, with gaps for no-ops)."""

    async def applied_index(self) -> int:
        """The log index the state reflects *durably* (0 for none, or for a state kept in
        memory). After a restart the ring applies from the next index, restoring the
        latest snapshot first if the log no longer reaches back that far."""

    async def save_snapshot(self, out: SnapshotWriter) -> None:
        """Write the whole current state to ``out`` (the ring knows its index)."""

    async def restore_snapshot(self, snapshot: SnapshotReader) -> None:
        """Replace the whole state with the snapshot's, **atomically**: a crash halfway
        must leave the old state (the ring restores again after the restart). Afterwards
        :meth:`applied_index` must say ``snapshot.index``, durably if the state is."""


@runtime_checkable
class AppliesBatches(Protocol):
    """A :class:`StateMachine` that can also apply several entries at once: the ring then
    hands it every run of committed entries it reads together (up to a few hundred while a
    member catches up; one or two in the steady state) instead of one call each, so a
    durable state pays one commit per run, not one per entry."""

    async def apply_batch(self, entries: Sequence[CommittedEntry]) -> None:
        """Apply consecutive committed entries, in order, **atomically**: after a crash
        :meth:`StateMachine.applied_index` says the last of them or the index before."""


def encode_header(header: SnapshotHeader) -> bytes:
    # Built by hand, not by cattrs: the id window holds up to ``dedupe_window`` triples,
    # and cattrs took several times as long over them (on the event loop).
    doc = {"index": header.index, "epoch": header.epoch, "ids": header.ids}
    doc["members"] = header.members
    body = json.dumps(doc, separators=(",", ":")).encode()
    return MAGIC + _LEN.pack(len(body)) + body


def _decode_header(doc: object) -> SnapshotHeader:
    """The header in ``doc`` (parsed JSON), checked field by field (ValueError if not)."""
    if not isinstance(doc, dict):
        raise ValueError("not an object")
    index, epoch, ids, members = (doc.get(k) for k in ("index", "epoch", "ids", "members"))
    if type(index) is not int or type(epoch) is not int:
        raise ValueError("index and epoch must be integers")
    if not isinstance(ids, list) or not isinstance(members, list):
        raise ValueError("ids and members must be lists")
    triples: list[tuple[str, int, int]] = []
    for item in ids:
        if (
            not isinstance(item, list)
            or len(item) != 3
            or type(item[0]) is not str
            or type(item[1]) is not int
            or type(item[2]) is not int
        ):
            raise ValueError(f"bad id entry {item!r:.80}")
        triples.append((item[0], item[1], item[2]))
    if not all(type(m) is str for m in members):
        raise ValueError("members must be strings")
    return SnapshotHeader(index, epoch, triples, members)


async def read_header(disk: Disk, name: str) -> tuple[SnapshotHeader, int]:
    """The header of the snapshot file ``name`` and where the state's bytes start."""
    head = await disk.read(name, 0, len(MAGIC) + _LEN.size)
    if len(head) < len(MAGIC) + _LEN.size or not head.startswith(MAGIC):
        raise ValueError(f"{name} is not a snapshot file")
    (length,) = _LEN.unpack(head[len(MAGIC) :])
    body = await disk.read(name, len(head), length)
    if len(body) != length:
        raise ValueError(f"snapshot header of {name} is cut short")
    try:
        header = _decode_header(json.loads(body))
    except ValueError as exc:
        raise ValueError(f"bad snapshot header in {name}: {exc}") from exc
    return header, len(head) + length


async def write_snapshot(
    disk: Disk,
    name: str,
    header: SnapshotHeader,
    machine: StateMachine,
    offload: Offload = run_inline,
) -> SnapshotMeta:
    """Write header and state to the file ``name``, synced; return where it is."""
    async with disk.create(name) as writer:
        out = SnapshotWriter(writer, offload)
        head = encode_header(header)
        await out.write(head)
        await machine.save_snapshot(out)
        await writer.commit(sync=True)
    return SnapshotMeta(header.index, header.epoch, name, out.size, out.hexdigest(), len(head))


@attrs.define(eq=False)
class IncomingSnapshot:
    """A snapshot being received chunk by chunk; published only when whole and verified."""

    index: int
    epoch: int
    size: int
    sha256: str
    out: SnapshotWriter
    writer: FileWriter

    @property
    def received(self) -> int:
        return self.out.size

    def matches(self, index: int, epoch: int, size: int, sha256: str) -> bool:
        return (self.index, self.epoch, self.size, self.sha256) == (index, epoch, size, sha256)

    async def finish(self) -> bool:
        """Publish the file (synced) if it is complete and its checksum matches."""
        if self.received != self.size or self.out.hexdigest() != self.sha256:
            await self.writer.abort()
            return False
        await self.writer.commit(sync=True)
        return True
