"""The workload: users of the service, each a thread in the clients' namespace that reaches
the gateways only, recording every operation for :mod:`dspot.history`.

Client kinds:

``rest-session``  the REST API, sending back the newest ``X-Log-Position`` it was given
                  (what the web app does): session guarantees are promised today;
``rest-plain``    the REST API without the header (curl, scripts);
``subsonic``      a Subsonic app: py-opensonic, from PyPI.

The two kinds without the header keep one gateway until it fails (their sessions are that
gateway's: ``cN-KIND@gM`` in the history); ``rest-session`` picks a gateway per request.

Keys of the history (each written by one client only, since only owners may change them):
``song:SHA`` (title; None while absent), ``like:CLIENT:SHA`` (True / None) and
``playlist:ID`` (the tuple of song hashes in order). A REST write answered 2xx is ``ok``,
4xx ``failed``; anything else (5xx, timeouts, broken connections) ``unknown``: it may have
been applied. Downloads are checked byte for byte against the uploaded file.

The ``subsonic`` kind is in :mod:`~dspot_spotify.chaos.subsonic`; the threads that run the
clients are started by :mod:`~dspot_spotify.chaos.clients`.
"""

from __future__ import annotations

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

__all__ = [
    "CLIENT_KINDS",
    "Client",
    "Failed",
    "Http",
    "Library",
    "Recorder",
    "RestClient",
    "judge",
    "make_song",
]

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
    """Blocking HTTPS requests to the gateways (one connection per request): to any of them
    at random, or (``sticky``) to one home gateway until it fails, then the next."""

    def __init__(
        self, urls: list[str], ca: Path, rng: random.Random, *, sticky: bool = False
    ) -> None:
        self.urls = [urllib.parse.urlsplit(u) for u in urls]
        self.ctx = ssl.create_default_context(cafile=str(ca))
        self.rng = rng
        self.sticky = sticky
        self.home = rng.randrange(len(self.urls))

    @property
    def gateway(self) -> str:
        """The home gateway's name (``g1``...)."""
        return f"g{self.home + 1}"

    def pick(self) -> urllib.parse.SplitResult:
        return self.urls[self.home] if self.sticky else self.rng.choice(self.urls)

    def failed(self) -> None:
        """The home gateway did not answer: move to the next."""
        self.home = (self.home + 1) % len(self.urls)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        url = self.pick()
        assert url.hostname is not None
        conn = http.client.HTTPSConnection(
            url.hostname, url.port, timeout=TIMEOUT, context=self.ctx
        )
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
        except (OSError, http.client.HTTPException):
            if self.sticky:
                self.failed()
            raise
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

    @property
    def session(self) -> str:
        """The name its operations are checked under: a client that keeps its gateway is a
        session of that gateway (``cN-KIND@gM``)."""
        return f"{self.name}@{self.http.gateway}" if self.http.sticky else self.name

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
        except Failed as e:
            outcome, written, reads, detail = e.outcome, writes.get("intended", {}), {}, e.detail
        self.rec.add(
            Operation(
                client=self.session,
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


class Failed(Exception):
    def __init__(self, outcome: Outcome, detail: dict[str, Any]) -> None:
        self.outcome = outcome
        self.detail = detail


def judge(reply: Reply, ok: tuple[int, ...] = (200, 201, 204)) -> None:
    """Raise :class:`Failed` unless ``reply`` is a success: 4xx failed, else unknown."""
    if reply.status in ok:
        return
    detail = {"status": reply.status, "body": reply.body[:200].decode(errors="replace")}
    outcome = Outcome.FAILED if 400 <= reply.status < 500 else Outcome.UNKNOWN
    raise Failed(outcome, detail)


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
            judge(r, (201,))
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
            judge(r, (200,))
            ver = _position(r.headers.get("x-log-position"))
            return Outcome.OK, {f"song:{song.sha}": title}, {}, {"version": ver}

        self.op("edit", call, intended={f"song:{song.sha}": title})

    def do_get(self) -> None:
        song = self.rng.choice(self.library.known())

        def call() -> Any:
            r = self.rest("GET", f"/api/songs/{song.id}")
            if r.status == 404:
                return Outcome.OK, {}, {f"song:{song.sha}": None}, {"status": 404}
            judge(r, (200,))
            return Outcome.OK, {}, {f"song:{song.sha}": r.json()["title"]}, {}

        self.op("get", call)

    def do_search(self) -> None:
        owner = self.rng.choice(self.library.known()).owner

        def call() -> Any:
            r = self.rest("GET", f"/api/songs?q={owner}&limit=200")
            judge(r, (200,))
            reads = {}
            for item in r.json()["items"]:
                reads[f"song:{item['blob_sha256']}"] = item["title"]
            return Outcome.OK, {}, reads, {}

        self.op("search", call)

    def do_download(self) -> None:
        song = self.rng.choice(self.library.known())

        def call() -> Any:
            r = self.rest("GET", f"/api/songs/{song.id}/stream")
            judge(r, (200,))
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
            judge(r, (200,))
            ver = _position(r.headers.get("x-log-position"))
            return Outcome.OK, {key: True if like else None}, {}, {"version": ver}

        self.op("like" if like else "unlike", call, intended={key: True if like else None})

    def do_likes(self) -> None:
        def call() -> Any:
            r = self.rest("GET", "/api/me/likes?limit=500")
            judge(r, (200,))
            liked = {i["blob_sha256"] for i in r.json()["items"]}
            reads = {f"like:{self.name}:{s}": (True if s in liked else None) for s in self.likes}
            return Outcome.OK, {}, reads, {}

        self.op("likes", call)

    def do_playlist(self) -> None:
        if not self.playlists or self.rng.random() < 0.2:

            def create() -> Any:
                r = self.rest("POST", "/api/playlists", {"name": f"{self.name} mix"})
                judge(r, (201,))
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
            judge(r, (201,))
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
            judge(r, (200,))
            shas = tuple(i["song"]["blob_sha256"] for i in r.json()["items"])
            return Outcome.OK, {}, {f"playlist:{pid}": shas}, {}

        self.op("playlist_get", call)
        return None
