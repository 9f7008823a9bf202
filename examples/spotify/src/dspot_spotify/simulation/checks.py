"""The scenario's checks: after heal, liveness on every node, durability and convergence;
at the end, the gateway's streams and its place as an observer."""

from __future__ import annotations

from dspot.http import HttpClient
from dspot.membership import is_observer
from dspot.sim import Simulation

from dspot_spotify.node import SpotifyNode
from dspot_spotify.simulation.checknames import (
    CONVERGENCE,
    DURABILITY,
    FINAL_OPS,
    GATEWAY_OBSERVER,
    GATEWAY_STREAM,
    LIVENESS,
)
from dspot_spotify.simulation.cluster import ATTEMPTS, CLIENTS, GATEWAY, SETTLE
from dspot_spotify.simulation.sessions import check_sessions
from dspot_spotify.simulation.snapshots import check_state_is_history
from dspot_spotify.simulation.tracks import FINAL_TRACKS, WORKLOAD_TRACKS, tracks
from dspot_spotify.simulation.workload import (
    ZERO,
    Client,
    Clients,
    downloads,
    failures,
    songs,
    successes,
)

__all__ = ["check", "check_gateway_is_observer", "check_gateway_streams", "final_checks"]


def check_gateway_is_observer(sim: Simulation) -> None:
    """Every node sees the gateway as a member, and no token ring ever counted it."""
    for name in sim.names:
        spotify = sim.nodes[name].handle
        if not isinstance(spotify, SpotifyNode):
            sim.violation(f"final: {name} is not running at the end", check=FINAL_OPS)
            continue
        member = spotify.membership.get(GATEWAY)
        if member is None or not is_observer(member):
            sim.violation(
                f"gateway: {name}'s membership has no observer {GATEWAY} ({member})",
                check=GATEWAY_OBSERVER,
            )
        ring = spotify.ring
        if GATEWAY in ring.known_members or GATEWAY in ring.core.configured:
            sim.violation(
                f"gateway: {name}'s token ring counts the observer {GATEWAY} as a member "
                f"(known {ring.known_members}, configured {ring.core.configured})",
                check=GATEWAY_OBSERVER,
            )


