"""Registry leases and the load-balancing client, on a scripted view; the scenario on SWIM."""

from __future__ import annotations

import json
import random

import anyio
import pytest

from dspot.disk import SimDisk
from dspot.env import NodeEnv
from dspot.membership import Member, MemberState
from dspot.registry import NoEndpoint, Registry, RegistryClient
from dspot.sim import check_seeds, get_scenario, run_seed
from dspot.testing import ScriptedMembership, StaticView, run_with_mock_clock
from dspot.transport import SimNetwork


def _view(self_id: str) -> StaticView:
    """A membership view the test edits by hand, knowing only ``self_id`` at first."""
    return ScriptedMembership.of({self_id: f"{self_id}:1"}).view(self_id)


def _env(name: str) -> NodeEnv:
    net = SimNetwork(random.Random(0))
    return NodeEnv(name, net.transport(name), SimDisk(random.Random(0)), random.Random(name))


def _remote(
    view: StaticView,
    node: str,
    endpoint: str,
    expires: float,
    state: MemberState = MemberState.ALIVE,
) -> None:
    entry = json.dumps({"endpoint": endpoint, "meta": {}, "expires": expires})
    view.directory.put(Member(node, f"{node}:1", state=state, meta={f"svc/api/{node}": entry}))


def test_register_publishes_a_lease_and_keeps_other_metadata() -> None:
    async def main() -> None:
        view = _view("a")
        view.update_meta({"http": "a:80"})
        reg = Registry(_env("a"), view, default_ttl=5)
        reg.register("api", "a:8080", instance="x", meta={"zone": "1"})
        meta = view.get("a").meta  # type: ignore[union-attr]
        assert meta["http"] == "a:80"
        assert [e.endpoint for e in reg.resolve("api")] == ["a:8080"]
        assert reg.resolve("api")[0].meta == {"zone": "1"}
        reg.deregister("api", "x")
        assert reg.resolve("api") == []
        assert view.get("a").meta == {"http": "a:80"}  # type: ignore[union-attr]

    run_with_mock_clock(main)


def test_expired_and_non_alive_endpoints_are_not_resolved() -> None:
    async def main() -> None:
        view = _view("a")
        env = _env("a")
        reg = Registry(env, view)
        now = env.clock.wall()
        _remote(view, "b", "b:1", now + 5)
        _remote(view, "c", "c:1", now - 0.001)  # expired
        _remote(view, "d", "d:1", now + 5, MemberState.SUSPECT)
        _remote(view, "e", "e:1", now + 5, MemberState.DEAD)
        assert [e.endpoint for e in reg.resolve("api")] == ["b:1"]
        await anyio.sleep(6)
        assert reg.resolve("api") == []
        reg.check_expiry = False  # the sabotage switch really is what filters
        assert [e.endpoint for e in reg.resolve("api")] == ["b:1", "c:1"]

    run_with_mock_clock(main)


def test_leases_are_renewed_while_running_and_lapse_when_not() -> None:
    async def main() -> None:
        view = _view("a")
        reg = Registry(_env("a"), view, default_ttl=3)
        reg.register("api", "a:8080")
        async with anyio.create_task_group() as tg:
            await tg.start(reg.run)
            await anyio.sleep(10)
            assert reg.resolve("api"), "renewals keep the lease alive"
            tg.cancel_scope.cancel()
        await anyio.sleep(3.1)
        assert reg.resolve("api") == [], "without renewals the lease runs out"

    run_with_mock_clock(main)


def test_watch_reports_changes_and_expiry() -> None:
    async def main() -> None:
        view = _view("a")
        env = _env("a")
        reg = Registry(env, view)
        seen: list[list[str]] = []
        async with reg.watch("api") as updates:
            seen.append([e.endpoint for e in await updates.receive()])
            _remote(view, "b", "b:1", env.clock.wall() + 2)
            seen.append([e.endpoint for e in await updates.receive()])
            with anyio.fail_after(3):
                seen.append([e.endpoint for e in await updates.receive()])
        assert seen == [[], ["b:1"], []]

    run_with_mock_clock(main)


def test_client_round_robin_and_backoff() -> None:
    async def main() -> None:
        view = _view("a")
        env = _env("a")
        reg = Registry(env, view)
        for n in ("b", "c", "d"):
            _remote(view, n, f"{n}:1", env.clock.wall() + 100)
        client = RegistryClient(reg, "api", backoff_base=2)
        assert [client.pick().endpoint for _ in range(6)] == ["b:1", "c:1", "d:1"] * 2
        with pytest.raises(RuntimeError):
            async with client.use() as ep:
                assert ep.endpoint == "b:1"
                raise RuntimeError("request failed")
        picks = {client.pick().endpoint for _ in range(6)}
        assert picks == {"c:1", "d:1"}
        await anyio.sleep(2.1)
        assert "b:1" in {client.pick().endpoint for _ in range(6)}
        # every endpoint failing: use the one that recovers first instead of giving up
        for ep in reg.resolve("api"):
            client.report_failure(ep)
        assert client.pick().endpoint in {"b:1", "c:1", "d:1"}

    run_with_mock_clock(main)


def test_client_least_outstanding_prefers_idle_endpoints() -> None:
    async def main() -> None:
        view = _view("a")
        env = _env("a")
        reg = Registry(env, view)
        for n in ("b", "c"):
            _remote(view, n, f"{n}:1", env.clock.wall() + 100)
        client = RegistryClient(reg, "api", strategy="least_outstanding")
        async with client.use() as busy:
            for _ in range(10):
                assert client.pick().endpoint != busy.endpoint
        assert client.outstanding(busy.endpoint) == 0

    run_with_mock_clock(main)


def test_no_endpoint_is_a_clear_error() -> None:
    async def main() -> None:
        reg = Registry(_env("a"), _view("a"))
        with pytest.raises(NoEndpoint, match="api"):
            RegistryClient(reg, "api").pick()

    run_with_mock_clock(main)


def test_registry_scenario_holds_over_seeds() -> None:
    results = check_seeds("registry", range(1, 6))
    assert sum(r.faults for r in results) > 0


def test_registry_checker_catches_endpoints_served_past_their_lease() -> None:
    scenario = get_scenario("registry")
    result = run_seed(scenario, 1, setup=lambda sim: sim.data.__setitem__("sabotage_expiry", True))
    assert any("more than one TTL" in v for v in result.violations)
