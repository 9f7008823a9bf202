"""In-process clusters for tests: whole SpotifyNodes on the simulated network (virtual time),
or one node over real TCP; and the tagged song most tests upload. The one way the example's
in-process tests build a cluster (self-contained, so it can move into a testing kit).

    def test_something(song_file: bytes) -> None:
        async def main() -> None:
            async with cluster() as c:           # n1, n2, n3 with a quorum
                auth = await login(c, "n1")      # alice, registered and logged in
                resp = await c.client.get(url("n2", "/api/songs"), headers=auth)

        run_with_mock_clock(main)                # trio with MockClock: timeouts cost nothing
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import attrs
from dspot_spotify.api import LOG_POSITION_HEADER
from dspot_spotify.auth import ScryptParams
from dspot_spotify.demo import encode_audio, make_cover_png, synthesize, tag_file
from dspot_spotify.node import NodeConfig, SpotifyNode

from dspot.blobstore import BlobStoreConfig
from dspot.disk import Disk, LocalDisk, SimDisk
from dspot.env import NodeEnv, production_env
from dspot.http import ClientResponse, HttpClient
from dspot.testing import wait_until
from dspot.transport import SimNetwork, TcpTransport

__all__ = [
    "CONFIG",
    "HTTP_PORT",
    "NAMES",
    "RPC_PORT",
    "SECRET",
    "Cluster",
    "Session",
    "cluster",
    "login",
    "solo_node",
    "solo_over_tcp",
    "tagged_flac",
    "url",
]

NAMES = ["n1", "n2", "n3"]
SECRET = b"a test cluster secret, 16+ bytes"
RPC_PORT = 7100
HTTP_PORT = 8080
CONFIG = NodeConfig(
    cluster_size=3,
    scrypt=ScryptParams(n=2**4),  # cheap hashing: tests are about the cluster, not scrypt
    blobstore=BlobStoreConfig(chunk_size=32 * 1024, read_size=16 * 1024),
    max_upload=2 * 1024 * 1024,
)


def url(node: str, path: str) -> str:
    return f"http://{node}:{HTTP_PORT}{path}"


class Session:
    """One user's client: sends back the log position of its last write (read your writes)."""

    def __init__(self, c: Cluster, auth: dict[str, str], pos: str | None = None) -> None:
        self.c = c
        self.auth = auth
        self.pos = pos

    async def call(self, method: str, node: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = dict(self.auth)
        if self.pos is not None:
            headers[LOG_POSITION_HEADER] = self.pos
        resp = await self.c.client.request(method, url(node, path), headers=headers, json=body)
        data = await resp.read()
        pos = resp.headers.get(LOG_POSITION_HEADER)
        if resp.status < 300:
            if method != "GET":
                assert pos is not None, (method, path)
                self.pos = pos
        else:
            assert resp.headers.get("content-type") == "application/problem+json"
        return resp.status, json.loads(data) if data else None


class Cluster:
    def __init__(self, net: SimNetwork, nodes: dict[str, SpotifyNode], client: HttpClient) -> None:
        self.net = net
        self.nodes = nodes
        self.client = client

    async def wait_ready(self, timeout: float = 30.0) -> None:
        await wait_until(
            lambda: all(n.has_quorum() and n.ring.holder for n in self.nodes.values()),
            timeout=timeout,
            step=0.1,
        )

    async def register(self, node: str, username: str, password: str) -> ClientResponse:
        body = {"username": username, "password": password}
        resp = await self.client.post(url(node, "/api/auth/register"), json=body)
        await resp.read()
        return resp


@asynccontextmanager
async def cluster(seed: int = 1, config: NodeConfig = CONFIG) -> AsyncIterator[Cluster]:
    net = SimNetwork(random.Random(seed))
    nodes: dict[str, SpotifyNode] = {}
    async with anyio.create_task_group() as tg:
        for i, name in enumerate(NAMES):
            env = NodeEnv(
                node_id=name,
                transport=net.transport(name),
                disk=SimDisk(random.Random(seed * 100 + i)),
                rng=random.Random(seed * 1000 + i),
            )
            node = SpotifyNode(
                env,
                rpc_address=f"{name}:{RPC_PORT}",
                http_address=f"{name}:{HTTP_PORT}",
                secret=SECRET,
                seeds=[f"{n}:{RPC_PORT}" for n in NAMES if n != name],
                config=config,
            )
            await tg.start(node.run)
            nodes[name] = node
        async with HttpClient(connect=net.transport("client").connect) as client:
            c = Cluster(net, nodes, client)
            await c.wait_ready()
            yield c
        tg.cancel_scope.cancel()


def tagged_flac(path: Path) -> bytes:
    """A 3 s tagged FLAC with a cover ("Quorum Blues" by The Replicas, album "Token Ring")."""
    path.write_bytes(encode_audio(synthesize(random.Random(7), 3.0), 44100, "flac"))
    tag_file(
        path,
        title="Quorum Blues",
        artist="The Replicas",
        album="Token Ring",
        track=1,
        year=2026,
        genre="Jazz",
        cover=make_cover_png(random.Random(8), 32),
    )
    return path.read_bytes()


async def login(c: Cluster, node: str) -> dict[str, str]:
    resp = await c.register(node, "alice", "correct horse battery")
    assert resp.status == 201, await resp.text()
    resp = await c.client.post(
        url(node, "/api/auth/login"),
        json={"username": "alice", "password": "correct horse battery"},
    )
    assert resp.status == 200, await resp.text()
    token = (await resp.json(dict))["token"]
    return {"authorization": f"Bearer {token}"}


def solo_node(disk: Disk, config: NodeConfig) -> SpotifyNode:
    """A node on ``disk`` over real TCP that counts on no other (``config.cluster_size`` 1),
    its ports picked by the kernel; the caller runs it and closes the disk."""
    env = production_env("solo", TcpTransport(), disk, seed=1)
    return SpotifyNode(
        env,
        rpc_address="127.0.0.1:0",
        http_address="127.0.0.1:0",
        secret=SECRET,
        config=config,
    )


@asynccontextmanager
async def solo_over_tcp(path: Path) -> AsyncIterator[tuple[str, HttpClient, str]]:
    """A one-node cluster over real TCP on a local disk under ``path``, with a registered
    user: yields ``(base URL, client, token)``."""
    disk = await LocalDisk.open(path / "disk")
    node = solo_node(
        disk,
        attrs.evolve(
            CONFIG,
            cluster_size=1,
            blobstore=attrs.evolve(CONFIG.blobstore, replicas=1, write_quorum=1),
        ),
    )
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(node.run)
            base = f"http://{node.http_bound_address}"
            await wait_until(lambda: node.has_quorum() and node.ring.holder, timeout=10.0, step=0.1)
            async with HttpClient(connect=TcpTransport().connect) as client:
                creds = {"username": "solo", "password": "solo password"}
                resp = await client.post(f"{base}/api/auth/register", json=creds)
                assert resp.status == 201, await resp.text()
                yield base, client, (await resp.json(dict))["token"]
            tg.cancel_scope.cancel()
    finally:
        await disk.aclose()
