"""The ``subsonic`` client kind of the chaos workload: a Subsonic app (py-opensonic, from
PyPI) on an asyncio event loop of its own thread, recording into the same history."""

from __future__ import annotations

import asyncio
import hashlib
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from dspot.history import Outcome

from dspot_spotify.chaos.workload import TIMEOUT, Client, Failed, RestClient, judge

__all__ = ["SubsonicClient"]


class SubsonicClient(Client):
    """py-opensonic's asyncio connection, on an event loop of this thread."""

    def setup(self) -> None:
        RestClient.register(self)  # type: ignore[arg-type]
        # Set-up, not a checked operation: a node that has not applied the registration yet
        # does not know the account (401) or says it is behind (503); ask until one does.
        for _ in range(20):
            r = self.rest("GET", "/api/me/subsonic")
            if r.status not in (401, 503):
                break
            time.sleep(0.5)
        judge(r, (200,))
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
                raise Failed(Outcome.FAILED, {"error": repr(e)}) from None
            except errors.SonicError as e:
                raise Failed(Outcome.UNKNOWN, {"error": repr(e)}) from None
            except Exception as e:  # aiohttp errors: may or may not have been applied
                if isinstance(e, Failed):
                    raise
                raise Failed(Outcome.UNKNOWN, {"error": repr(e)}) from None

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
