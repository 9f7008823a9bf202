"""Scenario ``rpc``: every node calls every other node under the whole fault model.

Each node serves ``Incr`` (not idempotent: it bumps a counter) and ``Read`` (idempotent,
answers with a binary payload) and runs a client that calls the other nodes in turn. During
the fault phase 5 % of request frames are also sent twice. Ground truth (which operations
ran, and how often) is kept outside the nodes, where crashes cannot touch it.

Checks: every acknowledged ``Incr`` ran; no ``Incr`` ran twice (at-most-once across
retries, duplicates and restarts); every pair of nodes exchanges calls again after heal;
and no call started ``settle`` seconds after heal fails.
"""

from __future__ import annotations

from typing import Any

import anyio
import anyio.abc
import attrs

from dspot import wire
from dspot.env import NodeEnv
from dspot.errors import RpcError
from dspot.rpc import Peer, RetryPolicy, RpcMechanism, RpcNode
from dspot.sim._checks import NODE_DIED, STRANGER_CRASH, Check, Sabotage
from dspot.sim._cluster import Simulation
from dspot.sim._scenario import Scenario, register
from dspot.sim._stranger import StrangerConfig
from dspot.transport import TransportMechanism

AT_MOST_ONCE = "at-most-once"
ACKED_RAN = "acked-ran"
PAYLOAD = "payload-intact"
RESUMES = "calls-resume"
SECRET = b"simulated cluster secret"
PORT = 7000
SETTLE = 5.0


@wire.message("sim.rpc.incr")
@attrs.frozen
class Incr:
    op: str


@wire.message("sim.rpc.incr_ok")
@attrs.frozen
class IncrOk:
    value: int


@wire.message("sim.rpc.read", idempotent=True)
@attrs.frozen
class Read:
    size: int


@wire.message("sim.rpc.value")
@attrs.frozen
class Value:
    value: int
    payload: bytes


@attrs.define
class Ground:
    """What the nodes did, for the checks."""

    executed: dict[str, int] = attrs.Factory(dict)
    """Times each ``Incr`` op ran on its callee."""
    acked: list[tuple[str, str, str, float]] = attrs.Factory(list)
    """``(op, caller, callee, when)`` of every acknowledged ``Incr``."""
    failed: list[tuple[str, str, float, float, str]] = attrs.Factory(list)
    """``(caller, callee, started, ended, error)`` of every failed call."""
    answered: list[tuple[str, str, float]] = attrs.Factory(list)
    """``(caller, callee, when)`` of every answered call."""


