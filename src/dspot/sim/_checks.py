"""The registry of checkers: every property a scenario checks has a name, and a sabotage
that shows the checker bites.

A scenario lists its :class:`Check` s (``Scenario.checks``); every violation it reports
names one (``sim.violation(message, check=NAME)``), so a test can tell which checker
caught a bug. A check's :class:`Sabotage` is a set of mechanisms the nodes are built
without (``NodeEnv.disabled``) plus, where the bug needs them to show, other faults or a
shorter run; ``tests/sim/test_checks.py`` runs it and asserts that *this* check reports.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import attrs

from dspot.env import Mechanism

if TYPE_CHECKING:
    from dspot.sim._scenario import Scenario


def _mechanisms(value: Iterable[Mechanism]) -> frozenset[Mechanism]:
    return frozenset(value)


@attrs.frozen
class Sabotage:
    """How to make a check report: nodes built without ``disabled``, on ``seeds``.

    ``adapt`` changes the scenario for the sabotage run (other faults, a lossy link, a
    shorter duration) when the bug needs that to show within a few seeds. The check must
    report on at least one of ``seeds``.
    """

    disabled: frozenset[Mechanism] = attrs.field(converter=_mechanisms)
    seeds: tuple[int, ...] = (1, 2, 3)
    adapt: Callable[[Scenario], Scenario] | None = None
    duration: float | None = None
    """Virtual seconds per seed (None: the scenario's); short keeps CI time small."""


@attrs.frozen
class Check:
    """One named property of a scenario, what it promises, and its sabotage (None: not
    yet shown to bite, which ``tests/sim/test_checks.py`` lists as a gap)."""

    name: str
    description: str
    sabotage: Sabotage | None = None


NODE_DIED = "node-died"
"""Reported by the cluster when an exception escapes a node's code (in every scenario)."""

STRANGER_CRASH = "stranger-handler-crash"
STRANGER_500 = "stranger-500"
STRANGER_SERVED = "stranger-fresh-connection"

COMMON_CHECKS = (
    Check(NODE_DIED, "no exception escapes a node's code (the cluster's crash hook)"),
    Check(STRANGER_CRASH, "no exception escapes a connection handler under attack"),
    Check(STRANGER_500, "no HTTP answer to the hostile stranger is a 500"),
    Check(STRANGER_SERVED, "after each attack a fresh connection is accepted and served"),
)
"""Checks every scenario has (the stranger's only when it runs one)."""


def check_names(scenario: Scenario) -> frozenset[str]:
    """Every check name a run of ``scenario`` may report."""
    return frozenset(c.name for c in (*COMMON_CHECKS, *scenario.checks))
