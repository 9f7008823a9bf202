"""A small simulated cluster for blob store tests: the test body is the workload."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import anyio.abc
import attrs

from dspot.blobstore import BlobStore, BlobStoreConfig
from dspot.env import Mechanism, NodeEnv
from dspot.membership import MemberState
from dspot.rpc import RetryPolicy, RpcNode
from dspot.sim import Simulation, TraceLog
from dspot.sim._determinism import deterministic_trio
from dspot.testing import ScriptedMembership, run_with_mock_clock
from dspot.transport import LinkModel

PORT = 7100
SMALL = BlobStoreConfig(
    replicas=3,
    write_quorum=2,
    chunk_size=4096,
    block_size=1024,
    read_size=4096,
    window=3,
    call_timeout=2.0,
    read_timeout=1.0,
    repair_interval=1.0,
    scrub_interval=1000.0,
)


@attrs.define
class Harness:
    """The cluster's shared directory and configuration."""

    config: BlobStoreConfig = SMALL
    directory: ScriptedMembership | None = None


def directory(sim: Simulation) -> ScriptedMembership:
    harness = sim.state(Harness)
    if harness.directory is None:
        harness.directory = ScriptedMembership.on_port(sim.names, PORT)
    return harness.directory


async def _node(env: NodeEnv, sim: Simulation, *, task_status: anyio.abc.TaskStatus[Any]) -> None:
    config = sim.state(Harness).config
    retry = RetryPolicy(attempts=3, max_delay=0.2, attempt_timeout=1.0)
    async with RpcNode(
        env, listen=f"{env.node_id}:{PORT}", secret=b"s", call_timeout=3.0, retry=retry
    ) as rpc:
        store = BlobStore(env, rpc, directory(sim).view(env.node_id), config)
        async with anyio.create_task_group() as tg:
            await tg.start(store.run)
            task_status.started(store)
            await anyio.sleep_forever()


def run_cluster(
    body: Callable[[Simulation], Awaitable[None]],
    *,
    nodes: int = 4,
    config: BlobStoreConfig = SMALL,
    seed: int = 1,
    disabled: frozenset[Mechanism] = frozenset(),
) -> Simulation:
    """Run ``body(sim)`` against ``nodes`` blob store nodes in virtual time."""
    sim = Simulation(
        seed=seed,
        node_names=[f"n{i}" for i in range(1, nodes + 1)],
        node_main=_node,
        duration=1000.0,
        heal_at=0.0,
        trace=TraceLog(),
        link=LinkModel(),
    )
    sim.state(Harness).config = config
    sim.disabled = disabled

    async def main() -> None:
        await sim.run(body, None)

    with deterministic_trio(seed):
        run_with_mock_clock(main)
    return sim


def store(sim: Simulation, name: str) -> BlobStore:
    handle = sim.nodes[name].handle
    assert isinstance(handle, BlobStore)
    return handle


def kill(sim: Simulation, name: str) -> None:
    """Crash a node and tell the membership it is dead."""
    sim.crash(name)
    directory(sim).set_state(name, MemberState.DEAD)


async def revive(sim: Simulation, name: str) -> BlobStore:
    await sim.start(name)
    directory(sim).set_state(name, MemberState.ALIVE)
    return store(sim, name)


async def chunks(data: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def blob(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


def holders(sim: Simulation, sha: str) -> list[str]:
    """Nodes whose disk holds a file with exactly these bytes (ground truth)."""
    import hashlib

    found = []
    for name, node in sim.nodes.items():
        files = node.disk._files
        if any(
            n.startswith("blobs/") and hashlib.sha256(d).hexdigest() == sha
            for n, d in files.items()
        ):
            found.append(name)
    return found
