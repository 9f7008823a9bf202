"""The cluster grows and heals, as real ``dspot-spotify node`` processes on loopback.

A fourth node joining a running cluster is handed its share of the songs (and the old owners
drop the copies they no longer own); a node killed with SIGKILL leaves its songs listed and
playable, and the survivors recreate its copies until no song is under-replicated. Both are
observed through ``GET /api/cluster`` and ``GET /api/songs/{id}/replicas`` of the nodes
themselves (no gateway). The blob store's defaults apply: R = 3, repair woken by membership
changes.
"""

from __future__ import annotations

import io
import json
import random
import re
import signal
import sqlite3
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dspot_spotify import tools
from dspot_spotify.catalog import snapshot
from dspot_spotify.client import ApiClient
from dspot_spotify.demo import encode_audio, synthesize, tag_file
from dspot_spotify.holdings import SURVEY_MAX_AGE
from dspot_spotify.process.supervisor import NodeProcess, wait_for

from dspot.testing import poll_until
from tests.helpers.processes import PASSWORD, ProcessCluster

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

SONGS = 8
R = 3


class Cluster(ProcessCluster):
    """Node processes of one test (all killed at its end) and a logged-in user's token."""

    token = ""

    def start(self, names: list[str]) -> list[NodeProcess]:
        return self.start_nodes(names)

    def client(self, node: str | None = None, *, token: str | None = None) -> ApiClient:
        return super().client(node, token=token or self.token or None)

    def get(self, name: str, path: str) -> Any:
        return self.client(name).json("GET", path)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        c.kill_all()


