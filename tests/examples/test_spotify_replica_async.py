"""CatalogReplica on a simulated dspot disk: apply, read, wait for a position, crash."""

from __future__ import annotations

import random

import anyio
import anyio.lowlevel
import pytest
import trio
import trio.testing
from dspot_spotify import catalog as c
from dspot_spotify.replica import CatalogReplica

from dspot.disk import SimDisk
from dspot.testing import run_with_mock_clock

from .catalog_log import HASH


def entries() -> list[tuple[c.LogPosition, bytes]]:
    es: list[c.Entry] = [
        c.RegisterUser(user_id="u", username="solo", password_hash=HASH, role="admin"),
        c.CreateArtist(actor="u", at=1, artist_id="a", name="First"),
        c.CreateArtist(actor="u", at=2, artist_id="a", name="Duplicate"),
        c.CreateArtist(actor="u", at=3, artist_id="b", name="Second"),
    ]
    return [(c.LogPosition(1, k), c.encode_entry(e)) for k, e in enumerate(es, start=1)]


def test_writer_waits_for_its_position_and_learns_the_outcome() -> None:
    log = entries()

    async def main() -> None:
        replica = CatalogReplica(SimDisk(random.Random(0)).db)
        await replica.open()
        assert replica.position is None
        seen: list[tuple[str, float]] = []

        async def writer(pos: c.LogPosition) -> None:
            result = await replica.outcome(pos)
            seen.append((f"{pos.seq}:{result.status}:{result.code}", trio.current_time()))

        async with anyio.create_task_group() as tg:
            for pos, _ in log[1:]:
                tg.start_soon(writer, pos)
            await anyio.lowlevel.checkpoint()
            for pos, data in log:  # the log delivers one entry per second
                await anyio.sleep(1)
                await replica.apply(pos, data)
        assert sorted(seen) == [
            ("2:applied:None", 2.0),
            ("3:rejected:conflict", 3.0),
            ("4:applied:None", 4.0),
        ]
        assert replica.position == c.LogPosition(1, 4)
        page = await replica.read(c.list_artists, q="second")
        assert [a.id for a in page.items] == ["b"]
        with anyio.fail_after(1):
            await replica.wait_applied(c.LogPosition(1, 2))  # already applied: no wait
        with pytest.raises(TimeoutError):
            with anyio.fail_after(5):
                await replica.wait_applied(c.LogPosition(2, 0))

    run_with_mock_clock(main)


def test_batch_and_crash_recovery() -> None:
    log = entries()

    async def main() -> None:
        disk = SimDisk(random.Random(0))
        replica = CatalogReplica(disk.db)
        await replica.open()
        results = await replica.apply_many(log[:2])
        assert [r.status for r in results] == ["applied", "applied"]
        await replica.apply_many(log[2:], sync=False)
        assert replica.position == c.LogPosition(1, 4)
        disk.crash()
        replica = CatalogReplica(disk.db)
        await replica.open()
        assert replica.position == c.LogPosition(1, 2)  # the unsynced batch was lost
        results = await replica.apply_many(log)  # redelivered from the start
        assert [r.status for r in results] == ["skipped", "skipped", "rejected", "applied"]
        assert (await replica.read(c.get_artist, "b")) is not None

    run_with_mock_clock(main)
