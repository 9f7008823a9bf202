"""The event-loop lag monitor: its histogram and window, stalls in virtual time, the
Prometheus text, and (real clock) the watchdog naming the function that blocked the loop."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest
import trio
import trio.testing

from dspot.cpu import CostModel, SimCpu
from dspot.disk import SimDisk
from dspot.env import NodeEnv, run_inline
from dspot.looplag import LagRecorder, LoopLagMonitor
from dspot.transport import SimNetwork


def env_for(cpu: SimCpu | None = None) -> NodeEnv:
    return NodeEnv(
        node_id="n1",
        transport=SimNetwork(random.Random(1)).transport("n1"),
        disk=SimDisk(random.Random(1)),
        rng=random.Random(1),
        logger=logging.getLogger("dspot.test.looplag"),
        offload=cpu.offload if cpu is not None else run_inline,
        cpu=cpu,
    )


def run_virtual(fn: Callable[[trio.testing.MockClock], Awaitable[Any]]) -> Any:
    clock = trio.testing.MockClock(autojump_threshold=0)
    return trio.run(fn, clock, clock=clock)


def test_recorder_counts_buckets_and_forgets_the_worst_after_the_window() -> None:
    rec = LagRecorder(bounds=(0.01, 0.1, 1.0), window=60.0)
    for t, lag in [(0.0, 0.005), (1.0, 0.5), (2.0, 0.05), (3.0, 2.0), (4.0, 0.02)]:
        rec.record(t, lag)
    snap = rec.snapshot(10.0)
    assert snap.cumulative == (1, 3, 4)
    assert snap.count == 5
    assert snap.total == pytest.approx(2.575)
    assert snap.worst_recent == 2.0
    assert snap.quantile(0.5) == 0.1
    assert snap.quantile(0.99) == float("inf")
    assert rec.worst(62.9) == 2.0  # recorded at 3.0: still inside the minute
    assert rec.worst(63.0) == 0.02  # gone; the smaller lag after it is the worst now...
    assert rec.worst(64.0) == 0.0  # ...until it expires too
    assert rec.max == 2.0  # the all-time worst stays


def test_prometheus_text_is_a_histogram_and_a_gauge() -> None:
    rec = LagRecorder(bounds=(0.01, 0.1), window=60.0)
    rec.record(0.0, 0.002)
    rec.record(1.0, 0.25)
    text = rec.snapshot(1.0).prometheus("node_loop_lag_seconds")
    assert text.splitlines() == [
        "# HELP node_loop_lag_seconds How late the event loop ran a periodic timer (seconds).",
        "# TYPE node_loop_lag_seconds histogram",
        'node_loop_lag_seconds_bucket{le="0.01"} 1',
        'node_loop_lag_seconds_bucket{le="0.1"} 1',
        'node_loop_lag_seconds_bucket{le="+Inf"} 2',
        "node_loop_lag_seconds_sum 0.252",
        "node_loop_lag_seconds_count 2",
        "# HELP node_loop_lag_seconds_worst Worst event loop lag in the last 60 s (seconds).",
        "# TYPE node_loop_lag_seconds_worst gauge",
        "node_loop_lag_seconds_worst 0.25",
    ]


async def _hash(env: NodeEnv) -> None:
    await env.offload(lambda: None, kind="scrypt")


def test_a_blocked_loop_shows_as_lag_and_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """``clock.jump`` without yielding is exactly a loop blocked by synchronous work: the
    monitor's next tick is late by the whole stall."""
    caplog.set_level(logging.WARNING, logger="dspot.test.looplag")

    async def main(clock: trio.testing.MockClock) -> LoopLagMonitor:
        monitor = LoopLagMonitor(env_for(), interval=0.05, warn_after=0.1)
        async with trio.open_nursery() as nursery:
            await nursery.start(monitor.run)  # ticks at 0.05, 0.10, ...
            await trio.sleep(1.025)
            clock.jump(0.3)  # 300 ms of blocking work: the tick due at 1.05 runs at 1.325
            await trio.sleep(1.01)
            clock.jump(0.07)  # a short one: the tick due at 2.375 runs 30 ms late, no warning
            await trio.sleep(1.0)
            nursery.cancel_scope.cancel()
        return monitor

    monitor = run_virtual(main)
    snap = monitor.recorder.snapshot(3.5)
    assert monitor.recorder.max == pytest.approx(0.275)
    assert snap.worst_recent == monitor.recorder.max
    assert [s.lag for s in monitor.stalls] == [pytest.approx(0.275)]
    below = dict(zip(snap.bounds, snap.cumulative, strict=True))
    assert below[0.001] == snap.count - 2  # every other tick on time
    assert below[0.05] == below[0.25] == snap.count - 1
    assert below[0.5] == snap.count
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "loop.stall" in warnings[0] and "lag_ms=" in warnings[0]


