"""Blob store pieces without a network: checksums, placement, local copies, the view."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import anyio
import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from dspot.blobstore import (
    BlobPlacement,
    BlockHasher,
    Copy,
    CorruptCopy,
    IntegrityError,
    LocalBlobs,
    Tombstoned,
    is_content_address,
)
from dspot.blobstore._hashing import BLOCK_DIGEST, SHA256_BLOCK_DIGEST, digest_width
from dspot.blobstore._store import _rechunk
from dspot.disk import LocalDisk, SimDisk
from dspot.env import run_in_thread
from dspot.membership import EventKind, Member, MemberState, ring_successors
from dspot.testing import ScriptedMembership, run_with_mock_clock


def test_block_hasher_is_independent_of_how_bytes_are_cut() -> None:
    data = random.Random(1).randbytes(10_000)
    whole = BlockHasher(1024)
    whole.update(data)
    pieces = BlockHasher(1024)
    rng = random.Random(2)
    pos = 0
    while pos < len(data):
        step = rng.randint(1, 3000)
        pieces.update(data[pos : pos + step])
        pos += step
    digest, blocks = whole.finish()
    assert (digest, blocks) == pieces.finish()
    assert digest == hashlib.sha256(data).hexdigest()
    assert len(blocks) == 16 * 10  # ceil(10000 / 1024) XXH3-128 digests
    assert blocks[:16] == xxhash.xxh3_128_digest(data[:1024])
    assert digest_width(len(data), 1024, blocks) == BLOCK_DIGEST
    legacy = BlockHasher(1024, width=SHA256_BLOCK_DIGEST)
    legacy.update(data)
    _, old_blocks = legacy.finish()
    assert old_blocks[:32] == hashlib.sha256(data[:1024]).digest()
    assert digest_width(len(data), 1024, old_blocks) == SHA256_BLOCK_DIGEST
    assert digest_width(len(data), 1024, old_blocks[:-1]) is None
    assert digest_width(0, 1024, b"") == BLOCK_DIGEST


def test_content_address_format() -> None:
    assert is_content_address(hashlib.sha256(b"x").hexdigest())
    assert not is_content_address("ABC")
    assert not is_content_address(hashlib.sha256(b"x").hexdigest().upper())


def test_placement_counts_and_validation() -> None:
    live = [Member(f"n{i}", f"n{i}:1") for i in range(5)]
    three = BlobPlacement(3, 2)
    owners = three.owners("abc", live)
    expected = ring_successors("abc", [m.node_id for m in live], 3)
    assert [m.node_id for m in owners] == expected
    assert len(owners) == 3 and len({m.node_id for m in owners}) == 3
    assert three.owners("abc", live) == owners  # stable
    assert BlobPlacement("all", 2).count(5) == 5
    assert len(BlobPlacement("all", 2).owners("abc", live)) == 5
    assert three.count(2) == 2
    with pytest.raises(ValueError):
        BlobPlacement(2, 3)
    with pytest.raises(ValueError):
        BlobPlacement(0, 1)


def test_rechunk_cuts_to_size_and_always_yields_once() -> None:
    async def main() -> None:
        async def src(parts: list[bytes]):  # type: ignore[no-untyped-def]
            for p in parts:
                yield p

        out = [c async for c in _rechunk(src([b"ab", b"cdefg", b"h"]), 3)]
        assert out == [b"abc", b"def", b"gh"]
        assert [c async for c in _rechunk(src([]), 3)] == [b""]
        exact = b"xyz"
        (whole,) = [c async for c in _rechunk(src([exact]), 3)]
        assert whole is exact  # passed through, not copied

        async def reused():  # type: ignore[no-untyped-def]
            buf = bytearray(b"ab")  # a source that refills one buffer
            yield buf
            buf[:] = b"cd"
            yield buf

        assert [c async for c in _rechunk(reused(), 3)] == [b"abc", b"d"]

    run_with_mock_clock(main)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=12), st.integers(1, 16))
def test_rechunk_keeps_every_byte_in_order(pieces: list[bytes], size: int) -> None:
    async def main() -> list[bytes]:
        async def src():  # type: ignore[no-untyped-def]
            for p in pieces:
                yield p

        return [c async for c in _rechunk(src(), size)]

    out = anyio.run(main)
    assert b"".join(out) == b"".join(pieces)
    assert all(len(c) == size for c in out[:-1]) and out and len(out[-1]) <= size


def test_local_copy_round_trip_verification_and_reconcile() -> None:
    async def main() -> None:
        disk = SimDisk(random.Random(1))
        local = LocalBlobs(disk, block_size=100)
        await local.open()
        data = random.Random(3).randbytes(1000)
        ingest = local.ingest("upload-1")
        await ingest.write(data[:333])
        await ingest.write(data[333:])
        copy = await ingest.commit(hashlib.sha256(data).hexdigest(), stored_at=1.0)
        assert await local.read(copy, 150, 500) == data[150:650]
        assert await local.verify(copy)
        # A file that was committed but never recorded (crash in between) is removed.
        await disk.write_file("blobs/zz/orphan", b"junk")
        # A wrong expected hash is refused.
        bad = local.ingest("upload-2")
        await bad.write(b"hello")
        with pytest.raises(IntegrityError):
            await bad.commit(hashlib.sha256(b"other").hexdigest(), stored_at=1.0)
        disk.corrupt_file(copy.file, offset=420)
        with pytest.raises(CorruptCopy):
            await local.read(copy, 400, 50)
        assert await local.read(copy, 0, 100) == data[:100]  # other blocks still serve
        assert not await local.verify(copy)
        disk.crash()
        again = LocalBlobs(disk, block_size=100)
        await again.open()
        assert again.get(copy.sha256) is not None
        assert await disk.list_files("blobs/") == [copy.file]
        assert await again.drop(copy.sha256, deleted_at=5.0)
        assert again.tombstone(copy.sha256) == 5.0
        assert await disk.list_files("blobs/") == []

    run_with_mock_clock(main)


def test_the_held_hashes_follow_every_copy_added_and_dropped() -> None:
    """``held()`` is kept sorted between changes: each add or drop shows at once, and a
    caller's list is its own."""

    async def main() -> None:
        local = LocalBlobs(SimDisk(random.Random(1)), block_size=100)
        await local.open()
        blobs = [random.Random(i).randbytes(50) for i in range(5)]
        shas = []
        for i, data in enumerate(blobs):
            ingest = local.ingest(f"upload-{i}")
            await ingest.write(data)
            shas.append((await ingest.commit(None, stored_at=float(i))).sha256)
            assert local.held() == sorted(shas)
        mine = local.held()
        mine.clear()
        assert local.held() == sorted(shas)
        assert local.hashes() == sorted((sha, float(shas.index(sha))) for sha in shas)
        assert await local.drop(shas[2], deleted_at=9.0)
        assert local.held() == sorted(shas[:2] + shas[3:])
        again = LocalBlobs(local.disk, block_size=100)  # loaded from disk
        await again.open()
        assert again.held() == local.held()

    run_with_mock_clock(main)


