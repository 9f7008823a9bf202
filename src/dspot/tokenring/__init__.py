"""A token ring that totally orders one replicated log (re-exports only).

See ``_core.py`` for the theory of operation and the safety argument.
"""

from dspot.tokenring._config import TokenRingConfig
from dspot.tokenring._core import HardState, Output, Persist, Role, Send, Status, TokenRingCore
from dspot.tokenring._driver import ApplyCallback, TokenRing
from dspot.tokenring._errors import CommitTimeout, NoQuorum, TokenRingError
from dspot.tokenring._messages import (
    Append,
    AppendReply,
    CommittedEntry,
    Entry,
    LogPosition,
    Vote,
    VoteReply,
)

__all__ = [
    "Append",
    "AppendReply",
    "ApplyCallback",
    "CommitTimeout",
    "CommittedEntry",
    "Entry",
    "HardState",
    "LogPosition",
    "NoQuorum",
    "Output",
    "Persist",
    "Role",
    "Send",
    "Status",
    "TokenRing",
    "TokenRingConfig",
    "TokenRingCore",
    "TokenRingError",
    "Vote",
    "VoteReply",
]
