"""Over real TCP on 127.0.0.1: a node with the wrong cluster secret is refused and logged."""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import AsyncIterator

import anyio
import pytest
import trio

from dspot.disk import SimDisk
from dspot.env import NodeEnv
from dspot.membership import Membership, MembershipConfig, MemberState
from dspot.rpc import RpcNode
from dspot.testing import wait_until
from dspot.transport import TcpTransport

SECRET = b"the real cluster secret"
FAST = MembershipConfig(
    probe_interval=0.1,
    probe_timeout=0.05,
    gossip_interval=0.05,
    push_pull_interval=0.5,
    reconnect_interval=0.3,
    join_retry_interval=0.2,
    join_timeout=1.0,
    rpc_timeout=1.0,
)


def env_for(name: str) -> NodeEnv:
    return NodeEnv(
        node_id=name,
        transport=TcpTransport(),
        disk=SimDisk(random.Random(name)),
        rng=random.Random(name),
        logger=logging.getLogger(f"dspot.tcp.{name}"),
    )


@contextlib.asynccontextmanager
async def two_members() -> AsyncIterator[tuple[Membership, Membership, list[str]]]:
    """Members ``a`` and ``b`` (joined through ``a``) with the cluster secret, and their
    addresses."""
    a_env, b_env = env_for("a"), env_for("b")
    async with (
        RpcNode(a_env, listen="127.0.0.1:0", secret=SECRET) as a_rpc,
        Membership(a_env, a_rpc, FAST) as a,
        RpcNode(b_env, listen="127.0.0.1:0", secret=SECRET) as b_rpc,
    ):
        assert a_rpc.address is not None and b_rpc.address is not None
        async with Membership(b_env, b_rpc, FAST, seeds=[a_rpc.address]) as b:
            yield a, b, [a_rpc.address, b_rpc.address]


def test_wrong_secret_is_refused_over_tcp(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="dspot")

    async def main() -> None:
        bad_env = env_for("mallory")
        async with two_members() as (a, b, addresses):
            assert b.joined
            async with (
                RpcNode(bad_env, listen="127.0.0.1:0", secret=b"guess") as bad_rpc,
                Membership(bad_env, bad_rpc, FAST, seeds=addresses) as bad,
            ):
                await anyio.sleep(1.0)
                assert not bad.joined
                assert [m.node_id for m in bad.members()] == ["mallory"]
                for view in (a, b):
                    assert [m.node_id for m in view.members()] == ["a", "b"]
                    assert all(m.state is MemberState.ALIVE for m in view.members())

    trio.run(main)
    messages = [r.getMessage() for r in caplog.records]
    assert any("mallory membership.refused" in m for m in messages), messages
    assert any("refused a connection" in m and "mallory" in m for m in messages), messages


def test_metadata_updates_are_logged_below_info(caplog: pytest.LogCaptureFixture) -> None:
    """A member's new metadata (a service node publishes its log position a few times a
    second) is routine: logged at DEBUG, while a join stays at INFO."""
    caplog.set_level(logging.DEBUG, logger="dspot")

    async def main() -> None:
        async with two_members() as (a, b, _):
            await wait_until(lambda: len(a.members()) == 2, timeout=5)
            b.update_meta({"position": "1.7"})

            def seen() -> bool:
                member = a.get("b")
                return member is not None and member.meta.get("position") == "1.7"

            await wait_until(seen, timeout=5)

    trio.run(main)
    levels = {
        (r.getMessage().split()[1], r.levelno)
        for r in caplog.records
        if "membership." in r.getMessage()
    }
    assert ("membership.updated", logging.DEBUG) in levels, levels
    assert ("membership.joined", logging.INFO) in levels, levels
    assert not any(m == "membership.updated" and lvl >= logging.INFO for m, lvl in levels)
