"""The scenario: the workload that runs clients, the streaming client and the gateway
against the nodes, then the final checks; and its :class:`~dspot.sim.Scenario`."""

from __future__ import annotations

import anyio
from dspot.http import HttpClient, Timeouts
from dspot.sim import FaultConfig, Scenario, Simulation

from dspot_spotify.simulation.checks import check, check_gateway_is_observer, final_checks
from dspot_spotify.simulation.cluster import (
    CLIENTS,
    GATEWAY,
    GATEWAY_LINK,
    QUIET,
    STOP_BEFORE_END,
    STREAMER,
    SimGateway,
    gateway_env,
    nemesis,
    node,
)
from dspot_spotify.simulation.listener import Listener
from dspot_spotify.simulation.snapshots import LISTENERS, disrupt
from dspot_spotify.simulation.tracks import tracks
from dspot_spotify.simulation.workload import Client, Streamer

__all__ = ["SCENARIO", "scenario", "workload"]


async def workload(sim: Simulation) -> None:
    tracks()
    stop_at = sim.duration - STOP_BEFORE_END
    names = [f"c{i}" for i in range(1, CLIENTS + 1)]
    for name in sim.names:
        sim.net.set_link(GATEWAY, name, GATEWAY_LINK)
    gateway = SimGateway(sim, gateway_env(sim))
    sim.data["gateway"] = gateway
    async with (
        HttpClient(
            connect=sim.net.transport("checker").connect,
            timeouts=Timeouts(connect=2.0, read=6.0, write=6.0),
        ) as checker_http,
        anyio.create_task_group() as outer,
    ):
        sim.data["tasks"] = outer
        outer.start_soon(disrupt, sim)
        await outer.start(gateway.run)
        # Its read timeout outlasts the gateway's resume window: a resume is not a stall. It
        # finishes the download it is in at ``stop_at`` (no cut-off of our own making).
        streamer = Streamer(
            sim,
            STREAMER,
            HttpClient(
                connect=sim.net.transport(STREAMER).connect,
                timeouts=Timeouts(connect=2.0, read=20.0, write=20.0),
            ),
        )
        streamer_done = anyio.Event()

        async def stream() -> None:
            async with streamer.http:
                await streamer.run(stop_at)
            streamer_done.set()

        outer.start_soon(stream)
        async with anyio.create_task_group() as tg:
            clients: list[Client] = []
            for name in names:
                http = HttpClient(
                    connect=sim.net.transport(name).connect,
                    timeouts=Timeouts(connect=2.0, read=6.0, write=6.0),
                )
                client = Client(sim, name, http)
                clients.append(client)
                tg.start_soon(client.run, stop_at)
            for i in range(1, LISTENERS + 1):
                listener = Listener(
                    sim,
                    f"l{i}",
                    HttpClient(
                        connect=sim.net.transport(f"l{i}").connect,
                        timeouts=Timeouts(connect=2.0, read=6.0, write=6.0),
                    ),
                )
                clients.append(listener)
                tg.start_soon(listener.run, stop_at)
            await anyio.sleep(stop_at - sim.now())
            tg.cancel_scope.cancel()
        for client in clients:
            await client.http.aclose()
        await anyio.sleep(QUIET)
        with anyio.move_on_after(max(1.0, sim.duration - sim.now() + 30.0)) as scope:
            await final_checks(sim, checker_http)
        if scope.cancelled_caught:
            sim.violation("the final checks did not finish in time")
        with anyio.move_on_after(max(1.0, sim.duration - sim.now() + 30.0)) as scope:
            await streamer_done.wait()
        if scope.cancelled_caught:
            sim.violation("the streaming client did not finish its last download in time")
        check_gateway_is_observer(sim)
        sim.data["gateway_resumed"] = gateway.resumed
        sim.trace.record("gateway.end", resumed=gateway.resumed)
        outer.cancel_scope.cancel()


SCENARIO = Scenario(
    name="spotify",
    description="whole SpotifyNodes over HTTP under the fault model; clients check inv. 1, 2, 7",
    node=node,
    check=check,
    workload=workload,
    nodes=3,
    duration=34.0,
    heal_fraction=0.5,
    # ``crash_source`` twice: crashes twice as likely as each other fault, so that a crash
    # hits a download through the gateway in most seeds.
    faults=FaultConfig(
        kinds=(
            "crash_source",
            "crash_source",
            "partition",
            "isolate",
            "one_way",
            "loss",
            "latency",
            "slow_disk",
        )
    ),
    nemesis=nemesis,
)


def scenario() -> Scenario:
    """The scenario, for ``dspot sim --scenario dspot_spotify.simulation:scenario``."""
    return SCENARIO
