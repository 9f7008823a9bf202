"""The HTTPS gateway: the one public endpoint in front of the nodes.

The gateway joins the cluster's membership as an *observer* (it gossips and resolves
services but never votes in the token ring nor holds blobs), finds the nodes' HTTP APIs in
the :class:`~dspot.registry.Registry` under :data:`~dspot_spotify.node.HTTP_SERVICE`, and
relays ``/api/*``, ``/rest/*`` and ``/metrics`` to a healthy one over keep-alive
connections. Everything else is the web frontend, served from a directory.

What it promises:

* **Health.** Every node's ``/healthz`` is polled about once a second with a short timeout;
  a node that fails a check, or fails a relayed request, gets no requests until a check
  passes again. With no healthy node a request gets 503 ``no healthy node``.
* **Streaming.** Request and response bodies are relayed chunk by chunk with backpressure,
  never held whole (uploads can be hundreds of MiB).
* **Retries.** A GET or HEAD that fails before any response byte went to the client is tried
  on another node. Any other request is tried elsewhere only if it never reached a node
  (connection refused) or the node answered that it is behind (nothing done there); once
  it may have been applied, a failure answers 502. Bodies up to 64 KiB are read first so
  they can be sent again; larger ones (uploads) stream and go to one node only once their
  first byte is sent.
* **Mid-stream failover.** When the node serving ``GET /api/songs/{id}/stream`` (or a
  Subsonic player's ``GET /rest/stream`` / ``/rest/download``) breaks off,
  the gateway asks another node for the rest (``Range`` from the next byte, ``If-Range`` with
  the song's ETag so it is the same file) and continues the same client response: the
  client sees one unbroken, byte-identical body.
* **Session guarantees.** Every relayed request carries the highest ``X-Log-Position``
  the gateway has seen in node answers and the nodes' gossip (or the client's own, when
  higher): a client that sends no position still reads its acknowledged writes and never
  older state than it saw (:mod:`~dspot_spotify.gateway.positions`). A node that has not
  reached it within ``position_wait`` answers 503 ``behind``, and the gateway asks a node
  known to have caught up before answering 503 itself.
* **Events.** The WebSocket ``/api/events`` is relayed message by message to a node's.
* **Hygiene.** Every answer carries the security headers of :mod:`dspot_spotify.security`
  (HSTS, ``nosniff``, ``Referrer-Policy``, the web app's ``Content-Security-Policy``); a
  502/503/504 names no node address (the gateway's log does). Which node answered is said in
  ``X-Served-By`` only when :attr:`GatewayConfig.served_by` is on (``--served-by``: tests,
  the simulation, debugging). A malformed request costs its own connection a 400, never the
  other clients their service.

The package: :mod:`~dspot_spotify.gateway.pool` (the nodes and their health),
:mod:`~dspot_spotify.gateway.positions` (the log positions it has seen),
:mod:`~dspot_spotify.gateway.relay` (the :class:`Gateway`); the process around it is
:mod:`dspot_spotify.process.gateway`.
"""

from __future__ import annotations

from dspot_spotify.gateway.pool import GatewayConfig, NodePool
from dspot_spotify.gateway.positions import PositionScope, PositionTracker
from dspot_spotify.gateway.relay import NOT_BUILT_PAGE, STREAM_PATH, Gateway

__all__ = [
    "NOT_BUILT_PAGE",
    "STREAM_PATH",
    "Gateway",
    "GatewayConfig",
    "NodePool",
    "PositionScope",
    "PositionTracker",
]
