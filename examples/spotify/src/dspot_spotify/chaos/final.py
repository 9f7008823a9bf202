"""After every fault healed: wait for the nodes to converge, then read the final state.

The nodes are read directly from the ``ops`` host on the internal network (one catalog per
node, compared); the users' final likes and playlists and every song's bytes are read
through the gateways from the clients' namespace, as the users would.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar

from dspot_spotify.chaos.netns import enter
from dspot_spotify.chaos.workload import PASSWORD, Client, Library

__all__ = ["Convergence", "in_namespace", "node_catalogs", "wait_converged"]

_T = TypeVar("_T")


def in_namespace(ns: str, fn: Callable[[], _T]) -> _T:
    """``fn()`` in a thread that entered network namespace ``ns``."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            enter(ns)
            box["value"] = fn()
        except BaseException as e:  # handed to the caller
            box["error"] = e

    t = threading.Thread(target=run)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


def _get(url: str, token: str | None = None, timeout: float = 10.0) -> Any:
    req = urllib.request.Request(url)
    if token:
        req.add_header("authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


def _login(url: str, user: str) -> str:
    body = json.dumps({"username": user, "password": PASSWORD}).encode()
    req = urllib.request.Request(
        f"{url}/api/auth/login", body, {"content-type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return str(json.loads(resp.read())["token"])


class Convergence:
    """What :func:`wait_converged` saw last, per node."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.converged = False
        self.positions: dict[str, str | None] = {}
        self.under_replicated: dict[str, int | None] = {}
        self.replication = 0


def wait_converged(ns: str, nodes: dict[str, str], user: str, bound: float) -> Convergence:
    """Until every node reports the same log position and no under-replicated song, or
    ``bound`` seconds; from namespace ``ns``, as ``user``."""

    def poll() -> Convergence:
        seen = Convergence()
        start = time.monotonic()
        tokens: dict[str, str] = {}
        while True:
            for name, url in nodes.items():
                try:
                    if name not in tokens:
                        tokens[name] = _login(url, user)
                    doc = _get(f"{url}/api/cluster", tokens[name], timeout=5)
                    seen.positions[name] = doc["log_position"]
                    seen.under_replicated[name] = doc["under_replicated"]
                    seen.replication = doc["replication"]
                except (OSError, ValueError, KeyError):
                    seen.positions[name] = None
                    seen.under_replicated[name] = None
            seen.seconds = time.monotonic() - start
            positions = set(seen.positions.values())
            if (
                None not in positions
                and len(positions) == 1
                and set(seen.under_replicated.values()) == {0}
            ):
                seen.converged = True
                return seen
            if seen.seconds > bound:
                return seen
            time.sleep(1.0)

    return in_namespace(ns, poll)


def node_catalogs(ns: str, nodes: dict[str, str], user: str) -> dict[str, dict[str, str]]:
    """Every node's catalog as {sha256: title}, read from that node alone."""

    def read() -> dict[str, dict[str, str]]:
        out = {}
        for name, url in nodes.items():
            token = _login(url, user)
            songs: dict[str, str] = {}
            page = 1
            while True:
                doc = _get(f"{url}/api/songs?limit=500&page={page}&sort=title", token)
                for item in doc["items"]:
                    songs[item["blob_sha256"]] = item["title"]
                if page * int(doc["limit"]) >= doc["total"]:  # the API caps the page size
                    break
                page += 1
            out[name] = songs
        return out

    return in_namespace(ns, read)


def _answer(c: Client, method: str, path: str, body: Any = None, tries: int = 20) -> Any:
    """The JSON of a 200 answer to ``c``'s request, asking again while the cluster answers
    otherwise (a node still catching up after the heal says 503); a harness error after
    ``tries``, naming the request and the last answer."""
    status, text = 0, b""
    for _ in range(tries):
        try:
            reply = c.rest(method, path, body)
        except (OSError, http.client.HTTPException) as e:
            status, text = 0, repr(e).encode()
        else:
            if reply.status == 200:
                return reply.json()
            status, text = reply.status, reply.body
        time.sleep(0.5)
    raise RuntimeError(f"{method} {path} as {c.name}: HTTP {status} {text[:200]!r}")


def final_user_state(
    ns: str, clients: list[Client], library: Library
) -> tuple[dict[str, Any], list[str]]:
    """Each user's likes and playlists through the gateways, and every known song's
    download compared byte for byte: (final values by key, download mismatches)."""

    def read() -> tuple[dict[str, Any], list[str]]:
        final: dict[str, Any] = {}
        bad: list[str] = []
        for c in clients:
            c.token = None
            c.position = None
            login = {"username": c.name, "password": PASSWORD}
            c.token = _answer(c, "POST", "/api/auth/login", login)["token"]
            likes = _answer(c, "GET", "/api/me/likes?limit=1000")["items"]
            liked = {i["blob_sha256"] for i in likes}
            for sha in c.likes:
                final[f"like:{c.name}:{sha}"] = True if sha in liked else None
            for pl in _answer(c, "GET", "/api/playlists")["items"]:
                doc = _answer(c, "GET", f"/api/playlists/{pl['id']}")
                final[f"playlist:{pl['id']}"] = tuple(
                    i["song"]["blob_sha256"] for i in doc["items"]
                )
        reader = clients[0]
        for song in library.known():
            try:
                r = reader.rest("GET", f"/api/songs/{song.id}/stream")
            except (OSError, http.client.HTTPException) as e:
                bad.append(f"{song.sha[:12]} ({song.owner}): {e!r}")
                continue
            if r.status != 200:
                bad.append(f"{song.sha[:12]} ({song.owner}): HTTP {r.status}")
            elif hashlib.sha256(r.body).hexdigest() != song.sha:
                bad.append(f"{song.sha[:12]} ({song.owner}): {len(r.body)} bytes differ")
        return final, bad

    return in_namespace(ns, read)
