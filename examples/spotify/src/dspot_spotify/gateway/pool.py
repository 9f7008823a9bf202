"""The gateway's view of the nodes: who serves the HTTP API, and who is healthy."""

from __future__ import annotations

import logging
import random
from collections.abc import Set

import anyio
import anyio.abc
import attrs
from dspot.errors import DspotError
from dspot.http import HttpClient, ServerConfig, Timeouts
from dspot.membership import MembershipConfig
from dspot.registry import Endpoint, NoEndpoint, Registry, RegistryClient

from dspot_spotify.config import HTTP_SERVICE

__all__ = ["GatewayConfig", "NodePool"]

log = logging.getLogger("dspot_spotify.gateway")


@attrs.frozen(kw_only=True)
class GatewayConfig:
    """Tuning of a :class:`Gateway` (seconds, bytes)."""

    health_interval: float = 1.0
    """How often every node's ``/healthz`` is polled."""
    health_timeout: float = 1.0
    """A check slower than this fails."""
    upstream: Timeouts = attrs.field(factory=lambda: Timeouts(connect=2.0, read=60.0, write=60.0))
    """Timeouts of relayed requests (a node may take a while to commit an upload)."""
    attempts: int = 3
    """Nodes tried for one retryable request."""
    resume_window: float = 10.0
    """How long a broken song stream may wait for a healthy node to continue from."""
    max_body_size: int = 4 * 1024**3
    """Largest request body relayed (nodes apply their own, lower, upload limit)."""
    membership: MembershipConfig | None = None
    server: ServerConfig = attrs.field(factory=ServerConfig)


class NodePool:
    """The nodes serving :data:`HTTP_SERVICE`, as the registry resolves them, minus those
    failing their health checks or their last request.

    Picking is round robin over :class:`~dspot.registry.RegistryClient`'s candidates (which
    also backs off from nodes that fail requests) restricted to healthy nodes.
    """

    def __init__(
        self, registry: Registry, client: HttpClient, config: GatewayConfig, rng: random.Random
    ) -> None:
        self.registry = registry
        self.balancer = RegistryClient(registry, HTTP_SERVICE, rng=rng)
        self.config = config
        self._client = client
        self._healthy: set[str] = set()  # endpoint addresses whose last check passed
        self._failed_at: dict[str, float] = {}  # when each last failed a request
        self._changed = anyio.Event()
        self._next = 0

    def endpoints(self) -> list[Endpoint]:
        return self.registry.resolve(HTTP_SERVICE)

    def healthy(self) -> list[Endpoint]:
        return [e for e in self.endpoints() if e.endpoint in self._healthy]

    def pick(self, exclude: Set[str] = frozenset()) -> Endpoint | None:
        """A healthy node not in ``exclude`` (endpoint addresses), or ``None``."""
        usable = {e.endpoint for e in self.healthy()} - exclude
        if not usable:
            return None
        try:
            preferred = [e for e in self.balancer.candidates() if e.endpoint in usable]
        except NoEndpoint:
            return None
        if not preferred:
            preferred = [e for e in self.healthy() if e.endpoint in usable]
        ep = preferred[self._next % len(preferred)]
        self._next += 1
        return ep

    def failed(self, ep: Endpoint) -> None:
        """``ep`` failed a request: no more requests until its next check passes."""
        if ep.endpoint in self._healthy:
            log.warning("node %s (%s) failed a request: taken out", ep.instance, ep.endpoint)
        self._healthy.discard(ep.endpoint)
        self._failed_at[ep.endpoint] = self.registry.env.clock.now()
        self.balancer.report_failure(ep)
        self._wake()

    def succeeded(self, ep: Endpoint) -> None:
        self.balancer.report_success(ep)

    def _wake(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def wait_changed(self) -> None:
        """Until the healthy set changes."""
        await self._changed.wait()

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Check every node, forever, every ``health_interval``."""
        task_status.started()
        while True:
            await self.check_all()
            await anyio.sleep(self.config.health_interval)

    async def check_all(self) -> None:
        """Check every registered node once, concurrently, and update the healthy set."""
        started = self.registry.env.clock.now()
        endpoints = self.endpoints()
        results: dict[str, bool] = {}

        async def check(ep: Endpoint) -> None:
            results[ep.endpoint] = await self._check(ep)

        async with anyio.create_task_group() as tg:
            for ep in endpoints:
                tg.start_soon(check, ep)
        for addr, failed_at in self._failed_at.items():
            if failed_at >= started:
                results[addr] = False  # failed a request since the check began: stays out
        self._failed_at = {a: t for a, t in self._failed_at.items() if t >= started}
        healthy = {addr for addr, ok in results.items() if ok}
        for ep in endpoints:
            if results.get(ep.endpoint) and ep.endpoint not in self._healthy:
                log.info("node %s (%s) is healthy", ep.instance, ep.endpoint)
                self.balancer.report_success(ep)
            elif not results.get(ep.endpoint) and ep.endpoint in self._healthy:
                log.warning("node %s (%s) failed its health check", ep.instance, ep.endpoint)
        if healthy != self._healthy:
            self._healthy = healthy
            self._wake()

    async def _check(self, ep: Endpoint) -> bool:
        t = self.config.health_timeout
        with anyio.move_on_after(t * 2):
            try:
                async with await self._client.get(
                    f"http://{ep.endpoint}/healthz", timeouts=Timeouts(connect=t, read=t, write=t)
                ) as resp:
                    await resp.read()
                    return resp.status == 200
            except (DspotError, TimeoutError):
                return False
        return False
