"""Observability of the music service on a 3-node simulated cluster: ``/api/cluster``,
``/api/songs/{id}/replicas``, the ``/api/events`` WebSocket and ``/metrics``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import attrs
import pytest
from dspot_spotify.api import LOG_POSITION_HEADER
from dspot_spotify.node import EventHub, NodeConfig
from prometheus_client.parser import text_string_to_metric_families

from dspot.http import WebSocket, WebSocketHandshakeError, connect_websocket
from dspot.membership import MemberState
from dspot.testing import run_with_mock_clock, wait_until
from tests.examples import simcluster
from tests.examples.simcluster import CONFIG, HTTP_PORT, NAMES, RPC_PORT, Cluster, login, url

# Two copies of each blob on three nodes: a crash leaves one copy until repair makes two.
R2 = attrs.evolve(CONFIG, blobstore=attrs.evolve(CONFIG.blobstore, replicas=2, write_quorum=2))


@asynccontextmanager
async def cluster(config: NodeConfig = R2, seed: int = 1) -> AsyncIterator[Cluster]:
    async with simcluster.cluster(seed, config) as c:
        yield c


async def get_json(c: Cluster, node: str, path: str, auth: dict[str, str]) -> Any:
    resp = await c.client.get(url(node, path), headers=auth)
    assert resp.status == 200, await resp.text()
    return json.loads(await resp.read())


async def upload(c: Cluster, node: str, auth: dict[str, str], data: bytes) -> tuple[str, str]:
    """Upload ``data``; return the song id and the write's log position."""
    resp = await c.client.post(url(node, "/api/songs"), body=data, headers=auth)
    assert resp.status == 201, await resp.text()
    pos = resp.headers.get(LOG_POSITION_HEADER)
    assert pos is not None
    return (await resp.json(dict))["id"], pos


async def poll_json(
    c: Cluster,
    node: str,
    path: str,
    auth: dict[str, str],
    check: Callable[[Any], bool],
    timeout: float,
) -> Any:
    """GET ``path`` until ``check`` holds for the document (virtual time)."""
    with anyio.fail_after(timeout):
        while True:
            doc = await get_json(c, node, path, auth)
            if check(doc):
                return doc
            await anyio.sleep(0.5)


def members(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["id"]: m for m in doc["members"]}


def test_cluster_document_after_a_write(song_file: bytes) -> None:
    async def main() -> None:
        async with cluster() as c:
            auth = await login(c, "n1")
            resp = await c.client.get(url("n2", "/api/cluster"))
            assert resp.status == 401
            await resp.read()
            song_id, pos = await upload(c, "n1", auth, song_file)
            epoch, seq = map(int, pos.split("."))

            def caught_up(doc: dict[str, Any]) -> bool:
                positions = {m["log_position"] for m in doc["members"]}
                return positions == {doc["log_position"]}

            doc = await poll_json(c, "n2", "/api/cluster", auth, caught_up, 10.0)
            assert doc["node"] == "n2"
            assert doc["quorum"] is True
            assert tuple(map(int, doc["log_position"].split("."))) >= (epoch, seq)
            assert doc["token"]["holder"] in NAMES and doc["token"]["epoch"] >= 1
            assert sorted(doc["ring"]) == NAMES
            assert doc["replication"] == 2
            rows = members(doc)
            assert sorted(rows) == NAMES
            for name, row in rows.items():
                assert row["state"] == "alive" and row["role"] == "voter"
                assert row["address"] == f"{name}:{RPC_PORT}"
                assert row["http"] == f"{name}:{HTTP_PORT}"
                assert isinstance(row["incarnation"], int)
            # Audio and cover, two copies each: four copies over the three nodes.
            assert sum(row["blobs"] for row in rows.values()) == 4
            assert sum(row["bytes"] for row in rows.values()) > 2 * len(song_file)
            assert doc["songs"] == 1
            assert doc["under_replicated"] == 0 and doc["under_replicated_songs"] == []

            replicas = await get_json(c, "n3", f"/api/songs/{song_id}/replicas", auth)
            assert replicas["song_id"] == song_id and replicas["wanted"] == 2
            holders = [r["node"] for r in replicas["replicas"] if r["has"]]
            assert len(holders) == 2
            assert all(r["state"] == "alive" for r in replicas["replicas"])
            sha = replicas["sha256"]
            for name in NAMES:
                assert (c.nodes[name].blobs.local.get(sha) is not None) == (name in holders)
            resp = await c.client.get(url("n3", "/api/songs/nope/replicas"), headers=auth)
            assert resp.status == 404
            await resp.read()

    run_with_mock_clock(main)


