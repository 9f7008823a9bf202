"""A token ring that totally orders one replicated log (re-exports only).

See ``_core.py`` for the theory of operation and the safety argument.
"""

from dspot.tokenring._config import TokenRingConfig, TokenRingMechanism
from dspot.tokenring._core import TokenRingCore
from dspot.tokenring._driver import ApplyCallback, TokenRing
from dspot.tokenring._errors import CommitTimeout, NoQuorum, TokenRingError
from dspot.tokenring._messages import (
    Append,
    AppendReply,
    CommittedEntry,
    Entry,
    InstallSnapshot,
    InstallSnapshotReply,
    LogPosition,
    SnapshotMeta,
    Vote,
    VoteReply,
)
from dspot.tokenring._output import (
    Fetch,
    HardState,
    Output,
    Persist,
    Role,
    Send,
    SnapshotOffer,
    Status,
)
from dspot.tokenring._snapshot import (
    AppliesBatches,
    SnapshotReader,
    SnapshotWriter,
    StateMachine,
)

__all__ = [
    "Append",
    "AppendReply",
    "AppliesBatches",
    "ApplyCallback",
    "CommitTimeout",
    "CommittedEntry",
    "Entry",
    "Fetch",
    "HardState",
    "InstallSnapshot",
    "InstallSnapshotReply",
    "LogPosition",
    "NoQuorum",
    "Output",
    "Persist",
    "Role",
    "Send",
    "SnapshotMeta",
    "SnapshotOffer",
    "SnapshotReader",
    "SnapshotWriter",
    "StateMachine",
    "Status",
    "TokenRing",
    "TokenRingConfig",
    "TokenRingCore",
    "TokenRingError",
    "TokenRingMechanism",
    "Vote",
    "VoteReply",
]
