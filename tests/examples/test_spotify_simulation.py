"""The service's own simulation scenario: whole SpotifyNodes over HTTP under the fault model."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys

import anyio
import attrs
import pytest
from dspot_spotify.api import LOG_POSITION_HEADER
from dspot_spotify.config import Sabotage
from dspot_spotify.gateway import relay
from dspot_spotify.metrics import NodeMetrics
from dspot_spotify.simulation import downloads, scenario
from dspot_spotify.simulation.cluster import GATEWAY, GATEWAY_PORT, HTTP_PORT, RPC_PORT
from dspot_spotify.simulation.workload import Clients

from dspot.rpc import RpcMechanism
from dspot.sim import Simulation, run_seed
from dspot.testing import run_with_mock_clock
from tests.examples.simcluster import CONFIG, cluster, url

SERVICE = "dspot_spotify.simulation:scenario"


def test_scenario_passes_its_seeds_with_faults() -> None:
    """Also: crashes break downloads through the gateway mid-body, and it resumes them; the
    hostile stranger attacked the nodes' RPC and HTTP listeners and both of the gateway's."""
    sims: list[Simulation] = []
    attacked: set[str] = set()
    for seed in range(1, 6):
        trace = io.StringIO()
        result = run_seed(scenario(), seed, setup=sims.append, trace_out=trace)
        assert result.violations == (), f"seed {seed}: {result.violations}"
        assert result.faults > 0
        events = (json.loads(line) for line in trace.getvalue().splitlines())
        attacked |= {e["address"] for e in events if e["k"] == "stranger.attack"}
    assert all(any(d.outcome == "ok" for d in downloads(sim)) for sim in sims)
    assert sum(sim.state(Clients).gateway_resumed for sim in sims) >= 1
    ports = {a.split(":")[1] for a in attacked if not a.startswith(GATEWAY)}
    assert ports == {str(RPC_PORT), str(HTTP_PORT)}, attacked
    assert {f"{GATEWAY}:{RPC_PORT}", f"{GATEWAY}:{GATEWAY_PORT}"} <= attacked


def test_the_scenario_replays_in_another_process() -> None:
    """``--check-determinism`` on two seeds: each rerun in a fresh interpreter with another
    ``PYTHONHASHSEED`` gives the same trace hash. (Nodes' ``/metrics``, which the stranger
    fetches, once carried prometheus_client's ``*_created`` wall-clock series: no replay.)"""
    out = subprocess.run(
        [
            *(sys.executable, "-m", "dspot", "sim", "--scenario", SERVICE),
            *("--seeds", "1-2", "--check-determinism", "--jobs", "2"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert out.returncode == 0 and "NOT deterministic" not in out.stdout, out.stdout[-3000:]


def test_metrics_hold_no_wall_clock_series() -> None:
    metrics = NodeMetrics(lambda: 12.5)
    metrics.observe_request("GET", "/api/songs", 200, 0.25)
    text = metrics.render().decode()
    assert "dspot_http_requests_total" in text and "_created" not in text


def test_without_the_decode_guard_the_stranger_in_the_service_finds_it() -> None:
    """Sabotage: RPC frame meta parsed by plain ``json.loads`` on every node and the gateway
    (issue 13's one-frame kill). The stranger's nested HELLO raises RecursionError in a
    connection handler, and the run says so (seed 4 passes in the sweep above)."""
    result = run_seed(scenario(), 4, disabled={RpcMechanism.DECODE_GUARD})
    assert any("exception escaped a connection handler" in v for v in result.violations), (
        result.violations
    )


def test_gateway_stream_check_catches_a_stream_cut_off_without_failover(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Sabotage: song streams are not recognized as such, so the gateway relays them
    without mid-stream failover. A crash of the serving node cuts the client's body off,
    and the gateway-stream check must say so (seed 4 passes without the sabotage)."""
    monkeypatch.setattr(relay, "STREAM_PATH", re.compile(r"(?!)"))
    violations = run_seed(scenario(), 4).violations
    cut = [v for v in violations if v.startswith("gateway stream:")]
    assert cut, violations
    assert "was cut off after" in cut[0]


def test_a_fresh_token_waits_for_its_log_position_on_a_lagging_node() -> None:
    """Found by the scenario (seed 1): authentication ran before the read-your-writes wait,
    so a token of a just-registered user got 401 "token revoked" from a replica that had
    not applied the registration, although the client sent its ``X-Log-Position``."""

    async def main() -> None:
        async with cluster() as c:
            c.net.partition([["n1", "n2", "client"], ["n3"]])
            c.net.unblock([("client", "n3"), ("n3", "client")])
            resp = await c.register("n1", "frank", "frank's password")
            assert resp.status == 201, await resp.text()
            pos = resp.headers.get(LOG_POSITION_HEADER)
            assert pos is not None
            token = json.loads(await resp.read())["token"]

            async def heal_later() -> None:
                await anyio.sleep(2.0)
                c.net.heal()

            async with anyio.create_task_group() as tg:
                tg.start_soon(heal_later)
                resp = await c.client.get(
                    url("n3", "/api/songs"),
                    headers={"authorization": f"Bearer {token}", LOG_POSITION_HEADER: pos},
                )
                assert resp.status == 200, await resp.text()
                await resp.read()

    run_with_mock_clock(main)


@pytest.mark.parametrize("sabotaged", [False, True], ids=["behind", "revoke-unknown-users"])
def test_a_replica_that_does_not_know_a_token_user_says_it_is_behind(sabotaged: bool) -> None:
    """A client that sends no ``X-Log-Position`` (curl, a Subsonic app, a client routed by
    DNS) and reaches a node that has not applied its sign-up gets 503 ``behind`` with
    ``Retry-After``, then 200 once the node caught up; never 401, which would sign it out.
    Sabotaged (:attr:`Sabotage.REVOKE_UNKNOWN_USERS`), the same request gets 401."""

    async def main() -> None:
        sabotage = frozenset({Sabotage.REVOKE_UNKNOWN_USERS}) if sabotaged else frozenset()
        async with cluster(config=attrs.evolve(CONFIG, sabotage=sabotage)) as c:
            c.net.partition([["n1", "n2", "client"], ["n3"]])
            c.net.unblock([("client", "n3"), ("n3", "client")])
            resp = await c.register("n1", "grace", "grace's password")
            assert resp.status == 201, await resp.text()
            auth = {"authorization": f"Bearer {json.loads(await resp.read())['token']}"}
            resp = await c.client.get(url("n3", "/api/songs"), headers=auth)
            body = json.loads(await resp.read())
            if sabotaged:
                assert (resp.status, body["detail"]) == (401, "token revoked")
                return
            assert resp.status == 503, body
            assert body["code"] == "behind" and resp.headers.get("retry-after") == "1"
            c.net.heal()
            with anyio.fail_after(30):
                while (resp := await c.client.get(url("n3", "/api/songs"), headers=auth)).status:
                    await resp.read()
                    if resp.status != 503:
                        break
                    await anyio.sleep(1.0)
            assert resp.status == 200

    run_with_mock_clock(main)


def test_ownership_check_catches_a_collector_that_ignores_pending_uploads() -> None:
    """Sabotage: the collector ignores upload leases and the age of copies. It deletes the
    blob of an upload between storing and committing the song, which then refers to a blob
    with no copy: the ownership check reports a referenced blob short of R copies. (The
    other service sabotages are in the check registry: ``tests/sim/test_checks.py``.)"""
    for seed in (1, 5):
        result = run_seed(scenario(), seed, disabled={Sabotage.COLLECT_PENDING})
        found = [v for v in result.violations if v.startswith("ownership: blob")]
        if found:
            assert "is referenced by the catalog but has 0 copies" in found[0]
            return
    raise AssertionError("no referenced blob short of copies with the collector ignoring leases")
