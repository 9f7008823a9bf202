"""Checksums of a blob as it streams past: the whole-blob sha256 plus one per block.

The whole-blob hash is the blob's name (its content address), checked whenever a copy is
written. Block checksums let a replica verify any byte range it serves without reading the
whole blob, so a block that rotted on disk is caught before it leaves the node. They guard
against corruption, not against a forger (the content address does that), so they are
XXH3-128: about 30 times faster than sha256, which made verifying every read cost more CPU
than serving it. Copies stored before that keep their sha256 block digests; the width of a
copy's digests (16 or 32 bytes a block) says which it has. Pure computation, no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Protocol

import xxhash

BLOCK_DIGEST = 16
"""Bytes of one block checksum (XXH3-128)."""
SHA256_BLOCK_DIGEST = 32
"""Bytes of one block checksum of a copy stored with sha256 block digests."""
DIGEST_WIDTHS = (BLOCK_DIGEST, SHA256_BLOCK_DIGEST)


class _Hash(Protocol):
    def update(self, data: bytes | memoryview, /) -> None: ...
    def digest(self) -> bytes: ...


_BLOCK_HASHES: dict[int, Callable[[], _Hash]] = {
    BLOCK_DIGEST: xxhash.xxh3_128,
    SHA256_BLOCK_DIGEST: hashlib.sha256,
}


class BlockHasher:
    """Feed bytes in order with :meth:`update`; :meth:`finish` gives the checksums.

    The whole-blob sha256 is the costly pass, so a caller asks only for what it needs:
    ``whole=False`` skips it, ``blocks=False`` skips the block digests; ``width`` picks the
    block checksum (:data:`SHA256_BLOCK_DIGEST` to check a copy stored with those). Safe to
    run in a worker thread (hashlib releases the GIL on large buffers).
    """

    def __init__(
        self,
        block_size: int,
        *,
        whole: bool = True,
        blocks: bool = True,
        width: int = BLOCK_DIGEST,
    ) -> None:
        if block_size < 1:
            raise ValueError("block_size must be positive")
        self.block_size = block_size
        self.size = 0
        self._whole = hashlib.sha256() if whole else None
        self._with_blocks = blocks
        self._new_block = _BLOCK_HASHES[width]
        self._block = self._new_block()
        self._in_block = 0
        self._blocks = bytearray()

    def update(self, data: bytes) -> None:
        if self._whole is not None:
            self._whole.update(data)
        self.size += len(data)
        if not self._with_blocks:
            return
        view = memoryview(data)
        while view:
            take = min(len(view), self.block_size - self._in_block)
            self._block.update(view[:take])
            self._in_block += take
            view = view[take:]
            if self._in_block == self.block_size:
                self._blocks += self._block.digest()
                self._block = self._new_block()
                self._in_block = 0

    def finish(self) -> tuple[str, bytes]:
        """``(sha256 hex of the whole blob, concatenated block digests)``; a checksum not
        asked for is empty."""
        blocks = bytes(self._blocks)
        if self._in_block:
            blocks += self._block.digest()
        return "" if self._whole is None else self._whole.hexdigest(), blocks


def block_digest(data: bytes | memoryview, width: int = BLOCK_DIGEST) -> bytes:
    """The checksum of one block, ``width`` bytes long (which also names the hash)."""
    if width == BLOCK_DIGEST:
        return xxhash.xxh3_128_digest(data)
    if width == SHA256_BLOCK_DIGEST:
        return hashlib.sha256(data).digest()
    raise ValueError(f"no block checksum is {width} bytes long")


def digest_width(size: int, block_size: int, blocks: bytes) -> int | None:
    """The width of each block digest in ``blocks`` for a blob of ``size`` bytes in blocks of
    ``block_size``: one of :data:`DIGEST_WIDTHS`, else ``None`` (they do not fit)."""
    if block_size < 1:
        return None
    count = -(-size // block_size)
    if count == 0:
        return BLOCK_DIGEST if not blocks else None
    for width in DIGEST_WIDTHS:
        if len(blocks) == count * width:
            return width
    return None


def is_content_address(text: str) -> bool:
    """Whether ``text`` is a lowercase sha256 hex digest."""
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)