@pytest.fixture(scope="module")
def music(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SONGS small tagged WAVs (different audio each)."""
    root = tmp_path_factory.mktemp("music")
    for i in range(SONGS):
        path = root / f"{i:02d} - track.wav"
        path.write_bytes(encode_audio(synthesize(random.Random(40 + i), 0.6), 22050, "wav"))
        tag_file(path, title=f"Growth {i}", artist="The Joiners", album="More Nodes", track=i + 1)
    return root


def upload_all(c: Cluster, node: str, music: Path) -> dict[str, bytes]:
    """Register, then import ``music`` through ``node`` with the import tool; returns the
    songs' bytes by id."""
    proc = c.procs[node]
    wait_for([proc], "quorum", 30.0)
    reg = c.client(node).register("grower", PASSWORD)
    c.token = reg["token"]
    out = c.root / "import.out"
    with open(out, "w") as f:
        report = tools.import_folder(
            music,
            ApiClient(proc.url),
            tools.Credentials(token=c.token),
            state_path=c.root / "import-state.jsonl",
            out=f,
        )
    assert report.exit_status == 0 and len(report.uploaded) == SONGS, out.read_text()
    rows = [json.loads(line) for line in (c.root / "import-state.jsonl").read_text().splitlines()]
    return {r["song_id"]: (music / r["path"]).read_bytes() for r in rows}


def voters(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["id"]: m for m in doc["members"] if m["role"] == "voter"}


def copies(c: Cluster, node: str, song_id: str) -> list[str]:
    """The nodes that hold the song's audio, per ``/api/songs/{id}/replicas`` on ``node``."""
    doc = c.get(node, f"/api/songs/{song_id}/replicas")
    assert doc["wanted"] == R
    return sorted(r["node"] for r in doc["replicas"] if r["has"])


def test_a_new_node_joins_and_receives_its_share(cluster: Cluster, music: Path) -> None:
    cluster.start(["g1", "g2", "g3"])
    songs = upload_all(cluster, "g1", music)

    def settled(expect: set[str]) -> bool:
        """Every song on exactly its R owners among the ``expect`` nodes, all alive."""
        doc = cluster.get("g1", "/api/cluster")
        live = {n for n, m in voters(doc).items() if m["state"] == "alive"}
        blobs = [m["blobs"] for m in voters(doc).values()]
        return (
            live == expect
            and doc["songs"] == SONGS
            and doc["under_replicated"] == 0
            and None not in blobs
            and sum(blobs) == R * SONGS  # exactly R copies of each: nothing left over
            and all(placed(song_id) for song_id in songs)
        )

    def placed(song_id: str) -> bool:
        rows = cluster.get("g1", f"/api/songs/{song_id}/replicas")["replicas"]
        return len(rows) == R and all(r["has"] for r in rows)

    poll_until(
        lambda: settled({"g1", "g2", "g3"}), timeout=20.0, what="every song on all three nodes"
    )
    before = voters(cluster.get("g1", "/api/cluster"))
    assert [before[n]["blobs"] for n in ("g1", "g2", "g3")] == [SONGS] * 3

    [g4] = cluster.start(["g4"])
    poll_until(lambda: settled({"g1", "g2", "g3", "g4"}), timeout=30.0, what="g4 to get its share")
    after = voters(cluster.get("g2", "/api/cluster"))
    assert after["g4"]["blobs"] > 0  # its share came to it ...
    assert sum(after[n]["blobs"] for n in ("g1", "g2", "g3")) < R * SONGS  # ... from the others
    for song_id in songs:
        held = copies(cluster, "g3", song_id)
        assert len(held) == R, (song_id, held)
    assert sum("g4" in copies(cluster, "g1", s) for s in songs) == after["g4"]["blobs"]

    # The newcomer serves the catalog and the audio like the others, once it has applied
    # the log: holding its blobs says nothing of that (blobs follow membership), and until
    # then it does not know the session (a client that sends no log position gets 503
    # ``behind``).
    c4 = cluster.client("g4")

    def serves_catalog() -> bool:
        status, _, body = c4.request("GET", "/api/songs?limit=50")
        return status == 200 and json.loads(body)["total"] == SONGS

    poll_until(serves_catalog, timeout=30.0, what="g4 to serve the whole catalog")
    for song_id, data in songs.items():
        status, _, body = c4.request("GET", f"/api/songs/{song_id}/stream")
        assert status == 200 and body == data
    assert g4.poll() is None

    # ``dspot-spotify status`` shows the four of them with their shares.
    out = io.StringIO()
    server = ApiClient(cluster.procs["g3"].url)
    assert tools.status(server, tools.Credentials(token=cluster.token), as_json=False, out=out) == 0
    rows = {
        line.split()[0]: line.split() for line in out.getvalue().splitlines() if line[:1] == "g"
    }
    assert sorted(rows) == ["g1", "g2", "g3", "g4"]
    assert all("alive" in row for row in rows.values())
    assert rows["g4"][rows["g4"].index("alive") + 4] == str(after["g4"]["blobs"])


def test_a_killed_node_is_re_replicated_and_its_songs_still_play(
    cluster: Cluster, music: Path
) -> None:
    cluster.start(["k1", "k2", "k3", "k4"])
    songs = upload_all(cluster, "k1", music)
    poll_until(
        lambda: cluster.get("k1", "/api/cluster")["under_replicated"] == 0,
        timeout=20.0,
        what="R copies of every song",
    )
    doc = cluster.get("k1", "/api/cluster")
    assert {n for n, m in voters(doc).items() if m["state"] == "alive"} == {"k1", "k2", "k3", "k4"}
    held = {n: m["blobs"] for n, m in voters(doc).items()}
    assert sum(held.values()) == R * SONGS
    victim = max(("k2", "k3", "k4"), key=lambda n: held[n])
    assert held[victim] > 0  # its copies are lost with it: the survivors must make new ones
    survivors = [n for n in ("k1", "k2", "k3", "k4") if n != victim]

    # The first document after the kill must come from a new survey: a node answers from
    # its last one for SURVEY_MAX_AGE seconds while the members it knows of are unchanged.
    time.sleep(SURVEY_MAX_AGE + 0.1)
    cluster.procs[victim].kill()  # SIGKILL: no goodbye
    seen_under: list[int] = []

    def repaired() -> bool:
        doc = cluster.get(survivors[0], "/api/cluster")
        seen_under.append(doc["under_replicated"])
        members = voters(doc)
        return (
            members[victim]["state"] == "dead"
            and doc["under_replicated"] == 0
            and sum(members[n]["blobs"] or 0 for n in survivors) == R * SONGS
        )

    poll_until(repaired, timeout=30.0, what=f"the survivors to re-replicate {victim}'s copies")
    # Right after the kill its copies were missing (the songs it held were under-replicated).
    assert seen_under[0] > 0, seen_under
    # Before the kill the survivors held fewer than R copies of some songs; now R of each.
    assert sum(held[n] for n in survivors) == R * SONGS - held[victim]
    for song_id in songs:
        held_by = copies(cluster, survivors[1], song_id)
        assert len(held_by) == R and victim not in held_by, (song_id, held_by)

    # Every song is still listed and plays, byte-identical, from every survivor.
    for name in survivors:
        client = cluster.client(name)
        assert client.json("GET", "/api/songs?limit=50")["total"] == SONGS
        for song_id, data in songs.items():
            status, _, body = client.request("GET", f"/api/songs/{song_id}/stream")
            assert status == 200 and body == data, (name, song_id)
    assert cluster.procs[victim].poll() == -signal.SIGKILL


COMPACT = ("--compact-every", "4", "--keep-entries", "1")
"""A snapshot every 4 entries applied, 1 kept before it: a newcomer cannot start from 1."""


def test_a_new_node_installs_a_snapshot_and_serves_the_same_catalog(
    cluster: Cluster, music: Path
) -> None:
    """A fourth node started with ``--learner`` joins a cluster whose log was compacted
    long before: it installs a catalog snapshot, continues from the log, and then serves
    the catalog byte-identically, down to the rows of its SQLite file."""
    cluster.start_nodes(["g1", "g2", "g3"], extra=COMPACT)
    songs = upload_all(cluster, "g1", music)
    c1 = cluster.client("g1")
    for song_id in songs:  # more entries after the uploads: likes and plays
        c1.request("PUT", f"/api/songs/{song_id}/like")
        c1.request("POST", f"/api/songs/{song_id}/plays")

    [g4] = cluster.start_nodes(["g4"], extra=(*COMPACT, "--learner"))

    def restored(node: str) -> float:
        status, _, body = cluster.client(node).request("GET", "/metrics")
        assert status == 200
        found = re.search(
            rb'^dspot_catalog_snapshots_total\{action="restored"\} (\S+)$', body, re.M
        )
        return float(found.group(1)) if found else 0.0

    poll_until(lambda: restored("g4") >= 1, timeout=30.0, what="g4 to install a snapshot")
    paths = (
        "/api/songs?limit=50",
        "/api/albums?limit=50",
        "/api/artists?limit=50",
        "/api/me/likes",
    )
    want = {path: c1.request("GET", path)[2] for path in paths}
    c4 = cluster.client("g4")
    c4.log_position = c1.log_position  # read your writes: g4 answers once it applied them
    for path, body in want.items():
        status, _, got = c4.request("GET", path)
        assert status == 200 and got == body, path
    for song_id, data in songs.items():
        status, _, body = c4.request("GET", f"/api/songs/{song_id}/stream")
        assert status == 200 and body == data
    assert g4.poll() is None

    cluster.kill_all()
    digests = {name: _catalog_digest(cluster.root / name) for name in ("g1", "g2", "g3", "g4")}
    assert len(set(digests.values())) == 1, digests


def _catalog_digest(data: Path) -> str:
    conn = sqlite3.connect(
        f"{(data / 'disk' / 'meta.sqlite3').resolve().as_uri()}?mode=ro", uri=True
    )
    try:
        return snapshot.catalog_digest(conn)
    finally:
        conn.close()