def test_crash_is_reported_and_repair_clears_under_replication(song_file: bytes) -> None:
    async def main() -> None:
        async with cluster() as c:
            auth = await login(c, "n1")
            song_id, pos = await upload(c, "n1", auth, song_file)
            auth_at = {**auth, LOG_POSITION_HEADER: pos}
            replicas = await get_json(c, "n1", f"/api/songs/{song_id}/replicas", auth_at)
            holders = [r["node"] for r in replicas["replicas"] if r["has"]]
            victim = holders[0]
            observer = next(n for n in NAMES if n != victim)
            c.net.crash(victim)

            # At once: the victim is not declared dead yet, cannot answer, and its copy of
            # the song is not counted.
            doc = await get_json(c, observer, "/api/cluster", auth_at)
            row = members(doc)[victim]
            assert row["log_position"] is None and row["blobs"] is None
            assert doc["under_replicated"] == 1
            [under] = doc["under_replicated_songs"]
            assert under == {"id": song_id, "title": "Quorum Blues", "copies": 1, "wanted": 2}

            # Later: declared dead, and repair made a second copy on the survivors.
            doc = await poll_json(
                c,
                observer,
                "/api/cluster",
                auth_at,
                lambda d: members(d)[victim]["state"] == "dead" and d["under_replicated"] == 0,
                60.0,
            )
            assert all(
                row["state"] == "alive" and row["blobs"] is not None
                for name, row in members(doc).items()
                if name != victim
            )
            replicas = await get_json(c, observer, f"/api/songs/{song_id}/replicas", auth_at)
            rows = {r["node"]: r for r in replicas["replicas"]}
            assert rows[victim]["state"] == "dead" and rows[victim]["has"] is False
            assert sorted(n for n, r in rows.items() if r["has"]) == sorted(
                n for n in NAMES if n != victim
            )

    run_with_mock_clock(main)


def test_without_repair_under_replication_stays(song_file: bytes) -> None:
    """The count is measured, not assumed: with repair off it never returns to 0."""

    async def main() -> None:
        config = attrs.evolve(R2, blobstore=attrs.evolve(R2.blobstore, repair_enabled=False))
        async with cluster(config) as c:
            auth = await login(c, "n1")
            song_id, pos = await upload(c, "n1", auth, song_file)
            auth_at = {**auth, LOG_POSITION_HEADER: pos}
            replicas = await get_json(c, "n1", f"/api/songs/{song_id}/replicas", auth_at)
            victim = next(r["node"] for r in replicas["replicas"] if r["has"])
            observer = next(n for n in NAMES if n != victim)
            c.net.crash(victim)
            view = c.nodes[observer].membership
            await wait_until(
                lambda: getattr(view.get(victim), "state", None) is MemberState.DEAD,
                timeout=30,
                step=0.1,
            )
            await anyio.sleep(20.0)  # several repair intervals
            doc = await get_json(c, observer, "/api/cluster", auth_at)
            assert doc["under_replicated"] == 1

    run_with_mock_clock(main)


