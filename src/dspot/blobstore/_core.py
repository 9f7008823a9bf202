"""The blob store's decisions, with no I/O: facts in, plans and verdicts out.

Nothing here awaits, reads a clock or touches a disk or a socket; the driver
(:class:`~dspot.blobstore.BlobStore`, ``_store.py``) gathers the facts — the view, chunk
acknowledgements, commit answers, what other nodes say they hold — hands them to these
objects, and carries out what they return. Every decision can therefore be tested without an
event loop (``tests/blobstore/test_core.py``), and the simulation drives the same code
through the same driver.

Theory of operation
-------------------
*Placement.* A blob lives on the R successors of its content address on the ring of live
members (:class:`~dspot.blobstore.BlobPlacement`). When the caller knows the hash up front
the upload chain is placed there at once (:func:`upload_chain`); otherwise it is placed by
the upload id and repair later hands the copies over to the hash's owners.

*Upload chain.* The coordinator sends chunk ``i`` to the chain's head and keeps ``window``
chunks in flight (:class:`ChunkTally` counts, from the acknowledgements, which replicas hold
every chunk sent). A replica (:class:`ChainReplica`) forwards each chunk to its successor
the moment it arrives, before it hashes or writes it, and writes chunks strictly in sequence
order whatever order they arrive in. Its answer for chunk ``i`` lists itself and the
successors that hold every chunk up to ``i``; a replica whose forward fails is *cut* and
stops forwarding (its successor would hold a gap), so the tail simply stops being counted.

*Hashing, once per upload.* The coordinator computes the whole-blob sha256 (the content
address; a hash the caller gave is checked against it) and the block digests (one XXH3-128
per ``block_size`` bytes, what a replica later checks before serving a range), one pass. A
replica computes only the block digests of the bytes it wrote (about 30 times cheaper than a
sha256 pass) and compares them with the ones in the commit request.

*Commit.* When every chunk is acknowledged, the coordinator asks each replica that holds
every chunk to commit (:meth:`ChunkTally.commit_targets`). A replica refuses unless it
wrote exactly the announced chunks and bytes and the block digests have the right length
(:meth:`ChainReplica.commit_refusal`), then checks its block digests against the
coordinator's, syncs the file and its row, and answers. :class:`CommitQuorum` counts the
answers: the upload is acknowledged once ``write_quorum`` replicas committed.

*Deletes and tombstones.* A delete records a tombstone (the deleter's wall-clock time) on
every live member and must reach every owner over the live and the configured membership
(:func:`plan_delete`). :func:`delete_wins` is the one precedence rule, applied wherever a
copy and a tombstone meet (a commit, a fetch, a delete, a repair round): a tombstone at or
after the moment a copy's upload began wins; an upload that began later is a new fact.

*Repair* (:class:`RepairRound`): for every copy it holds, a node asks the hash's owners
whether they hold it, then plans: adopt a winning tombstone (drop the copy), ask each owner
that answered "missing" to fetch it from the holders, and drop its own copy when it is not
an owner and every one of the min(R, live) owners confirmed one (a hand-off).

*Reads* (:func:`read_order`, :class:`ReadCursor`) try this node's copy, then the hash's
owners, then every other live member, recently failed ones last; a failure resumes at the
same offset on the next source, and a read gives up after ``read_passes`` passes over the
sources that made no progress. *Healing* a corrupt copy fetches from the owners first
(:func:`heal_sources`).

Why acknowledged uploads survive (invariant 1)
----------------------------------------------
1. *W verified, synced copies.* :class:`CommitQuorum` counts only replicas that answered
   ``ok``, and a replica answers ``ok`` only after the block digests of the bytes it wrote
   equal the coordinator's and the file and row are synced
   (``BlobStoreMechanism.SYNC_BEFORE_ACK``, switched off only by the sabotage test that shows
   the scenario's checker notices). The coordinator computed those digests and the content
   address over the bytes it sent, so a replica whose digests match holds exactly the bytes
   the address names (a 128-bit checksum per block: transit and disk errors, not forgers, who
   would have to be cluster members). A blob whose hash differs from one the caller gave is
   never committed anywhere.
2. *Block digests are right for those bytes.* The coordinator computes them over the bytes
   it sends and the replica checks them against its own; a wrong length is refused outright.
   Digests of another kind (a coordinator of an older version sends sha256 ones) are checked
   by hashing the written file again, whole-blob sha256 included.
3. *No gaps.* A replica writes chunks in sequence order only and counts a successor only for
   acknowledgements that successor gave for every chunk so far, so a replica named in
   :meth:`ChunkTally.commit_targets` holds the whole stream (and checks chunk and byte counts
   again before committing).
4. *Repair never drops the last copies.* A hand-off drops a non-owner's copy only when every
   owner of the current view confirmed a copy in the same round, and the number of owners
   is min(R, live); a tombstone drop only happens for a delete at or after the upload began.
5. *Deletes are not undone by a returning node*: the tombstone outlives the copy (until
   ``tombstone_ttl``), a late commit, fetch or repair round of an older copy loses to it, and
   a delete only reports success once every owner, counted over the configured membership,
   recorded it.

Limits: tombstone precedence compares wall clocks of different nodes (the deleter's and the
upload coordinator's), so clock skew larger than the time between an upload and a delete of
the same content can order them wrongly; ``tombstone_ttl`` must exceed the longest time a
node holding a copy can stay away and come back.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable, Mapping, Sequence

import attrs

from dspot.blobstore._errors import BlobUnavailable, IntegrityError, UploadFailed
from dspot.blobstore._hashing import DIGEST_WIDTHS
from dspot.blobstore._messages import Holding, Hop
from dspot.blobstore._placement import BlobPlacement
from dspot.membership._view import Member

SUSPECT_FOR = 2.0
"""Seconds a source that failed a read is tried after the others."""

MISMATCH = "hash mismatch"
"""How a replica's refusal to commit starts when its bytes do not match the content address."""


