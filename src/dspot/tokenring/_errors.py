"""Errors a token-ring caller can see."""

from __future__ import annotations

from dspot.errors import DspotError


class TokenRingError(DspotError):
    """Base class of token-ring errors."""


class NoQuorum(TokenRingError):
    """Read-only, no quorum: this member does not see a majority of the configured
    membership, so this call did **not** submit the entry (an earlier call with the same id
    may have). Retry later; reads and :meth:`TokenRing.wait_applied` still work."""


class CommitTimeout(TokenRingError):
    """The entry was queued or appended but not known to be committed in time.

    The outcome is unknown: it may still commit. Submitting again with the same
    ``entry_id`` is safe (entries are deduplicated by id)."""