def test_the_copy_index_adds_nothing_for_the_garbage_collector_to_walk() -> None:
    """A full collection does not walk a large store's index: copies add no objects the
    collector tracks (at 100,000 copies, index entries it tracked made each full
    collection take 35 ms, and stalled a busy node's loop for 130-290 ms)."""
    import gc

    async def main() -> None:
        local = LocalBlobs(SimDisk(random.Random(1)), block_size=100)
        await local.open()
        gc.collect()
        before = len(gc.get_objects())
        for i in range(2000):
            ingest = local.ingest(f"upload-{i}")
            await ingest.write(i.to_bytes(4, "big"))
            await ingest.commit(None, stored_at=float(i))
        gc.collect()
        tracked = len(gc.get_objects()) - before
        assert local.count == 2000
        # The database's statement cache and cursor weakrefs are a few hundred at most.
        assert tracked < 500, f"{tracked} more objects tracked after 2,000 copies"
        copy = local.get(local.held()[0])
        assert copy is not None and copy.size == 4  # still read back whole

    run_with_mock_clock(main)


def test_scripted_membership_view_and_events() -> None:
    async def main() -> None:
        directory = ScriptedMembership()
        for n in ("a", "b", "c"):
            directory.add(n, f"{n}:1")
        view = directory.view("a")
        async with view.subscribe() as events:
            directory.set_state("b", MemberState.DEAD)
            directory.set_state("b", MemberState.DEAD)  # unchanged: no event
            directory.set_state("c", MemberState.LEFT)
            directory.add("c", "c:1")
            kinds = [events.receive_nowait().kind for _ in range(3)]
        assert kinds == [EventKind.DEAD, EventKind.LEFT, EventKind.JOINED]
        assert sorted(m.node_id for m in view.live()) == ["a", "c"]
        assert [m.node_id for m in view.configured()] == ["a", "b", "c"]

    run_with_mock_clock(main)


def test_an_upload_older_than_a_delete_loses_and_a_newer_one_wins() -> None:
    async def main() -> None:
        disk = SimDisk(random.Random(1))
        local = LocalBlobs(disk, block_size=100)
        await local.open()
        data = b"x" * 250
        sha = hashlib.sha256(data).hexdigest()
        await local.drop(sha, deleted_at=10.0)  # tombstone, no copy
        late = local.ingest("late")
        await late.write(data)
        with pytest.raises(Tombstoned):
            await late.commit(sha, stored_at=9.0)  # began before the delete
        assert local.get(sha) is None and await disk.list_files("blobs/") == []
        fresh = local.ingest("fresh")
        await fresh.write(data)
        await fresh.commit(sha, stored_at=11.0)
        assert local.get(sha) is not None and local.tombstone(sha) is None

    run_with_mock_clock(main)


