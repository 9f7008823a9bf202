"""Token-ring members for the benchmarks: one process, TCP loopback, a ``LocalDisk`` each."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable
from pathlib import Path

from dspot.disk import LocalDisk
from dspot.env import NodeEnv
from dspot.rpc import RpcNode
from dspot.testing import StaticView
from dspot.tokenring import ApplyCallback, StateMachine, TokenRing, TokenRingConfig
from dspot.transport import TcpTransport


async def ring_members(
    stack: contextlib.AsyncExitStack,
    names: list[str],
    root: Path,
    config: TokenRingConfig,
    *,
    apply: Callable[[], ApplyCallback] | None = None,
    state_machine: Callable[[], StateMachine] | None = None,
) -> list[TokenRing]:
    """Start one member per name (disks under ``root``), closed with ``stack``; each gets
    a fresh ``apply`` callback or ``state_machine`` from the factory given, if any."""
    envs, rpcs = [], []
    for name in names:
        disk = await LocalDisk.open(root / name)
        stack.push_async_callback(disk.aclose)
        env = NodeEnv(name, TcpTransport(), disk, random.Random(name))
        rpc = await stack.enter_async_context(RpcNode(env, listen="127.0.0.1:0", secret=b"bench"))
        envs.append(env)
        rpcs.append(rpc)
    addresses = {n: str(r.address) for n, r in zip(names, rpcs, strict=True)}
    rings = []
    for env, rpc in zip(envs, rpcs, strict=True):
        ring = TokenRing(
            env,
            rpc,
            StaticView.fixed(env.node_id, addresses),
            config,
            apply=apply() if apply else None,
            state_machine=state_machine() if state_machine else None,
        )
        rings.append(await stack.enter_async_context(ring))
    return rings
