"""A node whose log nobody reads keeps serving.

A node logs every request (the access log) and every membership change. Its stderr is
often a pipe — to a supervisor, a terminal, a log shipper — and a pipe holds 64 KiB; once
its reader stalls, a write to it blocks. The node writes its log from a thread of its own
(:func:`dspot.logs.background_logging`), so its event loop never waits for that pipe.
"""

from __future__ import annotations

import subprocess
import threading
import urllib.request
from pathlib import Path

from dspot_spotify.process.supervisor import READY_RE, NodeSpec

from dspot.testing import free_ports


def test_a_node_keeps_serving_while_nobody_reads_its_log(tmp_path: Path) -> None:
    rpc, web = (f"127.0.0.1:{p}" for p in free_ports(2))
    secret = tmp_path / "secret"
    secret.write_bytes(b"a cluster secret for the stalled-log test")
    spec = NodeSpec(
        name="s1",
        data=tmp_path / "s1",
        rpc=rpc,
        http=web,
        seeds=(rpc,),
        secret_file=secret,
        cluster_size=1,
    )
    # stderr is a pipe this test never reads until the end.
    proc = subprocess.Popen(spec.argv(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        ready = threading.Event()

        def watch() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                if READY_RE.match(line.strip()):
                    ready.set()

        threading.Thread(target=watch, daemon=True).start()
        assert ready.wait(60), "the node never printed its ready line"
        # About 130 bytes of access log a request: 3,000 requests are six times what the
        # pipe holds. A node that wrote its log on its event loop stops answering once the
        # pipe is full (each request below then times out).
        path = "/healthz?" + "padding=" + "x" * 40
        for i in range(3000):
            with urllib.request.urlopen(f"http://{web}{path}&n={i}", timeout=10) as resp:
                assert resp.status == 200
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    # The log waited in the node's queue (10,000 records) and was all written in the end.
    assert err.count('"GET /healthz?padding=') == 3000
