"""What one chaos run is asked to do (``python -m dspot_spotify.chaos`` options), and which
session guarantees each client kind is promised; shared by the run and its report."""

from __future__ import annotations

from pathlib import Path

import attrs

__all__ = ["GATEWAY_SABOTAGES", "SABOTAGES", "SESSION_KINDS", "STICKY_KINDS", "Settings"]

SABOTAGES = {
    "ack-before-sync": "nodes acknowledge uploads before W copies are synced",
    "no-log-positions": "gateways forward no log positions (clients without one lose their "
    "session guarantees)",
}
"""``--sabotage`` values: deliberate bugs the run's checks must catch."""
GATEWAY_SABOTAGES = frozenset({"no-log-positions"})
"""Sabotages of the gateways (the others are the nodes')."""

SESSION_KINDS = {
    "rest-session": "the client sends back the X-Log-Position it was given",
    "rest-plain": "the gateway forwards the positions it saw",
    "subsonic": "the gateway forwards the positions it saw",
}
"""Every client kind is promised read-your-writes and monotonic reads, and what gives them.
A kind that sends no position keeps one gateway (as a client behind DNS or a load balancer
does) and is checked per gateway: a switch after its gateway failed starts a new session
(docs/service/consistency.md says what holds across gateways)."""
STICKY_KINDS = frozenset({"rest-plain", "subsonic"})
"""Client kinds that keep their gateway until it fails."""


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
    sabotage: tuple[str, ...] = ()
    argv: tuple[str, ...] = ()