async def final_checks(sim: Simulation, http: HttpClient) -> None:
    """After heal: liveness on every node, then durability and convergence."""
    checker = Client(sim, "checker", http)
    # Liveness: every node registers, logs in and stores a fresh upload.
    if not await checker.register(nodes=[sim.names[0]]):
        sim.violation(f"final: registration on {sim.names[0]} failed after heal", check=FINAL_OPS)
    for i, name in enumerate(sim.names):
        late = Client(sim, f"late-{name}", http)
        late.pos = checker.pos
        if not await late.register(nodes=[name]):
            sim.violation(f"final: registration on {name} failed after heal", check=FINAL_OPS)
            continue
        checker.see_pos(late.pos)
        if not await late.login(nodes=[name]):
            sim.violation(f"final: login on {name} failed after heal", check=FINAL_OPS)
        track = tracks()[WORKLOAD_TRACKS + i % FINAL_TRACKS]
        song = await late.upload(track, nodes=[name])
        if song is None:
            sim.violation(f"final: upload on {name} failed after heal", check=FINAL_OPS)
        else:
            checker.see_pos(song.pos or ZERO)
    known = songs(sim)
    if not any(s.client.startswith("c") for s in known.values()):
        sim.violation("no upload by a workload client was acknowledged", check=FINAL_OPS)
    # Convergence and durability: every node lists every acknowledged song, identically.
    listings: dict[str, list[tuple[str, str, int, str]]] = {}
    for name in sim.names:
        reply = await checker.send(
            "final.list", "GET", "/api/songs?limit=200", headers=checker.headers(), nodes=[name]
        )
        if reply is None or reply.status != 200:
            sim.violation(
                f"final: {name} does not list songs after heal ({reply})", check=FINAL_OPS
            )
            continue
        items = reply.json()["items"]
        listings[name] = sorted(
            (item["id"], item["blob_sha256"], item["size"], item["title"]) for item in items
        )
        listed = {item["id"]: item for item in items}
        for song in known.values():
            item = listed.get(song.song_id)
            if item is None:
                sim.violation(
                    f"durability: {name} does not list {song.song_id} (track {song.track}, "
                    f"acknowledged to {song.client} at {song.at:.3f}s, position {song.pos})",
                    check=DURABILITY,
                )
            elif item["blob_sha256"] != song.sha256 or item["size"] != song.size:
                sim.violation(
                    f"durability: {name} lists {song.song_id} as {item}", check=DURABILITY
                )
    distinct = {tuple(v) for v in listings.values()}
    if len(distinct) > 1:
        sizes = {name: len(v) for name, v in listings.items()}
        sim.violation(
            f"convergence: the nodes list different songs after heal ({sizes})", check=CONVERGENCE
        )
    await check_state_is_history(sim)
    # Every acknowledged song streams byte-identical from every node (and through the
    # gateway), whole and by Range.
    for song in sorted(known.values(), key=lambda s: s.song_id):
        data = tracks()[song.track].data
        for name in [*sim.names, GATEWAY]:
            reply = await checker.send(
                "final.stream",
                "GET",
                f"/api/songs/{song.song_id}/stream",
                headers=checker.headers(song.pos),
                nodes=[name],
            )
            if reply is None or reply.status != 200 or reply.body != data:
                status = None if reply is None else reply.status
                sim.violation(
                    f"durability: {song.song_id} (track {song.track}, acknowledged to "
                    f"{song.client} at {song.at:.3f}s) does not stream byte-identical from "
                    f"{name} after heal (status {status})",
                    check=DURABILITY,
                )
                continue
            start = checker.rng.randrange(len(data))
            reply = await checker.send(
                "final.range",
                "GET",
                f"/api/songs/{song.song_id}/stream",
                headers=checker.headers(song.pos, {"range": f"bytes={start}-"}),
                nodes=[name],
            )
            if reply is None or reply.status != 206 or reply.body != data[start:]:
                sim.violation(
                    f"durability: {song.song_id} bytes {start}- from {name} after heal differ",
                    check=DURABILITY,
                )


def check(sim: Simulation) -> None:
    settled = sim.heal_at + SETTLE
    for op, client, started, error in failures(sim):
        if started > settled:
            sim.violation(
                f"liveness: {op} by {client} started at {started:.3f}s (heal at "
                f"{sim.heal_at:g}s) failed on {ATTEMPTS} nodes; last: {error}",
                check=LIVENESS,
            )
    for i in range(1, CLIENTS + 1):
        name = f"c{i}"
        done = {op for op, c, t in successes(sim) if c == name and t > settled}
        if not done:
            sim.violation(
                f"liveness: no operation of {name} succeeded after heal + {SETTLE:g}s",
                check=LIVENESS,
            )
    check_gateway_streams(sim)
    check_sessions(sim)


def check_gateway_streams(sim: Simulation) -> None:
    """Downloads through the gateway: never cut off unless a resume failed, and all complete
    once the faults have healed and settled."""
    settled = sim.heal_at + SETTLE
    gateway = sim.state(Clients).gateway
    resume_failures = gateway.resume_failures if gateway is not None else []
    done = downloads(sim)
    for d in done:
        if d.outcome == "cut":
            explained = any(d.started <= t <= d.ended for t, _ in resume_failures)
            if not explained:
                sim.violation(
                    f"gateway stream: download of bytes {d.first}-{d.last} started at "
                    f"{d.started:.3f}s from {d.served_by} was cut off after {d.received} bytes "
                    f"at {d.ended:.3f}s, and the gateway did not fail to resume it ({d.error})",
                    check=GATEWAY_STREAM,
                )
        if d.outcome != "ok" and d.started > settled:
            sim.violation(
                f"liveness: download through the gateway started at {d.started:.3f}s (heal at "
                f"{sim.heal_at:g}s) ended {d.outcome}: status {d.status}, {d.error}",
                check=LIVENESS,
            )
    if not any(d.outcome == "ok" and d.started > settled for d in done):
        sim.violation(
            f"liveness: no download through the gateway completed after heal + {SETTLE:g}s",
            check=LIVENESS,
        )
