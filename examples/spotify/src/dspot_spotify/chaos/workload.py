"""The workload: users of the service, each a thread in the clients' namespace that reaches
the gateways only, recording every operation for :mod:`dspot.history`.

Client kinds:

``rest-session``  the REST API, sending back the newest ``X-Log-Position`` it was given
                  (what the web app does): session guarantees are promised today;
``rest-plain``    the REST API without the header (curl, scripts);
``subsonic``      a Subsonic app: py-opensonic, from PyPI.

Keys of the history (each written by one client only, since only owners may change them):
``song:SHA`` (title; None while absent), ``like:CLIENT:SHA`` (True / None) and
``playlist:ID`` (the tuple of song hashes in order). A REST write answered 2xx is ``ok``,
4xx ``failed``; anything else (5xx, timeouts, broken connections) ``unknown``: it may have
been applied. Downloads are checked byte for byte against the uploaded file.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import io
import json
import random
import ssl
import struct
import threading
import time
import urllib.parse
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
from dspot.history import Operation, Outcome, dump_jsonl

from dspot_spotify.chaos.netns import enter

__all__ = ["CLIENT_KINDS", "Library", "Recorder", "make_song", "run_clients"]

CLIENT_KINDS = ("rest-session", "rest-plain", "subsonic")
TIMEOUT = 10.0
PASSWORD = "chaos-password-1"


def make_song(title: str, artist: str, seed: int) -> bytes:
    """A short WAV tone, tagged with ``title`` and ``artist`` (ID3 chunk, via mutagen)."""
    from mutagen.id3 import TIT2, TPE1
    from mutagen.wave import WAVE

    rng = random.Random(seed)
    rate, seconds = 8000, rng.uniform(0.3, 1.2)
    freq = rng.uniform(200, 900)
    n = int(rate * seconds)
    import math

    frames = b"".join(
        struct.pack("<h", int(12000 * math.sin(2 * math.pi * freq * i / rate))) for i in range(n)
    )
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)
    buf.seek(0)
    audio = WAVE(buf)  # type: ignore[no-untyped-call]
    audio.add_tags()  # type: ignore[no-untyped-call]
    assert audio.tags is not None
    audio.tags.add(TIT2(encoding=3, text=title))
    audio.tags.add(TPE1(encoding=3, text=artist))
    audio.save(buf)
    return buf.getvalue()


class Recorder:
    """The history, appended to from every client thread and written out as it grows."""

    def __init__(self, path: Path, t0: float) -> None:
        self.ops: list[Operation] = []
        self.t0 = t0
        self._lock = threading.Lock()
        self._file = open(path, "w", encoding="utf-8")  # noqa: SIM115

    def now(self) -> float:
        return time.monotonic() - self.t0

    def add(self, op: Operation) -> None:
        with self._lock:
            self.ops.append(op)
            self._file.write(dump_jsonl([op]))
            self._file.flush()

    def close(self) -> None:
        self._file.close()


@attrs.define
class Song:
    sha: str
    data: bytes
    owner: str
    id: str | None = None


class Library:
    """What the clients know of the songs uploaded so far (shared between them)."""

    def __init__(self) -> None:
        self.songs: dict[str, Song] = {}
        self._lock = threading.Lock()

    def add(self, song: Song) -> None:
        with self._lock:
            self.songs[song.sha] = song

    def known(self) -> list[Song]:
        with self._lock:
            return [s for s in self.songs.values() if s.id is not None]

    def by_id(self, song_id: str) -> Song | None:
        with self._lock:
            return next((s for s in self.songs.values() if s.id == song_id), None)


@attrs.define
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Http:
    """Blocking HTTPS requests to the gateways (one connection per request)."""

    def __init__(self, urls: list[str], ca: Path, rng: random.Random) -> None:
        self.urls = [urllib.parse.urlsplit(u) for u in urls]
        self.ctx = ssl.create_default_context(cafile=str(ca))
        self.rng = rng

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        url = self.rng.choice(self.urls)
        assert url.hostname is not None
        conn = http.client.HTTPSConnection(
            url.hostname, url.port, timeout=TIMEOUT, context=self.ctx
        )
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
        finally:
            conn.close()


def _position(text: str | None) -> tuple[int, ...] | None:
    try:
        return tuple(int(x) for x in text.split(".")) if text else None
    except ValueError:
        return None


class Client:
    """One user: a seeded random walk over the operations of its kind."""

    def __init__(
        self,
        name: str,
        kind: str,
        http_: Http,
        library: Library,
        recorder: Recorder,
        rng: random.Random,
    ) -> None:
        self.name = name
        self.kind = kind
        self.http = http_
        self.library = library
        self.rec = recorder
        self.rng = rng
        self.token: str | None = None
        self.position: tuple[int, ...] | None = None
        self.likes: set[str] = set()  # shas this client ever liked or unliked
        self.playlists: dict[str, tuple[str, ...]] = {}  # id -> songs, while known exactly
        self.uploads = 0
        self.edits = 0

    # -- plumbing ----------------------------------------------------------------------------

    def rest(self, method: str, path: str, body: Any = None, raw: bytes | None = None) -> Reply:
        headers = {}
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        if self.kind == "rest-session" and self.position:
            headers["x-log-position"] = ".".join(map(str, self.position))
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            headers["content-type"] = "application/json"
        elif raw is not None:
            headers["content-type"] = "application/octet-stream"
        reply = self.http.request(method, path, data, headers)
        pos = _position(reply.headers.get("x-log-position"))
        if pos and (self.position is None or pos > self.position):
            self.position = pos
        return reply

    def op(
        self,
        name: str,
        call: Callable[[], tuple[Outcome, dict[str, Any], dict[str, Any], Any]],
        **writes: Any,
    ) -> Any:
        """Run ``call`` (returns outcome, writes, reads, detail) and record it."""
        invoke = self.rec.now()
        version = None
        try:
            outcome, written, reads, detail = call()
            if isinstance(detail, dict):
                version = detail.pop("version", None)
        except (OSError, http.client.HTTPException, TimeoutError) as e:
            outcome, written, reads, detail = Outcome.UNKNOWN, {}, {}, {"error": repr(e)}
            written = writes.get("intended", {})
        except _Failed as e:
            outcome, written, reads, detail = e.outcome, writes.get("intended", {}), {}, e.detail
        self.rec.add(
            Operation(
                client=self.name,
                name=name,
                invoke=invoke,
                complete=self.rec.now(),
                outcome=outcome,
                writes=written,
                reads=reads,
                version=version if outcome is Outcome.OK else None,
                detail=detail if isinstance(detail, dict) else {"value": detail},
            )
        )
        return outcome

    def step(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the client holds (connections)."""


