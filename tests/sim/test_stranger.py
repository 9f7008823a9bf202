"""The hostile stranger in the simulation: it finds every listener by itself, the library
survives it, and each of its checks reports a violation when a guard is taken away."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.abc
import attrs
import pytest

from dspot import wire
from dspot.env import NodeEnv
from dspot.errors import RpcError
from dspot.http import (
    HttpClient,
    HttpClientError,
    HttpServer,
    Request,
    Response,
    Router,
    ServerConfig,
    Timeouts,
)
from dspot.rpc import Peer, RetryPolicy, RpcMechanism, RpcNode
from dspot.sim import (
    FaultConfig,
    Scenario,
    Simulation,
    StrangerConfig,
    get_scenario,
    run_seed,
)

SECRET = b"secret of the stranger tests"
SETTLE = 5.0


@wire.message("test.stranger.ping", idempotent=True)
@attrs.frozen
class Ping:
    n: int


@wire.message("test.stranger.pong")
@attrs.frozen
class Pong:
    n: int


@attrs.frozen
class Thing:
    name: str


@attrs.define
class Ground:
    """Who served whom, and the handlers' sabotage switches."""

    served: list[tuple[str, str, str, float]] = attrs.Factory(list)
    """``(caller, callee, rpc|http, when)`` of every answered call."""
    unguarded_json: bool = False
    """``/raw`` parses bodies by hand (a 500 on bad JSON)."""
    closing_listener: bool = False
    """``/close`` ends the node's listener."""


async def node(env: NodeEnv, sim: Simulation, *, task_status: anyio.abc.TaskStatus[Any]) -> None:
    """RPC and HTTP on every node; each calls the others over both, every half second."""
    ground = sim.state(Ground)
    served = ground.served
    router = Router()
    listener = await env.transport.listen(f"{env.node_id}:80")

    @router.post("/api/things")
    async def create(request: Request) -> Response:
        return Response.json(await request.json(Thing), 201)

    @router.get("/api/things")
    async def things(request: Request) -> Response:
        page = request.query_int("page", 1, minimum=1, maximum=1000)
        return Response.json({"page": page})

    @router.post("/raw")
    async def raw(request: Request) -> Response:
        if ground.unguarded_json:  # a handler that parses bodies by hand
            return Response.json(json.loads(await request.body()))
        return Response.json(await request.json(Thing))

    @router.get("/close")
    async def close(request: Request) -> Response:
        if ground.closing_listener:  # a handler that ends the listener
            await listener.aclose()
        return Response.text("ok")

    async def ping(req: Ping, peer: Peer) -> Pong:
        return Pong(req.n)

    server = HttpServer(router, ServerConfig(header_timeout=5.0), clock=env.clock, trace=env.trace)
    retry = RetryPolicy(attempts=6, max_delay=1.0)
    async with (
        RpcNode(env, listen=f"{env.node_id}:7000", secret=SECRET, retry=retry) as rpc,
        HttpClient(connect=env.transport.connect, timeouts=Timeouts(2, 3, 3)) as client,
        _closing(listener),
        anyio.create_task_group() as tg,
    ):
        rpc.handle(Ping, ping)
        await tg.start(server.serve, listener)
        task_status.started(rpc)
        others = [n for n in sim.names if n != env.node_id]
        i = 0
        while True:
            await anyio.sleep(0.5)
            dst = others[i % len(others)]
            i += 1
            try:
                await rpc.call(f"{dst}:7000", Ping(i), timeout=3)
                served.append((env.node_id, dst, "rpc", sim.now()))
            except RpcError:
                pass
            try:
                resp = await client.get(f"http://{dst}:80/api/things?page=2")
                if resp.status == 200 and (await resp.json())["page"] == 2:
                    served.append((env.node_id, dst, "http", sim.now()))
            except (HttpClientError, OSError):
                pass


@contextlib.asynccontextmanager
async def _closing(listener: Any) -> AsyncIterator[None]:
    try:
        yield
    finally:
        with anyio.CancelScope(shield=True):
            await listener.aclose()


def check(sim: Simulation) -> None:
    """After heal, every node is served by every other, over RPC and over HTTP."""
    served = sim.state(Ground).served
    after = {(src, dst, kind) for src, dst, kind, t in served if t > sim.heal_at + SETTLE}
    for src in sim.names:
        for dst in sim.names:
            for kind in ("rpc", "http"):
                if src != dst and (src, dst, kind) not in after:
                    sim.violation(
                        f"{src} was not served by {dst} over {kind} after heal", check="served"
                    )


