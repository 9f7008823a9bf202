"""Prometheus metrics of one node, in a :class:`~prometheus_client.CollectorRegistry` of its own.

Nothing here is global: every :class:`NodeMetrics` owns its registry, so several nodes in one
process (tests, the simulation) keep separate numbers. Request metrics are recorded by the
:meth:`NodeMetrics.instrument` wrapper around the node's router; gauges that describe the
cluster are set by the ``/metrics`` handler (:mod:`dspot_spotify.observe`) from a fresh
cluster document just before it renders them; token, quorum and applied-position gauges are
also kept current by the node as they change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

from dspot.http import Handler, HTTPError, Request, Response
from dspot.tokenring import Status
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import Metric

__all__ = ["CONTENT_TYPE", "UNMATCHED_ROUTE", "NodeMetrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
"""The Prometheus text exposition content type that :meth:`NodeMetrics.render` produces."""

UNMATCHED_ROUTE = "<unmatched>"
"""The ``route`` label of requests no route matched (404/405): one series, not one per path."""

MEMBER_STATES = ("alive", "suspect", "dead", "left")

_UPLOAD = ("POST", "/api/songs")
_PLAY = ("POST", "/api/songs/{song_id}/plays")


class NodeMetrics:
    """The metrics of one node. ``registry`` is what ``/metrics`` exposes."""

    def __init__(self, now: Callable[[], float]) -> None:
        """``now``: monotonic seconds (the node's clock, virtual in the simulation)."""
        self._now = now
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http_requests = Counter(
            "dspot_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_latency = Histogram(
            "dspot_http_request_duration_seconds",
            "Time from a request's head to its response's head, by method and route.",
            ["method", "route"],
            registry=r,
        )
        self.members = Gauge(
            "dspot_cluster_members",
            "Cluster members as this node sees them, by state and role.",
            ["state", "role"],
            registry=r,
        )
        self.quorum = Gauge(
            "dspot_cluster_quorum",
            "1 when this node sees a majority (writes possible).",
            registry=r,
        )
        self.token_epoch = Gauge(
            "dspot_tokenring_epoch", "The token ring epoch this node knows.", registry=r
        )
        self.token_holder = Gauge(
            "dspot_tokenring_holder", "1 while this node holds the token.", registry=r
        )
        self.applied_seq = Gauge(
            "dspot_catalog_applied_seq",
            "Sequence number of the last catalog log entry applied on this node.",
            registry=r,
        )
        self.applied_epoch = Gauge(
            "dspot_catalog_applied_epoch",
            "Epoch of the last catalog log entry applied on this node.",
            registry=r,
        )
        self.entries = Counter(
            "dspot_catalog_entries_applied",
            "Catalog log entries applied on this node (in this process), by kind.",
            ["kind"],
            registry=r,
        )
        self.snapshots = Counter(
            "dspot_catalog_snapshots",
            "Catalog snapshots taken (the log compacted after each) or restored on this node "
            "(in this process), by action.",
            ["action"],
            registry=r,
        )
        self.log = Gauge(
            "dspot_tokenring_log",
            "The token ring's log on this node: commit_index, base_index (the log starts "
            "after it), snapshot_index, entries_on_disk and entries_in_memory.",
            ["field"],
            registry=r,
        )
        self.blobs = Gauge("dspot_blobstore_blobs", "Blob copies stored on this node.", registry=r)
        self.blob_bytes = Gauge(
            "dspot_blobstore_bytes", "Bytes of blob copies stored on this node.", registry=r
        )
        self.orphaned_bytes = Gauge(
            "dspot_blobs_orphaned_bytes",
            "Bytes of blob copies on this node that no catalog entry owns (awaiting collection).",
            registry=r,
        )
        self.collected = Counter(
            "dspot_blobs_collected",
            "Orphaned blob copies this node deleted (in this process).",
            registry=r,
        )
        self.songs = Gauge("dspot_catalog_songs", "Songs in the catalog.", registry=r)
        self.under_replicated = Gauge(
            "dspot_songs_under_replicated",
            "Songs whose audio has fewer copies on live voters than the replication target.",
            registry=r,
        )
        self.uploads = Counter(
            "dspot_uploads", "Songs uploaded through this node (201 answers).", registry=r
        )
        self.plays = Counter(
            "dspot_plays", "Plays recorded through this node (200 answers).", registry=r
        )

    # -- recording -------------------------------------------------------------------------

    def instrument(self, handler: Handler) -> Handler:
        """``handler`` (usually the node's router) with every request counted and timed.

        The route label is the matched route's template (``request.route``), so ids in paths
        never multiply the series.
        """

        async def observed(request: Request) -> Response:
            start = self._now()
            status = 500
            try:
                response = await handler(request)
                status = response.status
                return response
            except HTTPError as e:
                status = e.problem.status
                raise
            finally:
                self.observe_request(request.method, request.route, status, self._now() - start)

        return observed

    def observe_request(self, method: str, route: str | None, status: int, seconds: float) -> None:
        """Record one answered request (what :meth:`instrument` does for each)."""
        label = route or UNMATCHED_ROUTE
        self.http_requests.labels(method, label, str(status)).inc()
        self.http_latency.labels(method, label).observe(max(0.0, seconds))
        if (method, label) == _UPLOAD and status == 201:
            self.uploads.inc()
        elif (method, label) == _PLAY and status == 200:
            self.plays.inc()

    def entry_applied(self, kind: str, epoch: int, seq: int) -> None:
        """Record one catalog entry applied here at ``(epoch, seq)``."""
        self.entries.labels(kind).inc()
        self.applied_epoch.set(epoch)
        self.applied_seq.set(seq)

    def snapshot_restored(self, epoch: int, seq: int) -> None:
        """Record a snapshot that replaced the catalog at ``(epoch, seq)``."""
        self.snapshots.labels("restored").inc()
        self.applied_epoch.set(epoch)
        self.applied_seq.set(seq)

    def set_log(self, status: Status, on_disk: int) -> None:
        """The token ring's log figures, from its status and its count of entries on disk."""
        fields = {
            "commit_index": status.commit_index,
            "base_index": status.base_index,
            "snapshot_index": status.snapshot_index,
            "entries_in_memory": status.in_memory,
            "entries_on_disk": on_disk,
        }
        for field, value in fields.items():
            self.log.labels(field).set(value)

    def set_members(self, rows: Iterable[Mapping[str, object]]) -> None:
        """Members by state and role, from member rows (``{"state", "role", ...}``)."""
        counts: dict[tuple[str, str], int] = {
            (state, role): 0 for state in MEMBER_STATES for role in ("voter", "observer")
        }
        for row in rows:
            key = (str(row["state"]), str(row["role"]))
            counts[key] = counts.get(key, 0) + 1
        for (state, role), n in counts.items():
            self.members.labels(state, role).set(n)

    # -- exposing --------------------------------------------------------------------------

    def render(self) -> bytes:
        """The registry in Prometheus text format (content type :data:`CONTENT_TYPE`),
        without the ``*_created`` series: they hold the real time each series was made,
        which the node's clock does not govern (a simulated run would not replay)."""
        return generate_latest(_WithoutCreated(self.registry))


class _WithoutCreated:
    """A registry's metrics with their ``_created`` samples left out."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        for metric in self._registry.collect():
            metric.samples = [s for s in metric.samples if not s.name.endswith("_created")]
            yield metric
