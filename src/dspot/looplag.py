"""Event-loop lag: how late a node's own periodic timer fires.

A node's liveness (membership probes, token passing) runs on the same event loop as its
users' requests. When something blocks that loop (a password hash, a long query run on it),
every timer and every message waits. :class:`LoopLagMonitor` makes that visible: a task
sleeps ``interval`` seconds over and over, and how much later than asked it wakes up is the
loop's lag. Each lateness goes into a :class:`LagRecorder` (a Prometheus-style histogram
plus the worst lag in a sliding window, one minute by default); a lag over ``warn_after``
(100 ms) logs a warning saying, when it is cheaply known, what was running:

* in the simulation, the node's :class:`~dspot.cpu.SimCpu` knows what it charged to the loop;
* in production, an optional watchdog thread (``watchdog=True``) notices a heartbeat that is
  late and samples the loop thread's stack while the loop is still stuck, so the warning
  names the function that blocked it.

:meth:`LagSnapshot.prometheus` renders the numbers in the Prometheus text format, so a
``/metrics`` handler can append them without a client library; ``quantile`` and
``worst_recent`` feed status pages.
"""

from __future__ import annotations

import bisect
import collections
import logging
import math
import sys
import threading
import time
from types import FrameType

import anyio
import anyio.abc
import attrs

from dspot.env import NodeEnv

__all__ = ["DEFAULT_BOUNDS", "LagRecorder", "LagSnapshot", "LoopLagMonitor", "Stall"]

DEFAULT_BOUNDS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.02,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
"""Histogram bucket upper bounds in seconds (a ``+Inf`` bucket is always added)."""


@attrs.frozen
class LagSnapshot:
    """The lag numbers at one instant. ``cumulative[i]`` counts lags ``<= bounds[i]``."""

    bounds: tuple[float, ...]
    cumulative: tuple[int, ...]
    count: int
    total: float
    """Sum of every lag recorded, in seconds."""
    worst_recent: float
    """The largest lag within the last :attr:`window` seconds (0 if none)."""
    window: float

    def quantile(self, q: float) -> float:
        """An upper estimate of the ``q`` quantile: the bound of the bucket holding it
        (``inf`` when it lies beyond the last bound, 0 with no samples)."""
        if self.count == 0:
            return 0.0
        rank = q * self.count
        for bound, seen in zip(self.bounds, self.cumulative, strict=True):
            if seen >= rank:
                return bound
        return math.inf

    def prometheus(self, name: str = "dspot_event_loop_lag_seconds") -> str:
        """The Prometheus text exposition of a ``name`` histogram and a ``name``\\ ``_worst``
        gauge (the worst lag in the window), ending with a newline."""
        lines = [
            f"# HELP {name} How late the event loop ran a periodic timer (seconds).",
            f"# TYPE {name} histogram",
        ]
        for bound, seen in zip(self.bounds, self.cumulative, strict=True):
            lines.append(f'{name}_bucket{{le="{bound!r}"}} {seen}')
        lines += [
            f'{name}_bucket{{le="+Inf"}} {self.count}',
            f"{name}_sum {self.total!r}",
            f"{name}_count {self.count}",
            f"# HELP {name}_worst Worst event loop lag in the last {self.window:g} s (seconds).",
            f"# TYPE {name}_worst gauge",
            f"{name}_worst {self.worst_recent!r}",
        ]
        return "\n".join(lines) + "\n"


class LagRecorder:
    """The pure core: a histogram of lags and the worst one in a sliding window.

    Recording is O(log buckets) plus amortised O(1) for the window (a monotonic queue keeps
    only lags that could still be the worst).
    """

    def __init__(self, bounds: tuple[float, ...] = DEFAULT_BOUNDS, window: float = 60.0) -> None:
        if list(bounds) != sorted(set(bounds)) or not bounds:
            raise ValueError("bounds must be increasing and not empty")
        self.bounds = bounds
        self.window = window
        self._counts = [0] * (len(bounds) + 1)  # per bucket, the last is +Inf
        self.count = 0
        self.total = 0.0
        self.max = 0.0
        """The largest lag ever recorded."""
        self._recent: collections.deque[tuple[float, float]] = collections.deque()

    def record(self, now: float, lag: float) -> None:
        """Count one lag measured at ``now`` (both in seconds)."""
        self._counts[bisect.bisect_left(self.bounds, lag)] += 1
        self.count += 1
        self.total += lag
        self.max = max(self.max, lag)
        recent = self._recent
        while recent and recent[-1][1] <= lag:
            recent.pop()  # never again the worst: a later lag at least as large exists
        recent.append((now, lag))
        self._expire(now)

    def worst(self, now: float) -> float:
        """The largest lag recorded within the last ``window`` seconds (0 if none)."""
        self._expire(now)
        return self._recent[0][1] if self._recent else 0.0

    def _expire(self, now: float) -> None:
        recent = self._recent
        while recent and recent[0][0] <= now - self.window:
            recent.popleft()

    def snapshot(self, now: float) -> LagSnapshot:
        cumulative: list[int] = []
        running = 0
        for n in self._counts[:-1]:
            running += n
            cumulative.append(running)
        return LagSnapshot(
            bounds=self.bounds,
            cumulative=tuple(cumulative),
            count=self.count,
            total=self.total,
            worst_recent=self.worst(now),
            window=self.window,
        )


