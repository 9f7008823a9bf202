"""``dspot-spotify up`` restarts a node that dies (``kill -9``), and with ``--no-restart``
only says so."""

from __future__ import annotations

import os
import signal
import time
import urllib.request
from pathlib import Path

import pytest
from dspot_spotify.client import ApiClient

from dspot.testing import poll_until
from tests.helpers.processes import PASSWORD, up


def healthy(base: int, node: int) -> bool:
    url = f"http://127.0.0.1:{base + 2 * (node - 1) + 1}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def kill_node(root: Path, name: str) -> int:
    pid = int((root / name / "node.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    return pid


def test_up_restarts_a_killed_node(tmp_path: Path) -> None:
    root = tmp_path / "cluster"
    with up(root, "--no-demo") as (proc, out, base):
        old = kill_node(root, "node2")
        poll_until(lambda: "node2 restarted" in out.read_text(), timeout=30.0, what="the restart")
        text = out.read_text()
        assert "node2 exited with status -9" in text and "restarting it in 1 s" in text
        poll_until(lambda: healthy(base, 2), timeout=30.0, what="node2 to serve again")
        new = int((root / "node2" / "node.pid").read_text())
        assert new != old
        os.kill(new, 0)  # alive
        assert proc.poll() is None
        # The cluster says so: the restart count reaches every member's view (and status).
        api = ApiClient(f"http://127.0.0.1:{base + 1}")
        api.login("admin", PASSWORD)

        def restarts() -> dict[str, int | None]:
            doc = api.json("GET", "/api/cluster")
            return {m["id"]: m["restarts"] for m in doc["members"] if m["role"] == "voter"}

        poll_until(lambda: restarts().get("node2") == 1, timeout=30.0, what="node2's restarts")
        assert set(restarts().values()) == {0, 1}  # node1 and node3 never restarted
    assert proc.returncode == 0, out.read_text()  # the restarted node stopped cleanly too


@pytest.mark.parametrize("flag", ["--no-restart"])
def test_up_without_restarts_only_says_so(tmp_path: Path, flag: str) -> None:
    root = tmp_path / "cluster"
    with up(root, "--no-demo", flag) as (_proc, out, base):
        kill_node(root, "node3")
        poll_until(
            lambda: "node3 exited with status -9" in out.read_text(),
            timeout=30.0,
            what="the report",
        )
        time.sleep(2.5)  # longer than the first restart delay
        assert "restarted" not in out.read_text()
        assert not healthy(base, 3)
