"""The simulated cluster: its hosts and ports, the nodes' and the gateway's settings, the
nodes themselves, the gateway (recording failed resumes) and the nemesis's extra fault."""

from __future__ import annotations

import functools
import logging
import random
from typing import Any, Final

import anyio
import anyio.abc
import attrs
from dspot.blobstore import BlobStoreConfig, BlobStoreMechanism
from dspot.disk import SimDisk
from dspot.env import EventLoopClock, NodeEnv
from dspot.errors import ConnectionLost
from dspot.http import ServerConfig
from dspot.sim import SIM_WALL_BASE, FaultConfig, Nemesis, Simulation
from dspot.transport import LinkModel

from dspot_spotify.auth import ScryptParams
from dspot_spotify.config import GATEWAY_SABOTAGES, NodeConfig, Sabotage
from dspot_spotify.gateway import Gateway, GatewayConfig
from dspot_spotify.node import SpotifyNode
from dspot_spotify.simulation.ground import Ground
from dspot_spotify.simulation.snapshots import (
    RING,
    CheckedMachine,
    install_crasher,
    is_wiped,
    restart_later,
)

__all__ = [
    "ATTEMPTS",
    "BLOB_GRACE",
    "GATEWAY",
    "SECRET",
    "STREAMER",
    "SimGateway",
    "gateway_env",
    "nemesis",
    "node",
    "node_config",
    "sabotage",
]

SECRET: Final = b"simulated spotify cluster secret"
RPC_PORT = 7100
HTTP_PORT = 8080
GATEWAY = "gw"
"""The gateway's host (and member id): never crashed nor partitioned by the nemesis."""
GATEWAY_PORT = 8443
STREAMER = "gs"
"""The host of the client that downloads the big song through the gateway."""
GATEWAY_LINK = LinkModel(bandwidth=192 * 1024)
"""Gateway <-> node links: slow, so a relayed song takes seconds and crashes hit it mid-body."""
CLIENTS = 3
SETTLE = 6.0
"""Seconds after heal from which every client operation must succeed."""
STOP_BEFORE_END = 7.0
"""The clients stop this long before the end; the final checks run in that time."""
QUIET = 2.0
"""Seconds between the clients stopping and the final checks."""
ATTEMPTS = 4
"""Nodes a client tries (after connection errors / 503) before an operation counts as failed."""
WORKLOAD_TRACKS = 8
FINAL_TRACKS = 5  # one fresh upload per node at the end (up to 5 nodes)
BIG_SECONDS = 18.0
"""Length of the streaming client's song (16 kHz mono 16-bit WAV: about 580 KB)."""
BLOBSTORE = BlobStoreConfig(
    replicas=3,
    write_quorum=2,
    chunk_size=32 * 1024,
    block_size=8 * 1024,
    read_size=16 * 1024,
    # Local reads in 64 KiB steps (not one big read): a song leaves a node in several
    # segments, so a crash can break a download through the gateway mid-body.
    local_read_size=64 * 1024,
    call_timeout=3.0,
    read_timeout=2.0,
    upload_idle_timeout=10.0,
    repair_interval=1.5,
    fetch_timeout=10.0,
)
BLOB_GRACE = 2.0
"""Seconds an unowned blob stays before the collector deletes it."""


def sabotage(sim: Simulation) -> frozenset[Sabotage]:
    """The service's deliberate bugs this seed runs with (those of ``sim.disabled``)."""
    return frozenset(m for m in sim.disabled if isinstance(m, Sabotage))


SINGLE_COPY_BLOBSTORE = attrs.evolve(BLOBSTORE, replicas=1, write_quorum=1)
"""What the nodes run when :attr:`~dspot.blobstore.BlobStoreMechanism.SYNC_BEFORE_ACK` is
disabled (a sabotage test): with one copy, a single crash of its holder loses the upload."""


def node_config(sim: Simulation) -> NodeConfig:
    unsynced = BlobStoreMechanism.SYNC_BEFORE_ACK in sim.disabled
    blobs = SINGLE_COPY_BLOBSTORE if unsynced else BLOBSTORE
    return NodeConfig(
        cluster_size=len(sim.names),
        scrypt=ScryptParams(n=2**4),  # cheap hashing: the scenario is about the cluster
        blobstore=blobs,
        max_upload=2 * 1024 * 1024,
        rpc_call_timeout=3.0,
        commit_timeout=4.0,
        read_wait_timeout=4.0,
        upload_lease=10.0,
        blob_grace=BLOB_GRACE,
        collect_interval=0.5,
        position_gossip_interval=0.5,
        sabotage=sabotage(sim) - GATEWAY_SABOTAGES,
        tokenring=RING,
    )


