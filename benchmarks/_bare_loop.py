"""The loop-lag peer: an event loop with nothing to do but measure its own lag.

``python benchmarks/_bare_loop.py`` runs dspot's :class:`~dspot.looplag.LoopLagMonitor` (the
one a node runs, same interval and buckets) on an otherwise idle asyncio loop until its
stdin closes, then prints the cumulative histogram as JSON (``{bound: count}``, ``"inf"``
for the last bucket). Run beside a load, it shows how late a timer fires on this machine
when the loop itself does no work: what the operating system's scheduling alone costs, the
floor under a node's figure measured during the same load.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import anyio

from dspot.disk import LocalDisk
from dspot.env import production_env
from dspot.looplag import LoopLagMonitor
from dspot.transport import TcpTransport


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with await LocalDisk.open(Path(tmp)) as disk:
            env = production_env("bare", TcpTransport(), disk, seed=1)
            monitor = LoopLagMonitor(env)
            async with anyio.create_task_group() as tg:
                await tg.start(monitor.run)
                print("ready", flush=True)
                await anyio.to_thread.run_sync(sys.stdin.read)
                tg.cancel_scope.cancel()
            snap = monitor.snapshot()
    buckets = dict(zip(map(str, snap.bounds), snap.cumulative, strict=True))
    buckets["inf"] = snap.count
    print(json.dumps(buckets), flush=True)


if __name__ == "__main__":
    anyio.run(main)
