"""Each node measures its own event-loop lag and tells: ``/metrics`` (a histogram and the
worst stall of the last minute) and ``/api/cluster`` (every member's worst stall and p99, as
that member answered). A stall is made in virtual time by charging work to a node's
simulated loop (:class:`dspot.cpu.SimCpu`)."""

from __future__ import annotations

import re

from dspot.cpu import SimCpu
from dspot.testing import run_with_mock_clock

from .simcluster import cluster, login, url


def _metric(text: str, name: str) -> float:
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    assert m is not None, f"{name} missing from /metrics"
    return float(m.group(1))


def test_a_stall_shows_in_metrics_and_in_the_cluster_document() -> None:
    async def main() -> None:
        cpu = SimCpu()
        async with cluster(cpus={"n3": cpu}) as c:
            auth = await login(c, "n1")
            await cpu.on_loop(0.3, "a long query")  # n3's loop is busy for 300 ms

            resp = await c.client.get(url("n3", "/metrics"))
            text = await resp.text()
            assert 'dspot_event_loop_lag_seconds_bucket{le="+Inf"}' in text
            assert _metric(text, "dspot_event_loop_lag_seconds_worst") >= 0.25
            assert _metric(text, "dspot_event_loop_lag_seconds_count") > 0
            quiet = await (await c.client.get(url("n1", "/metrics"))).text()
            assert _metric(quiet, "dspot_event_loop_lag_seconds_worst") < 0.05

            resp = await c.client.get(url("n1", "/api/cluster"), headers=auth)
            doc = await resp.json(dict)
            rows = {m["id"]: m for m in doc["members"]}
            assert rows["n3"]["loop_lag_worst_ms"] >= 250  # asked over RPC
            assert rows["n1"]["loop_lag_worst_ms"] < 50  # answered locally
            assert rows["n3"]["loop_lag_p99_ms"] >= rows["n1"]["loop_lag_p99_ms"]

    run_with_mock_clock(main)
