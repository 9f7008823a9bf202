"""Transactional outbox and deduplicating inbox (re-exports only).

``_outbox.py`` holds the sender side and its relay, ``_inbox.py`` the receiver side.
"""

from dspot.outbox._backoff import Backoff
from dspot.outbox._inbox import Effect, Inbox, InboxConfig, InboxMessage
from dspot.outbox._mechanism import OutboxMechanism
from dspot.outbox._messages import Deliver, Delivered, Envelope
from dspot.outbox._outbox import Outbox, OutboxConfig, OutboxStats

__all__ = [
    "Backoff",
    "Deliver",
    "Delivered",
    "Effect",
    "Envelope",
    "Inbox",
    "InboxConfig",
    "InboxMessage",
    "Outbox",
    "OutboxConfig",
    "OutboxMechanism",
    "OutboxStats",
]
