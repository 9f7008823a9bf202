"""Every checker bites: each registered check's sabotage makes *that* check report.

For every scenario (the built-ins and the service's), each :class:`~dspot.sim.Check` with a
:class:`~dspot.sim.Sabotage` is run on its seeds with its mechanisms disabled, and the run
must report a violation *named* by that check: not the crash hook, not another check. The
meta-test lists the checks that have no sabotage yet; it fails when a check is added
without one (or a gap is closed without removing it from :data:`GAPS`).

Time budget: each case runs one to three short seeds; about two minutes in all on two
unloaded cores.
"""

from __future__ import annotations

import logging

import pytest

from dspot.sim import COMMON_CHECKS, Check, RunResult, Scenario, get_scenario, run_seed, scenarios

SERVICE = "dspot_spotify.simulation:scenario"


def _all_scenarios() -> dict[str, Scenario]:
    """The built-in scenarios and the service's (not those other tests register)."""
    found = {
        name: s
        for name, s in scenarios().items()
        if s.node.__module__.startswith("dspot.sim.scenarios.")
    }
    found[SERVICE] = get_scenario(SERVICE)
    return found


def _cases() -> list[tuple[str, Check]]:
    """(scenario, check) for every check with a sabotage; a scenario that shares another's
    checks (``blobstore-swim``) is not run twice."""
    cases: list[tuple[str, Check]] = []
    seen: list[tuple[Check, ...]] = []
    for name, scenario in _all_scenarios().items():
        if any(scenario.checks is other for other in seen):
            continue
        seen.append(scenario.checks)
        cases += [(name, c) for c in scenario.checks if c.sabotage is not None]
    return cases


GAPS: frozenset[tuple[str, str]] = frozenset()
"""(scenario, check) pairs registered without a sabotage (``"*"``: a common check): none.
A check added without one fails the two tests below."""


def _missing() -> set[tuple[str, str]]:
    missing: set[tuple[str, str]] = set()
    proven = {c.name for _, c in _cases()}
    for name, scenario in _all_scenarios().items():
        missing |= {(name, c.name) for c in scenario.checks if c.sabotage is None}
    missing |= {("*", c.name) for c in COMMON_CHECKS if c.name not in proven}
    return {m for m in missing if m[0] != "blobstore-swim"}  # blobstore's checks


@pytest.fixture(autouse=True)
def _quiet(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL, logger="dspot")


def test_every_scenario_names_its_checks() -> None:
    for name, scenario in _all_scenarios().items():
        names = [c.name for c in scenario.checks]
        assert names, f"{name} registers no checks"
        assert len(set(names)) == len(names), f"{name} registers a check twice"


def test_the_gap_list_is_exactly_the_checks_without_a_sabotage() -> None:
    assert _missing() == GAPS


def test_every_check_has_a_sabotage() -> None:
    assert not _missing()


@pytest.mark.parametrize(("name", "check"), _cases(), ids=lambda v: getattr(v, "name", v))
def test_the_sabotage_trips_its_check(name: str, check: Check) -> None:
    sabotage = check.sabotage
    assert sabotage is not None
    scenario = get_scenario(name)
    if sabotage.adapt is not None:
        scenario = sabotage.adapt(scenario)
    results: list[RunResult] = []
    for seed in sabotage.seeds:
        result = run_seed(scenario, seed, disabled=sabotage.disabled, duration=sabotage.duration)
        results.append(result)
        if check.name in result.checks:
            return
    reported = {r.seed: sorted(set(r.checks)) for r in results}
    pytest.fail(
        f"{name}: without {sorted(m.value for m in sabotage.disabled)} the check "
        f"{check.name} never reported; what did: {reported}"
    )


def test_a_damaging_network_with_the_checksum_leaves_every_payload_intact() -> None:
    """The payload sabotage's run (2 % of transmissions damaged), with TCP's checksum: clean."""
    from dspot.sim.scenarios.rpc import damaging

    result = run_seed(damaging(get_scenario("rpc")), 1, duration=10.0)
    assert result.violations == ()


def test_readdressed_members_get_only_their_own_mail_with_the_receiver_check() -> None:
    """The receiver sabotage's run (members' addresses answered by others), with the check:
    clean, and the relays still drain."""
    from dspot.sim.scenarios.outbox import readdressing

    result = run_seed(readdressing(get_scenario("outbox")), 1, duration=20.0)
    assert result.faults > 5
    assert result.violations == ()


def test_position_less_clients_read_their_writes_on_jittery_links_with_positions() -> None:
    """The sessions sabotage's run (links with jitter, so replicas lag), with the gateway
    forwarding log positions: no client without positions sees the past."""
    from dspot_spotify.simulation.checknames import SESSIONS
    from dspot_spotify.simulation.scenario import _jittery

    result = run_seed(_jittery(get_scenario("dspot_spotify.simulation:scenario")), 1)
    assert SESSIONS not in result.checks


def test_a_hoarding_stranger_locks_no_one_out_of_the_gateway_with_the_client_cap() -> None:
    """The fresh-connection sabotage's run (the stranger holds more connections than the
    gateway's global cap), with the per-client cap: clean for the whole scenario."""
    from dspot_spotify.simulation.scenario import _hoarding

    result = run_seed(_hoarding(get_scenario(SERVICE)), 1)
    assert result.violations == ()
