"""The anyio driver over the simulated network, in virtual time (trio MockClock)."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

from dspot.errors import RemoteError
from dspot.membership import (
    EventKind,
    Gossip,
    Membership,
    MembershipConfig,
    MembershipEvent,
    MemberState,
    RingView,
)
from dspot.rpc import NO_RETRY, RpcNode
from dspot.testing import run_with_mock_clock
from dspot.transport import SimNetwork
from tests.helpers.envs import env_for

SECRET = b"test cluster secret"
CONFIG = MembershipConfig()


@asynccontextmanager
async def member(
    net: SimNetwork,
    name: str,
    seeds: list[str] = [],  # noqa: B006
    *,
    secret: bytes = SECRET,
    meta: dict[str, str] | None = None,
) -> AsyncIterator[Membership]:
    env = env_for(net, name)
    async with (
        RpcNode(env, listen=f"{name}:7100", secret=secret) as rpc,
        Membership(env, rpc, CONFIG, seeds=[f"{s}:7100" for s in seeds], meta=meta) as m,
    ):
        yield m


async def until(view: Membership, node_id: str, state: MemberState) -> None:
    """Until ``view`` has ``node_id`` in ``state``."""
    async with view.subscribe() as events:
        current = view.get(node_id)
        if current is not None and current.state is state:
            return
        async for event in events:
            if event.member.node_id == node_id and event.member.state is state:
                return


def test_membership_implements_ring_view() -> None:
    async def main() -> None:
        net = SimNetwork(random.Random(1))
        async with member(net, "a") as a:
            view: RingView = a
            assert view.self_id == "a"
            assert [m.node_id for m in view.live()] == ["a"]
            assert view.get("a") is not None

    run_with_mock_clock(main)


def test_join_events_and_crash_detection_in_virtual_time() -> None:
    async def main() -> None:
        net = SimNetwork(random.Random(2))
        seen: list[MembershipEvent] = []
        async with member(net, "a") as a, a.subscribe() as events:

            async def collect() -> None:
                async for event in events:
                    seen.append(event)

            async with anyio.create_task_group() as tg:
                tg.start_soon(collect)
                async with member(net, "b", ["a"]) as b:
                    with anyio.CancelScope() as c_scope:
                        async with member(net, "c", ["a"]) as c:
                            await anyio.sleep(2.0)
                            assert [m.node_id for m in b.members()] == ["a", "b", "c"]
                            assert c.joined
                            net.crash("c")
                            crashed_at = anyio.current_time()
                            c_scope.cancel()
                    with anyio.fail_after(CONFIG.detection_bound(3)):
                        await until(a, "c", MemberState.DEAD)
                    detected = anyio.current_time() - crashed_at
                    assert detected < 3.0
                    await until(b, "c", MemberState.DEAD)
                    await anyio.sleep(0.1)
                    kinds = [(e.kind, e.member.node_id) for e in seen]
                    assert (EventKind.JOINED, "b") in kinds
                    assert (EventKind.JOINED, "c") in kinds
                    assert kinds[-1] == (EventKind.DEAD, "c")
                    assert [m.node_id for m in a.live()] == [
                        m.node_id for m in b.live()
                    ]  # same ring on both
                await anyio.sleep(0.5)
                # b left on a clean exit of its block: announced, not detected.
                assert a.get("b").state is MemberState.LEFT  # type: ignore[union-attr]
                assert seen[-1].kind is EventKind.LEFT
                tg.cancel_scope.cancel()

    run_with_mock_clock(main)


def test_metadata_spreads_and_update_meta_raises_incarnation() -> None:
    async def main() -> None:
        net = SimNetwork(random.Random(3))
        async with (
            member(net, "a", meta={"version": "1"}) as a,
            member(net, "b", ["a"], meta={"http": "b:8080"}) as b,
        ):
            await anyio.sleep(1.0)
            assert dict(a.get("b").meta) == {"http": "b:8080"}  # type: ignore[union-attr]
            b.update_meta({"http": "b:8081"})
            await anyio.sleep(1.0)
            seen = a.get("b")
            assert seen is not None and dict(seen.meta) == {"http": "b:8081"}
            assert seen.incarnation == b.core.incarnation == 1

    run_with_mock_clock(main)


def test_a_node_without_the_secret_is_never_admitted() -> None:
    async def main() -> None:
        net = SimNetwork(random.Random(4))
        async with member(net, "a") as a, member(net, "b", ["a"]) as b:
            async with member(net, "mallory", ["a", "b"], secret=b"wrong") as mallory:
                await anyio.sleep(3.0)
                assert not mallory.joined
                assert [m.node_id for m in mallory.members()] == ["mallory"]
            for view in (a, b):
                assert [m.node_id for m in view.members()] == ["a", "b"]

    run_with_mock_clock(main)


def test_a_message_claiming_another_origin_is_refused() -> None:
    async def main() -> None:
        net = SimNetwork(random.Random(5))
        async with member(net, "a") as a, member(net, "b", ["a"]) as b:
            await anyio.sleep(1.0)
            env = env_for(net, "eve")
            async with RpcNode(env, secret=SECRET) as rpc:
                forged = Gossip(b.core.me, (b.core.me,))
                with pytest.raises(RemoteError) as info:
                    await rpc.call("a:7100", forged, timeout=1.0, retry=NO_RETRY)
                assert info.value.code == "forbidden"
            assert "eve" not in [m.node_id for m in a.members()]

    run_with_mock_clock(main)


def test_start_reports_started_even_when_no_seed_answers() -> None:
    async def main() -> None:
        net = SimNetwork(random.Random(6))
        start = anyio.current_time()
        async with member(net, "b", ["a"]) as b:
            assert anyio.current_time() - start == pytest.approx(CONFIG.join_timeout, abs=0.1)
            assert not b.joined
            async with member(net, "a") as a:
                with anyio.fail_after(CONFIG.join_retry_interval + 1):
                    await b.wait_joined()
                await anyio.sleep(0.5)
                assert a.get("b") is not None

    run_with_mock_clock(main)
