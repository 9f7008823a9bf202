"""Checksums of a blob as it streams past: the whole-blob sha256 plus one per block.

The whole-blob hash is the blob's name (its content address). Block hashes let a replica
verify any byte range it serves without reading the whole blob, so a corrupted block is
caught before it leaves the node. Pure computation, no I/O.
"""

from __future__ import annotations

import hashlib

BLOCK_DIGEST = 32


class BlockHasher:
    """Feed bytes in order with :meth:`update`; :meth:`finish` gives the checksums.

    Each checksum is a full sha256 pass over the bytes, so a caller asks only for what it
    needs: ``whole=False`` skips the whole-blob hash, ``blocks=False`` the block digests.
    Safe to run in a worker thread (hashlib releases the GIL on large buffers).
    """

    def __init__(self, block_size: int, *, whole: bool = True, blocks: bool = True) -> None:
        if block_size < 1:
            raise ValueError("block_size must be positive")
        self.block_size = block_size
        self.size = 0
        self._whole = hashlib.sha256() if whole else None
        self._with_blocks = blocks
        self._block = hashlib.sha256()
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
                self._block = hashlib.sha256()
                self._in_block = 0

    def finish(self) -> tuple[str, bytes]:
        """``(sha256 hex of the whole blob, concatenated block digests)``; a checksum not
        asked for is empty."""
        blocks = bytes(self._blocks)
        if self._in_block:
            blocks += self._block.digest()
        return "" if self._whole is None else self._whole.hexdigest(), blocks


def block_digest(data: bytes | memoryview) -> bytes:
    return hashlib.sha256(data).digest()


def is_content_address(text: str) -> bool:
    """Whether ``text`` is a lowercase sha256 hex digest."""
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)
