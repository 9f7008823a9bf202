"""The service's own simulation scenario: whole SpotifyNodes over HTTP under the fault model."""

from __future__ import annotations

import json

import anyio
import attrs
from dspot_spotify.api import LOG_POSITION_HEADER
from dspot_spotify.simulation import scenario

from dspot.sim import FaultConfig, Simulation, check_seeds, run_seed

from .test_spotify_node import cluster, run, url

NAME = "dspot_spotify.simulation:scenario"


def test_scenario_passes_its_seeds_with_faults() -> None:
    results = check_seeds(NAME, range(1, 6))
    assert all(r.faults > 0 for r in results)


def test_durability_check_catches_an_upload_acknowledged_before_it_is_durable() -> None:
    """Sabotage: one blob copy, not synced before the 201. A crash of its holder loses an
    acknowledged upload, and the client-side durability check must say so."""

    def sabotage(sim: Simulation) -> None:
        sim.data["sabotage"] = "unsynced_single_copy"

    crashes = attrs.evolve(scenario(), faults=FaultConfig(kinds=("crash",)))
    result = run_seed(crashes, 1, setup=sabotage)
    assert result.faults > 0
    lost = [v for v in result.violations if v.startswith("durability:")]
    assert lost, result.violations
    assert "does not stream byte-identical" in "\n".join(lost)
    # The same seed and faults without the sabotage: no violation.
    assert run_seed(crashes, 1).violations == ()


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

    run(main)