def test_in_the_simulation_the_warning_names_what_kept_the_loop_busy(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="dspot.test.looplag")

    async def main(clock: trio.testing.MockClock) -> LoopLagMonitor:
        cpu = SimCpu(CostModel(kinds={"scrypt": 0.05}), inline=True)
        env = env_for(cpu)
        monitor = LoopLagMonitor(env, interval=0.05, warn_after=0.1, warn_every=1.0)
        async with trio.open_nursery() as nursery:
            await nursery.start(monitor.run)
            await trio.sleep(0.51)
            for _ in range(4):  # four password hashes on the loop: 200 ms
                nursery.start_soon(_hash, env)
            await trio.sleep(0.5)
            for _ in range(4):  # again, soon after: counted, not logged again
                nursery.start_soon(_hash, env)
            await trio.sleep(2.0)
            for _ in range(4):  # later: logged, saying how many were left out
                nursery.start_soon(_hash, env)
            await trio.sleep(1.0)
            nursery.cancel_scope.cancel()
        return monitor

    monitor = run_virtual(main)
    assert len(monitor.stalls) == 3
    assert all(s.running == "scrypt x4" for s in monitor.stalls)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert "running='scrypt x4'" in messages[0]
    assert "more_stalls=1" in messages[1]


def test_offloaded_work_leaves_no_lag() -> None:
    async def main(clock: trio.testing.MockClock) -> LoopLagMonitor:
        cpu = SimCpu(CostModel(kinds={"scrypt": 0.05}), workers=2)
        env = env_for(cpu)
        monitor = LoopLagMonitor(env, interval=0.05)
        async with trio.open_nursery() as nursery:
            await nursery.start(monitor.run)
            for _ in range(20):
                nursery.start_soon(_hash, env)
            await trio.sleep(1.0)
            nursery.cancel_scope.cancel()
        return monitor

    monitor = run_virtual(main)
    assert monitor.recorder.max == 0.0
    assert monitor.recorder.count >= 19


def _block_the_loop_for_a_while() -> None:
    time.sleep(0.35)  # what a password hash on the event loop does


def test_watchdog_names_the_function_that_blocked_a_real_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Real clock, real asyncio loop: the warning says which function held the loop."""
    caplog.set_level(logging.WARNING, logger="dspot.test.looplag")

    async def main() -> LoopLagMonitor:
        monitor = LoopLagMonitor(env_for(), interval=0.02, warn_after=0.1, watchdog=True)
        async with anyio.create_task_group() as tg:
            await tg.start(monitor.run)
            await anyio.sleep(0.1)
            _block_the_loop_for_a_while()
            await anyio.sleep(0.1)
            tg.cancel_scope.cancel()
        return monitor

    monitor = asyncio.run(main())
    assert monitor.stalls, "the stall was not seen"
    stall = monitor.stalls[-1]
    assert stall.lag >= 0.2
    assert "_block_the_loop_for_a_while" in stall.running
    assert any("_block_the_loop_for_a_while" in r.getMessage() for r in caplog.records)