async def next_event(ws: WebSocket, match: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The next message that ``match``es (others skipped); fails after 30 s."""
    with anyio.fail_after(30.0):
        while True:
            message = json.loads(await ws.receive())
            if match(message):
                return dict(message)


def test_events_websocket(song_file: bytes) -> None:
    async def main() -> None:
        async with cluster() as c:
            auth = await login(c, "n1")
            n1, n2 = c.nodes["n1"].replica, c.nodes["n2"].replica
            await wait_until(
                lambda: n2.position == n1.position, timeout=10.0, step=0.1
            )  # n2 knows the user
            token = auth["authorization"].removeprefix("Bearer ")
            connect = c.net.transport("client").connect
            ws_url = f"ws://n2:{HTTP_PORT}/api/events"
            # No token: refused before the upgrade.
            with pytest.raises(WebSocketHandshakeError) as refused:
                async with connect_websocket(ws_url, connect=connect):
                    pass
            assert refused.value.status == 401
            # A plain GET is told to upgrade.
            resp = await c.client.get(url("n2", "/api/events"), headers=auth)
            assert resp.status == 426
            await resp.read()
            # The Bearer header works too.
            async with connect_websocket(ws_url, connect=connect, headers=auth.items()) as ws:
                hello = json.loads(await ws.receive())
                assert hello["type"] == "hello" and hello["node"] == "n2"
            async with connect_websocket(f"{ws_url}?token={token}", connect=connect) as ws:
                hello = json.loads(await ws.receive())
                assert hello["type"] == "hello" and hello["node"] == "n2"
                assert sorted(hello["cluster"]["ring"]) == NAMES
                await ws.send("ignored")
                _, pos = await upload(c, "n1", auth, song_file)
                event = await next_event(
                    ws, lambda m: m["type"] == "catalog" and m["kind"] == "song.create"
                )
                assert event["position"] == pos  # the song is the upload's last entry
                c.net.crash("n3")
                event = await next_event(
                    ws, lambda m: m["type"] == "membership" and m["event"] == "dead"
                )
                assert event["member"]["id"] == "n3" and event["member"]["state"] == "dead"
                assert event["member"]["role"] == "voter"
            # Closed by the client: the node forgets the subscriber.
            await wait_until(lambda: c.nodes["n2"].events.subscribers == 0, timeout=5.0, step=0.1)

    run_with_mock_clock(main)


def test_event_hub_drops_a_slow_subscriber_without_blocking() -> None:
    async def main() -> None:
        hub = EventHub(queue_size=4)
        async with hub.subscribe() as slow, hub.subscribe() as fast:
            got: list[int] = []
            for i in range(10):
                hub.publish({"type": "n", "i": i})  # never waits
                got.append((await fast.receive())["i"])
            assert got == list(range(10))
            assert [e["i"] async for e in slow] == [0, 1, 2, 3]  # then its stream ended
            assert hub.subscribers == 1
        assert hub.subscribers == 0

    run_with_mock_clock(main)


def test_metrics(song_file: bytes) -> None:
    async def main() -> None:
        async with cluster() as c:
            auth = await login(c, "n1")
            await upload(c, "n1", auth, song_file)
            for _ in range(3):
                resp = await c.client.get(url("n1", "/api/songs"), headers=auth)
                assert resp.status == 200
                await resp.read()
            resp = await c.client.get(url("n1", "/no/such/thing"))
            assert resp.status == 404
            await resp.read()
            resp = await c.client.get(url("n1", "/metrics"))
            assert resp.status == 200
            assert resp.headers.get("content-type", "").startswith("text/plain; version=")
            text = await resp.text()
            samples = {
                (s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text)
                for s in family.samples
            }

            def value(name: str, **labels: str) -> float:
                return samples[(name, tuple(sorted(labels.items())))]

            requests = "dspot_http_requests_total"
            assert value(requests, method="GET", route="/api/songs", status="200") == 3
            assert value(requests, method="POST", route="/api/songs", status="201") == 1
            assert value(requests, method="GET", route="<unmatched>", status="404") == 1
            assert (
                value("dspot_http_request_duration_seconds_count", method="GET", route="/api/songs")
                == 3
            )
            assert value("dspot_uploads_total") == 1
            assert value("dspot_cluster_members", state="alive", role="voter") == 3
            assert value("dspot_cluster_quorum") == 1
            assert value("dspot_tokenring_epoch") >= 1
            assert value("dspot_catalog_applied_seq") >= 1
            assert value("dspot_catalog_songs") == 1
            assert value("dspot_songs_under_replicated") == 0
            assert value("dspot_blobstore_blobs") == c.nodes["n1"].blobs.stats().blobs
            assert value("dspot_catalog_entries_applied_total", kind="song.create") == 1
            # Each node has its own registry: n2 answered none of those requests.
            resp = await c.client.get(url("n2", "/metrics"))
            other = await resp.text()
            assert 'route="/api/songs"' not in other

    run_with_mock_clock(main)


def test_events_follow_the_token_and_the_quorum() -> None:
    async def main() -> None:
        async with cluster() as c:
            auth = await login(c, "n1")
            holder = c.nodes["n1"].ring.holder
            epoch = c.nodes["n1"].ring.epoch
            assert holder is not None
            watcher, other = [n for n in NAMES if n != holder]
            await wait_until(
                lambda: c.nodes[watcher].replica.position is not None, timeout=10.0, step=0.1
            )
            ws_url = f"ws://{watcher}:{HTTP_PORT}/api/events"
            connect = c.net.transport("client").connect
            async with connect_websocket(ws_url, connect=connect, headers=auth.items()) as ws:
                hello = json.loads(await ws.receive())
                assert hello["cluster"]["token"] == {"holder": holder, "epoch": epoch}
                c.net.crash(holder)
                event = await next_event(
                    ws, lambda m: m["type"] == "token" and m["holder"] not in (None, holder)
                )
                assert event["epoch"] > epoch
                c.net.crash(other)  # the watcher is alone: a minority
                assert await next_event(ws, lambda m: m["type"] == "quorum") == {
                    "type": "quorum",
                    "quorum": False,
                }

    run_with_mock_clock(main)
