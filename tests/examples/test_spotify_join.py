"""A node joins a cluster whose log was compacted: whole SpotifyNodes over loopback TCP on
local disks (real SQLite files), a tiny compaction configuration. The newcomer, started as a
learner, installs a catalog snapshot and continues from the log; its catalog is then the
others', row for row."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import anyio
import attrs
import pytest
import trio
from dspot_spotify.catalog import snapshot
from dspot_spotify.node import SpotifyNode

from dspot.disk import LocalDisk
from dspot.env import production_env
from dspot.http import HttpClient
from dspot.testing import wait_until
from dspot.tokenring import TokenRingConfig
from dspot.transport import TcpTransport
from tests.examples.simcluster import CONFIG, SECRET

RING = TokenRingConfig(max_batch=8, memory_entries=16, compact_every=4, keep_entries=1)
"""A snapshot every 4 entries applied, 1 kept before it: a newcomer cannot start from 1."""
USERS = 16
"""Accounts registered before the newcomer starts (one catalog entry each)."""


async def _join_after_compaction(root: Path) -> dict[str, str]:
    """Run three nodes, register :data:`USERS` accounts, start a fourth as a learner, wait
    until it has caught up; return every node's catalog digest."""
    config = attrs.evolve(CONFIG, tokenring=RING)
    disks: list[LocalDisk] = []
    nodes: dict[str, SpotifyNode] = {}
    try:
        async with anyio.create_task_group() as tg:
            seeds: list[str] = []

            async def start(name: str, *, learner: bool = False) -> SpotifyNode:
                disk = await LocalDisk.open(root / name)
                disks.append(disk)
                node = SpotifyNode(
                    production_env(name, TcpTransport(), disk, seed=len(disks)),
                    rpc_address="127.0.0.1:0",
                    http_address="127.0.0.1:0",
                    secret=SECRET,
                    seeds=list(seeds),
                    config=config,
                    learner=learner,
                )
                await tg.start(node.run)
                seeds.append(node.rpc.address)
                nodes[name] = node
                return node

            for name in ("n1", "n2", "n3"):
                await start(name)
            n1 = nodes["n1"]
            await wait_until(lambda: n1.has_quorum() and n1.ring.holder, timeout=30.0)
            async with HttpClient(connect=TcpTransport().connect) as client:
                base = f"http://{n1.http_bound_address}"
                for i in range(USERS):
                    creds = {"username": f"user{i}", "password": "a long enough password"}
                    resp = await client.post(f"{base}/api/auth/register", json=creds)
                    assert resp.status == 201, await resp.text()
                    await resp.read()
            assert n1.ring.core.base_index > 1, "the log was not compacted"
            newcomer = await start("n4", learner=True)
            commit = n1.ring.commit_position
            await newcomer.ring.wait_applied(commit, timeout=30)
            restored = newcomer.metrics.registry.get_sample_value(
                "dspot_catalog_snapshots_total", {"action": "restored"}
            )
            assert restored is not None and restored >= 1, "caught up without a snapshot"
            for node in nodes.values():
                await node.ring.wait_applied(commit, timeout=10)
            digests = {n: await m.replica.read(snapshot.catalog_digest) for n, m in nodes.items()}
            tg.cancel_scope.cancel()
        return digests
    finally:
        with anyio.CancelScope(shield=True):
            for disk in disks:
                await disk.aclose()


def test_a_new_node_installs_a_snapshot_and_holds_the_same_catalog(tmp_path: Path) -> None:
    digests = trio.run(_join_after_compaction, tmp_path)
    assert len(set(digests.values())) == 1, digests


def test_a_snapshot_without_a_table_leaves_the_newcomer_different(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sabotage: a restore leaves the accounts out. The newcomer's catalog differs, so the
    test above fails if the snapshot path loses a table."""
    plans = snapshot.read_plans

    def without_users(copy: sqlite3.Connection) -> list[snapshot.CopyPlan]:
        return [p for p in plans(copy) if p.table.name != "users"]

    monkeypatch.setattr(snapshot, "read_plans", without_users)
    digests = trio.run(_join_after_compaction, tmp_path)
    assert digests["n4"] != digests["n1"] == digests["n2"] == digests["n3"], digests
