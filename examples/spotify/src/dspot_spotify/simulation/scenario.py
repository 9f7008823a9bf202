"""The scenario: the workload that runs clients, the streaming client and the gateway
against the nodes, then the final checks; and its :class:`~dspot.sim.Scenario`."""

from __future__ import annotations

import anyio
import attrs
from dspot.blobstore import BlobStoreMechanism
from dspot.http import HttpClient, HttpMechanism, Timeouts
from dspot.membership import MembershipMechanism
from dspot.registry import RegistryMechanism
from dspot.sim import (
    STRANGER_500,
    STRANGER_SERVED,
    Check,
    FaultConfig,
    Sabotage,
    Scenario,
    Simulation,
    StrangerConfig,
)
from dspot.tokenring import TokenRingMechanism
from dspot.transport import LinkModel

from dspot_spotify.config import Sabotage as ServiceSabotage
from dspot_spotify.simulation.checknames import (
    CONVERGENCE,
    DURABILITY,
    FINAL_OPS,
    GATEWAY_OBSERVER,
    GATEWAY_STREAM,
    HTTP_ANSWER,
    LIVENESS,
    OWNERSHIP,
    PARTIAL_WRITE,
    READ_YOUR_WRITES,
    SEARCH,
    SESSIONS,
    STATE,
    STREAM_BYTES,
)
from dspot_spotify.simulation.checks import check, check_gateway_is_observer, final_checks
from dspot_spotify.simulation.cluster import (
    BLOB_GRACE,
    CLIENTS,
    GATEWAY,
    GATEWAY_LINK,
    GATEWAY_PORT,
    HTTP_PORT,
    QUIET,
    SETTLE,
    STOP_BEFORE_END,
    STREAMER,
    SimGateway,
    gateway_env,
    nemesis,
    node,
)
from dspot_spotify.simulation.ground import Ground
from dspot_spotify.simulation.listener import Listener
from dspot_spotify.simulation.ownership import check_ownership
from dspot_spotify.simulation.sessions import SESSION_CLIENTS, SessionClient
from dspot_spotify.simulation.snapshots import LISTENERS, disrupt
from dspot_spotify.simulation.tracks import session_tracks, tracks
from dspot_spotify.simulation.workload import Client, Clients, Streamer

__all__ = ["SCENARIO", "STRANGER", "scenario", "workload"]


async def workload(sim: Simulation) -> None:
    tracks()
    session_tracks()
    stop_at = sim.duration - STOP_BEFORE_END
    names = [f"c{i}" for i in range(1, CLIENTS + 1)]
    for name in sim.names:
        sim.net.set_link(GATEWAY, name, GATEWAY_LINK)
    gateway = SimGateway(sim, gateway_env(sim))
    sim.state(Clients).gateway = gateway
    async with (
        HttpClient(
            connect=sim.net.transport("checker").connect,
            timeouts=Timeouts(connect=2.0, read=6.0, write=6.0),
        ) as checker_http,
        anyio.create_task_group() as outer,
    ):
        sim.state(Ground).tasks = outer
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
            sessions: list[SessionClient] = []
            for name in names:
                http = HttpClient(
                    connect=sim.net.transport(name).connect,
                    timeouts=Timeouts(connect=2.0, read=6.0, write=6.0),
                )
                client = Client(sim, name, http)
                clients.append(client)
                tg.start_soon(client.run, stop_at)
            # Clients without positions, through the gateway only (Subsonic apps, curl).
            for i in range(SESSION_CLIENTS):
                name = f"s{i + 1}"
                http = HttpClient(
                    connect=sim.net.transport(name).connect,
                    timeouts=Timeouts(connect=2.0, read=12.0, write=12.0),
                )
                session = SessionClient(sim, name, i, http)
                sessions.append(session)
                tg.start_soon(session.run, stop_at)
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
        for session in sessions:
            await session.http.aclose()
        await anyio.sleep(QUIET)
        with anyio.move_on_after(max(1.0, sim.duration - sim.now() + 30.0)) as scope:
            await final_checks(sim, checker_http)
        if scope.cancelled_caught:
            sim.violation("the final checks did not finish in time", check=LIVENESS)
        with anyio.move_on_after(max(1.0, sim.duration - sim.now() + 30.0)) as scope:
            await streamer_done.wait()
        if scope.cancelled_caught:
            sim.violation(
                "the streaming client did not finish its last download in time", check=LIVENESS
            )
        # Blobs have owners once the faults healed and a grace period passed (inv. 12).
        await check_ownership(sim, bound=BLOB_GRACE + 15.0)
        check_gateway_is_observer(sim)
        sim.state(Clients).gateway_resumed = gateway.resumed
        sim.trace.record("gateway.end", resumed=gateway.resumed)
        outer.cancel_scope.cancel()


