"""The anyio driver on the simulated network and disks, in virtual time (trio MockClock)."""

from __future__ import annotations

import anyio
import anyio.abc
import pytest

from dspot.testing import StaticView
from dspot.tokenring import LogPosition, NoQuorum
from tests.tokenring.cluster import PORT, Cluster, run


def log_of(c: Cluster, name: str) -> list[tuple[int, str]]:
    return [(e.position.seq, e.entry_id) for e in c.applied[name]]


def test_members_apply_one_order_and_read_their_writes_anywhere() -> None:
    async def body(c: Cluster) -> None:
        positions: dict[str, LogPosition] = {}

        async def submit(name: str, i: int) -> None:
            eid = f"{name}-{i}"
            positions[eid] = await c.rings[name].submit(eid.encode(), entry_id=eid)

        async with anyio.create_task_group() as tg:
            for i in range(5):
                for n in c.names:
                    tg.start_soon(submit, n, i)
        assert len(positions) == 15
        assert len({p.seq for p in positions.values()}) == 15
        last = max(positions.values())
        for n in c.names:
            await c.rings[n].wait_applied(last, timeout=5)
        logs = [log_of(c, n) for n in c.names]
        assert logs[0] == logs[1] == logs[2]
        assert sorted(eid for _, eid in logs[0]) == sorted(positions)
        for eid, pos in positions.items():
            assert (pos.seq, eid) in logs[0]
        # resubmitting an id returns the same position, not a second copy
        again = await c.rings["n3"].submit(b"n1-0", entry_id="n1-0")
        assert again == positions["n1-0"]
        status = c.rings["n1"].status()
        assert status.epoch >= 1 and status.commit_index >= 15

    run(body, ["n1", "n2", "n3"])


def test_a_restarted_member_reloads_its_log_and_catches_up() -> None:
    async def body(c: Cluster) -> None:
        for i in range(6):
            await c.rings[c.names[i % 3]].submit(b"x", entry_id=f"a{i}")
        before = c.rings["n2"].core.last_index
        c.crash("n2")
        await anyio.sleep(0.5)
        for i in range(3):
            await c.rings["n1"].submit(b"y", entry_id=f"b{i}")
        ring = await c.start("n2")
        assert ring.core.last_index >= before  # synced before acknowledging: survived
        pos = await c.rings["n1"].submit(b"z", entry_id="c")
        await ring.wait_applied(pos, timeout=5)
        assert log_of(c, "n2") == log_of(c, "n1")[: len(log_of(c, "n2"))]
        assert [e for _, e in log_of(c, "n2")][-1] == "c"
        assert len(log_of(c, "n2")) == 10

    run(body, ["n1", "n2", "n3"])


def test_minority_side_is_read_only_then_catches_up_after_heal() -> None:
    async def body(c: Cluster) -> None:
        await c.rings["n1"].submit(b"first", entry_id="first")
        c.isolate("n3")
        with pytest.raises(NoQuorum, match="read-only, no quorum"):
            await c.rings["n3"].submit(b"nope", entry_id="nope")
        positions = [await c.rings["n1"].submit(b"w", entry_id=f"w{i}") for i in range(5)]
        assert c.rings["n3"].applied_position.seq < positions[-1].seq
        with pytest.raises(NoQuorum):
            await c.rings["n3"].submit(b"nope", entry_id="nope")
        c.heal()
        await c.rings["n3"].wait_applied(positions[-1], timeout=10)
        assert log_of(c, "n3") == log_of(c, "n1")[: len(log_of(c, "n3"))]
        pos = await c.rings["n3"].submit(b"back", entry_id="back", timeout=10)
        await c.rings["n1"].wait_applied(pos, timeout=5)
        assert "nope" not in [e for _, e in log_of(c, "n1")]

    run(body, ["n1", "n2", "n3"])


def test_token_holder_crash_is_survived() -> None:
    async def body(c: Cluster) -> None:
        await c.rings["n1"].submit(b"a", entry_id="a")
        holder = next(n for n in c.names if c.rings[n].holder == n)
        epoch = c.rings[holder].epoch
        c.crash(holder)
        for n in c.names:
            c.views[n].down = {holder}
        alive = [n for n in c.names if n != holder]
        pos = await c.rings[alive[0]].submit(b"b", entry_id="b", timeout=10)
        assert pos.epoch > epoch
        await c.rings[alive[1]].wait_applied(pos, timeout=5)
        assert [e for _, e in log_of(c, alive[1])] == ["a", "b"]

    run(body, ["n1", "n2", "n3", "n4", "n5"])


def test_a_restarted_member_that_sees_only_itself_stays_read_only() -> None:
    async def body(c: Cluster) -> None:
        for i in range(3):
            await c.rings["n1"].submit(b"x", entry_id=f"a{i}")
        c.crash("n2")
        c.crash("n3")
        c.crash("n1")
        # n1 comes back alone; its membership knows nobody else yet.
        c.views["n1"] = StaticView.fixed("n1", {"n1": f"n1:{PORT}"})
        ring = await c.start("n1")
        await anyio.sleep(5)
        with pytest.raises(NoQuorum):
            await ring.submit(b"alone", entry_id="solo")
        assert ring.core.quorum() == 2  # counted against the 3 members it remembers

    run(body, ["n1", "n2", "n3"])
