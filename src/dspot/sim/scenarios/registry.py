"""Scenario ``registry``: leases under crashes, partitions, loss and hung services.

Every node registers service ``api`` with a short TTL and resolves it every 200 ms. Besides
the nemesis's faults, services misbehave during the fault phase: a node's renewals stop for a
while (the service hangs but its node stays alive and keeps gossiping), or it deregisters
and registers again. Ground truth (when each lease was really renewed or withdrawn) is
recorded by the owners outside the nodes' state.

Checks DESIGN.md invariant 6: no resolved endpoint is one whose lease expired more than one
TTL ago. And after heal every node resolves every node's endpoint again.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import anyio.abc
import attrs

from dspot.env import NodeEnv
from dspot.membership import Membership
from dspot.registry import Registry, RegistryMechanism
from dspot.rpc import RpcMechanism, RpcNode
from dspot.sim._checks import Check, Sabotage
from dspot.sim._cluster import SIM_WALL_BASE, Simulation
from dspot.sim._scenario import Scenario, register
from dspot.sim._stranger import StrangerConfig

LEASE = "lease"
GRANTED = "granted"
RESOLVES = "resolves-after-heal"
SECRET = b"simulated cluster secret"
PORT = 7000
TTL = 1.0
SETTLE = 6.0
Key = tuple[str, str]


@attrs.define
class Ground:
    """Leases as granted and withdrawn, and what resolvers saw, for the checks."""

    renewals: dict[Key, list[tuple[float, float]]] = attrs.Factory(dict)
    """``(granted at, expires at)`` of every lease each registration really published."""
    withdrawn: dict[Key, list[float]] = attrs.Factory(dict)
    """When each registration was withdrawn."""
    resolved: list[tuple[float, str, list[Key]]] = attrs.Factory(list)
    """``(when, resolver, registrations found)`` of every resolve."""


class _RecordingRegistry(Registry):
    """A registry that tells the simulation each lease it really grants or withdraws."""

    sim: Simulation

    def _publish(self) -> None:
        super()._publish()
        now = self.env.clock.wall()
        renewals = self.sim.state(Ground).renewals
        for reg in self._mine.values():
            renewals.setdefault((self.view.self_id, reg.instance), []).append((now, now + reg.ttl))


async def node(env: NodeEnv, sim: Simulation, *, task_status: anyio.abc.TaskStatus[Any]) -> None:
    me = env.node_id
    ground = sim.state(Ground)
    resolved, withdrawn = ground.resolved, ground.withdrawn
    rng = env.child_rng("scenario")
    async with RpcNode(env, listen=f"{me}:{PORT}", secret=SECRET) as rpc:
        seeds = [f"{n}:{PORT}" for n in sim.names[:2] if n != me]
        async with Membership(env, rpc, seeds=seeds) as membership:
            registry = _RecordingRegistry(env, membership, default_ttl=TTL)
            registry.sim = sim
            registry.register("api", f"{me}:8080", instance="main")
            task_status.started(registry)

            async def resolver() -> None:
                while True:
                    await anyio.sleep(0.2)
                    found = [(e.node_id, e.instance) for e in registry.resolve("api")]
                    resolved.append((env.clock.wall(), me, found))

            async def service() -> None:
                """Renews leases, sometimes hanging or withdrawing during the fault phase."""
                while True:
                    with anyio.move_on_after(rng.uniform(2.0, 6.0)):
                        await registry.run()
                    if sim.now() >= sim.heal_at:
                        continue
                    roll = rng.random()
                    if roll < 0.4:  # hung: no renewals, node alive
                        sim.op("registry.hang", node=me)
                        await anyio.sleep(rng.uniform(1.5, 4.0))
                    elif roll < 0.6:
                        sim.op("registry.withdraw", node=me)
                        registry.deregister("api", "main")
                        withdrawn.setdefault((me, "main"), []).append(env.clock.wall())
                        await anyio.sleep(rng.uniform(0.5, 2.0))
                        registry.register("api", f"{me}:8080", instance="main")

            async with anyio.create_task_group() as tg:
                tg.start_soon(resolver)
                tg.start_soon(service)


def forger(scenario: Scenario) -> Scenario:
    """The stranger only tries to join membership with a registration of ``api`` it never
    made (refused unless nodes admit connections that did not prove the secret)."""
    lease = json.dumps({"endpoint": "stranger:8080", "meta": {}, "expires": 1e12}, sort_keys=True)
    stranger = StrangerConfig(attacks=("forge",), forged_meta=(("svc/api/main", lease),))
    return attrs.evolve(scenario, stranger=stranger)


def _lease_end(
    key: Key,
    t: float,
    renewals: dict[Key, list[tuple[float, float]]],
    withdrawn: dict[Key, list[float]],
) -> float | None:
    """When the lease that was current at wall time ``t`` ran out (None: never granted)."""
    granted = [(at, exp) for at, exp in renewals.get(key, []) if at <= t]
    if not granted:
        return None
    at, exp = granted[-1]
    ends = [d for d in withdrawn.get(key, []) if at <= d <= t]
    return min([exp, *ends])


def check(sim: Simulation) -> None:
    ground = sim.state(Ground)
    renewals, withdrawn, resolved = ground.renewals, ground.withdrawn, ground.resolved
    stale = 0
    for t, who, found in resolved:
        for key in found:
            end = _lease_end(key, t, renewals, withdrawn)
            if end is None:
                sim.violation(f"{who} resolved {key} at {t:.3f}, never registered", check=GRANTED)
            elif t > end + TTL:
                stale += 1
                if stale <= 5:
                    sim.violation(
                        f"{who} resolved {key} at {t:.3f}: its lease ended at {end:.3f}, "
                        f"more than one TTL ({TTL:g}s) before",
                        check=LEASE,
                    )
    settled = SIM_WALL_BASE + sim.heal_at + SETTLE
    everyone = sorted((n, "main") for n in sim.names)
    for name in sim.names:
        last = [found for t, who, found in resolved if who == name and t >= settled]
        if not last or sorted(last[-1]) != everyone:
            got = sorted(last[-1]) if last else None
            message = f"{name} does not resolve every endpoint after heal: {got}"
            sim.violation(message, check=RESOLVES)


SCENARIO = register(
    Scenario(
        name="registry",
        description="TTL leases on membership metadata; no endpoint served past its lease",
        node=node,
        check=check,
        nodes=5,
        duration=30.0,
        stranger=StrangerConfig(),
        checks=(
            Check(
                LEASE,
                "no resolved endpoint's lease ended more than one TTL before (invariant 6)",
                Sabotage({RegistryMechanism.EXPIRY}, seeds=(1,), duration=20.0),
            ),
            Check(
                GRANTED,
                "every resolved endpoint was registered (a lease was granted)",
                Sabotage({RpcMechanism.AUTH}, seeds=(1,), adapt=forger, duration=15.0),
            ),
            Check(
                RESOLVES,
                f"liveness: {SETTLE:g}s after heal every node resolves every node's endpoint",
                Sabotage({RegistryMechanism.RENEW}, seeds=(1,), duration=20.0),
            ),
        ),
    )
)
