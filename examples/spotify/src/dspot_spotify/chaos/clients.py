"""Starting the chaos workload's clients: one thread per client, in the clients' network
namespace, until told to stop."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

from dspot_spotify.chaos.netns import enter
from dspot_spotify.chaos.settings import STICKY_KINDS
from dspot_spotify.chaos.subsonic import SubsonicClient
from dspot_spotify.chaos.workload import Client, Http, Library, Recorder, RestClient

__all__ = ["run_clients"]


def run_clients(
    *,
    namespace: str,
    gateway_urls: list[str],
    ca: Path,
    kinds: list[str],
    seed: int,
    recorder: Recorder,
    library: Library,
    stop: threading.Event,
    errors: list[str],
) -> list[tuple[Client, threading.Thread]]:
    """Start one thread per client (in ``namespace``); they run until ``stop`` is set."""
    threads: list[tuple[Client, threading.Thread]] = []
    for i, kind in enumerate(kinds):
        name = f"c{i + 1}-{kind}"
        rng = random.Random(f"{seed}/{name}")
        cls: type[Client] = SubsonicClient if kind == "subsonic" else RestClient
        http = Http(gateway_urls, ca, rng, sticky=kind in STICKY_KINDS)
        client = cls(name, kind, http, library, recorder, rng)

        def loop(client: Client = client) -> None:
            try:
                enter(namespace)
                client.setup()  # type: ignore[attr-defined]
                while not stop.is_set():
                    client.step()
                    time.sleep(client.rng.uniform(0.05, 0.3))
            except Exception as e:
                errors.append(f"{client.name}: {e!r}")
            finally:
                client.close()

        t = threading.Thread(target=loop, name=name, daemon=True)
        t.start()
        threads.append((client, t))
    return threads
