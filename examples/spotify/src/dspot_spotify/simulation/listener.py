"""A listener: a user who plays, likes and collects songs, so that the catalog log grows
(and compacts) with many small writes, each read back on a random node."""

from __future__ import annotations

from typing import Any

import anyio

from dspot_spotify.simulation.checknames import READ_YOUR_WRITES
from dspot_spotify.simulation.workload import Client, format_pos, songs

__all__ = ["Listener"]


class Listener(Client):
    """A user who plays, likes and collects the songs others uploaded: many small catalog
    writes (so the log grows and compacts), each read back with its log position on a
    random node — often one that has just installed a snapshot."""

    async def run(self, stop_at: float) -> None:
        registered = False
        while not registered and self.sim.now() < stop_at:
            registered = await self.register()
        playlist: str | None = None
        while self.sim.now() < stop_at:
            await anyio.sleep(self.rng.uniform(0.05, 0.25))
            known = sorted(s.song_id for s in songs(self.sim).values() if s.pos is not None)
            if not known:
                continue
            song = self.rng.choice(known)
            action = self.rng.choice(("play", "like", "playlist"))
            if action == "playlist" and playlist is None:
                reply = await self.send(
                    "playlist",
                    "POST",
                    "/api/playlists",
                    json={"name": f"{self.name} mix"},
                    headers=self.headers(),
                )
                if reply is not None and reply.status == 201:
                    self.see(reply)
                    playlist = reply.json()["id"]
                    self.ok("playlist")
                elif reply is not None:
                    self.unexpected("playlist", reply)
                continue
            if action == "playlist":
                method, path = "POST", f"/api/playlists/{playlist}/songs"
                body: Any = {"song_id": song}
            elif action == "like":
                method, path, body = "PUT", f"/api/songs/{song}/like", None
            else:
                method, path, body = "POST", f"/api/songs/{song}/plays", None
            reply = await self.send(action, method, path, json=body, headers=self.headers())
            if reply is None:
                continue
            if reply.status not in (200, 201):
                self.unexpected(action, reply)
                continue
            self.see(reply)
            self.ok(action)
            if action == "like":
                await self._read_like(song)

    async def _read_like(self, song: str) -> None:
        """Read your write: any node, given our position, lists the song among our likes."""
        reply = await self.send("likes", "GET", "/api/me/likes?limit=200", headers=self.headers())
        if reply is None:
            return
        if reply.status != 200:
            self.unexpected("likes", reply)
            return
        liked = {item["id"] for item in reply.json()["items"]}
        if song not in liked:
            self.sim.violation(
                f"{self.name}: {reply.node} does not list {song} among the likes acknowledged "
                f"to this client (read your writes at {format_pos(self.pos)})",
                check=READ_YOUR_WRITES,
            )
        self.ok("likes")
