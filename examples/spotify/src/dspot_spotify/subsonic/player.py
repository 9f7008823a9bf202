"""Subsonic endpoints of what a user's players keep in the catalog, so it follows the user
to every device and node: ratings, bookmarks, the play queue ("resume on another device")
and what each player plays now.

Each write is one log entry. "Now playing" (``scrobble`` with ``submission=false``) is best
effort: on a minority side, or when the write fails, the call still succeeds.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Mapping
from typing import Any, Final

from dspot.http import HTTPError

from dspot_spotify import catalog
from dspot_spotify.subsonic.call import Call, Endpoint, children, songs_by_id
from dspot_spotify.subsonic.protocol import (
    GENERIC,
    MISSING_PARAMETER,
    NOT_FOUND,
    SubsonicError,
    iso,
)

__all__ = ["ENDPOINTS", "record_now_playing"]

UNNAMED_CLIENT: Final = "unknown client"


def _client(call: Call) -> str:
    """The client's name (``c``), as far as the catalog can keep it."""
    name = " ".join((call.params.get("c") or "").split())[:100]
    return name if name and name.isprintable() else UNNAMED_CLIENT


async def record_now_playing(call: Call, song_id: str) -> None:
    """Note that the caller's client plays ``song_id`` now (best effort, see above)."""
    if not call.node.has_quorum():
        return
    entry = catalog.NowPlaying(
        actor=call.me.id, at=call.node.now_ms(), song_id=song_id, client=_client(call)
    )
    try:
        await call.commit(entry)
    except HTTPError as e:
        call.node.env.log(logging.INFO, "subsonic.now_playing_not_recorded", status=e.status)


async def get_now_playing(call: Call) -> Mapping[str, Any]:
    me = call.me
    now = call.node.now_ms()

    def query(tx: catalog.Tx) -> list[dict[str, Any]]:
        playing = catalog.now_playing(tx, now)
        songs = {s.id: s for s in songs_by_id(tx, [p.song_id for p in playing])}
        entries = children(tx, me.id, [songs[p.song_id] for p in playing])
        return [
            {
                **entry,
                "username": p.username,
                "minutesAgo": max(0, now - p.at) // 60_000,
                "playerId": zlib.crc32(f"{p.user_id}\0{p.client}".encode()) & 0x7FFFFFFF,
                "playerName": p.client,
            }
            for p, entry in zip(playing, entries, strict=True)
        ]

    return {"nowPlaying": {"entry": await call.read(query)}}


async def get_play_queue(call: Call) -> Mapping[str, Any]:
    me = call.me

    def query(tx: catalog.Tx) -> Mapping[str, Any]:
        queue = catalog.play_queue(tx, me.id)
        if queue is None:  # nothing saved: an empty queue (clients expect the element)
            return {"playQueue": {"username": me.username, "changed": iso(0), "changedBy": ""}}
        return {
            "playQueue": {
                "current": queue.current,
                "position": queue.position,
                "username": me.username,
                "changed": iso(queue.changed_at),
                "changedBy": queue.changed_by,
                "entry": children(tx, me.id, songs_by_id(tx, list(queue.song_ids))),
            }
        }

    return await call.read(query)


async def save_play_queue(call: Call) -> Mapping[str, Any]:
    p = call.params
    asked = [i for i in p.all("id") if i]
    current = p.get("current") or None
    position = p.number("position", 0)
    if len(asked) > catalog.QUEUE_MAX:
        raise SubsonicError(GENERIC, f"a play queue holds at most {catalog.QUEUE_MAX} songs")
    # Songs deleted since the client queued them are left out rather than refused, so an
    # old queue can still be saved.
    known = {s.id for s in await call.read(songs_by_id, list(dict.fromkeys(asked)))}
    ids = tuple(i for i in asked if i in known)
    if current is not None and current not in asked:
        raise SubsonicError(GENERIC, "current must be one of the queued ids")
    entry = catalog.SavePlayQueue(
        actor=call.me.id,
        at=call.node.now_ms(),
        song_ids=ids,
        current=current if current in known else None,
        position=position if current in known else 0,
        client=_client(call),
    )
    await call.commit(entry)
    return {}


async def get_bookmarks(call: Call) -> Mapping[str, Any]:
    me = call.me

    def query(tx: catalog.Tx) -> list[dict[str, Any]]:
        marks = catalog.bookmarks(tx, me.id)
        songs = {s.id: s for s in songs_by_id(tx, [b.song_id for b in marks])}
        marks = [b for b in marks if b.song_id in songs]
        entries = children(tx, me.id, [songs[b.song_id] for b in marks])
        return [
            {
                "position": b.position,
                "username": me.username,
                "comment": b.comment,
                "created": iso(b.created_at),
                "changed": iso(b.changed_at),
                "entry": entry,
            }
            for b, entry in zip(marks, entries, strict=True)
        ]

    return {"bookmarks": {"bookmark": await call.read(query)}}


async def create_bookmark(call: Call) -> Mapping[str, Any]:
    p = call.params
    song = await call.song(p.require("id"))
    p.require("position")
    entry = catalog.SetBookmark(
        actor=call.me.id,
        at=call.node.now_ms(),
        song_id=song.id,
        position=p.number("position", 0),
        comment=p.get("comment") or None,
    )
    await call.commit(entry)
    return {}


async def delete_bookmark(call: Call) -> Mapping[str, Any]:
    song_id = call.params.require("id")
    entry = catalog.DeleteBookmark(actor=call.me.id, at=call.node.now_ms(), song_id=song_id)
    await call.commit(entry)
    return {}


def what_is(tx: catalog.Tx, item_id: str) -> catalog.LikeTarget | None:
    """Whether ``item_id`` names a song, an album or an artist (None: nothing)."""
    kinds: tuple[catalog.LikeTarget, ...] = ("song", "album", "artist")
    return next((k for k in kinds if catalog.exists(tx, k, item_id)), None)


async def set_rating(call: Call) -> Mapping[str, Any]:
    p = call.params
    item_id = p.require("id")
    if p.get("rating") in (None, ""):
        raise SubsonicError(MISSING_PARAMETER, "required parameter is missing: rating")
    rating = p.number("rating", 0)
    if rating > 5:
        raise SubsonicError(GENERIC, "rating must be 0 (none) to 5")
    target = await call.read(what_is, item_id)
    if target is None:
        raise SubsonicError(NOT_FOUND, f"no song, album or artist {item_id}")
    entry = catalog.Rate(
        actor=call.me.id, at=call.node.now_ms(), target=target, target_id=item_id, rating=rating
    )
    await call.commit(entry)
    return {}


ENDPOINTS: Final[Mapping[str, Endpoint]] = {
    "getNowPlaying": get_now_playing,
    "getPlayQueue": get_play_queue,
    "savePlayQueue": save_play_queue,
    "getBookmarks": get_bookmarks,
    "createBookmark": create_bookmark,
    "deleteBookmark": delete_bookmark,
    "setRating": set_rating,
}
