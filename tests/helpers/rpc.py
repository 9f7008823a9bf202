"""RPC messages and handlers the RPC tests (and others that need a live RPC peer) share."""

from __future__ import annotations

import logging
import random
from typing import Any

import anyio
import attrs

from dspot import wire
from dspot.disk import SimDisk
from dspot.env import NodeEnv
from dspot.errors import RemoteError
from dspot.rpc import Peer, RpcNode
from tests.conftest import Net


@wire.message("test.echo", idempotent=True)
@attrs.frozen
class Echo:
    text: str
    payload: bytes = b""


@wire.message("test.echoed")
@attrs.frozen
class Echoed:
    text: str
    peer: str
    payload: bytes = b""


@wire.message("test.fail", idempotent=True)
@attrs.frozen
class Fail:
    code: str


@wire.message("test.sleep", idempotent=True)
@attrs.frozen
class Sleep:
    seconds: float


@wire.message("test.bad", idempotent=True)
@attrs.frozen
class Bad:
    pass


def make_env(net: Net, name: str, seed: int = 0) -> NodeEnv:
    return NodeEnv(
        node_id=name,
        transport=net.transport(name),
        disk=SimDisk(random.Random(seed)),
        rng=random.Random(f"{name}:{seed}"),
        logger=logging.getLogger(f"test.{name}"),
    )


def serve_test_handlers(rpc: RpcNode) -> None:
    async def echo(req: Echo, peer: Peer) -> Echoed:
        return Echoed(req.text, peer.node_id, req.payload)

    async def fail(req: Fail, peer: Peer) -> Echoed:
        if req.code == "crash":
            raise ZeroDivisionError("boom")
        raise RemoteError(req.code, "refused on purpose")

    async def bad(req: Bad, peer: Peer) -> Any:
        return None  # not a registered message: the handler's bug

    async def sleep(req: Sleep, peer: Peer) -> Echoed:
        await anyio.sleep(req.seconds)
        return Echoed("slept", peer.node_id)

    rpc.handle(Echo, echo)
    rpc.handle(Fail, fail)
    rpc.handle(Sleep, sleep)
    rpc.handle(Bad, bad)