# -- tombstones ------------------------------------------------------------------------------


def delete_wins(deleted_at: float | None, stored_at: float) -> bool:
    """Whether a tombstone recorded at ``deleted_at`` beats a copy whose upload began at
    ``stored_at``. Ties go to the delete: a delete and an upload in the same instant
    cannot be ordered, and keeping a deleted blob is the worse mistake."""
    return deleted_at is not None and deleted_at >= stored_at


# -- upload: the coordinator -----------------------------------------------------------------


def hop(member: Member) -> Hop:
    return Hop(member.node_id, member.address)


def upload_chain(
    key: str, live: Sequence[Member], placement: BlobPlacement, *, last: Collection[str] = ()
) -> list[Hop]:
    """The replicas of a new upload, in chain order: the owners of ``key`` (the content
    address when known, else the upload id), those in ``last`` (replicas that failed an
    upload lately) moved to the end. A replica that fails cuts the chain after it, so a full
    or failing disk at the tail costs one copy, where at the head it fails the upload.
    Raises :class:`UploadFailed` when fewer than ``write_quorum`` members are live."""
    owners = placement.owners(key, list(live))
    if len(owners) < placement.write_quorum:
        raise UploadFailed(f"{len(owners)} live members, write quorum is {placement.write_quorum}")
    hops = [hop(m) for m in owners]
    return [h for h in hops if h.node not in last] + [h for h in hops if h.node in last]