PATHS = ("/", "/api/things", "/api/things?page=3", "/raw", "/close")
SCENARIO = Scenario(
    name="stranger-test",
    description="RPC and HTTP on every node under the stranger",
    node=node,
    check=check,
    nodes=3,
    duration=30.0,
    faults=FaultConfig(kinds=("crash", "partition", "loss", "latency")),
    stranger=StrangerConfig(http_paths=PATHS),
)


def attacks_of(scenario: Scenario, seed: int, **kwargs: Any) -> tuple[list[str], list[str]]:
    """Violations of one seed, and the ``(listener, attack)`` pairs the stranger tried."""
    out = io.StringIO()
    result = run_seed(scenario, seed, trace_out=out, **kwargs)
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    tried = [f"{e['address']} {e['attack']}" for e in events if e["k"] == "stranger.attack"]
    return list(result.violations), tried


def test_the_stranger_attacks_rpc_and_http_listeners_and_nothing_breaks() -> None:
    tried: list[str] = []
    for seed in range(1, 5):
        violations, attacks = attacks_of(SCENARIO, seed)
        assert violations == [], f"seed {seed}: {violations[:3]}"
        tried += attacks
    ports = {a.split()[0].split(":")[1] for a in tried}
    kinds = {a.split()[1] for a in tried}
    assert ports == {"80", "7000"}, "it found both listeners by itself"
    assert kinds == {
        "noise",
        "truncated",
        "oversize",
        "nested",
        "huge",
        "wrong_auth",
        "drip",
        "http",
    }


def test_the_stranger_tells_an_http_listener_at_once() -> None:
    """Its first probe of an unknown listener is an RPC hello ended by a blank line: an
    HTTP server sees a whole (bad) request head and answers it at once, so the first attack
    follows the first gap, not the server's 5 s header timeout (which cost a short run all
    but one of its attacks)."""
    config = StrangerConfig(aim=("n1:80",), attacks=("http",))
    out = io.StringIO()
    run_seed(attrs.evolve(SCENARIO, stranger=config, duration=10.0), 1, trace_out=out)
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    attacks = [e["t"] for e in events if e["k"] == "stranger.attack"]
    assert attacks, "the stranger never attacked"
    # warmup + the longest gap + a second to spare, against warmup + 5 s of header timeout
    assert attacks[0] < config.warmup + config.max_gap + 1.0, attacks[:3]
    assert len(attacks) >= 5, attacks


def test_the_stranger_is_deterministic() -> None:
    first = run_seed(SCENARIO, 7)
    again = run_seed(SCENARIO, 7)
    assert first.trace_hash == again.trace_hash
    assert run_seed(SCENARIO, 7, stranger=False).trace_hash != first.trace_hash


def _first_violation(scenario: Scenario, seeds: range, **kwargs: Any) -> list[str]:
    for seed in seeds:
        violations = list(run_seed(scenario, seed, **kwargs).violations)
        if violations:
            return violations
    return []


def test_without_the_decode_guard_the_rpc_sweep_reports_a_violation() -> None:
    # Sabotage: frame meta parsed by plain json.loads again (RecursionError escapes it).
    found = _first_violation(
        get_scenario("rpc"), range(1, 21), disabled={RpcMechanism.DECODE_GUARD}
    )
    assert any("exception escaped a connection handler" in v for v in found), found


@pytest.mark.parametrize(
    ("flag", "path", "expected"),
    [
        ("unguarded_json", "/raw", "with a 500"),  # a handler that parses JSON by hand
        ("closing_listener", "/close", "did not serve a fresh connection"),  # ends its listener
    ],
)
def test_each_http_check_reports_a_violation(flag: str, path: str, expected: str) -> None:
    def sabotage(sim: Simulation) -> None:
        setattr(sim.state(Ground), flag, True)

    scenario = attrs.evolve(SCENARIO, stranger=StrangerConfig(http_paths=(path,)))
    found = _first_violation(scenario, range(1, 21), setup=sabotage)
    assert any(expected in v for v in found), found


@pytest.mark.parametrize("name", ["rpc", "membership"])
def test_built_in_scenarios_run_with_the_stranger(name: str) -> None:
    scenario = get_scenario(name)
    assert scenario.stranger is not None
    violations, attacks = attacks_of(scenario, 1)
    assert violations == [] and attacks
