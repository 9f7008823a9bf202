"""The nemesis: injects the fault model's faults on a seeded schedule, then heals.

Between ``warmup`` and the simulation's ``heal_at`` it picks a fault every
``gap`` seconds (uniform), applies it, and undoes it after a while: node crash and
restart (optionally with a disk wipe), partitions (random split, one node isolated,
one-way block), loss and latency spikes, slow disks, and full disks (a node's file writes
fail with ``ENOSPC``, its database still works); a scenario may add kinds of its own through
``on_fault``. Message duplication is not a network fault here (streams, like
TCP, never duplicate or reorder bytes): scenarios inject it at the RPC layer with
``RpcNode.duplicate_rate``. Overlapping partitions are undone one by one; loss and latency
spikes replace the default link model while they last. At ``heal_at`` every fault is undone
and every node restarted, so checkers can demand liveness after heal. Every network and disk
fault is also written to the simulation's :class:`~dspot.sim.FaultRecord` (crashes are
recorded by the simulation itself), so checkers know which links were cut when.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import attrs

from dspot.sim._faults import FaultSpan
from dspot.transport import LinkModel

FAULT_KINDS = (
    "crash",
    "partition",
    "isolate",
    "one_way",
    "loss",
    "latency",
    "slow_disk",
    "wipe",
    "full_disk",
)


@attrs.frozen
class FaultConfig:
    """Which faults to inject and how often."""

    kinds: tuple[str, ...] = tuple(k for k in FAULT_KINDS if k not in ("wipe", "full_disk"))
    """Every kind but ``wipe`` and ``full_disk``, which only replicated stores can survive."""
    warmup: float = 1.0
    min_gap: float = 0.5
    max_gap: float = 3.0
    min_duration: float = 0.5
    max_duration: float = 6.0
    max_loss: float = 0.10
    max_down: int | None = None
    """Most nodes down at once; ``None`` means a minority ((n - 1) // 2)."""


@attrs.define
class Nemesis:
    """Runs a :class:`FaultConfig` against a :class:`~dspot.sim.Simulation`."""

    config: FaultConfig = attrs.field(factory=FaultConfig)
    on_fault: Callable[[Any, str], None] | None = None
    """Called as ``on_fault(sim, kind)`` for scenario-specific kinds not listed above."""

    async def run(self, sim: Any) -> None:
        cfg = self.config
        rng = sim.rng
        undo: list[tuple[float, int, Callable[[], Any]]] = []
        seq = 0
        down: list[str] = []
        max_down = cfg.max_down if cfg.max_down is not None else (len(sim.names) - 1) // 2
        await anyio.sleep(cfg.warmup)
        while True:
            gap = rng.uniform(cfg.min_gap, cfg.max_gap)
            if sim.now() + gap >= sim.heal_at:
                break
            await anyio.sleep(gap)
            now = sim.now()
            for item in sorted(undo):
                if item[0] <= now:
                    undo.remove(item)
                    await _call(item[2])
            kind = rng.choice(cfg.kinds)
            until = now + rng.uniform(cfg.min_duration, cfg.max_duration)
            names = sim.names
            pairs: list[tuple[str, str]] = []
            if kind in ("crash", "wipe"):
                candidates = [n for n in sim.live() if n not in down]
                if len(down) >= max_down or not candidates:
                    continue
                victim = rng.choice(candidates)
                sim.fault(kind, node=victim)
                sim.crash(victim)
                if kind == "wipe":
                    sim.wipe(victim)
                down.append(victim)

                async def revive(victim: str = victim) -> None:
                    down.remove(victim)
                    await sim.start(victim)

                seq += 1
                undo.append((until, seq, revive))
                continue
            if kind == "partition":
                shuffled = list(names)
                rng.shuffle(shuffled)
                cut = rng.randint(1, len(shuffled) - 1)
                groups = [sorted(shuffled[:cut]), sorted(shuffled[cut:])]
                sim.fault(kind, groups=groups)
                pairs = sim.net.partition(groups)
                action: Callable[[], Any] = _unblocker(sim, pairs)
            elif kind == "isolate":
                victim = rng.choice(names)
                sim.fault(kind, node=victim)
                pairs = sim.net.partition([[victim], [n for n in names if n != victim]])
                action = _unblocker(sim, pairs)
            elif kind == "one_way":
                src, dst = rng.sample(names, 2)
                sim.fault(kind, src=src, dst=dst)
                pairs = sim.net.block(src, dst)
                action = _unblocker(sim, pairs)
            elif kind == "loss":
                loss = rng.uniform(0.0, cfg.max_loss)
                sim.fault(kind, loss=round(loss, 6))
                sim.net.set_default_link(attrs.evolve(sim.base_link, loss=loss))
                action = _restore_link(sim)
            elif kind == "latency":
                latency = rng.uniform(0.005, 0.2)
                sim.fault(kind, latency=round(latency, 6))
                sim.net.set_default_link(
                    attrs.evolve(sim.base_link, latency=latency, jitter=latency / 2)
                )
                action = _restore_link(sim)
            elif kind == "slow_disk":
                victim = rng.choice(names)
                disk = sim.nodes[victim].disk
                disk.latency, disk.latency_jitter = 0.01, 0.05
                sim.fault(kind, node=victim)

                def fast(disk: Any = disk) -> None:
                    disk.latency, disk.latency_jitter = 0.0, 0.0

                action = fast
            elif kind == "full_disk":
                victim = rng.choice(names)
                disk = sim.nodes[victim].disk
                disk.files_full = True
                sim.fault(kind, node=victim)

                def room(disk: Any = disk) -> None:
                    disk.files_full = False

                action = room
            elif self.on_fault is not None:
                self.on_fault(sim, kind)
                continue
            else:
                raise ValueError(f"unknown fault kind {kind!r}")
            span = sim.record.begin(
                kind,
                now,
                nodes=[victim] if kind in ("slow_disk", "full_disk") else [],
                cut=pairs,
                degraded=kind in ("loss", "latency"),
            )
            seq += 1
            undo.append((until, seq, _ending(sim, span, action)))
        # Heal everything: the run's remaining time checks liveness.
        await anyio.sleep(max(0.0, sim.heal_at - sim.now()))
        for item in sorted(undo):
            await _call(item[2])
        sim.net.heal()
        sim.net.set_default_link(sim.base_link)
        sim.trace.record("nemesis.healed")


def _unblocker(sim: Any, pairs: list[tuple[str, str]]) -> Callable[[], None]:
    def unblock() -> None:
        sim.net.unblock(pairs)

    return unblock


def _restore_link(sim: Any) -> Callable[[], None]:
    base: LinkModel = sim.base_link

    def restore() -> None:
        sim.net.set_default_link(base)

    return restore


def _ending(sim: Any, span: FaultSpan, action: Callable[[], Any]) -> Callable[[], Any]:
    """``action``, which undoes a fault, also closing the fault's span in the record."""

    def undo() -> Any:
        sim.record.end(span, sim.now())
        return action()

    return undo


async def _call(action: Callable[[], Any]) -> None:
    result = action()
    if result is not None and hasattr(result, "__await__"):
        await result
