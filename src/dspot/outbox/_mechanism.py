"""What sabotage tests can build an outbox or inbox without."""

from __future__ import annotations

from dspot.env import Mechanism


class OutboxMechanism(Mechanism):
    """Switched off through ``NodeEnv.disabled`` (sabotage tests only)."""

    SYNC_BEFORE_SEND = "outbox.sync_before_send"
    """The relay makes a message's row durable before sending it (off: a receiver may apply
    a message that a sender's crash then takes back)."""
    BACKOFF_CAP = "outbox.backoff_cap"
    """Retry delays stop growing at ``OutboxConfig.backoff_cap``, so a destination back
    from an outage is retried within the cap (off: the delay doubles without bound, and a
    relay that failed often waits out the outage many times over)."""
    RECEIVER_CHECK = "outbox.receiver_check"
    """The relay names the member a batch is for and the inbox refuses a batch meant for
    another (off: a batch sent to an address that another member now uses — a stale view, a
    reused address — is applied there)."""
    INBOX_DEDUPE = "outbox.inbox_dedupe"
    """The inbox records each message id with its effect and skips ids it has seen (off: a
    redelivered message is applied again)."""
