"""The scenario's clients: users talking HTTP to random nodes or the gateway, and the
streaming client downloading the big song through the gateway; what they saw is kept in
the run's :class:`~dspot_spotify.simulation.ground.Ground` for the checks."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Mapping
from typing import Any

import anyio
import attrs
from dspot.errors import DspotError
from dspot.http import HttpClient
from dspot.sim import Simulation

from dspot_spotify.simulation.checknames import (
    GATEWAY_STREAM,
    HTTP_ANSWER,
    READ_YOUR_WRITES,
    SEARCH,
    STREAM_BYTES,
)
from dspot_spotify.simulation.cluster import (
    ATTEMPTS,
    GATEWAY,
    GATEWAY_PORT,
    HTTP_PORT,
    SimGateway,
)
from dspot_spotify.simulation.ground import Ground
from dspot_spotify.simulation.tracks import WORKLOAD_TRACKS, Track, big_track, tracks
from dspot_spotify.writer import LOG_POSITION_HEADER

__all__ = [
    "ZERO",
    "Client",
    "Download",
    "Song",
    "Streamer",
    "downloads",
    "failures",
    "songs",
    "successes",
]

Position = tuple[int, int]
ZERO: Position = (0, 0)


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


@attrs.define
class Clients:
    """What the clients did and were told, and the gateway they used: one per run, from
    ``sim.state(Clients)``."""

    songs: dict[str, Song] = attrs.Factory(dict)
    """Songs the clients uploaded and were told exist, by id."""
    failed: list[tuple[str, str, float, str]] = attrs.Factory(list)
    """``(client, operation, started, error)`` of every failed client operation."""
    succeeded: list[tuple[str, str, float]] = attrs.Factory(list)
    """``(client, operation, started)`` of every successful client operation."""
    downloads: list[Download] = attrs.Factory(list)
    """Every download through the gateway."""
    gateway: SimGateway | None = None
    gateway_resumed: int = 0
    """Downloads the gateway resumed on another node, over the run."""


def songs(sim: Simulation) -> dict[str, Song]:
    return sim.state(Clients).songs


def failures(sim: Simulation) -> list[tuple[str, str, float, str]]:
    return sim.state(Clients).failed


def successes(sim: Simulation) -> list[tuple[str, str, float]]:
    return sim.state(Clients).succeeded


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
            except (DspotError, TimeoutError) as exc:
                last = f"{target}: {type(exc).__name__}: {exc}"
                await anyio.sleep(0.2 + 0.3 * self.rng.random())
                continue
            # The gateway's 502/504: the node it relayed to failed, the outcome is unknown.
            relay_failed = target == GATEWAY and resp.status in (502, 504)
            if resp.status == 503 or relay_failed:
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
            f"{reply.status}: {reply.body[:300]!r}",
            check=HTTP_ANSWER,
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
            self.sim.violation(
                f"{self.name}: upload of track {track.index} answered {doc}", check=HTTP_ANSWER
            )
        pos = parse_pos(reply.headers.get(LOG_POSITION_HEADER)) if reply.status == 201 else None
        if reply.status == 201 and pos is None:
            self.sim.violation(
                f"{self.name}: upload acknowledged without {LOG_POSITION_HEADER}", check=HTTP_ANSWER
            )
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
                    f"acknowledged to this client (read your writes at {format_pos(self.pos)})",
                    check=READ_YOUR_WRITES,
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
                f"{self.name}: search {q!r} on {reply.node} misses {song.song_id} ({track.title})",
                check=SEARCH,
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
                f"(want {want_status}, {end + 1 - start} exact bytes)",
                check=STREAM_BYTES,
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
    return sim.state(Clients).downloads


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
                    sim.state(Ground).stream_source = d.served_by
                    if resp.status != (206 if extra else 200):
                        d.error = f"status {resp.status}: {(await resp.read())[:200]!r}"
                    else:
                        try:
                            async for chunk in resp.iter_bytes():
                                digest.update(chunk)
                                d.received += len(chunk)
                        except (DspotError, TimeoutError) as exc:
                            d.outcome, d.error = "cut", f"{type(exc).__name__}: {exc}"
                        else:
                            want = hashlib.sha256(data[first : last + 1]).hexdigest()
                            d.outcome = "ok" if digest.hexdigest() == want else "wrong"
        except (DspotError, TimeoutError) as exc:
            if d.outcome == "failed":
                d.error = f"{type(exc).__name__}: {exc}"
        finally:
            sim.state(Ground).stream_source = None
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
                f"gateway (from {d.served_by}, started {d.started:.3f}s) differ from the upload",
                check=GATEWAY_STREAM,
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
