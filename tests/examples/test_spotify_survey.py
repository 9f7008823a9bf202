"""The holdings survey behind every cluster document (``/api/cluster``, ``/metrics``, the
event stream's hello): shared by concurrent callers, reused briefly, never stale across a
catalog change, and sliced so a large catalog does not hold the event loop in one turn."""

from __future__ import annotations

import hashlib
import json
from types import SimpleNamespace
from typing import Any

import anyio
import anyio.lowlevel
from dspot_spotify import survey
from dspot_spotify.api import LOG_POSITION_HEADER
from dspot_spotify.holdings import SLICE, SURVEY_MAX_AGE

from dspot.testing import run_with_mock_clock
from tests.examples.simcluster import Cluster, cluster, login, url


async def document(c: Cluster, node: str, auth: dict[str, str]) -> dict[str, Any]:
    resp = await c.client.get(url(node, "/api/cluster"), headers=auth)
    assert resp.status == 200, await resp.text()
    return dict(json.loads(await resp.read()))


def test_cluster_documents_share_a_survey_until_it_is_old_or_the_catalog_moves(
    song_file: bytes,
) -> None:
    """Eight concurrent cluster documents on one node cost one survey (each member asked
    once), a document right after reuses it, one after ``SURVEY_MAX_AGE`` asks again, and
    a write makes the next document survey again and list the new song at once."""

    async def main() -> None:
        async with cluster() as c:
            auth = await login(c, "n1")
            resp = await c.client.get(url("n2", "/api/cluster"), headers=auth)
            await resp.read()  # n2 has applied the sign-up: the next ones need no wait
            await anyio.sleep(SURVEY_MAX_AGE + 0.1)  # and its survey is too old to reuse
            surveys = c.nodes["n2"].surveys
            before = surveys.surveys

            docs: list[dict[str, Any]] = []

            async def one() -> None:
                docs.append(await document(c, "n2", auth))

            async with anyio.create_task_group() as tg:
                for _ in range(8):
                    tg.start_soon(one)
            assert len(docs) == 8 and all(d["songs"] == 0 for d in docs)
            assert surveys.surveys == before + 1
            await document(c, "n2", auth)
            assert surveys.surveys == before + 1

            await anyio.sleep(SURVEY_MAX_AGE + 0.1)
            await document(c, "n2", auth)
            assert surveys.surveys == before + 2

            resp = await c.client.post(url("n1", "/api/songs"), body=song_file, headers=auth)
            assert resp.status == 201, await resp.text()
            await resp.read()
            pos = resp.headers.get(LOG_POSITION_HEADER)
            assert pos is not None
            at = {**auth, LOG_POSITION_HEADER: pos}
            doc = await document(c, "n2", at)
            assert doc["songs"] == 1
            assert surveys.surveys == before + 3

    run_with_mock_clock(main)


def test_a_survey_over_many_hashes_gives_the_event_loop_turns() -> None:
    """A status request for ``3 * SLICE + 5`` digests builds its bitmap, and the asker
    reads it, in four slices, letting other tasks run in between; the bitmap and the
    indexes read from it are those of one pass."""
    hashes = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(3 * SLICE + 5)]
    held = {h: object() for h in hashes[::3]}
    node: Any = SimpleNamespace(blobs=SimpleNamespace(local=held))
    payload = bytes.fromhex("".join(hashes))
    one_pass = survey._bitmap([h in held for h in hashes])

    async def main() -> None:
        turns = 0
        done = False

        async def other_task() -> None:
            nonlocal turns
            while not done:
                turns += 1
                await anyio.lowlevel.checkpoint()

        async with anyio.create_task_group() as tg:
            tg.start_soon(other_task)
            await anyio.lowlevel.checkpoint()
            start = turns
            bitmap = await survey._held_bitmap(node, payload)
            assert turns - start >= 2
            start = turns
            found = await survey._held_bits(bitmap, len(hashes), 7)
            assert turns - start >= 2
            done = True
        assert bitmap == one_pass
        assert found == {7 + i for i in range(0, len(hashes), 3)}

    run_with_mock_clock(main)