class ChunkTally:
    """The coordinator's count of the chunks it sent and which replicas hold each."""

    def __init__(self, upload: str, chain: Sequence[Hop]) -> None:
        self.upload = upload
        self.chain = list(chain)
        self.sent = 0
        self.error: str | None = None
        """The first failure of a chunk call; no more chunks are sent after it."""
        self._held: dict[str, int] = {}

    def next_seq(self) -> int:
        """The sequence number of the chunk about to be sent."""
        seq = self.sent
        self.sent += 1
        return seq

    def acked(self, reached: Iterable[str]) -> None:
        """A chunk's acknowledgement: ``reached`` hold every chunk up to it."""
        for node in reached:
            self._held[node] = self._held.get(node, 0) + 1

    def failed(self, error: str) -> None:
        if self.error is None:
            self.error = error

    def complete(self) -> list[Hop]:
        """The replicas that acknowledged every chunk sent."""
        return [h for h in self.chain if self._held.get(h.node, 0) == self.sent]

    def culprit(self) -> str | None:
        """The replica to blame when the stream did not reach every replica: the head when a
        chunk call failed, else the first replica in chain order that misses a chunk (one
        whose successor failed cuts the chain, so the successor is the first missing)."""
        if self.error is not None:
            return self.chain[0].node
        for h in self.chain:
            if self._held.get(h.node, 0) != self.sent:
                return h.node
        return None

    def commit_targets(self, write_quorum: int) -> list[Hop]:
        """Who to ask to commit once every chunk is answered; raises :class:`UploadFailed`
        when a chunk failed or fewer than ``write_quorum`` replicas hold the whole stream."""
        if self.error is not None:
            raise UploadFailed(f"upload {self.upload} to {self.chain[0].node} failed: {self.error}")
        full = self.complete()
        if len(full) < write_quorum:
            raise UploadFailed(
                f"upload {self.upload}: only {[h.node for h in full]} received every chunk"
            )
        return full


class CommitQuorum:
    """Counts the replicas' answers to a commit: settled once ``write_quorum`` committed or
    every replica answered."""

    def __init__(self, upload: str, replicas: Sequence[Hop], write_quorum: int) -> None:
        self.upload = upload
        self.expected = len(replicas)
        self.write_quorum = write_quorum
        self.committed: list[str] = []
        self.reasons: list[str] = []

    def answered(self, node: str, ok: bool, reason: str = "") -> None:
        if ok:
            self.committed.append(node)
        else:
            self.reasons.append(f"{node}: {reason}")

    @property
    def settled(self) -> bool:
        answers = len(self.committed) + len(self.reasons)
        return len(self.committed) >= self.write_quorum or answers >= self.expected

    def result(self) -> list[str]:
        """The replicas that committed, once the quorum is reached; otherwise raises
        :class:`IntegrityError` (a replica's bytes did not match the content address) or
        :class:`UploadFailed`."""
        if len(self.committed) >= self.write_quorum:
            return list(self.committed)
        if any(MISMATCH in r for r in self.reasons):
            raise IntegrityError(f"upload {self.upload}: {self.reasons}")
        raise UploadFailed(f"upload {self.upload}: {len(self.committed)} commits: {self.reasons}")


# -- upload: a replica -----------------------------------------------------------------------


class Arrival(enum.Enum):
    """What a replica makes of a chunk request."""

    NEW = "new"
    """First arrival: forward it now, write it when its turn comes."""
    REPEAT = "repeat"
    """A retry of a chunk already here: answer with the first arrival's outcome."""


