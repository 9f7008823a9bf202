"""Clients that know nothing of log positions, and the history checker over what they did.

A :class:`SessionClient` is what a Subsonic app or curl is to the service: it talks only to
the gateway and never sends ``X-Log-Position``. It uploads songs (REST), reads them back at
once, deletes some (so blobs lose their owners), and through the Subsonic API stars and
unstars a song with its album and artist in one call, reads its stars, and makes and edits
playlists (rename and add in one call). Every operation goes into a :mod:`dspot.history`
history with its invoke and complete times (virtual) and outcome.

Keys of the history, each written by its one client only:

``song:ID``       the song's audio hash while it exists (None once deleted);
``stars:CLIENT``  everything the client has starred, as a sorted tuple;
``playlist:ID``   ``(name, song ids in order)``.

A star of three things, or a rename with an add, writes one value of one key, so a read that
sees part of such a write shows a value no write produced: :func:`check_sessions` reports it
as a **partial write**. A read older than what the client saw acknowledged before is a
**read-your-writes** or **monotonic-reads** violation (DESIGN.md invariant 11).
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio
from dspot.errors import DspotError
from dspot.history import Operation, Outcome, ViolationKind, check
from dspot.http import HttpClient
from dspot.sim import Simulation

from dspot_spotify.simulation.checknames import LIVENESS, PARTIAL_WRITE, SESSIONS
from dspot_spotify.simulation.cluster import GATEWAY
from dspot_spotify.simulation.ground import Ground
from dspot_spotify.simulation.tracks import session_tracks
from dspot_spotify.simulation.workload import Reply, base_url
from dspot_spotify.writer import LOG_POSITION_HEADER

__all__ = ["SESSION_CLIENTS", "SessionClient", "check_sessions", "history"]

SESSION_CLIENTS = 2
PASSWORD = "a session client password"
COMPOSITE = ("stars:", "playlist:")
"""Keys whose one value is written by a call that changes several things."""
# The answers (or Subsonic messages) of writes that certainly did nothing.
_REFUSED = ("no quorum", "no healthy node", "no node has reached", "has not reached")


def history(sim: Simulation) -> list[Operation]:
    """Every operation of the clients without positions, in the order they completed."""
    return sim.state(Ground).history


def _position(reply: Reply) -> tuple[int, int] | None:
    text = reply.headers.get(LOG_POSITION_HEADER)
    if not text:
        return None
    epoch, _, seq = text.partition(".")
    return int(epoch), int(seq)


class _Outcome(Exception):
    """Ends an operation early with this outcome (and a detail for the history)."""

    def __init__(self, outcome: Outcome, detail: str) -> None:
        super().__init__(detail)
        self.outcome = outcome
        self.detail = detail


class SessionClient:
    """One user of the gateway that never sends ``X-Log-Position``."""

    def __init__(self, sim: Simulation, name: str, index: int, http: HttpClient) -> None:
        self.sim = sim
        self.name = name
        self.http = http
        self.rng = random.Random(f"session-client:{sim.seed}:{name}")
        self.username = f"session-{name}"
        self.token = ""
        self.subsonic_password = ""
        self.tracks = [t for t in session_tracks() if t.index % SESSION_CLIENTS == index]
        self.uploaded = 0
        self.kept: dict[str, tuple[str, str | None, str]] = {}
        """Songs to star and list: id -> (song, album, artist) ids."""
        self.throwaway: dict[str, str] = {}
        """Songs to delete: id -> audio hash."""
        self.stars: tuple[str, ...] | None = ()
        """What is starred, while known exactly (None after an unknown outcome)."""
        self.playlists: dict[str, tuple[str, tuple[str, ...]]] = {}
        self.renames = 0

    # -- plumbing ---------------------------------------------------------------------------

    async def send(
        self, method: str, path: str, *, body: bytes = b"", json_body: Any = None
    ) -> Reply:
        """One request to the gateway (no retries: the outcome is the client's to judge)."""
        headers = {"authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            with anyio.fail_after(15.0):
                resp = await self.http.request(
                    method, f"{base_url(GATEWAY)}{path}", body=body, json=json_body, headers=headers
                )
                content = await resp.read()
        except (DspotError, TimeoutError) as exc:
            raise _Outcome(Outcome.UNKNOWN, f"{type(exc).__name__}: {exc}") from None
        return Reply(
            resp.headers.get("x-served-by") or GATEWAY, resp.status, dict(resp.headers), content
        )

    def judge(self, reply: Reply, ok: tuple[int, ...]) -> None:
        """Raise unless ``reply`` is a success: refused (4xx, no quorum, nobody caught up)
        is ``failed``, anything else ``unknown`` (it may have been applied)."""
        if reply.status in ok:
            return
        text = reply.body[:300].decode(errors="replace")
        if 400 <= reply.status < 500 or any(r in text for r in _REFUSED):
            raise _Outcome(Outcome.FAILED, f"{reply.status}: {text}")
        raise _Outcome(Outcome.UNKNOWN, f"{reply.status}: {text}")

    async def subsonic(self, endpoint: str, **params: str | list[str]) -> dict[str, Any]:
        """A Subsonic call (token authentication, JSON); its ``subsonic-response``."""
        salt = f"{self.rng.getrandbits(48):012x}"
        token = hashlib.md5((self.subsonic_password + salt).encode()).hexdigest()
        query = [("u", self.username), ("t", token), ("s", salt), ("v", "1.16.1")]
        query += [("c", "sim"), ("f", "json")]
        for key, value in params.items():
            for v in [value] if isinstance(value, str) else value:
                query.append((key, v))
        path = f"/rest/{endpoint}?{urllib.parse.urlencode(query)}"
        reply = await self.send("GET", path)
        self.judge(reply, (200,))
        doc: dict[str, Any] = json.loads(reply.body)["subsonic-response"]
        if doc.get("status") != "ok":
            message = str(doc.get("error", {}).get("message", ""))
            refused = any(r in message for r in _REFUSED) or "outcome is unknown" not in message
            if "not applied here yet" in message:
                refused = False
            raise _Outcome(Outcome.FAILED if refused else Outcome.UNKNOWN, message)
        return doc

    async def op(
        self,
        name: str,
        call: Callable[[], Any],
        *,
        intended: Mapping[str, Any] | None = None,
    ) -> Outcome:
        """Run ``call`` (it returns ``(writes, reads, version)``) and record it."""
        invoke = self.sim.now()
        writes: Mapping[str, Any] = {}
        reads: Mapping[str, Any] = {}
        version = None
        detail = ""
        try:
            writes, reads, version = await call()
            outcome = Outcome.OK
        except _Outcome as e:
            outcome, detail = e.outcome, e.detail
            writes = intended or {}
        history(self.sim).append(
            Operation(
                client=self.name,
                name=name,
                invoke=invoke,
                complete=self.sim.now(),
                outcome=outcome,
                writes=dict(writes),
                reads=dict(reads),
                version=version,
                detail={"error": detail} if detail else {},
            )
        )
        self.sim.op("spotify.session", client=self.name, op=name, outcome=outcome.value)
        return outcome

    # -- setup ------------------------------------------------------------------------------

    async def setup(self) -> bool:
        """Register (or log in after an unknown outcome) and fetch Subsonic credentials."""
        creds = {"username": self.username, "password": PASSWORD}
        for _ in range(200):
            try:
                if not self.token:
                    reply = await self.send("POST", "/api/auth/register", json_body=creds)
                    if reply.status == 409:
                        reply = await self.send("POST", "/api/auth/login", json_body=creds)
                    if reply.status in (200, 201):
                        self.token = json.loads(reply.body)["token"]
                if self.token:
                    reply = await self.send("GET", "/api/me/subsonic")
                    if reply.status == 200:
                        self.subsonic_password = json.loads(reply.body)["password"]
                        return True
            except _Outcome:
                pass
            await anyio.sleep(0.5)
        return False

    # -- operations -------------------------------------------------------------------------

    async def upload(self) -> None:
        """A new song (ours: a keeper to star and list, or one to delete later), read back
        at once."""
        track = self.tracks[self.uploaded % len(self.tracks)]  # again once all were used:
        self.uploaded += 1  # a duplicate while its song exists, a new song once deleted
        keep = self.rng.random() < 0.6
        sha = hashlib.sha256(track.data).hexdigest()
        song: dict[str, Any] = {}

        async def call() -> Any:
            reply = await self.send(
                "POST", f"/api/songs?filename=s{track.index}.flac", body=track.data
            )
            self.judge(reply, (200, 201))
            song.update(json.loads(reply.body))
            # 200: already there. The tracks are this client's own, so an earlier try of
            # ours stored it and its answer was lost (that op's outcome is unknown, and the
            # song's id, the key it wrote, is learnt only now): the write is recorded here.
            return {f"song:{song['id']}": sha}, {}, _position(reply)

        if await self.op("upload", call) is not Outcome.OK or song.get("duplicate"):
            return
        song_id = str(song["id"])
        if keep:
            self.kept[song_id] = (song_id, song.get("album_id"), str(song["artist_id"]))
        else:
            self.throwaway[song_id] = sha
        await self.read_song(song_id)

    async def read_song(self, song_id: str | None = None) -> None:
        mine = [*self.kept, *self.throwaway]
        if song_id is None:
            if not mine:
                return
            song_id = self.rng.choice(sorted(mine))

        async def call() -> Any:
            reply = await self.send("GET", f"/api/songs/{song_id}")
            if reply.status == 404:
                return {}, {f"song:{song_id}": None}, None
            self.judge(reply, (200,))
            return {}, {f"song:{song_id}": json.loads(reply.body)["blob_sha256"]}, None

        await self.op("get", call)

    async def delete(self) -> None:
        if not self.throwaway:
            return
        song_id = self.rng.choice(sorted(self.throwaway))

        async def call() -> Any:
            reply = await self.send("DELETE", f"/api/songs/{song_id}")
            self.judge(reply, (204,))
            return {f"song:{song_id}": None}, {}, _position(reply)

        outcome = await self.op("delete", call, intended={f"song:{song_id}": None})
        if outcome is not Outcome.FAILED:
            del self.throwaway[song_id]

    async def star(self) -> None:
        """Star (or unstar) one of our songs with its album and artist, in one call."""
        if self.stars is None or not self.kept:
            return
        song, album, artist = self.kept[self.rng.choice(sorted(self.kept))]
        items = {f"song:{song}", f"artist:{artist}"} | ({f"album:{album}"} if album else set())
        like = not items <= set(self.stars)
        after = tuple(sorted(set(self.stars) | items if like else set(self.stars) - items))
        key = f"stars:{self.name}"
        params: dict[str, str | list[str]] = {"id": song, "artistId": artist}
        if album:
            params["albumId"] = album

        async def call() -> Any:
            await self.subsonic("star" if like else "unstar", **params)
            return {key: after or None}, {}, None

        # An app refreshes its view while the star is on its way: a read may land between
        # the parts of the write, and must not see a part of it.
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._soon, self.starred)
            outcome = await self.op(
                "star" if like else "unstar", call, intended={key: after or None}
            )
        await self.starred()  # and at once after it
        if outcome is Outcome.OK:
            self.stars = after
        elif outcome is Outcome.UNKNOWN:
            self.stars = None  # no longer known exactly: write it no more

    async def starred(self) -> None:
        key = f"stars:{self.name}"

        async def call() -> Any:
            doc = (await self.subsonic("getStarred2"))["starred2"]
            seen = [f"artist:{a['id']}" for a in doc.get("artist", [])]
            seen += [f"album:{a['id']}" for a in doc.get("album", [])]
            seen += [f"song:{s['id']}" for s in doc.get("song", [])]
            return {}, {key: tuple(sorted(seen)) or None}, None

        await self.op("getStarred2", call)

    async def playlist(self) -> None:
        """Make a playlist with a song, or rename one and add a song to it, in one call."""
        if not self.kept:
            return
        song = self.rng.choice(sorted(self.kept))
        self.renames += 1
        name = f"{self.name} mix {self.renames}"
        if not self.playlists or (len(self.playlists) < 2 and self.rng.random() < 0.2):
            made: dict[str, Any] = {}

            async def create() -> Any:
                doc = await self.subsonic("createPlaylist", name=name, songId=song)
                made.update(doc["playlist"])
                return {f"playlist:{made['id']}": (name, (song,))}, {}, None

            if await self.op("createPlaylist", create) is Outcome.OK:
                self.playlists[str(made["id"])] = (name, (song,))
            return
        playlist_id = self.rng.choice(sorted(self.playlists))
        after = (name, (*self.playlists[playlist_id][1], song))
        key = f"playlist:{playlist_id}"

        async def update() -> Any:
            await self.subsonic(
                "updatePlaylist", playlistId=playlist_id, name=name, songIdToAdd=song
            )
            return {key: after}, {}, None

        async with anyio.create_task_group() as tg:
            tg.start_soon(self._soon, functools.partial(self.read_playlist, playlist_id))
            outcome = await self.op("updatePlaylist", update, intended={key: after})
        await self.read_playlist(playlist_id)
        if outcome is Outcome.OK:
            self.playlists[playlist_id] = after
        elif outcome is Outcome.UNKNOWN:
            del self.playlists[playlist_id]  # no longer known exactly: write it no more

    async def read_playlist(self, playlist_id: str | None = None) -> None:
        if playlist_id is None:
            if not self.playlists:
                return
            playlist_id = self.rng.choice(sorted(self.playlists))

        async def call() -> Any:
            doc = (await self.subsonic("getPlaylist", id=playlist_id))["playlist"]
            songs = tuple(str(e["id"]) for e in doc.get("entry", []))
            return {}, {f"playlist:{playlist_id}": (doc["name"], songs)}, None

        await self.op("getPlaylist", call)

    async def _soon(self, read: Callable[[], Awaitable[None]]) -> None:
        await anyio.sleep(self.rng.uniform(0.0, 0.3))
        await read()

    async def run(self, stop_at: float) -> None:
        if not await self.setup():
            self.sim.violation(
                f"{self.name}: could not register through the gateway", check=LIVENESS
            )
            return
        steps = [
            (0.25, self.upload),
            (0.35, self.read_song),
            (0.45, self.delete),
            (0.6, self.star),
            (0.72, self.starred),
            (0.88, self.playlist),
            (1.0, self.read_playlist),
        ]
        while self.sim.now() < stop_at:
            await anyio.sleep(self.rng.uniform(0.1, 0.4))
            roll = self.rng.random()
            step = next(fn for limit, fn in steps if roll < limit)
            await step()


def check_sessions(sim: Simulation) -> None:
    """The history checker over the clients without positions (invariant 11)."""
    ops = history(sim)
    report = check(ops)
    for v in report.violations:
        op = ops[v.op] if v.op is not None else None
        where = f"{op.name} {op.invoke:.3f}-{op.complete:.3f}s" if op else "final"
        if v.kind in (ViolationKind.NEVER_WRITTEN, ViolationKind.FAILED_WRITE_SEEN) and (
            v.key.startswith(COMPOSITE)
        ):
            sim.violation(
                f"partial write: {v.client} {where} {v.key}: {v.message}", check=PARTIAL_WRITE
            )
        else:
            sim.violation(
                f"session ({v.kind.value}): {v.client} {where} {v.key}: {v.message}",
                check=SESSIONS,
            )
    if not any(op.ok and op.name == "getStarred2" for op in ops):
        sim.violation("session: no client without positions read its stars", check=SESSIONS)