async def node(env: NodeEnv, sim: Simulation, *, task_status: anyio.abc.TaskStatus[Any]) -> None:
    ground = sim.state(Ground)
    executed, acked, failed, answered = (
        ground.executed,
        ground.acked,
        ground.failed,
        ground.answered,
    )
    counter = 0

    async def incr(req: Incr, peer: Peer) -> IncrOk:
        nonlocal counter
        executed[req.op] = executed.get(req.op, 0) + 1
        counter += 1
        # Follow-up work after the effect (say, writing an audit record): a crash in this
        # window loses the reply, and the caller's retry must not run the effect again.
        await anyio.sleep(env.rng.uniform(0.0, 0.05))
        return IncrOk(counter)

    async def read(req: Read, peer: Peer) -> Value:
        return Value(counter, bytes(range(256)) * (req.size // 256))

    retry = RetryPolicy(attempts=12, max_delay=2.0)
    async with RpcNode(
        env, listen=f"{env.node_id}:{PORT}", secret=SECRET, call_timeout=8.0, retry=retry
    ) as rpc:
        rpc.handle(Incr, incr)
        rpc.handle(Read, read)
        task_status.started(rpc)
        targets = [n for n in sim.names if n != env.node_id]
        i = 0
        while True:
            await anyio.sleep(0.1)
            dst = targets[i % len(targets)]
            i += 1
            rpc.duplicate_rate = 0.05 if sim.now() < sim.heal_at else 0.0
            started = sim.now()
            op = env.ids()
            try:
                if i % 4 == 0:
                    value = await rpc.call(f"{dst}:{PORT}", Read(4096))
                    if value.payload != bytes(range(256)) * 16:
                        sim.violation(f"{env.node_id}: payload from {dst} corrupted", check=PAYLOAD)
                    sim.op("read.ok", src=env.node_id, dst=dst)
                    answered.append((env.node_id, dst, sim.now()))
                    continue
                await rpc.call(f"{dst}:{PORT}", Incr(op))
            except RpcError as exc:
                failed.append((env.node_id, dst, started, sim.now(), type(exc).__name__))
                sim.op("call.fail", src=env.node_id, dst=dst, error=type(exc).__name__)
                continue
            acked.append((op, env.node_id, dst, sim.now()))
            answered.append((env.node_id, dst, sim.now()))
            sim.op("incr.ok", src=env.node_id, dst=dst, op=op)


def check(sim: Simulation) -> None:
    ground = sim.state(Ground)
    executed, acked, failed = ground.executed, ground.acked, ground.failed
    for op, src, dst, _ in acked:
        if executed.get(op, 0) < 1:
            sim.violation(f"acknowledged Incr {op} ({src}->{dst}) never ran", check=ACKED_RAN)
    for op, count in executed.items():
        if count > 1:
            sim.violation(f"non-idempotent Incr {op} ran {count} times", check=AT_MOST_ONCE)
    answered = ground.answered
    resumed = {(src, dst) for src, dst, t in answered if t > sim.heal_at}
    for src in sim.names:
        for dst in sim.names:
            if src != dst and (src, dst) not in resumed:
                message = f"no call {src}->{dst} succeeded after heal at {sim.heal_at:g}s"
                sim.violation(message, check=RESUMES)
    for src, dst, started, _ended, error in failed:
        if started > sim.heal_at + SETTLE:
            sim.violation(
                f"call {src}->{dst} started at {started:.3f}s, after heal, failed with {error}",
                check=RESUMES,
            )
    if not acked:
        sim.violation("no call succeeded at all", check=RESUMES)


def damaging(scenario: Scenario) -> Scenario:
    """Every link damages 2 % of transmissions (a bit flipped), for the whole run."""
    return attrs.evolve(scenario, link=attrs.evolve(scenario.link, corrupt=0.02))


SCENARIO = register(
    Scenario(
        name="rpc",
        description="nodes exchange RPCs under the whole fault model; at-most-once, liveness",
        node=node,
        check=check,
        nodes=5,
        duration=30.0,
        stranger=StrangerConfig(),
        checks=(
            Check(
                AT_MOST_ONCE,
                "no non-idempotent Incr runs twice (retries, duplicates, restarts)",
                Sabotage({RpcMechanism.DEDUPE}, seeds=(1,), duration=20.0),
            ),
            Check(
                ACKED_RAN,
                "every acknowledged Incr ran",
                # A restarted caller's counter-based call ids repeat ones a server still
                # remembers: the server answers its new calls from old calls' responses.
                Sabotage({RpcMechanism.CALL_IDS}, seeds=(1,)),
            ),
            Check(
                STRANGER_CRASH,
                "no exception escapes a connection handler while the stranger attacks",
                Sabotage({RpcMechanism.DECODE_GUARD}, seeds=(5, 6), duration=15.0),
            ),
            Check(
                NODE_DIED,
                "no exception escapes a node's code, even one a hostile frame provokes",
                # The unguarded decoder's RecursionError on a deeply nested frame, with
                # neither the RPC server nor the listener containing it per connection.
                Sabotage(
                    {
                        RpcMechanism.DECODE_GUARD,
                        RpcMechanism.CONTAIN,
                        TransportMechanism.CONTAIN,
                    },
                    seeds=(5, 6),
                    duration=15.0,
                ),
            ),
            Check(
                PAYLOAD,
                "every Read returns the payload the server sent",
                # Bits flipped on the links reach the RPC layer when no checksum (TCP's,
                # modelled by the simulated network) catches them.
                Sabotage({TransportMechanism.CHECKSUM}, seeds=(1,), adapt=damaging, duration=10.0),
            ),
            Check(
                RESUMES,
                f"liveness: after heal every ordered pair of nodes exchanges calls again, and "
                f"no call started {SETTLE:g}s after heal fails",
                # Connections broken by crashes stay cached: calls to those nodes fail for good.
                Sabotage({RpcMechanism.RECONNECT}, seeds=(1,), duration=20.0),
            ),
        ),
    )
)
