"""What one chaos run is asked to do (``python -m dspot_spotify.chaos`` options), and which
session guarantees each client kind is promised; shared by the run and its report."""

from __future__ import annotations

from pathlib import Path

import attrs

__all__ = ["SESSION_KINDS", "Settings"]

SESSION_KINDS = {
    "rest-session": "now",
    "rest-plain": "after issue 15",
    "subsonic": "after issue 15",
}
"""When each client kind is promised read-your-writes and monotonic reads."""


@attrs.frozen(kw_only=True)
class Settings:
    nodes: int = 5
    gateways: int = 2
    duration: float = 300.0
    seed: int = 1
    nemesis: tuple[str, ...] = ("partition", "flaky", "kill", "pause")
    clients: tuple[str, ...] = ("rest-session", "rest-session", "rest-plain", "subsonic")
    out: Path = Path("chaos-out")
    heal_bound: float = 120.0
    """Seconds after heal within which every node must converge with R copies of each song."""
    strict_sessions: bool = False
    """Make the session guarantees of clients without ``X-Log-Position`` fatal."""
    sabotage: tuple[str, ...] = ()
    argv: tuple[str, ...] = ()
