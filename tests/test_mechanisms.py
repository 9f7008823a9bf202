"""Typed sabotage switches: NodeEnv.disabled, refused by production environments."""

from __future__ import annotations

import random

import anyio
import attrs
import pytest

from dspot.disk import SimDisk
from dspot.env import Mechanism, NodeEnv, production_env
from dspot.rpc import RpcMechanism
from dspot.transport import TcpTransport


def test_a_node_env_can_be_built_without_mechanisms() -> None:
    env = NodeEnv("n", TcpTransport(), SimDisk(random.Random(0)), random.Random(0))
    assert env.enabled(RpcMechanism.DEDUPE)
    env.disabled = frozenset({RpcMechanism.DEDUPE})
    assert not env.enabled(RpcMechanism.DEDUPE) and env.enabled(RpcMechanism.BOOT_CHECK)
    assert issubclass(RpcMechanism, Mechanism)


def test_production_refuses_disabled_mechanisms() -> None:
    async def main() -> None:
        env = production_env("n", TcpTransport(), SimDisk(random.Random(0)))
        assert env.production and not env.disabled
        with pytest.raises(ValueError, match="production"):
            env.disabled = frozenset({RpcMechanism.DECODE_GUARD})
        with pytest.raises(attrs.exceptions.FrozenAttributeError):
            env.production = False
        with pytest.raises(ValueError, match="production"):
            attrs.evolve(env, disabled={RpcMechanism.DEDUPE})
        with pytest.raises(ValueError, match="production"):
            NodeEnv(
                "n",
                TcpTransport(),
                SimDisk(random.Random(0)),
                random.Random(0),
                production=True,
                disabled={RpcMechanism.BOOT_CHECK},
            )

    anyio.run(main, backend="trio")
