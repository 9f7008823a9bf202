"""The service's own simulation scenario: whole SpotifyNodes, HTTP included, under faults.

Run it with ``dspot sim --scenario dspot_spotify.simulation:scenario --seeds 1-20``.

Each simulated node runs a full :class:`~dspot_spotify.node.SpotifyNode` (RPC, membership,
token-ring catalog, blob store, HTTP API). The nemesis injects the default fault model
(crash/restart, partitions including one-way blocks, loss, latency, slow disks) among the
nodes. The clients are tasks of the workload, on hosts of their own (``c1``, ``c2``, ...)
that partitions do not cut off from the nodes; they talk to the service only over HTTP,
each request to a randomly chosen node, retrying on another node after a connection error
or a 503 (or the gateway's 502/504: its node failed, the outcome is unknown):

* register (or, when an earlier registration's outcome was unknown, log in), then loop:
  upload small synthesized tracks, list and search, log in again, and stream songs with
  ``Range``, always sending back the highest ``X-Log-Position`` they have seen. Each
  request goes to a random node *or* to the gateway.

The **gateway** (:class:`~dspot_spotify.gateway.Gateway`, plain HTTP) runs on a host of its
own (``gw``), joins the membership as an observer through the nodes' RPC addresses and
relays to the nodes it finds in the registry. The nemesis never crashes or partitions it;
its links to the nodes are slow (so a song takes seconds to relay) and the ``crash_source``
fault (which replaces ``crash``) usually crashes the node serving the streaming client's
current download. The **streaming client** (``gs``) uploads one big WAV (to a node directly:
over the slow gateway links that would take much of the fault window), then downloads it
through the gateway over and over, whole or by ``Range``.

Checks, all from a client's point of view (DESIGN.md invariants 1, 2, 7):

* **read your writes** (during the run): a request that carried an ``X-Log-Position`` and
  was answered (not 503) reflects every write acknowledged at or before that position:
  the client's own uploads are listed and searchable, the login works, and every stream
  returns exactly the uploaded bytes;
* **durability**: after heal, every upload acknowledged with 201 (and every song a node
  reported as an existing duplicate) is listed by *every* node and streams byte-identical
  from every node and through the gateway, whole and by ``Range``;
* **convergence**: after heal and a quiet period every node returns the same song list;
* **liveness**: no client operation started ``SETTLE`` seconds after heal fails, and at the
  end every node accepts a registration, a login and a new upload;
* **gateway streams**: every download through the gateway that completes is byte-identical
  (sha256) to the uploaded slice, always; one that is cut off mid-body is a violation unless
  the gateway tried to resume it elsewhere and could not (its mid-stream failover promise);
  downloads started ``SETTLE`` seconds after heal all complete; after the run the gateway is
  in every node's membership and in no node's token-ring membership (known or configured).

``sim.data["sabotage"] = "unsynced_single_copy"`` (set from ``run_seed(setup=...)``) runs
the nodes with one blob copy, written without sync before the acknowledgement: the upload
is acknowledged before the data is durable anywhere, and the durability check catches the
loss when the holder crashes.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import random
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import attrs
from dspot.blobstore import BlobStoreConfig
from dspot.disk import SimDisk
from dspot.env import EventLoopClock, NodeEnv
from dspot.errors import DspotError
from dspot.http import HttpClient
from dspot.http._client import Timeouts
from dspot.membership import is_observer
from dspot.sim import FaultConfig, Nemesis, Scenario, Simulation
from dspot.sim._cluster import SIM_WALL_BASE
from dspot.transport import LinkModel

from dspot_spotify.api import LOG_POSITION_HEADER
from dspot_spotify.auth import ScryptParams
from dspot_spotify.gateway import Gateway, GatewayConfig
from dspot_spotify.node import NodeConfig, SpotifyNode

__all__ = ["SCENARIO", "scenario"]

SECRET = b"simulated spotify cluster secret"
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
WORDS = (
    "Aurora", "Basalt", "Cinder", "Dynamo", "Ember", "Fjord", "Gossamer", "Harbor",
    "Ion", "Juniper", "Kestrel", "Lumen", "Mistral",
)  # fmt: skip

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
SABOTAGE_BLOBSTORE = attrs.evolve(BLOBSTORE, replicas=1, write_quorum=1, sync_before_ack=False)


# -- the tracks (synthesized once per process, deterministic) ---------------------------------


@attrs.frozen
class Track:
    index: int
    title: str
    word: str
    data: bytes


@functools.cache
def tracks() -> tuple[Track, ...]:
    """Tiny tagged FLAC files (about a second, mono, 16 kHz): a few tens of KiB each; the
    last one is :func:`big_track`."""
    from dspot_spotify.demo import encode_audio, make_cover_png, synthesize, tag_file

    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(WORKLOAD_TRACKS + FINAL_TRACKS):
            rng = random.Random(f"spotify-sim-track:{i}")
            word = WORDS[i % len(WORDS)]
            title = f"{word} Song {i}"
            path = Path(tmp) / f"t{i}.flac"
            path.write_bytes(encode_audio(synthesize(rng, 1.0, 16000), 16000, "flac"))
            tag_file(
                path,
                title=title,
                artist=f"Sim Artist {i % 3}",
                album=f"Sim Album {i % 4}",
                track=i + 1,
                year=2026,
                genre="Ambient",
                cover=make_cover_png(rng, 8) if i % 2 == 0 else None,
            )
            out.append(Track(i, title, word, path.read_bytes()))
        # The big one, streamed through the gateway (WAV: the size is what matters).
        i = WORKLOAD_TRACKS + FINAL_TRACKS
        rng = random.Random(f"spotify-sim-track:{i}")
        path = Path(tmp) / f"t{i}.wav"
        path.write_bytes(encode_audio(synthesize(rng, BIG_SECONDS, 16000), 16000, "wav"))
        tag_file(path, title=f"Nebula Song {i}", artist="Sim Artist Big", album="Sim Long")
        out.append(Track(i, f"Nebula Song {i}", "Nebula", path.read_bytes()))
    return tuple(out)


def big_track() -> Track:
    return tracks()[WORKLOAD_TRACKS + FINAL_TRACKS]


# -- nodes ----------------------------------------------------------------------------------


def node_config(sim: Simulation) -> NodeConfig:
    blobs = SABOTAGE_BLOBSTORE if sim.data.get("sabotage") == "unsynced_single_copy" else BLOBSTORE
    return NodeConfig(
        cluster_size=len(sim.names),
        scrypt=ScryptParams(n=2**4),  # cheap hashing: the scenario is about the cluster
        blobstore=blobs,
        max_upload=2 * 1024 * 1024,
        rpc_call_timeout=3.0,
        commit_timeout=4.0,
        read_wait_timeout=4.0,
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
    )
    await spotify.run(task_status=task_status)


# -- clients --------------------------------------------------------------------------------

Position = tuple[int, int]
ZERO: Position = (0, 0)
_GONE: tuple[type[BaseException], ...] = (
    DspotError,
    OSError,
    TimeoutError,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
)


def base_url(host: str) -> str:
    """Where ``host`` (a node or the gateway) serves HTTP."""
    return f"http://{host}:{GATEWAY_PORT if host == GATEWAY else HTTP_PORT}"


def parse_pos(text: str | None) -> Position | None:
    if not text:
        return None
    epoch, _, seq = text.partition(".")
    return int(epoch), int(seq)


def format_pos(pos: Position) -> str:
    return f"{pos[0]}.{pos[1]}"


@attrs.frozen
class Song:
    """A song the service acknowledged (201) or reported as already there (duplicate 200)."""

    song_id: str
    track: int
    sha256: str
    size: int
    pos: Position | None
    """Where its entry committed (None when a node reported it as a duplicate: the client
    was not told a position, so it cannot demand it on a lagging replica)."""
    client: str
    at: float


@attrs.frozen
class Reply:
    node: str
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        import json

        return json.loads(self.body)


def _data(sim: Simulation) -> dict[str, Any]:
    return sim.data


def songs(sim: Simulation) -> dict[str, Song]:
    found: dict[str, Song] = _data(sim).setdefault("songs", {})
    return found


def failures(sim: Simulation) -> list[tuple[str, str, float, str]]:
    found: list[tuple[str, str, float, str]] = _data(sim).setdefault("failed", [])
    return found


def successes(sim: Simulation) -> list[tuple[str, str, float]]:
    found: list[tuple[str, str, float]] = _data(sim).setdefault("succeeded", [])
    return found


class Client:
    """One user of the service, talking HTTP to random nodes."""

    def __init__(self, sim: Simulation, name: str, http: HttpClient) -> None:
        self.sim = sim
        self.name = name
        self.http = http
        self.rng = random.Random(f"client:{sim.seed}:{name}")
        self.username = f"user-{name}"
        self.password = f"password of {name}"
        self.auth: dict[str, str] = {}
        self.pos: Position = ZERO
        self.registered_at: Position | None = None
        self.uploaded: list[str] = []  # song ids this client was told about

    def see(self, reply: Reply) -> None:
        pos = parse_pos(reply.headers.get(LOG_POSITION_HEADER))
        if pos is not None and pos > self.pos:
            self.pos = pos

    def see_pos(self, pos: Position) -> None:
        if pos > self.pos:
            self.pos = pos

    def headers(
        self, pos: Position | None = None, extra: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        pos = max(self.pos, pos or ZERO)
        h = dict(self.auth)
        if pos != ZERO:
            h[LOG_POSITION_HEADER] = format_pos(pos)
        h.update(extra or {})
        return h

    async def send(
        self,
        op: str,
        method: str,
        path: str,
        *,
        nodes: Iterable[str] | None = None,
        body: bytes = b"",
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply | None:
        """Send to random nodes until one answers with something but a 503 (None if none)."""
        sim = self.sim
        targets = list(nodes) if nodes is not None else None
        started = sim.now()
        last = "no attempt"
        for attempt in range(ATTEMPTS):
            if targets:
                target = targets[attempt % len(targets)]
            else:
                target = self.rng.choice([*sim.names, GATEWAY])
            try:
                with anyio.fail_after(15.0):
                    resp = await self.http.request(
                        method,
                        f"{base_url(target)}{path}",
                        body=body,
                        json=json,
                        headers=headers or {},
                    )
                    content = await resp.read()
            except _GONE as exc:
                last = f"{target}: {type(exc).__name__}: {exc}"
                await anyio.sleep(0.2 + 0.3 * self.rng.random())
                continue
            # 401 for a token of ours is only retryable when we registered with an unknown
            # outcome (409, then login): we have no log position to make a lagging node wait.
            lagging = resp.status == 401 and self.registered_at is None and bool(self.auth)
            # The gateway's 502/504: the node it relayed to failed, the outcome is unknown.
            relay_failed = target == GATEWAY and resp.status in (502, 504)
            if resp.status == 503 or lagging or relay_failed:
                last = f"{target}: {resp.status} {content[:200]!r}"
                await anyio.sleep(0.3 + 0.5 * self.rng.random())
                continue
            served = resp.headers.get("x-served-by")
            node = f"{target} (via {served})" if target == GATEWAY and served else target
            reply = Reply(node, resp.status, dict(resp.headers), content)
            sim.op("spotify." + op, client=self.name, node=target, status=resp.status)
            return reply
        failures(sim).append((op, self.name, started, last))
        sim.op("spotify.fail", client=self.name, op=op, error=last)
        return None

    def ok(self, op: str) -> None:
        successes(self.sim).append((op, self.name, self.sim.now()))

    def unexpected(self, op: str, reply: Reply) -> None:
        self.sim.violation(
            f"{self.name}: {op} on {reply.node} at {self.sim.now():.3f}s got an unexpected "
            f"{reply.status}: {reply.body[:300]!r}"
        )

    # -- operations ---------------------------------------------------------------------------

    async def register(self, nodes: Iterable[str] | None = None) -> bool:
        creds = {"username": self.username, "password": self.password}
        reply = await self.send("register", "POST", "/api/auth/register", json=creds, nodes=nodes)
        if reply is None:
            return False
        if reply.status == 201:
            self.see(reply)
            self.registered_at = parse_pos(reply.headers.get(LOG_POSITION_HEADER))
            self.auth = {"authorization": f"Bearer {reply.json()['token']}"}
            self.ok("register")
            return True
        if reply.status == 409:  # an earlier attempt with an unknown outcome went through
            return await self.login()
        self.unexpected("register", reply)
        return False

    async def login(self, nodes: Iterable[str] | None = None) -> bool:
        creds = {"username": self.username, "password": self.password}
        headers = self.headers()
        headers.pop("authorization", None)
        reply = await self.send(
            "login", "POST", "/api/auth/login", json=creds, headers=headers, nodes=nodes
        )
        if reply is None:
            return False
        if reply.status == 200:
            self.auth = {"authorization": f"Bearer {reply.json()['token']}"}
            self.ok("login")
            return True
        if reply.status == 401 and self.registered_at is None:
            return False  # registered with an unknown outcome; that node may not know us yet
        self.unexpected("login", reply)
        return False

    async def upload(self, track: Track, nodes: Iterable[str] | None = None) -> Song | None:
        reply = await self.send(
            "upload",
            "POST",
            f"/api/songs?filename=t{track.index}.flac",
            body=track.data,
            headers=self.headers(extra={"content-type": "audio/flac"}),
            nodes=nodes,
        )
        if reply is None:
            return None
        if reply.status not in (200, 201):
            self.unexpected("upload", reply)
            return None
        doc = reply.json()
        if reply.status == 200 and not doc.get("duplicate"):
            self.unexpected("upload", reply)
            return None
        self.see(reply)
        if doc.get("title") != track.title or doc.get("size") != len(track.data):
            self.sim.violation(f"{self.name}: upload of track {track.index} answered {doc}")
        pos = parse_pos(reply.headers.get(LOG_POSITION_HEADER)) if reply.status == 201 else None
        if reply.status == 201 and pos is None:
            self.sim.violation(f"{self.name}: upload acknowledged without {LOG_POSITION_HEADER}")
        song = Song(
            doc["id"], track.index, doc["blob_sha256"], doc["size"], pos, self.name, self.sim.now()
        )
        known = songs(self.sim)
        if song.song_id not in known or (known[song.song_id].pos is None and pos is not None):
            known[song.song_id] = song
        self.uploaded.append(song.song_id)
        self.sim.op(
            "spotify.uploaded", client=self.name, song=song.song_id, status=reply.status, pos=pos
        )
        self.ok("upload")
        return song

    async def list_and_search(self) -> None:
        reply = await self.send("list", "GET", "/api/songs?limit=200", headers=self.headers())
        if reply is None:
            return
        if reply.status != 200:
            self.unexpected("list", reply)
            return
        listed = {item["id"] for item in reply.json()["items"]}
        mine = [songs(self.sim)[song_id] for song_id in self.uploaded]
        mine = [s for s in mine if s.pos is not None and s.pos <= self.pos]
        for song_id in sorted({s.song_id for s in mine}):
            if song_id not in listed:
                self.sim.violation(
                    f"{self.name}: {reply.node} lists {len(listed)} songs without {song_id}, "
                    f"acknowledged to this client (read your writes at {format_pos(self.pos)})"
                )
        self.ok("list")
        if not mine:
            return
        song = self.rng.choice(mine)
        track = tracks()[song.track]
        q = track.word.lower()
        reply = await self.send(
            "search", "GET", f"/api/songs?q={q}&limit=200", headers=self.headers()
        )
        if reply is None:
            return
        if reply.status != 200:
            self.unexpected("search", reply)
            return
        found = {item["id"] for item in reply.json()["items"]}
        if song.song_id not in found:
            self.sim.violation(
                f"{self.name}: search {q!r} on {reply.node} misses {song.song_id} ({track.title})"
            )
        self.ok("search")

    async def stream(self, song: Song, nodes: Iterable[str] | None = None) -> bool:
        data = tracks()[song.track].data
        extra: dict[str, str] = {}
        start, end = 0, len(data) - 1
        if self.rng.random() < 0.7:
            start = self.rng.randrange(len(data))
            end = self.rng.randrange(start, len(data))
            extra["range"] = f"bytes={start}-{end}"
        reply = await self.send(
            "stream",
            "GET",
            f"/api/songs/{song.song_id}/stream",
            headers=self.headers(song.pos, extra),
            nodes=nodes,
        )
        if reply is None:
            return False
        if reply.status == 404 and song.pos is None:
            return False  # reported as a duplicate, position unknown: this node may lag
        want_status = 206 if extra else 200
        if reply.status != want_status or reply.body != data[start : end + 1]:
            self.sim.violation(
                f"{self.name}: stream of {song.song_id} bytes {start}-{end} from {reply.node} "
                f"got {reply.status} with {len(reply.body)} bytes "
                f"(want {want_status}, {end + 1 - start} exact bytes)"
            )
            return False
        self.ok("stream")
        return True

    async def run(self, stop_at: float) -> None:
        sim = self.sim
        for _ in range(1000):
            if await self.register():
                break
            await anyio.sleep(0.5)
        while sim.now() < stop_at:
            await anyio.sleep(self.rng.uniform(0.1, 0.5))
            roll = self.rng.random()
            known = list(songs(sim).values())
            if roll < 0.3 or not known:
                await self.upload(self.rng.choice(tracks()[:WORKLOAD_TRACKS]))
            elif roll < 0.5:
                await self.list_and_search()
            elif roll < 0.6:
                await self.login()
            else:
                await self.stream(self.rng.choice(known))


# -- the gateway and the client streaming through it -----------------------------------------


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
            config=GatewayConfig(attempts=ATTEMPTS),
        )
        self.sim = sim
        self.resume_failures: list[tuple[float, str]] = []

    async def _resume(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super()._resume(*args, **kwargs)
        except anyio.BrokenResourceError as exc:
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
    )


@attrs.define
class Download:
    """One download through the gateway, as the streaming client saw it."""

    started: float
    first: int
    last: int
    status: int | None = None
    served_by: str = ""
    received: int = 0
    outcome: str = "failed"
    """``ok``, ``wrong`` (bytes differ), ``cut`` (body broken off) or ``failed`` (no body
    or an unexpected status)."""
    error: str = ""
    ended: float = 0.0


def downloads(sim: Simulation) -> list[Download]:
    found: list[Download] = _data(sim).setdefault("downloads", [])
    return found


class Streamer(Client):
    """Uploads the big song (to the nodes directly), then downloads it through the gateway,
    whole or by ``Range``, until ``stop_at`` (it finishes the download it is in)."""

    async def download(self, song: Song) -> Download:
        sim = self.sim
        data = big_track().data
        first, last = 0, len(data) - 1
        extra: dict[str, str] = {}
        if self.rng.random() < 0.6:
            first = self.rng.randrange(len(data) // 2)
            last = self.rng.randrange(first + len(data) // 4, len(data))
            extra["range"] = f"bytes={first}-{last}"
        d = Download(sim.now(), first, last)
        downloads(sim).append(d)
        digest = hashlib.sha256()
        url = f"{base_url(GATEWAY)}/api/songs/{song.song_id}/stream"
        try:
            with anyio.fail_after(60.0):
                async with await self.http.get(url, headers=self.headers(song.pos, extra)) as resp:
                    d.status = resp.status
                    d.served_by = resp.headers.get("x-served-by") or ""
                    sim.data["stream_source"] = d.served_by
                    if resp.status != (206 if extra else 200):
                        d.error = f"status {resp.status}: {(await resp.read())[:200]!r}"
                    else:
                        try:
                            async for chunk in resp.iter_bytes():
                                digest.update(chunk)
                                d.received += len(chunk)
                        except _GONE as exc:
                            d.outcome, d.error = "cut", f"{type(exc).__name__}: {exc}"
                        else:
                            want = hashlib.sha256(data[first : last + 1]).hexdigest()
                            d.outcome = "ok" if digest.hexdigest() == want else "wrong"
        except _GONE as exc:
            if d.outcome == "failed":
                d.error = f"{type(exc).__name__}: {exc}"
        finally:
            sim.data.pop("stream_source", None)
        d.ended = sim.now()
        sim.op(
            "spotify.gateway_download",
            outcome=d.outcome,
            status=d.status,
            node=d.served_by,
            first=first,
            last=last,
            received=d.received,
        )
        if d.outcome == "wrong":
            sim.violation(
                f"gateway stream: bytes {first}-{last} of {song.song_id} downloaded through the "
                f"gateway (from {d.served_by}, started {d.started:.3f}s) differ from the upload"
            )
        return d

    async def run(self, stop_at: float) -> None:
        sim = self.sim
        for _ in range(1000):
            if await self.register(nodes=[GATEWAY]):
                break
            await anyio.sleep(0.5)
        song = None
        while song is None and sim.now() < stop_at:
            song = await self.upload(big_track(), nodes=self.rng.sample(sim.names, len(sim.names)))
            if song is None:
                await anyio.sleep(0.5)
        while song is not None and sim.now() < stop_at:
            d = await self.download(song)
            if d.outcome != "ok":
                await anyio.sleep(0.3)


def crash_source(sim: Simulation, kind: str, faults: FaultConfig) -> None:
    """The ``crash_source`` fault: crash (and later restart, by heal at the latest) the node
    serving the streaming client's download when there is one, else a random node; never
    while another node is down. Restarts run in the workload's task group
    (``sim.data["tasks"]``)."""
    if kind != "crash_source":
        raise ValueError(f"unknown fault kind {kind!r}")
    tasks: anyio.abc.TaskGroup | None = sim.data.get("tasks")
    if tasks is None or len(sim.live()) < len(sim.names):
        return
    source = sim.data.get("stream_source")
    victim = source if source in sim.names else sim.rng.choice(sim.names)
    sim.fault("crash", node=victim, source=victim == source)
    sim.crash(victim)
    until = min(sim.now() + sim.rng.uniform(faults.min_duration, faults.max_duration), sim.heal_at)

    async def revive() -> None:
        await anyio.sleep(until - sim.now())
        await sim.start(victim)

    tasks.start_soon(revive)


def nemesis(config: FaultConfig) -> Nemesis:
    """The default nemesis, plus the ``crash_source`` fault."""
    return Nemesis(config, on_fault=functools.partial(crash_source, faults=config))


def check_gateway_is_observer(sim: Simulation) -> None:
    """Every node sees the gateway as a member, and no token ring ever counted it."""
    for name in sim.names:
        spotify = sim.nodes[name].handle
        if not isinstance(spotify, SpotifyNode):
            sim.violation(f"final: {name} is not running at the end")
            continue
        member = spotify.membership.get(GATEWAY)
        if member is None or not is_observer(member):
            sim.violation(f"gateway: {name}'s membership has no observer {GATEWAY} ({member})")
        ring = spotify.ring
        if GATEWAY in ring._known or GATEWAY in ring.core.configured:
            sim.violation(
                f"gateway: {name}'s token ring counts the observer {GATEWAY} as a member "
                f"(known {ring._known}, configured {ring.core.configured})"
            )


# -- the workload and its final checks -------------------------------------------------------


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


async def final_checks(sim: Simulation, http: HttpClient) -> None:
    """After heal: liveness on every node, then durability and convergence."""
    checker = Client(sim, "checker", http)
    # Liveness: every node registers, logs in and stores a fresh upload.
    if not await checker.register(nodes=[sim.names[0]]):
        sim.violation(f"final: registration on {sim.names[0]} failed after heal")
    for i, name in enumerate(sim.names):
        late = Client(sim, f"late-{name}", http)
        late.pos = checker.pos
        if not await late.register(nodes=[name]):
            sim.violation(f"final: registration on {name} failed after heal")
            continue
        checker.see_pos(late.pos)
        if not await late.login(nodes=[name]):
            sim.violation(f"final: login on {name} failed after heal")
        track = tracks()[WORKLOAD_TRACKS + i % FINAL_TRACKS]
        song = await late.upload(track, nodes=[name])
        if song is None:
            sim.violation(f"final: upload on {name} failed after heal")
        else:
            checker.see_pos(song.pos or ZERO)
    known = songs(sim)
    if not any(s.client.startswith("c") for s in known.values()):
        sim.violation("no upload by a workload client was acknowledged")
    # Convergence and durability: every node lists every acknowledged song, identically.
    listings: dict[str, list[tuple[str, str, int, str]]] = {}
    for name in sim.names:
        reply = await checker.send(
            "final.list", "GET", "/api/songs?limit=200", headers=checker.headers(), nodes=[name]
        )
        if reply is None or reply.status != 200:
            sim.violation(f"final: {name} does not list songs after heal ({reply})")
            continue
        items = reply.json()["items"]
        listings[name] = sorted(
            (item["id"], item["blob_sha256"], item["size"], item["title"]) for item in items
        )
        listed = {item["id"]: item for item in items}
        for song in known.values():
            item = listed.get(song.song_id)
            if item is None:
                sim.violation(
                    f"durability: {name} does not list {song.song_id} (track {song.track}, "
                    f"acknowledged to {song.client} at {song.at:.3f}s, position {song.pos})"
                )
            elif item["blob_sha256"] != song.sha256 or item["size"] != song.size:
                sim.violation(f"durability: {name} lists {song.song_id} as {item}")
    distinct = {tuple(v) for v in listings.values()}
    if len(distinct) > 1:
        sizes = {name: len(v) for name, v in listings.items()}
        sim.violation(f"convergence: the nodes list different songs after heal ({sizes})")
    # Every acknowledged song streams byte-identical from every node (and through the
    # gateway), whole and by Range.
    for song in sorted(known.values(), key=lambda s: s.song_id):
        data = tracks()[song.track].data
        for name in [*sim.names, GATEWAY]:
            reply = await checker.send(
                "final.stream",
                "GET",
                f"/api/songs/{song.song_id}/stream",
                headers=checker.headers(song.pos),
                nodes=[name],
            )
            if reply is None or reply.status != 200 or reply.body != data:
                status = None if reply is None else reply.status
                sim.violation(
                    f"durability: {song.song_id} (track {song.track}, acknowledged to "
                    f"{song.client} at {song.at:.3f}s) does not stream byte-identical from "
                    f"{name} after heal (status {status})"
                )
                continue
            start = checker.rng.randrange(len(data))
            reply = await checker.send(
                "final.range",
                "GET",
                f"/api/songs/{song.song_id}/stream",
                headers=checker.headers(song.pos, {"range": f"bytes={start}-"}),
                nodes=[name],
            )
            if reply is None or reply.status != 206 or reply.body != data[start:]:
                sim.violation(
                    f"durability: {song.song_id} bytes {start}- from {name} after heal differ"
                )


def check(sim: Simulation) -> None:
    settled = sim.heal_at + SETTLE
    for op, client, started, error in failures(sim):
        if started > settled:
            sim.violation(
                f"liveness: {op} by {client} started at {started:.3f}s (heal at "
                f"{sim.heal_at:g}s) failed on {ATTEMPTS} nodes; last: {error}"
            )
    for i in range(1, CLIENTS + 1):
        name = f"c{i}"
        done = {op for op, c, t in successes(sim) if c == name and t > settled}
        if not done:
            sim.violation(f"liveness: no operation of {name} succeeded after heal + {SETTLE:g}s")
    check_gateway_streams(sim)


def check_gateway_streams(sim: Simulation) -> None:
    """Downloads through the gateway: never cut off unless a resume failed, and all complete
    once the faults have healed and settled."""
    settled = sim.heal_at + SETTLE
    gateway: SimGateway | None = sim.data.get("gateway")
    resume_failures = gateway.resume_failures if gateway is not None else []
    done = downloads(sim)
    for d in done:
        if d.outcome == "cut":
            explained = any(d.started <= t <= d.ended for t, _ in resume_failures)
            if not explained:
                sim.violation(
                    f"gateway stream: download of bytes {d.first}-{d.last} started at "
                    f"{d.started:.3f}s from {d.served_by} was cut off after {d.received} bytes "
                    f"at {d.ended:.3f}s, and the gateway did not fail to resume it ({d.error})"
                )
        if d.outcome != "ok" and d.started > settled:
            sim.violation(
                f"liveness: download through the gateway started at {d.started:.3f}s (heal at "
                f"{sim.heal_at:g}s) ended {d.outcome}: status {d.status}, {d.error}"
            )
    if not any(d.outcome == "ok" and d.started > settled for d in done):
        sim.violation(
            f"liveness: no download through the gateway completed after heal + {SETTLE:g}s"
        )


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
