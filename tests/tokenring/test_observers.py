"""Observers (a gateway) join membership but must not count in the token ring's majorities.

Three voters run a token ring over real SWIM membership; a fourth member joins as an
observer. With the ring looking through :class:`~dspot.membership.VoterView`, losing one
voter *and* the observer leaves 2 of 3 voters: writes go on. Looking at the raw membership
(the mechanism removed), the observer is remembered as configured, majorities are counted
over four members, and the same failure leaves the cluster read-only.
"""

from __future__ import annotations

import random
from contextlib import AsyncExitStack

import anyio
import pytest

from dspot.membership import (
    Membership,
    MembershipConfig,
    MemberState,
    RingView,
    VoterView,
    is_observer,
    observer_meta,
)
from dspot.rpc import RpcNode
from dspot.testing import run_with_mock_clock
from dspot.tokenring import CommitTimeout, NoQuorum, TokenRing, TokenRingConfig
from dspot.transport import SimNetwork
from tests.helpers.envs import env_for

SECRET = b"observer test secret"
VOTERS = ["a", "b", "c"]


async def cluster_survives_losing_a_voter_and_the_observer(*, voter_view: bool) -> bool:
    """Whether a write commits after one voter and the observer are gone."""
    net = SimNetwork(random.Random(11))
    config = MembershipConfig()
    rings: dict[str, TokenRing] = {}
    scopes: dict[str, anyio.CancelScope] = {}

    async def voter(name: str, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        env = env_for(net, name)
        seeds = [f"{s}:7100" for s in VOTERS if s != name]
        with anyio.CancelScope() as scope:
            scopes[name] = scope
            async with AsyncExitStack() as stack:
                rpc = await stack.enter_async_context(
                    RpcNode(env, listen=f"{name}:7100", secret=SECRET)
                )
                m = await stack.enter_async_context(Membership(env, rpc, config, seeds=seeds))
                view: RingView = VoterView(m) if voter_view else m
                ring_config = TokenRingConfig(min_members=len(VOTERS))
                rings[name] = await stack.enter_async_context(
                    TokenRing(env, rpc, view, ring_config)
                )
                task_status.started()
                await anyio.sleep_forever()

    async def observer(*, task_status: anyio.abc.TaskStatus[Membership]) -> None:
        env = env_for(net, "gw")
        with anyio.CancelScope() as scope:
            scopes["gw"] = scope
            async with (
                RpcNode(env, listen="gw:7100", secret=SECRET) as rpc,
                Membership(env, rpc, config, seeds=["a:7100"], meta=observer_meta()) as m,
            ):
                task_status.started(m)
                await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        for name in VOTERS:
            await tg.start(voter, name)
        gw: Membership = await tg.start(observer)
        await anyio.sleep(5.0)
        # Everyone knows the observer as such. With the voter view the ring commits with all
        # four up; through the raw view it may already stall here (the observer holds a
        # place in the ring but runs no ring), which the test does not depend on.
        assert all(m.node_id != "gw" or is_observer(m) for m in gw.members())
        try:
            await rings["a"].submit(b"first", timeout=10.0)
        except (NoQuorum, CommitTimeout):
            assert not voter_view, "a healthy cluster with an observer must commit"
        for name in ("c", "gw"):
            net.crash(name)
            scopes[name].cancel()
        await anyio.sleep(10.0)  # failure detection
        live = {m.node_id for m in rings["a"].view.live()}
        assert "c" not in live
        try:
            await rings["a"].submit(b"second", timeout=10.0)
        except (NoQuorum, CommitTimeout):
            survived = False
        else:
            survived = True
        tg.cancel_scope.cancel()
    return survived


def run(voter_view: bool) -> bool:
    async def main() -> bool:
        return await cluster_survives_losing_a_voter_and_the_observer(voter_view=voter_view)

    return run_with_mock_clock(main)


def test_an_observer_never_counts_in_majorities() -> None:
    assert run(voter_view=True)


def test_without_the_voter_view_the_observer_breaks_majorities() -> None:
    # The mechanism removed: the same failure leaves the ring without a quorum.
    assert not run(voter_view=False)


def test_voter_view_hides_observers_everywhere() -> None:
    async def main() -> None:
        net = SimNetwork(random.Random(3))
        config = MembershipConfig()
        env_a, env_g = env_for(net, "a"), env_for(net, "gw")
        async with (
            RpcNode(env_a, listen="a:7100", secret=SECRET) as rpc_a,
            Membership(env_a, rpc_a, config) as a,
            RpcNode(env_g, listen="gw:7100", secret=SECRET) as rpc_g,
            Membership(env_g, rpc_g, config, seeds=["a:7100"], meta=observer_meta()),
        ):
            voters = VoterView(a)
            async with voters.subscribe() as events:
                await anyio.sleep(3.0)
                assert {m.node_id for m in a.members()} == {"a", "gw"}
                assert [m.node_id for m in voters.members()] == ["a"]
                assert [m.node_id for m in voters.live()] == ["a"]
                assert [m.node_id for m in voters.configured()] == ["a"]
                assert voters.get("gw") is None and voters.get("a") is not None
                with pytest.raises(anyio.WouldBlock):
                    events.receive_nowait()  # the observer's join was filtered out
            gw = a.get("gw")
            assert gw is not None and gw.state is MemberState.ALIVE and is_observer(gw)

    run_with_mock_clock(main)
