"""Pinning trio's scheduler so one seed gives one schedule.

trio shuffles each batch of runnable tasks with its module-level RNG ``trio._core._run._r``
and only sorts the batch first (making the shuffle reproducible) when the private flag
``_ALLOW_DETERMINISTIC_SCHEDULING`` is set, which trio itself does for Hypothesis. This
module is the one place dspot touches that private API; ``tests/sim/test_determinism.py``
fails if a trio upgrade removes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import trio._core._run as _trio_run


def scheduler_pinning_available() -> bool:
    """Whether this trio still has the hooks deterministic scheduling needs."""
    return hasattr(_trio_run, "_ALLOW_DETERMINISTIC_SCHEDULING") and hasattr(_trio_run, "_r")


@contextmanager
def deterministic_trio(seed: int) -> Iterator[None]:
    """Within this block, trio schedules tasks in an order fixed by ``seed``."""
    if not scheduler_pinning_available():
        raise RuntimeError(
            "this trio version lacks _ALLOW_DETERMINISTIC_SCHEDULING; "
            "the simulation cannot replay runs with it"
        )
    old_flag = _trio_run._ALLOW_DETERMINISTIC_SCHEDULING
    old_state = _trio_run._r.getstate()
    _trio_run._ALLOW_DETERMINISTIC_SCHEDULING = True  # type: ignore[misc]
    _trio_run._r.seed(seed)
    try:
        yield
    finally:
        _trio_run._ALLOW_DETERMINISTIC_SCHEDULING = old_flag  # type: ignore[misc]
        _trio_run._r.setstate(old_state)
