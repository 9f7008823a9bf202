"""Log records, positions and the token ring's wire messages (frozen attrs classes).

Entry data travels in the frame's raw payload section (concatenated, sizes in the body),
never base64-encoded.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from dspot import wire


@attrs.frozen(order=True)
class LogPosition:
    """Where a committed entry sits: ``seq`` is its index in the one log (1-based, dense),
    ``epoch`` the token epoch in which it was assigned. Ordered by ``seq`` first."""

    seq: int
    epoch: int


@attrs.frozen
class Entry:
    """One log record. ``entry_id`` deduplicates submits; the empty id marks a no-op that a
    freshly regenerated token appends (it is never shown to applications)."""

    epoch: int
    entry_id: str
    data: bytes

    @property
    def is_noop(self) -> bool:
        return self.entry_id == ""


@attrs.frozen
class CommittedEntry:
    """What an application sees: a committed entry and its position."""

    position: LogPosition
    entry_id: str
    data: bytes


@attrs.frozen
class EntryMeta:
    epoch: int
    entry_id: str
    size: int


@wire.message("tokenring.append", idempotent=True)
@attrs.frozen
class Append:
    """Holder → member: entries after ``prev_index``, the commit index, and, when ``token``
    is set, the token itself (the receiver becomes holder at ``hop``).

    Idempotent: entries of one epoch form one chain, so a repeated append changes nothing,
    and a repeated token pass is refused because the receiver persisted the hop it took.
    """

    epoch: int
    hop: int
    holder: str
    prev_index: int
    prev_epoch: int
    commit: int
    token: bool
    metas: tuple[EntryMeta, ...]
    payload: bytes
    contact_age: float = 0.0
    """With the token: seconds since the passer last heard from a majority. The new holder
    inherits it, so a token circulating inside a minority still times out and stops."""
    wanted: tuple[str, ...] = ()
    """With the token: members known to have submits queued (so the new holder passes on
    promptly instead of idling)."""
    floor: int = 0
    """Every live member (as the holder sees them) has the log up to here: ids of entries
    at or below it may leave the duplicate-suppression window once they are old enough."""
    holder_last: int = -1
    """The holder's last index when it sent this (-1: not said). A learner whose log
    matches up to here holds everything committed, and may vote from then on."""

    @classmethod
    def build(
        cls,
        *,
        epoch: int,
        hop: int,
        holder: str,
        prev_index: int,
        prev_epoch: int,
        commit: int,
        token: bool,
        entries: Sequence[Entry],
        wanted: Sequence[str] = (),
        contact_age: float = 0.0,
        floor: int = 0,
        holder_last: int = -1,
    ) -> Append:
        metas = tuple(EntryMeta(e.epoch, e.entry_id, len(e.data)) for e in entries)
        return cls(
            epoch, hop, holder, prev_index, prev_epoch, commit, token, metas,
            b"".join(e.data for e in entries), contact_age, tuple(wanted), floor, holder_last,
        )  # fmt: skip

    def entries(self) -> list[Entry]:
        """Decode the entries carried in the payload."""
        out: list[Entry] = []
        pos = 0
        for m in self.metas:
            out.append(Entry(m.epoch, m.entry_id, self.payload[pos : pos + m.size]))
            pos += m.size
        if pos != len(self.payload):
            raise ValueError("append payload does not match its entry sizes")
        return out

    @property
    def last_index(self) -> int:
        return self.prev_index + len(self.metas)


@wire.message("tokenring.append_reply")
@attrs.frozen
class AppendReply:
    """Member → holder. ``ok`` when the log matched at ``prev_index``; ``match_index`` is
    then the last index known equal to the holder's. On a mismatch, ``conflict_index``
    is where the holder should resume. ``took_token`` says the member is now the holder."""

    epoch: int
    ok: bool
    match_index: int
    conflict_index: int
    took_token: bool
    pending: int = 0
    """How many submits wait in the member's queue (for dashboards)."""


@wire.message("tokenring.vote", idempotent=True)
@attrs.frozen
class Vote:
    """Candidate → member: grant me ``epoch`` (regenerate the token with me as holder)."""

    epoch: int
    candidate: str
    last_index: int
    last_epoch: int


@wire.message("tokenring.vote_reply")
@attrs.frozen
class VoteReply:
    epoch: int
    granted: bool


@attrs.frozen
class SnapshotMeta:
    """A stored snapshot: the state after applying the log up to ``index`` (whose entry is
    of ``epoch``), in the node-local file ``name`` of ``size`` bytes with this sha256.

    The file starts with the ring's own header (``data_offset`` bytes: the duplicate-
    suppression ids and the configured membership at that point); the state machine's
    bytes follow."""

    index: int
    epoch: int
    name: str
    size: int
    sha256: str
    data_offset: int


@wire.message("tokenring.snapshot", idempotent=True)
@attrs.frozen
class InstallSnapshot:
    """Holder → member too far behind for log transfer: one chunk of the holder's latest
    snapshot, ``payload`` at ``offset`` of a ``size``-byte file whose sha256 is given.

    Idempotent: a chunk the member already has is acknowledged again and not rewritten;
    the snapshot is installed once, after the last chunk arrived and the checksum matched.
    """

    epoch: int
    hop: int
    holder: str
    index: int
    index_epoch: int
    size: int
    sha256: str
    data_offset: int
    offset: int
    payload: bytes


@wire.message("tokenring.snapshot_reply")
@attrs.frozen
class InstallSnapshotReply:
    """Member → holder. ``ok`` unless the holder's epoch is stale. ``installed`` once the
    member holds the state up to ``match_index`` (installed now, or it had it already);
    otherwise the holder continues with the chunk at ``next_offset``."""

    epoch: int
    ok: bool
    installed: bool = False
    match_index: int = 0
    next_offset: int = 0
