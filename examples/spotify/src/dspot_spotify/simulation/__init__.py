"""The service's own simulation scenario: whole SpotifyNodes, HTTP included, under faults.

Run it with ``dspot sim --scenario dspot_spotify.simulation:scenario --seeds 1-20``.

Each simulated node runs a full :class:`~dspot_spotify.node.SpotifyNode` (RPC, membership,
token-ring catalog, blob store, HTTP API). The nemesis injects the default fault model
(crash/restart, partitions including one-way blocks, loss, latency, slow disks) among the
nodes. The clients are tasks of the workload, on hosts of their own (``c1``, ``c2``, ...)
that partitions do not cut off from the nodes; they talk to the service only over HTTP,
each request to a randomly chosen node, retrying on another node after a connection error
or a 503 (or the gateway's 502/504: its node failed, the outcome is unknown):

* register (or, when an earlier registration's outcome was unknown, log in), then loop:
  upload small synthesized tracks, list and search, log in again, and stream songs with
  ``Range``, always sending back the highest ``X-Log-Position`` they have seen. Each
  request goes to a random node *or* to the gateway.

The **gateway** (:class:`~dspot_spotify.gateway.Gateway`, plain HTTP) runs on a host of its
own (``gw``), joins the membership as an observer through the nodes' RPC addresses and
relays to the nodes it finds in the registry. The nemesis never crashes or partitions it;
its links to the nodes are slow (so a song takes seconds to relay) and the ``crash_source``
fault (which replaces ``crash``) usually crashes the node serving the streaming client's
current download. The **streaming client** (``gs``) uploads one big WAV (to a node directly:
over the slow gateway links that would take much of the fault window), then downloads it
through the gateway over and over, whole or by ``Range``.

Checks, all from a client's point of view (DESIGN.md invariants 1, 2, 7):

* **read your writes** (during the run): a request that carried an ``X-Log-Position`` and
  was answered (not 503) reflects every write acknowledged at or before that position:
  the client's own uploads are listed and searchable, the login works, and every stream
  returns exactly the uploaded bytes;
* **durability**: after heal, every upload acknowledged with 201 (and every song a node
  reported as an existing duplicate) is listed by *every* node and streams byte-identical
  from every node and through the gateway, whole and by ``Range``;
* **convergence**: after heal and a quiet period every node returns the same song list;
* **liveness**: no client operation started ``SETTLE`` seconds after heal fails, and at the
  end every node accepts a registration, a login and a new upload;
* **gateway streams**: every download through the gateway that completes is byte-identical
  (sha256) to the uploaded slice, always; one that is cut off mid-body is a violation unless
  the gateway tried to resume it elsewhere and could not (its mid-stream failover promise);
  downloads started ``SETTLE`` seconds after heal all complete; after the run the gateway is
  in every node's membership and in no node's token-ring membership (known or configured).

``run_seed(..., disabled={BlobStoreMechanism.SYNC_BEFORE_ACK})`` runs the nodes with one
blob copy, written without sync before the acknowledgement: the upload
is acknowledged before the data is durable anywhere, and the durability check catches the
loss when the holder crashes.

The package: :mod:`~dspot_spotify.simulation.tracks` (the audio),
:mod:`~dspot_spotify.simulation.cluster` (hosts, settings, nodes, the gateway, the nemesis),
:mod:`~dspot_spotify.simulation.workload` (the clients), :mod:`~dspot_spotify.simulation.
checks` and :mod:`~dspot_spotify.simulation.scenario`.
"""

from __future__ import annotations

from dspot_spotify.simulation.scenario import SCENARIO, scenario
from dspot_spotify.simulation.workload import downloads

__all__ = ["SCENARIO", "downloads", "scenario"]