def _crashes_only(scenario: Scenario) -> Scenario:
    """Crashes as the only fault: an unsynced single copy is lost when its holder crashes."""
    return attrs.evolve(scenario, faults=FaultConfig(kinds=("crash",)))


def _bit_rot(scenario: Scenario) -> Scenario:
    """Bit rot of stored blobs as the only fault, every second or so."""
    faults = FaultConfig(kinds=("rot",), warmup=4.0, min_gap=0.5, max_gap=1.5)
    return attrs.evolve(scenario, faults=faults)


def _jittery(scenario: Scenario) -> Scenario:
    """Links with up to 20 ms of jitter: a commit can reach one replica well after the
    client's reply, so a read routed there without a log position sees the past."""
    return attrs.evolve(scenario, link=LinkModel(jitter=0.02))


def _hoarding(scenario: Scenario) -> Scenario:
    """The stranger only hoards connections, at the gateway's HTTP listener (more than its
    global cap)."""
    aimed = attrs.evolve(STRANGER, attacks=("hoard",), aim=(f"{GATEWAY}:{GATEWAY_PORT}",))
    return attrs.evolve(scenario, stranger=aimed)


def _nested_bodies(scenario: Scenario) -> Scenario:
    """The stranger sends only deeply nested JSON, to the API's JSON endpoints on the nodes'
    HTTP listeners (an attack on an RPC listener would only spend the short run)."""
    aimed = attrs.evolve(
        STRANGER,
        attacks=("nested",),
        http_paths=("/api/auth/login", "/api/auth/register"),
        aim=tuple(f"n{i}:{HTTP_PORT}" for i in range(1, scenario.nodes + 1)),
    )
    return attrs.evolve(scenario, stranger=aimed)


STRANGER = StrangerConfig(
    http_paths=(
        "/api/auth/login",
        "/api/auth/register",
        "/api/playlists",
        "/api/songs",
        "/api/songs/s1/stream",
        "/rest/ping.view",
        "/metrics",
        "/",
    ),
    also=(GATEWAY,),
)
"""The hostile stranger: garbage to every node's RPC and HTTP listener and to the gateway's
(its HTTP listener relays to the nodes; its RPC one is a cluster member's), aimed at the
API's JSON endpoints, the stream and the Subsonic API."""

