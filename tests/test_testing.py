"""The testing kit itself: virtual time, bounded waits, scripted membership, free ports."""

from __future__ import annotations

import socket

import anyio
import pytest

from dspot.membership import EventKind, MembershipEvent, MemberState, ring_order
from dspot.testing import (
    ScriptedMembership,
    StaticView,
    free_port_range,
    free_ports,
    poll_until,
    run_with_mock_clock,
    wait_until,
)

ADDRESSES = {n: f"{n}:1" for n in ("a", "b", "c", "d")}


def test_mock_clock_runs_an_hour_in_no_time_and_returns_the_result() -> None:
    async def main(hours: int) -> float:
        start = anyio.current_time()
        await anyio.sleep(3600 * hours)
        return anyio.current_time() - start

    assert run_with_mock_clock(main, 2) == 7200


def test_wait_until_returns_once_true_and_times_out_in_virtual_time() -> None:
    async def main() -> None:
        flag: list[bool] = []

        async def later() -> None:
            await anyio.sleep(5)
            flag.append(True)

        async with anyio.create_task_group() as tg:
            tg.start_soon(later)
            start = anyio.current_time()
            await wait_until(lambda: flag, timeout=10, step=0.5)
            assert 5 <= anyio.current_time() - start <= 5.5
        with pytest.raises(TimeoutError):
            await wait_until(lambda: False, timeout=30)

    run_with_mock_clock(main)


def test_poll_until_names_what_it_waited_for() -> None:
    poll_until(lambda: True, timeout=0.1, what="nothing")
    with pytest.raises(AssertionError, match="the impossible"):
        poll_until(lambda: False, timeout=0.05, what="the impossible", step=0.01)


def test_static_view_sees_the_directory_and_its_own_down_set() -> None:
    directory = ScriptedMembership.of(ADDRESSES)
    a, b = directory.view("a"), directory.view("b")
    assert [m.node_id for m in a.live()] == ring_order(list(ADDRESSES))
    a.down.add("c")
    assert a.get("c").state is MemberState.DEAD  # type: ignore[union-attr]
    assert b.get("c").state is MemberState.ALIVE  # type: ignore[union-attr]
    assert "c" not in [m.node_id for m in a.live()]
    directory.set_state("d", MemberState.LEFT)
    assert [m.node_id for m in b.configured()] == ["a", "b", "c"]
    assert [m.node_id for m in b.members()] == ["a", "b", "c", "d"]


def test_fixed_view_with_ground_truth_reports_unreachable_members_dead() -> None:
    cut = {("a", "b")}
    view = StaticView.fixed("a", ADDRESSES, reachable=lambda x, y: (x, y) not in cut)
    assert sorted(m.node_id for m in view.live()) == ["a", "c", "d"]
    cut.clear()
    assert sorted(m.node_id for m in view.live()) == ["a", "b", "c", "d"]


def test_subscribers_see_state_changes_and_published_metadata() -> None:
    async def main() -> list[MembershipEvent]:
        directory = ScriptedMembership.of(ADDRESSES)
        view = directory.view("a")
        async with view.subscribe() as events:
            directory.set_state("b", MemberState.SUSPECT)
            directory.set_state("b", MemberState.SUSPECT)  # unchanged: no event
            view.update_meta({"http": "a:80"})
            return [await events.receive(), await events.receive()]

    got = run_with_mock_clock(main)
    assert [(e.kind, e.member.node_id) for e in got] == [
        (EventKind.SUSPECT, "b"),
        (EventKind.UPDATED, "a"),
    ]
    assert got[1].member.meta == {"http": "a:80"} and got[1].member.incarnation == 1


def test_free_ports_can_be_bound() -> None:
    base = free_port_range(3)
    for port in [*free_ports(3), base, base + 2]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def test_ports_handed_out_are_never_handed_out_again() -> None:
    """A range for the nodes and a port for the gateway are found free one after the other
    and bound later; they must not overlap (a CI run saw the gateway's port inside the
    nodes' range). The search is random, so many draws must all be disjoint."""
    taken: set[int] = set()
    for _ in range(200):
        base = free_port_range(7)
        ports = {base + i for i in range(7)} | set(free_ports(2))
        assert taken.isdisjoint(ports)
        taken |= ports