class _Failed(Exception):
    def __init__(self, outcome: Outcome, detail: dict[str, Any]) -> None:
        self.outcome = outcome
        self.detail = detail


def _judge(reply: Reply, ok: tuple[int, ...] = (200, 201, 204)) -> None:
    """Raise :class:`_Failed` unless ``reply`` is a success: 4xx failed, else unknown."""
    if reply.status in ok:
        return
    detail = {"status": reply.status, "body": reply.body[:200].decode(errors="replace")}
    outcome = Outcome.FAILED if 400 <= reply.status < 500 else Outcome.UNKNOWN
    raise _Failed(outcome, detail)


class RestClient(Client):
    def setup(self) -> None:
        self.register()

    def register(self) -> None:
        for _ in range(60):
            try:
                r = self.rest(
                    "POST", "/api/auth/register", {"username": self.name, "password": PASSWORD}
                )
                if r.status == 409:
                    r = self.rest(
                        "POST", "/api/auth/login", {"username": self.name, "password": PASSWORD}
                    )
                if r.status in (200, 201):
                    self.token = r.json()["token"]
                    return
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.5)
        raise RuntimeError(f"{self.name} could not register")

    def step(self) -> None:
        known = self.library.known()
        choices = ["upload"] * 3
        if known:
            choices += ["get", "search", "download", "like", "likes", "playlist", "playlist_get"]
        if any(s.owner == self.name for s in known):
            choices += ["edit"] * 2
        getattr(self, "do_" + self.rng.choice(choices))()

    def do_upload(self) -> None:
        self.uploads += 1
        title = f"{self.name}-s{self.uploads}"
        data = make_song(title, f"artist {self.name}", self.rng.getrandbits(32))
        sha = hashlib.sha256(data).hexdigest()
        song = Song(sha, data, self.name)
        self.library.add(song)

        def call() -> Any:
            r = self.rest("POST", f"/api/songs?filename={title}.wav", raw=data)
            _judge(r, (201,))
            doc = r.json()
            song.id = doc["id"]
            ver = _position(r.headers.get("x-log-position"))
            return Outcome.OK, {f"song:{sha}": doc["title"]}, {}, {"id": doc["id"], "version": ver}

        self.op("upload", call, intended={f"song:{sha}": title})

    def do_edit(self) -> None:
        song = self.rng.choice([s for s in self.library.known() if s.owner == self.name])
        self.edits += 1
        title = f"{self.name}-e{self.edits}"

        def call() -> Any:
            r = self.rest("PATCH", f"/api/songs/{song.id}", {"title": title})
            _judge(r, (200,))
            ver = _position(r.headers.get("x-log-position"))
            return Outcome.OK, {f"song:{song.sha}": title}, {}, {"version": ver}

        self.op("edit", call, intended={f"song:{song.sha}": title})

    def do_get(self) -> None:
        song = self.rng.choice(self.library.known())

        def call() -> Any:
            r = self.rest("GET", f"/api/songs/{song.id}")
            if r.status == 404:
                return Outcome.OK, {}, {f"song:{song.sha}": None}, {"status": 404}
            _judge(r, (200,))
            return Outcome.OK, {}, {f"song:{song.sha}": r.json()["title"]}, {}

        self.op("get", call)

    def do_search(self) -> None:
        owner = self.rng.choice(self.library.known()).owner

        def call() -> Any:
            r = self.rest("GET", f"/api/songs?q={owner}&limit=200")
            _judge(r, (200,))
            reads = {}
            for item in r.json()["items"]:
                reads[f"song:{item['blob_sha256']}"] = item["title"]
            return Outcome.OK, {}, reads, {}

        self.op("search", call)

    def do_download(self) -> None:
        song = self.rng.choice(self.library.known())

        def call() -> Any:
            r = self.rest("GET", f"/api/songs/{song.id}/stream")
            _judge(r, (200,))
            digest = hashlib.sha256(r.body).hexdigest()
            return Outcome.OK, {}, {}, {"song": song.sha, "got": digest, "bytes": len(r.body)}

        self.op("download", call)

    def do_like(self) -> None:
        song = self.rng.choice(self.library.known())
        like = song.sha not in self.likes or self.rng.random() < 0.5
        self.likes.add(song.sha)
        key = f"like:{self.name}:{song.sha}"

        def call() -> Any:
            r = self.rest("PUT" if like else "DELETE", f"/api/songs/{song.id}/like")
            _judge(r, (200,))
            ver = _position(r.headers.get("x-log-position"))
            return Outcome.OK, {key: True if like else None}, {}, {"version": ver}

        self.op("like" if like else "unlike", call, intended={key: True if like else None})

    def do_likes(self) -> None:
        def call() -> Any:
            r = self.rest("GET", "/api/me/likes?limit=500")
            _judge(r, (200,))
            liked = {i["blob_sha256"] for i in r.json()["items"]}
            reads = {f"like:{self.name}:{s}": (True if s in liked else None) for s in self.likes}
            return Outcome.OK, {}, reads, {}

        self.op("likes", call)

    def do_playlist(self) -> None:
        if not self.playlists or self.rng.random() < 0.2:

            def create() -> Any:
                r = self.rest("POST", "/api/playlists", {"name": f"{self.name} mix"})
                _judge(r, (201,))
                pid = r.json()["id"]
                self.playlists[pid] = ()
                ver = _position(r.headers.get("x-log-position"))
                return Outcome.OK, {f"playlist:{pid}": ()}, {}, {"version": ver}

            self.op("playlist_create", create)
            return
        pid = self.rng.choice(sorted(self.playlists))
        song = self.rng.choice(self.library.known())
        after = (*self.playlists[pid], song.sha)

        def add() -> Any:
            r = self.rest("POST", f"/api/playlists/{pid}/songs", {"song_id": song.id})
            _judge(r, (201,))
            self.playlists[pid] = after
            ver = _position(r.headers.get("x-log-position"))
            return Outcome.OK, {f"playlist:{pid}": after}, {}, {"version": ver}

        if self.op("playlist_add", add, intended={f"playlist:{pid}": after}) is Outcome.UNKNOWN:
            del self.playlists[pid]  # its content is no longer known exactly: stop writing it

    def do_playlist_get(self) -> None:
        if not self.playlists:
            return self.do_get()
        pid = self.rng.choice(sorted(self.playlists))

        def call() -> Any:
            r = self.rest("GET", f"/api/playlists/{pid}")
            if r.status == 404:
                return Outcome.OK, {}, {f"playlist:{pid}": None}, {"status": 404}
            _judge(r, (200,))
            shas = tuple(i["song"]["blob_sha256"] for i in r.json()["items"])
            return Outcome.OK, {}, {f"playlist:{pid}": shas}, {}

        self.op("playlist_get", call)
        return None