class ChainReplica:
    """One replica's side of one upload: which chunks arrived, were written and answered,
    whether the chain below it is cut, and whether the upload failed here."""

    def __init__(self, me: str, downstream: Sequence[Hop], now: float) -> None:
        self.me = me
        self.downstream = list(downstream)
        self.next_seq = 0
        """The next chunk to write (chunks are written in order)."""
        self.size = 0
        """Bytes written so far."""
        self.cut = False
        self.failed: str | None = None
        self.last_active = now
        self._arrived: set[int] = set()
        self._acks: dict[int, list[str]] = {}

    def arrive(self, seq: int, now: float) -> Arrival:
        self.last_active = now
        if seq in self._arrived:
            return Arrival.REPEAT
        self._arrived.add(seq)
        return Arrival.NEW

    def gave_up(self, seq: int) -> None:
        """The handler of chunk ``seq`` stopped waiting for its turn: a retry is new."""
        self._arrived.discard(seq)

    def next_hop(self) -> Hop | None:
        """Where to forward a new chunk (``None``: this is the tail, or the chain is cut)."""
        return None if self.cut or not self.downstream else self.downstream[0]

    def beyond_next(self) -> list[Hop]:
        """The chain below the successor, sent along with each forwarded chunk."""
        return self.downstream[1:]

    def waiting(self, seq: int) -> bool:
        """Whether chunk ``seq`` must still wait for an earlier chunk to be written."""
        return self.failed is None and self.next_seq < seq

    def my_turn(self, seq: int) -> bool:
        return self.failed is None and self.next_seq == seq

    def written(self, seq: int, nbytes: int) -> None:
        if seq != self.next_seq:
            raise ValueError(f"chunk {seq} written out of order (next is {self.next_seq})")
        self.next_seq += 1
        self.size += nbytes

    def forward_failed(self) -> None:
        """The successor did not take a chunk: cut the chain here, for good."""
        self.cut = True

    def fail(self, reason: str) -> None:
        if self.failed is None:
            self.failed = reason

    def finish(self, seq: int, downstream: Sequence[str] | None, now: float) -> list[str]:
        """Record and return chunk ``seq``'s answer: this replica, plus what the successor
        reported (``None`` if it was not reached) unless the chain was cut meanwhile."""
        reached = [self.me]
        if downstream is not None and not self.cut:
            reached += downstream
        self._acks[seq] = reached
        self.last_active = now
        return reached

    def answer(self, seq: int) -> list[str] | None:
        """The recorded answer for chunk ``seq`` (for a repeat), if there is one yet."""
        return self._acks.get(seq)

    def commit_refusal(self, chunks: int, size: int, block_size: int, blocks: int) -> str | None:
        """Why this replica cannot commit what the coordinator announced (``None``: it can).

        ``blocks`` is the byte length of the block digests that came with the commit: one
        digest a block, of a width :func:`digest_width` knows (a coordinator from before the
        XXH3 block checksums sends sha256 ones).
        """
        if self.failed is not None:
            return self.failed
        if self.next_seq != chunks or self.size != size:
            return f"have {self.next_seq} chunks, {self.size} bytes"
        if block_size < 1 or all(
            blocks != -(-size // block_size) * width for width in DIGEST_WIDTHS
        ):
            return f"{blocks} bytes of block digests for {size} bytes in blocks of {block_size}"
        return None

    def idle(self, now: float, timeout: float) -> bool:
        return now - self.last_active > timeout


class CommittedUploads:
    """The uploads a replica committed lately (upload id → sha256), so a repeated commit is
    answered ``ok`` again and a late chunk of a finished upload is refused, not restarted."""

    def __init__(self, limit: int = 4096) -> None:
        self.limit = limit
        self._recent: dict[str, str] = {}  # insertion-ordered: the oldest goes first

    def add(self, upload: str, sha256: str) -> None:
        self._recent[upload] = sha256
        while len(self._recent) > self.limit:
            del self._recent[next(iter(self._recent))]

    def get(self, upload: str) -> str | None:
        return self._recent.get(upload)

    def __contains__(self, upload: object) -> bool:
        return upload in self._recent


# -- deletes ---------------------------------------------------------------------------------


@attrs.frozen
class DeletePlan:
    """Who must hear of a delete: every live member, plus owners that are down."""

    owners: frozenset[str]
    """Owners over the live and the configured membership: each must record the tombstone."""
    targets: tuple[Member, ...]

    def missing(self, acked: Iterable[str]) -> list[str]:
        """Owners that did not record the tombstone: the delete is incomplete."""
        return sorted(self.owners - set(acked))


def plan_delete(
    sha256: str, live: Sequence[Member], configured: Sequence[Member], placement: BlobPlacement
) -> DeletePlan:
    """Owners are counted over the *configured* membership too: a node cut off from the
    others sees only itself alive and must not believe it deleted a blob the others hold."""
    owners = {m.node_id for m in placement.owners(sha256, list(live))}
    owners |= {m.node_id for m in placement.owners(sha256, list(configured))}
    live_ids = {m.node_id for m in live}
    down = [m for m in configured if m.node_id in owners - live_ids]
    return DeletePlan(frozenset(owners), (*live, *down))


# -- repair ----------------------------------------------------------------------------------


@attrs.frozen
class Drop:
    """Remove a local copy: a winning tombstone (``deleted_at`` set, recorded here too) or a
    hand-off to owners that all hold it (``deleted_at`` None)."""

    sha256: str
    deleted_at: float | None = None


@attrs.frozen
class FetchOrder:
    """Ask ``target`` (an owner without a copy) to fetch ``sha256`` from ``sources``."""

    sha256: str
    target: Member
    sources: list[Hop]
    stored_at: float


@attrs.frozen
class RepairPlan:
    drops: list[Drop]
    """In hash order; carry them out before the fetches."""
    fetches: list[FetchOrder]
    under_replicated: int
    """Copies whose owners hold fewer than min(R, live)."""

    @classmethod
    def concat(cls, parts: Iterable[RepairPlan]) -> RepairPlan:
        """The plans of consecutive slices of a round's copies, as one plan."""
        parts = list(parts)
        return cls(
            [d for p in parts for d in p.drops],
            [f for p in parts for f in p.fetches],
            sum(p.under_replicated for p in parts),
        )


class RepairRound:
    """One anti-entropy round of one node: which owners to ask about which copies, their
    answers, and (:meth:`plan`) what to do about them."""

    def __init__(
        self,
        me: str,
        address: str | None,
        live: Sequence[Member],
        held: Sequence[tuple[str, float]],
        placement: BlobPlacement,
    ) -> None:
        """``held`` is every local copy as ``(sha256, stored_at)``; ``address`` is this
        node's RPC address, a fetch source when the view does not list this node."""
        self.me = me
        self.address = address
        self.live = list(live)
        self.placement = placement
        self.members = {m.node_id: m for m in self.live}
        self.owners_of: dict[str, list[Member]] = {}
        self.asks: dict[str, list[str]] = {}
        """Node → the hashes to ask it about (those it owns, among the copies held here)."""
        self._status: dict[tuple[str, str], Holding] = {}
        self._unreachable: set[str] = set()
        self.held: list[tuple[str, float]] = []
        self.add(held)

    def add(self, held: Iterable[tuple[str, float]]) -> None:
        """Take more local copies into the round (a caller with many copies adds them in
        slices, letting its event loop run between them)."""
        me = self.me
        for sha, stored_at in held:
            self.held.append((sha, stored_at))
            owners = self.placement.owners(sha, self.live)
            self.owners_of[sha] = owners
            for m in owners:
                if m.node_id != me:
                    self.asks.setdefault(m.node_id, []).append(sha)

    def batches(self, node: str, size: int) -> list[list[str]]:
        hashes = self.asks.get(node, [])
        return [hashes[i : i + size] for i in range(0, len(hashes), size)]

    def record(self, node: str, items: Iterable[Holding]) -> None:
        for item in items:
            self._status[(node, item.sha256)] = item

    def unreachable(self, node: str) -> None:
        """``node`` did not answer: ask it to fetch nothing this round."""
        self._unreachable.add(node)

    def _present(self, node: str, sha: str) -> bool:
        item = self._status.get((node, sha))
        return item is not None and item.present

    def plan(self) -> RepairPlan:
        """What to do about every copy held."""
        return self.plan_part(self.held)

    def plan_part(self, held: Sequence[tuple[str, float]]) -> RepairPlan:
        """What to do about ``held``, copies already in the round: the plans of the slices
        of :attr:`held`, concatenated, are :meth:`plan`."""
        me = self.me
        want = self.placement.count(len(self.live))
        me_hop = hop(self.members[me]) if me in self.members else None
        if me_hop is None and self.address is not None:
            me_hop = Hop(me, self.address)
        drops: list[Drop] = []
        fetches: list[FetchOrder] = []
        under = 0
        for sha, stored_at in held:
            owners = self.owners_of[sha]
            tombs = [
                r.deleted_at
                for m in owners
                if (r := self._status.get((m.node_id, sha))) is not None
                and r.deleted_at is not None
            ]
            if tombs and delete_wins(max(tombs), stored_at):
                drops.append(Drop(sha, max(tombs)))
                continue
            holders = [m for m in owners if m.node_id == me or self._present(m.node_id, sha)]
            if len(holders) < want:
                under += 1
            sources = ([me_hop] if me_hop else []) + [hop(m) for m in holders if m.node_id != me]
            for m in owners:
                if m.node_id == me or m.node_id in self._unreachable:
                    continue
                item = self._status.get((m.node_id, sha))
                if item is not None and not item.present:
                    fetches.append(FetchOrder(sha, m, sources, stored_at))
            owner_ids = [m.node_id for m in owners]
            if me not in owner_ids and len(holders) == len(owners) == want:
                drops.append(Drop(sha))
        return RepairPlan(drops, fetches, under)


# -- reads and healing -----------------------------------------------------------------------


def _by_preference(
    sha256: str, me: str, live: Sequence[Member], placement: BlobPlacement
) -> list[Hop]:
    """Every other live member: the hash's owners first (in chain order), then the rest."""
    owners = placement.owners(sha256, list(live))
    owner_ids = {m.node_id for m in owners}
    rest = [m for m in live if m.node_id not in owner_ids]
    return [hop(m) for m in owners + rest if m.node_id != me]


def read_order(
    sha256: str,
    me: str,
    live: Sequence[Member],
    placement: BlobPlacement,
    *,
    holds_here: bool,
    suspects: Mapping[str, float],
    now: float,
) -> list[Hop | None]:
    """Where to read from, best first: ``None`` (this node's copy) when there is one, then
    the owners, then the other live members; sources that failed a read in the last
    :data:`SUSPECT_FOR` seconds (``suspects``: node → until when) go last."""
    remote = _by_preference(sha256, me, live, placement)
    healthy = [h for h in remote if suspects.get(h.node, 0.0) <= now]
    doubtful = [h for h in remote if suspects.get(h.node, 0.0) > now]
    return [*([None] if holds_here else []), *healthy, *doubtful]


def heal_sources(
    sha256: str, me: str, live: Sequence[Member], placement: BlobPlacement
) -> list[Hop]:
    """Where to fetch a good copy to replace a corrupt local one: owners first."""
    return _by_preference(sha256, me, live, placement)


class ReadCursor:
    """Where a failover read stands: the next offset, the end once a source told the size,
    and how many passes over the sources in a row made no progress."""

    def __init__(self, sha256: str, offset: int, length: int | None, passes: int) -> None:
        if offset < 0 or (length is not None and length < 0):
            raise ValueError("negative offset or length")
        self.sha256 = sha256
        self.pos = offset
        self._limit = None if length is None else offset + length
        self.end: int | None = None
        """Where the range ends, once a source told the blob's size."""
        self._passes_allowed = passes
        self.idle_passes = 0

    @property
    def done(self) -> bool:
        return self.end is not None and self.pos >= self.end

    def want(self, step: int) -> int:
        """How many bytes to ask the next source for, at most ``step``."""
        end = self.end if self.end is not None else self._limit
        return step if end is None else max(0, min(step, end - self.pos))

    def take(self, size: int, data: bytes) -> bytes:
        """A source's answer (the blob's size and bytes from :attr:`pos`): the bytes to give
        the reader, ``b""`` once the range is done. Raises :class:`BlobUnavailable` on an
        empty answer before the end (that source is broken; try the next)."""
        self.end = size if self._limit is None else min(size, self._limit)
        if self.pos >= self.end:
            return b""
        data = data[: self.end - self.pos]
        if not data:
            raise BlobUnavailable(f"{self.sha256}: empty read at {self.pos}")
        self.pos += len(data)
        return data

    def pass_over(self, progressed: bool) -> bool:
        """A walk over every source ended without finishing. True: give up."""
        self.idle_passes = 0 if progressed else self.idle_passes + 1
        return self.idle_passes >= self._passes_allowed