SCENARIO = Scenario(
    name="spotify",
    description="whole SpotifyNodes over HTTP under the fault model and a hostile stranger; "
    "clients check inv. 1, 2, 7, 11 and 12",
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
    checks=(
        Check(
            STRANGER_500,
            "no answer to the hostile stranger is a 500, even to JSON nested thousands deep",
            Sabotage({HttpMechanism.JSON_GUARD}, seeds=(1,), adapt=_nested_bodies, duration=12.0),
        ),
        Check(
            STRANGER_SERVED,
            "after each attack a fresh connection is accepted and served; one client "
            "holding connections does not lock others out of the gateway",
            Sabotage({ServiceSabotage.NO_CLIENT_CAP}, seeds=(1,), adapt=_hoarding, duration=12.0),
        ),
        Check(
            DURABILITY,
            "every acknowledged song is listed by every node and streams byte-identical from "
            "each after heal (invariant 1)",
            Sabotage({BlobStoreMechanism.SYNC_BEFORE_ACK}, seeds=(2,), adapt=_crashes_only),
        ),
        Check(
            CONVERGENCE,
            "after heal every node lists the same songs (invariant 2)",
            # A member given a snapshot as of the commit index never gets the log tail
            # after the snapshot's own index: its catalog stays behind for good.
            Sabotage({TokenRingMechanism.SNAPSHOT_TAIL}, seeds=(2,)),
        ),
        Check(
            READ_YOUR_WRITES,
            "a node answering with a client's log position lists its songs",
            Sabotage({ServiceSabotage.NO_CATCH_UP}, seeds=(1,)),
        ),
        Check(
            SEARCH,
            "a search finds the songs whose titles it names",
            # A node that installed a snapshot lists its songs but finds none of them.
            Sabotage({ServiceSabotage.SNAPSHOT_WITHOUT_SEARCH}, seeds=(1,)),
        ),
        Check(
            STREAM_BYTES,
            "every stream answer has the status and exact bytes asked for",
            # Without read verification a rotten copy is served as it is (with it, the same
            # seeds report nothing: the block is refused and read from another replica).
            Sabotage({BlobStoreMechanism.READ_VERIFY}, seeds=(1,), adapt=_bit_rot),
        ),
        Check(
            HTTP_ANSWER,
            "every answer is one the API documents (no unexpected status)",
            # A replica that does not catch up to the client's position does not know the
            # user the client just signed up as, and calls the token revoked: 401.
            Sabotage(
                {ServiceSabotage.NO_CATCH_UP, ServiceSabotage.REVOKE_UNKNOWN_USERS}, seeds=(2,)
            ),
        ),
        Check(
            GATEWAY_STREAM,
            "a download through the gateway is byte-identical, and cut off only when the "
            "gateway could not resume it elsewhere",
            Sabotage({ServiceSabotage.NO_STREAM_RESUME}, seeds=(6,)),
        ),
        Check(
            GATEWAY_OBSERVER,
            "the gateway is an observer: in membership, not in the ring",
            Sabotage({MembershipMechanism.OBSERVERS_APART}, seeds=(1,)),
        ),
        Check(
            FINAL_OPS,
            "after heal every node registers, logs in, uploads and lists",
            # A candidate that keeps its epoch cannot win votes already cast in it: once the
            # token is lost no member regenerates it, and no write commits again.
            Sabotage({TokenRingMechanism.EPOCH_BUMP}, seeds=(1,)),
        ),
        Check(
            LIVENESS,
            f"liveness: no operation started {SETTLE:g}s after heal fails on every node tried, "
            "and every client and the gateway get work done after heal",
            # Leases published once lapse: the gateway resolves no node ("no healthy node").
            Sabotage({RegistryMechanism.RENEW}, seeds=(1,)),
        ),
        Check(
            STATE,
            "after heal every node's catalog equals replaying the whole history, through "
            "snapshots installed after cut-offs, wiped disks and crashes mid-install",
            # The full-text tables left out of an installed snapshot: the catalog differs
            # from the history replayed (tests/examples/test_spotify_compaction.py also
            # breaks the restore itself).
            Sabotage({ServiceSabotage.SNAPSHOT_WITHOUT_SEARCH}, seeds=(2,)),
        ),
        Check(
            SESSIONS,
            "clients that send no log position get read-your-writes and monotonic reads "
            "through the gateway (invariant 11)",
            # Replicas rarely lag on the scenario's fast links, since members hear of
            # commits at once; with jitter a replica is often behind the client's reply.
            # (Without the sabotage, these runs are clean: tests/sim/test_checks.py.)
            Sabotage({ServiceSabotage.NO_LOG_POSITIONS}, seeds=(1, 2), adapt=_jittery),
        ),
        Check(
            PARTIAL_WRITE,
            "no read sees part of one request's changes (a star of song, album and artist)",
            Sabotage({ServiceSabotage.SPLIT_WRITES}, seeds=(1, 5, 6)),
        ),
        Check(
            OWNERSHIP,
            "after heal and a grace period every stored blob is owned, and every referenced "
            "blob has its copies (invariant 12)",
            Sabotage({ServiceSabotage.COLLECTOR_OFF}, seeds=(1, 2)),
        ),
    ),
    stranger=STRANGER,
)


def scenario() -> Scenario:
    """The scenario, for ``dspot sim --scenario dspot_spotify.simulation:scenario``."""
    return SCENARIO
