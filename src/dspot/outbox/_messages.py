"""Wire messages of the outbox relay. Bodies travel concatenated in the raw ``payload``."""

from __future__ import annotations

import attrs

from dspot import wire


@attrs.frozen
class Envelope:
    id: str
    seq: int
    kind: str
    size: int
    """Bytes of this message's body in the payload, after the previous envelopes' bodies."""
    created: float


@wire.message("outbox.deliver", idempotent=True)
@attrs.frozen
class Deliver:
    """A batch of messages from ``sender``, in the sender's order for this destination.

    Idempotent because the inbox deduplicates by message id: redelivery is harmless.
    """

    sender: str
    envelopes: list[Envelope]
    payload: bytes
    to: str = ""
    """The member the batch is meant for, when the sender found its address through the
    membership view ("" when it was given an address): the inbox refuses a batch meant for
    another member (an address now used by someone else)."""


@wire.message("outbox.delivered")
@attrs.frozen
class Delivered:
    applied: int
    duplicates: int