@attrs.frozen
class Stall:
    """One lag over the warning threshold: when it ended, how long, what was running."""

    at: float
    lag: float
    running: str


class LoopLagMonitor:
    """Measures the lag of ``env``'s event loop while :meth:`run` runs.

    ``interval`` is how often the timer fires (shorter catches shorter stalls, at one wakeup
    per interval); lags of at least ``warn_after`` are logged as warnings (at most one per
    ``warn_every`` seconds; the next one counts those left out) and kept in :attr:`stalls`.
    ``watchdog=True`` (production only: it reads the real clock from a thread) samples the
    loop thread's stack during a stall to say what blocked it.
    """

    def __init__(
        self,
        env: NodeEnv,
        *,
        interval: float = 0.05,
        warn_after: float = 0.1,
        warn_every: float = 1.0,
        window: float = 60.0,
        bounds: tuple[float, ...] = DEFAULT_BOUNDS,
        watchdog: bool = False,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self._env = env
        self.interval = interval
        self.warn_after = warn_after
        self.warn_every = warn_every
        self.recorder = LagRecorder(bounds, window)
        self.stalls: collections.deque[Stall] = collections.deque(maxlen=16)
        """The latest stalls over ``warn_after``, oldest first."""
        self._watchdog = _Watchdog(interval + warn_after) if watchdog else None
        self._last_warning = -math.inf
        self._unreported = 0

    def snapshot(self) -> LagSnapshot:
        """The numbers now (call from the event loop)."""
        return self.recorder.snapshot(self._env.clock.now())

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Measure until cancelled."""
        env = self._env
        cpu = env.cpu
        watchdog = self._watchdog
        if watchdog is not None:
            watchdog.start()
        try:
            task_status.started()
            while True:
                due = env.clock.now() + self.interval
                await anyio.sleep_until(due)
                if cpu is not None:
                    await cpu.resume()  # a simulated busy loop delays the timer too
                now = env.clock.now()
                lag = max(0.0, now - due)
                self.recorder.record(now, lag)
                sample = watchdog.beat() if watchdog is not None else ""
                if lag >= self.warn_after:
                    running = cpu.busy_with(due, now) if cpu is not None else sample
                    self._stalled(Stall(now, lag, running))
        finally:
            if watchdog is not None:
                watchdog.stop()

    def _stalled(self, stall: Stall) -> None:
        self.stalls.append(stall)
        env = self._env
        env.trace("loop.stall", lag=round(stall.lag, 6), running=stall.running)
        if stall.at - self._last_warning < self.warn_every:
            self._unreported += 1
            return
        self._last_warning = stall.at
        fields: dict[str, object] = {"lag_ms": round(stall.lag * 1000, 1)}
        if stall.running:
            fields["running"] = stall.running
        if self._unreported:
            fields["more_stalls"] = self._unreported
            self._unreported = 0
        env.log(logging.WARNING, "loop.stall", **fields)


_SKIP_MODULES = ("asyncio", "anyio", "trio", "selectors", "dspot/looplag")


def _describe(frame: FrameType | None, depth: int = 3) -> str:
    """The innermost ``depth`` frames of a stack that are not event-loop machinery."""
    if frame is None:
        return ""
    picked: list[str] = []
    # The frames themselves, innermost first: traceback.extract_stack would also read every
    # source file on the stack into linecache (measured: 3.8 MB kept by a node).
    for _ in range(40):
        if frame is None:
            break
        code = frame.f_code
        filename = code.co_filename
        if not any(f"/{m}/" in filename or filename.endswith(f"/{m}.py") for m in _SKIP_MODULES):
            short = "/".join(filename.rsplit("/", 2)[-2:])
            picked.append(f"{code.co_name} ({short}:{frame.f_lineno})")
            if len(picked) == depth:
                break
        frame = frame.f_back
    return " < ".join(picked)


class _Watchdog:
    """A thread that samples the loop thread's stack when the loop misses its heartbeat.

    The monitor calls :meth:`beat` on every tick; when no beat came for ``threshold``
    seconds the thread records what the loop thread is executing (once per stall). It reads
    the real clock and runs only in production.
    """

    def __init__(self, threshold: float) -> None:
        self._threshold = threshold
        self._loop_thread = 0
        self._last_beat = 0.0
        self._sample = ""
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._loop_thread = threading.get_ident()
        self._last_beat = time.monotonic()
        self._thread = threading.Thread(target=self._watch, name="dspot-loop-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    def beat(self) -> str:
        """Record a heartbeat; return the stack sampled since the last one (``""`` if none)."""
        self._last_beat = time.monotonic()
        sample, self._sample = self._sample, ""
        return sample

    def _watch(self) -> None:
        while not self._stopped.wait(self._threshold / 4):
            if self._sample or time.monotonic() - self._last_beat < self._threshold:
                continue
            frame = sys._current_frames().get(self._loop_thread)
            self._sample = _describe(frame) or "?"
