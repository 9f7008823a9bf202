"""Retry timing for one destination: capped exponential backoff with full jitter.

A plain object (no I/O): :meth:`failed` returns how long to wait, :meth:`succeeded` resets.
"""

from __future__ import annotations

import random


class Backoff:
    """Delay after the n-th consecutive failure: uniform in ``[0, min(cap, base * 2**n))``."""

    def __init__(self, rng: random.Random, *, base: float = 0.05, cap: float = 5.0) -> None:
        self._rng = rng
        self.base = base
        self.cap = cap
        self.failures = 0

    def failed(self) -> float:
        ceiling = min(self.cap, self.base * (2 ** min(self.failures, 30)))
        self.failures += 1
        return self._rng.uniform(ceiling / 2, ceiling)

    def succeeded(self) -> None:
        self.failures = 0