def test_concurrent_writers_of_the_same_content_leave_one_copy() -> None:
    async def main() -> None:
        disk = SimDisk(random.Random(1), latency=0.01, latency_jitter=0.01)
        local = LocalBlobs(disk, block_size=100)
        await local.open()
        data = random.Random(4).randbytes(500)
        sha = hashlib.sha256(data).hexdigest()

        async def write(file_id: str) -> None:
            ingest = local.ingest(file_id)
            await ingest.write(data)
            await ingest.commit(sha, stored_at=1.0)

        async with anyio.create_task_group() as tg:
            for i in range(3):
                tg.start_soon(write, f"w{i}")
        copy = local.get(sha)
        assert copy is not None
        assert await disk.list_files("blobs/") == [copy.file]
        assert local.count == 1 and local.bytes == 500

    run_with_mock_clock(main)


def test_a_vouched_copy_is_checked_against_the_coordinators_digests() -> None:
    """An upload's replica does not hash the blob whole: its block checksums must equal the
    ones the coordinator sent. Digests of another kind or block size are checked by hashing
    the written file again (content address included); anything else is refused and the
    file discarded."""

    def digests(data: bytes, block_size: int, width: int = BLOCK_DIGEST) -> bytes:
        hasher = BlockHasher(block_size, whole=False, width=width)
        hasher.update(data)
        return hasher.finish()[1]

    async def main() -> None:
        disk = SimDisk(random.Random(1))
        local = LocalBlobs(disk, block_size=100)
        await local.open()
        rng = random.Random(4)

        async def commit(data: bytes, sha: str, blocks: bytes, block_size: int = 100) -> Copy:
            ingest = local.ingest(f"u{rng.random()}", vouched=True)
            await ingest.write(data[:250])
            await ingest.write(data[250:])
            return await ingest.commit(sha, stored_at=1.0, blocks=blocks, block_size=block_size)

        for block_size, width in [(100, BLOCK_DIGEST), (100, SHA256_BLOCK_DIGEST), (64, 16)]:
            data = rng.randbytes(1000)
            sha = hashlib.sha256(data).hexdigest()
            good = digests(data, block_size, width)
            copy = await commit(data, sha, good, block_size)
            assert (copy.sha256, copy.blocks, copy.block_size) == (sha, good, block_size)
            assert await local.read(copy, 0, 1000) == data
            other = rng.randbytes(1000)
            wrong = digests(other, block_size, width)  # bytes the coordinator did not send
            with pytest.raises(IntegrityError):
                await commit(data, hashlib.sha256(other).hexdigest(), wrong, block_size)
            if width == SHA256_BLOCK_DIGEST:  # the right blocks, a wrong content address
                with pytest.raises(IntegrityError, match="hashes to"):
                    await commit(other, sha, digests(other, block_size, width), block_size)
        data = rng.randbytes(1000)
        with pytest.raises(IntegrityError, match="do not fit"):
            await commit(data, hashlib.sha256(data).hexdigest(), b"x" * 24 * 10)
        assert len(await disk.list_files("blobs/")) == 3  # only the three good copies

    run_with_mock_clock(main)


@pytest.mark.parametrize("width", [BLOCK_DIGEST, SHA256_BLOCK_DIGEST])
def test_checksums_verified_on_a_real_disk(tmp_path: Path, width: int) -> None:
    """Production reads verify every block they serve: XXH3 block checksums on the loop, a
    copy stored with sha256 block digests (before XXH3) in a worker thread (``run_in_thread``).
    The same promises either way: right bytes, a corrupt block refused, others still served,
    and the copy's digests kept across a restart."""

    async def main() -> None:
        disk = await LocalDisk.open(tmp_path / "disk")
        try:
            local = LocalBlobs(disk, block_size=100, offload=run_in_thread)
            await local.open()
            data = random.Random(3).randbytes(1000)
            ingest = local.ingest("upload-1", vouched=True)
            await ingest.write(data)
            hasher = BlockHasher(100, whole=False, width=width)
            hasher.update(data)
            copy = await ingest.commit(
                hashlib.sha256(data).hexdigest(),
                stored_at=1.0,
                blocks=hasher.finish()[1],
                block_size=100,
            )
            assert len(copy.blocks) == 10 * width
            assert await local.verify(copy)
            local = LocalBlobs(disk, block_size=100, offload=run_in_thread)
            await local.open()
            assert local.get(copy.sha256) == copy
            assert await local.read(copy, 0, 1000) == data
            assert await local.read(copy, 150, 500) == data[150:650]
            path = tmp_path / "disk" / "files" / copy.file
            raw = bytearray(path.read_bytes())
            raw[420] ^= 0xFF
            path.write_bytes(bytes(raw))
            with pytest.raises(CorruptCopy):
                await local.read(copy, 400, 50)
            with pytest.raises(CorruptCopy):
                await local.read(copy, 0, 1000)
            assert await local.read(copy, 0, 400) == data[:400]
        finally:
            await disk.aclose()

    anyio.run(main)