async def node(env: NodeEnv, sim: Simulation, *, task_status: anyio.abc.TaskStatus[Any]) -> None:
    me = env.node_id
    spotify = SpotifyNode(
        env,
        rpc_address=f"{me}:{RPC_PORT}",
        http_address=f"{me}:{HTTP_PORT}",
        secret=SECRET,
        seeds=[f"{n}:{RPC_PORT}" for n in sim.names if n != me],
        config=node_config(sim),
        learner=await is_wiped(sim, me, env.disk),
    )
    spotify.ring_machine = CheckedMachine(spotify.machine, sim, me)
    async with anyio.create_task_group() as tg:
        await tg.start(spotify.run)
        install_crasher(sim, spotify)
        task_status.started(spotify)


GATEWAY_MAX_CONNECTIONS: Final = 64
"""The simulated gateway's global connection cap (the stranger's ``hoard`` holds more)."""
GATEWAY_MAX_PER_CLIENT: Final = 16
"""Connections one simulated client address may hold at the gateway."""


class SimGateway(Gateway):
    """The gateway, recording when it tried to resume a broken song stream and could not:
    the only case where its client may see a body cut off."""

    def __init__(self, sim: Simulation, env: NodeEnv) -> None:
        super().__init__(
            env,
            listen=f"{GATEWAY}:{GATEWAY_PORT}",
            rpc_address=f"{GATEWAY}:{RPC_PORT}",
            secret=SECRET,
            seeds=[f"{n}:{RPC_PORT}" for n in sim.names],
            ssl_context=None,
            config=GatewayConfig(
                attempts=ATTEMPTS,
                # Caps small enough for the stranger's hoard to reach the global one.
                server=ServerConfig(max_connections=GATEWAY_MAX_CONNECTIONS),
                max_connections_per_client=GATEWAY_MAX_PER_CLIENT,
                sabotage=sabotage(sim) & GATEWAY_SABOTAGES,
                served_by=True,  # the checks read it
            ),
        )
        self.sim = sim
        self.resume_failures: list[tuple[float, str]] = []

    async def _resume(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super()._resume(*args, **kwargs)
        except ConnectionLost as exc:
            self.resume_failures.append((self.sim.now(), str(exc)))
            self.sim.op("spotify.gateway_resume_failed", error=str(exc))
            raise


def gateway_env(sim: Simulation) -> NodeEnv:
    """The gateway's environment: its own host, RNG and (unused) disk; the simulated clock."""
    return NodeEnv(
        node_id=GATEWAY,
        transport=sim.net.transport(GATEWAY),
        disk=SimDisk(random.Random(f"disk:{sim.seed}:{GATEWAY}")),
        rng=random.Random(f"node:{sim.seed}:{GATEWAY}"),
        clock=EventLoopClock(wall_base=SIM_WALL_BASE),
        logger=logging.getLogger(f"dspot.sim.{GATEWAY}"),
        trace=sim.trace.for_node(GATEWAY),
        disabled=sim.disabled,  # a sabotage test's mechanisms are missing here too
    )


def crash_source(sim: Simulation, kind: str, faults: FaultConfig) -> None:
    """The ``crash_source`` fault: crash (and later restart, by heal at the latest) the node
    serving the streaming client's download when there is one, else a random node; never
    while another node is down. Restarts run in the workload's task group
    (:attr:`Ground.tasks`). Also the ``rot`` fault (:func:`rot`)."""
    if kind == "rot":
        rot(sim)
        return
    if kind != "crash_source":
        raise ValueError(f"unknown fault kind {kind!r}")
    ground = sim.state(Ground)
    if ground.tasks is None or len(sim.live()) < len(sim.names):
        return
    source = ground.stream_source
    victim = source if source in sim.names else sim.rng.choice(sim.names)
    sim.fault("crash", node=victim, source=victim == source)
    sim.crash(victim)
    restart_later(sim, victim, sim.rng.uniform(faults.min_duration, faults.max_duration))


def rot(sim: Simulation) -> None:
    """The ``rot`` fault: one bit of a stored blob's file flips on a random node's disk
    (bit rot; the copies on other nodes stay intact)."""
    name = sim.rng.choice(sim.names)
    disk = sim.nodes[name].disk
    # SimDisk's state read directly: the fault must not go through the code under test.
    files = sorted(f for f, data in disk._files.items() if f.startswith("blobs/") and data)
    if files:
        victim = sim.rng.choice(files)
        disk.corrupt_file(victim)
        sim.fault("rot", node=name, file=victim)


def nemesis(config: FaultConfig) -> Nemesis:
    """The default nemesis, plus the ``crash_source`` and ``rot`` faults."""
    return Nemesis(config, on_fault=functools.partial(crash_source, faults=config))
