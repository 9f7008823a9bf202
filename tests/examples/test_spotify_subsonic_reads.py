"""A Subsonic call shows one state of the catalog, even when a write lands between its
reads (found by the service's simulation, seed 360: ``getPlaylist`` gave the old name and
song count with the new songs)."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import anyio
from dspot_spotify import catalog as c
from dspot_spotify.subsonic import lists
from dspot_spotify.subsonic.call import Call
from dspot_spotify.subsonic.protocol import Params

from .catalog_log import Log, seed_music
from .conftest import Db


class WriteBetweenReads:
    """A replica whose reads run on ``db``; right after the first one, ``write`` lands."""

    def __init__(self, db: Db, write: Callable[[], None]) -> None:
        self.db = db
        self.write = write
        self.reads = 0

    async def read(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with self.db.tx() as tx:
            result = fn(tx, *args, **kwargs)
        self.reads += 1
        if self.reads == 1:
            self.write()
        return result


def test_get_playlist_shows_its_name_count_and_songs_from_one_snapshot(db: Db, log: Log) -> None:
    seed_music(log)
    log.ok(c.CreatePlaylist(actor="ana", at=log.at(), playlist_id="p1", name="mix 1"))
    log.ok(c.AddToPlaylist(actor="ana", at=log.at(), playlist_id="p1", item_id="i1", song_id="s1"))

    def rename_and_add() -> None:  # one entry, as Subsonic's updatePlaylist writes it
        changes = [
            c.RenamePlaylist(playlist_id="p1", name="mix 2"),
            c.AddToPlaylist(playlist_id="p1", item_id="i2", song_id="s2"),
        ]
        log.ok(c.Batch.of(changes, actor="ana", at=log.at()))

    replica = WriteBetweenReads(db, rename_and_add)
    ana = c.get_user(db.q, "ana")
    call = Call(
        SimpleNamespace(replica=replica),  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]  # no writes
        None,  # type: ignore[arg-type]
        Params((("id", "p1"),)),
        ana,
        endpoint="getPlaylist",
    )

    async def get() -> Any:
        return await lists.get_playlist(call)

    playlist = anyio.run(get)["playlist"]
    assert replica.reads >= 2  # the write did land between two of the call's reads
    shown = (playlist["name"], playlist["songCount"], [e["id"] for e in playlist["entry"]])
    assert shown == ("mix 2", 2, ["s1", "s2"])
