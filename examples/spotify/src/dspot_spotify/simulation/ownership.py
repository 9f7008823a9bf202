"""The end-of-seed check that blobs have owners (DESIGN.md invariant 12).

After heal and one grace period, on every node:

* no blob copy without a live owner: a song or album of the node's catalog refers to it,
  or an upload lease still protects it (its end plus the grace period is not past);
* every blob the catalog refers to has copies on ``min(R, live voters)`` nodes.

Both are eventual (the collector runs every ``collect_interval``, repair every
``repair_interval``), so the check waits up to a bound for them and reports what is left.
"""

from __future__ import annotations

import anyio
from dspot.sim import Simulation

from dspot_spotify import catalog
from dspot_spotify.node import SpotifyNode
from dspot_spotify.simulation.checknames import OWNERSHIP

__all__ = ["check_ownership", "ownership_problems"]

SLACK_MS = 3_000
"""Beyond the grace period: the collector's interval, a clock tick, a round of messages."""


async def ownership_problems(sim: Simulation) -> list[str]:
    """What is wrong right now (empty: every copy owned, every referenced blob whole)."""
    nodes = [n for n in (sim.nodes[name].handle for name in sim.live()) if n is not None]
    spotify = [n for n in nodes if isinstance(n, SpotifyNode)]
    problems: list[str] = []
    referenced: set[str] = set()
    for node in spotify:
        local = node.blobs.local
        held = [sha for sha, _ in local.hashes()]
        rows = await node.replica.read(catalog.ownership, held)
        referenced |= set(await node.replica.read(catalog.referenced_blobs))
        grace = int(node.config.blob_grace * 1000)
        for sha in held:
            row = rows.get(sha)
            if row is not None and row.refs > 0:
                continue
            since = 0 if row is None else max(row.released_at, row.lease_until)
            if node.now_ms() > since + grace + SLACK_MS:
                copy = local.get(sha)
                size = copy.size if copy else 0
                why = "never known to the catalog" if row is None else "unowned"
                problems.append(
                    f"ownership: {node.env.node_id} holds blob {sha[:16]} ({size} B), {why} "
                    f"for {(node.now_ms() - since) / 1000:.1f}s (grace {grace / 1000:g}s)"
                )
    if spotify:
        wanted = spotify[0].blobs.placement.count(len(spotify))
        for sha in sorted(referenced):
            holders = [n.env.node_id for n in spotify if n.blobs.local.get(sha) is not None]
            if len(holders) < wanted:
                problems.append(
                    f"ownership: blob {sha[:16]} is referenced by the catalog but has "
                    f"{len(holders)} copies ({holders}), want {wanted}"
                )
    return problems


async def check_ownership(sim: Simulation, bound: float) -> None:
    """Wait up to ``bound`` seconds for :func:`ownership_problems` to clear; report the
    problems left."""
    problems: list[str] = []
    with anyio.move_on_after(bound):
        while problems := await ownership_problems(sim):  # noqa: ASYNC110 (polling state)
            await anyio.sleep(0.5)
    for problem in problems:
        sim.violation(problem, check=OWNERSHIP)