class SubsonicClient(Client):
    """py-opensonic's asyncio connection, on an event loop of this thread."""

    def setup(self) -> None:
        RestClient.register(self)  # type: ignore[arg-type]
        r = self.rest("GET", "/api/me/subsonic")
        _judge(r, (200,))
        creds = r.json()
        self.loop = asyncio.new_event_loop()
        self.conns = [self._connect(u, creds) for u in self.http.urls]
        for _ in range(60):  # the credentials replicate to every node
            try:
                if all(self.call(c.ping()) for c in self.conns):
                    return
            except Exception:
                pass
            time.sleep(0.5)

    def _connect(self, url: urllib.parse.SplitResult, creds: dict[str, Any]) -> Any:
        import aiohttp
        from libopensonic import AsyncConnection  # type: ignore[import-untyped]

        conn = AsyncConnection(
            f"https://{url.hostname}",
            username=creds.get("username", self.name),
            password=creds["password"],
            port=url.port or 443,
            app_name="dspot-chaos",
        )
        conn._timeout = aiohttp.ClientTimeout(total=TIMEOUT)

        async def session() -> Any:  # trusting the run's CA (the library takes no SSL options)
            return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self.http.ctx))

        conn._sess = self.loop.run_until_complete(session())
        return conn

    def close(self) -> None:
        for c in getattr(self, "conns", []):
            self.loop.run_until_complete(c.cleanup())
        if hasattr(self, "loop"):
            self.loop.close()

    def call(self, coro: Any) -> Any:
        return self.loop.run_until_complete(asyncio.wait_for(coro, TIMEOUT + 1))

    def conn(self) -> Any:
        return self.rng.choice(self.conns)

    def step(self) -> None:
        if not self.library.known():
            time.sleep(0.5)
            return
        choices = ["star", "starred", "playlist", "playlist_get", "get", "search", "download"]
        getattr(self, "do_" + self.rng.choice(choices))()

    def sonic(self, name: str, body: Callable[[Any], Any], **intended: Any) -> Outcome:
        from libopensonic import errors

        def call() -> Any:
            try:
                return body(self.conn())
            except errors.DataNotFoundError as e:
                raise _Failed(Outcome.FAILED, {"error": repr(e)}) from None
            except errors.SonicError as e:
                raise _Failed(Outcome.UNKNOWN, {"error": repr(e)}) from None
            except Exception as e:  # aiohttp errors: may or may not have been applied
                if isinstance(e, _Failed):
                    raise
                raise _Failed(Outcome.UNKNOWN, {"error": repr(e)}) from None

        return self.op(name, call, **intended)  # type: ignore[no-any-return]

    def do_star(self) -> None:
        song = self.rng.choice(self.library.known())
        star = song.sha not in self.likes or self.rng.random() < 0.5
        self.likes.add(song.sha)
        key = f"like:{self.name}:{song.sha}"

        def body(c: Any) -> Any:
            self.call(c.star(sids=[song.id]) if star else c.unstar(sids=[song.id]))
            return Outcome.OK, {key: True if star else None}, {}, {}

        self.sonic("star" if star else "unstar", body, intended={key: True if star else None})

    def do_starred(self) -> None:
        def body(c: Any) -> Any:
            got = self.call(c.get_starred2())
            ids = {s.id for s in (got.song or [])}
            reads = {}
            for sha in self.likes:
                song = self.library.songs[sha]
                reads[f"like:{self.name}:{sha}"] = True if song.id in ids else None
            return Outcome.OK, {}, reads, {}

        self.sonic("starred", body)

    def do_playlist(self) -> None:
        song = self.rng.choice(self.library.known())
        if not self.playlists or self.rng.random() < 0.2:

            def create(c: Any) -> Any:
                pl = self.call(c.create_playlist(name=f"{self.name} mix", song_ids=[song.id]))
                self.playlists[pl.id] = (song.sha,)
                return Outcome.OK, {f"playlist:{pl.id}": (song.sha,)}, {}, {}

            self.sonic("playlist_create", create)
            return
        pid = self.rng.choice(sorted(self.playlists))
        after = (*self.playlists[pid], song.sha)

        def add(c: Any) -> Any:
            self.call(c.update_playlist(pid, song_ids_to_add=[song.id]))
            self.playlists[pid] = after
            return Outcome.OK, {f"playlist:{pid}": after}, {}, {}

        if self.sonic("playlist_add", add, intended={f"playlist:{pid}": after}) is Outcome.UNKNOWN:
            del self.playlists[pid]

    def do_playlist_get(self) -> None:
        if not self.playlists:
            return self.do_get()
        pid = self.rng.choice(sorted(self.playlists))

        def body(c: Any) -> Any:
            pl = self.call(c.get_playlist(pid))
            shas = []
            for e in pl.entry or []:
                s = self.library.by_id(e.id)
                shas.append(s.sha if s else f"unknown:{e.id}")
            return Outcome.OK, {}, {f"playlist:{pid}": tuple(shas)}, {}

        self.sonic("playlist_get", body)
        return None

    def do_get(self) -> None:
        song = self.rng.choice(self.library.known())

        def body(c: Any) -> Any:
            from libopensonic import errors

            try:
                got = self.call(c.get_song(song.id))
            except errors.DataNotFoundError:
                return Outcome.OK, {}, {f"song:{song.sha}": None}, {"status": 70}
            return Outcome.OK, {}, {f"song:{song.sha}": got.title}, {}

        self.sonic("get", body)

    def do_search(self) -> None:
        owner = self.rng.choice(self.library.known()).owner

        def body(c: Any) -> Any:
            got = self.call(c.search3(owner, artist_count=0, album_count=0, song_count=200))
            reads = {}
            for s in got.song or []:
                known = self.library.by_id(s.id)
                if known is not None:
                    reads[f"song:{known.sha}"] = s.title
            return Outcome.OK, {}, reads, {}

        self.sonic("search", body)

    def do_download(self) -> None:
        song = self.rng.choice(self.library.known())

        def body(c: Any) -> Any:
            async def fetch() -> bytes:
                res = await c.download(song.id)
                return bytes(await res.read())

            data = self.call(fetch())
            digest = hashlib.sha256(data).hexdigest()
            return Outcome.OK, {}, {}, {"song": song.sha, "got": digest, "bytes": len(data)}

        self.sonic("download", body)


def run_clients(
    *,
    namespace: str,
    gateway_urls: list[str],
    ca: Path,
    kinds: list[str],
    seed: int,
    recorder: Recorder,
    library: Library,
    stop: threading.Event,
    errors: list[str],
) -> list[tuple[Client, threading.Thread]]:
    """Start one thread per client (in ``namespace``); they run until ``stop`` is set."""
    threads: list[tuple[Client, threading.Thread]] = []
    for i, kind in enumerate(kinds):
        name = f"c{i + 1}-{kind}"
        rng = random.Random(f"{seed}/{name}")
        cls: type[Client] = SubsonicClient if kind == "subsonic" else RestClient
        client = cls(name, kind, Http(gateway_urls, ca, rng), library, recorder, rng)

        def loop(client: Client = client) -> None:
            try:
                enter(namespace)
                client.setup()  # type: ignore[attr-defined]
                while not stop.is_set():
                    client.step()
                    time.sleep(client.rng.uniform(0.05, 0.3))
            except Exception as e:
                errors.append(f"{client.name}: {e!r}")
            finally:
                client.close()

        t = threading.Thread(target=loop, name=name, daemon=True)
        t.start()
        threads.append((client, t))
    return threads
