"""The service's own simulation scenario: whole SpotifyNodes over HTTP under the fault model."""

from __future__ import annotations

import json
import re

import anyio
import attrs
import pytest
from dspot_spotify.api import LOG_POSITION_HEADER
from dspot_spotify.gateway import relay
from dspot_spotify.simulation import downloads, scenario

from dspot.sim import FaultConfig, Simulation, run_seed
from dspot.testing import run_with_mock_clock
from tests.examples.simcluster import cluster, url


def test_scenario_passes_its_seeds_with_faults() -> None:
    """Also: crashes break downloads through the gateway mid-body, and it resumes them."""
    sims: list[Simulation] = []
    for seed in range(1, 6):
        result = run_seed(scenario(), seed, setup=sims.append)
        assert result.violations == (), f"seed {seed}: {result.violations}"
        assert result.faults > 0
    assert all(any(d.outcome == "ok" for d in downloads(sim)) for sim in sims)
    assert sum(sim.data["gateway_resumed"] for sim in sims) >= 2


def test_gateway_stream_check_catches_a_stream_cut_off_without_failover(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Sabotage: song streams are not recognized as such, so the gateway relays them
    without mid-stream failover. A crash of the serving node cuts the client's body off,
    and the gateway-stream check must say so (seed 2 passes without the sabotage)."""
    monkeypatch.setattr(relay, "STREAM_PATH", re.compile(r"(?!)"))
    violations = run_seed(scenario(), 2).violations
    cut = [v for v in violations if v.startswith("gateway stream:")]
    assert cut, violations
    assert "was cut off after" in cut[0]


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

    run_with_mock_clock(main)


def _first_violations(sabotage: str, seeds: list[int], prefix: str) -> list[str]:
    """The violations starting with ``prefix`` on the first of ``seeds`` that has any, with
    ``sabotage`` switched on."""

    def setup(sim: Simulation) -> None:
        sim.data["sabotage"] = sabotage

    for seed in seeds:
        found = [
            v for v in run_seed(scenario(), seed, setup=setup).violations if v.startswith(prefix)
        ]
        if found:
            return found
    return []


def test_session_check_catches_a_gateway_that_forwards_no_positions() -> None:
    """Sabotage: the gateway forwards no log positions. The clients without positions read
    older state than they saw acknowledged (a node cut off from the others, or slow to
    apply, answers through the gateway), and the history checker says so (the seeds pass
    without the sabotage: ``dspot sim ... --seeds 1-200``)."""
    found = _first_violations("gateway_no_positions", [5, 11, 12], "session (")
    assert found, "no session violation with the gateway forwarding no positions"
    assert any("read-your-writes" in v or "monotonic-reads" in v for v in found), found


def test_partial_write_check_catches_a_star_committed_as_three_entries() -> None:
    """Sabotage: a request's changes are committed one entry at a time, so a Subsonic star
    of a song, its album and its artist is three entries. A read landing between them sees
    part of the star, a set of stars no write produced."""
    found = _first_violations("split_writes", [2, 3, 4], "partial write:")
    assert found, "no partial write seen with split writes"
    assert "which no write wrote" in found[0]


def test_ownership_check_catches_the_collector_switched_off() -> None:
    """Sabotage: the blob collector deletes nothing. Songs deleted and uploads that failed
    leave blobs that nothing owns, and the end-of-seed ownership check lists them."""
    found = _first_violations("collector_off", [1, 2], "ownership:")
    assert found, "no orphaned blob reported with the collector off"
    assert "unowned for" in found[0]


def test_ownership_check_catches_a_collector_that_ignores_pending_uploads() -> None:
    """Sabotage: the collector ignores upload leases and the age of copies. It deletes the
    blob of an upload between storing and committing the song, which then refers to a blob
    with no copy: the ownership check reports a referenced blob short of R copies."""
    found = _first_violations("collect_pending", [1, 5], "ownership: blob")
    assert found, "no referenced blob short of copies with the collector ignoring leases"
    assert "is referenced by the catalog but has 0 copies" in found[0]
