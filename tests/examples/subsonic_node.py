"""One Spotify node on loopback TCP in a background thread, and blocking helpers to talk to
it as the Subsonic client libraries do (shared by the Subsonic tests)."""

from __future__ import annotations

import hashlib
import json
import random
import threading
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import anyio
import attrs
import libopensonic
import libsonic
import trio
from dspot_spotify.auth import ScryptParams
from dspot_spotify.demo import encode_audio, make_cover_png, synthesize, tag_file
from dspot_spotify.node import NodeConfig
from mutagen.flac import FLAC

from dspot.blobstore import BlobStoreConfig
from dspot.disk import LocalDisk
from tests.examples.simcluster import solo_node

CONFIG = NodeConfig(
    cluster_size=1,
    scrypt=ScryptParams(n=2**4),
    blobstore=BlobStoreConfig(
        chunk_size=32 * 1024, read_size=16 * 1024, replicas=1, write_quorum=1
    ),
    max_upload=2 * 1024 * 1024,
)
ADMIN = ("admin", "admin web password")
ALICE = ("alice", "alice web password")
BOB = ("bob", "bob web password")  # never asks for Subsonic credentials
COVER = make_cover_png(random.Random(8), 32)


@contextmanager
def running_node(data: Path) -> Iterator[NodeThread]:
    """A :class:`NodeThread` on ``data``, started, and closed at the end."""
    node = NodeThread(data)
    node.start()
    try:
        yield node
    finally:
        node.close()


class NodeThread:
    """A single-node cluster on loopback TCP, run by trio in a background thread, so the
    (blocking) client libraries can talk to it from the test."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.ready = threading.Event()
        self.base = ""
        self.error: BaseException | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="subsonic-node", daemon=True)

    def start(self) -> None:
        self._thread.start()
        if not self.ready.wait(30):
            raise TimeoutError("the node did not start")
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as e:  # surfaced by start()/close()
            self.error = e
            self.ready.set()

    async def _main(self) -> None:
        disk = await LocalDisk.open(self.data / "disk")
        node = solo_node(disk, CONFIG)
        self._token = trio.lowlevel.current_trio_token()
        self._stop = trio.Event()
        try:
            async with anyio.create_task_group() as tg:
                await tg.start(node.run)
                with anyio.fail_after(20):  # a lone node elects itself token holder
                    while True:
                        if node.has_quorum() and node.ring.holder:
                            break
                        await anyio.sleep(0.05)
                self.base = f"http://{node.http_bound_address}"
                self.ready.set()
                await self._stop.wait()
                tg.cancel_scope.cancel()
        finally:
            await disk.aclose()

    @property
    def address(self) -> tuple[str, int]:
        """The node's HTTP host and port."""
        host, _, port = self.base.removeprefix("http://").rpartition(":")
        return host, int(port)

    def close(self) -> None:
        if self._token is not None and self._stop is not None:
            trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
        self._thread.join(20)
        assert not self._thread.is_alive()
        if self.error is not None:
            raise self.error


# -- plain HTTP helpers ----------------------------------------------------------------------


@attrs.frozen
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def subsonic(self) -> dict[str, Any]:
        doc: dict[str, Any] = self.json()["subsonic-response"]
        return doc


def http(
    url: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return Reply(resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read())
    except urllib.error.HTTPError as e:
        with e:
            return Reply(e.code, {k.lower(): v for k, v in e.headers.items()}, e.read())


def api_json(url: str, *, method: str = "GET", obj: Any = None, token: str | None = None) -> Any:
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    body = None if obj is None else json.dumps(obj).encode()
    reply = http(url, method=method, body=body, headers=headers)
    assert reply.status < 300, reply.body
    return reply.json()


@attrs.frozen
class User:
    username: str
    web_password: str
    token: str
    subsonic_password: str | None = None
    api_key: str | None = None


@attrs.frozen
class Server:
    base: str
    host: str
    port: int
    admin: User
    alice: User
    bob: User
    songs: dict[str, bytes]  # song id -> uploaded bytes
    ids: dict[str, str]  # title -> song id
    data: Path  # the node's data directory

    def rest(self, name: str, **params: Any) -> str:
        return f"{self.base}/rest/{name}?{urlencode(params, doseq=True)}"

    def sonic(self, user: User, *, legacy: bool = False, web: bool = False) -> Any:
        """A py-sonic connection (form POSTs to ``NAME.view``): token auth by default,
        ``p=enc:...`` when ``legacy``. (Its ``useGET`` mode is broken: it names urllib2.)"""
        password = user.web_password if web else user.subsonic_password
        return libsonic.Connection(
            f"http://{self.host}",
            user.username,
            password,
            port=self.port,
            legacyAuth=legacy,
            appName="dspot-test",
        )

    def token_params(self, user: User, **extra: Any) -> dict[str, Any]:
        assert user.subsonic_password is not None
        salt = "c19b2d"
        token = hashlib.md5((user.subsonic_password + salt).encode()).hexdigest()
        return {"u": user.username, "t": token, "s": salt, "v": "1.16.1", "c": "test", **extra}


@contextmanager
def opensonic(server: Server, **kw: Any) -> Iterator[Any]:
    """A py-opensonic (sync) connection; it runs aiohttp on an event loop of its own."""
    conn = libopensonic.Connection(
        f"http://{server.host}", port=server.port, app_name="dspot-test", **kw
    )
    try:
        yield conn
    finally:
        conn.cleanup()
        conn._loop.close()  # cleanup() stops its private loop but never closes it


def make_song(
    path: Path,
    title: str,
    album: str | None,
    track: int,
    year: int,
    genre: str,
    *,
    artist: str = "The Replicas",
    cover: bytes | None = None,
    lyrics: str | None = None,
) -> bytes:
    """A second of FLAC (the same for the same title) tagged so, written to ``path``; its
    bytes."""
    rng = random.Random(zlib.crc32(title.encode()))
    path.write_bytes(encode_audio(synthesize(rng, 1.0), 22050, "flac"))
    tag_file(
        path,
        title=title,
        artist=artist,
        album=album,
        track=track,
        year=year,
        genre=genre,
        cover=cover,
    )
    if lyrics is not None:
        tagged = FLAC(path)
        tagged["lyrics"] = lyrics
        tagged.save()
    return path.read_bytes()


def upload(base: str, token: str, audio: bytes, filename: str) -> dict[str, Any]:
    """``POST /api/songs`` of ``audio`` as ``filename``; the new song (asserts 201)."""
    reply = http(
        f"{base}/api/songs?filename={quote(filename)}",
        method="POST",
        body=audio,
        headers={"authorization": f"Bearer {token}"},
    )
    assert reply.status == 201, reply.body
    song: dict[str, Any] = reply.json()
    return song


def register(base: str, username: str, password: str) -> User:
    body = api_json(
        f"{base}/api/auth/register", method="POST", obj={"username": username, "password": password}
    )
    return User(username, password, body["token"])


def with_subsonic(base: str, user: User) -> User:
    creds = api_json(f"{base}/api/me/subsonic", token=user.token)
    assert creds["username"] == user.username
    return attrs.evolve(user, subsonic_password=creds["password"], api_key=creds["api_key"])
