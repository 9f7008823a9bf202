"""A load-balancing client over registry endpoints.

Strategies: ``round_robin``, and ``least_outstanding`` with the power of two choices (pick
two endpoints at random, use the one with fewer requests in flight). An endpoint that fails
is taken out for a backoff window that doubles with each consecutive failure (capped) and
resets on success; if every endpoint is backing off, the one whose window ends first is used
rather than failing outright.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

import attrs

from dspot.errors import DspotError
from dspot.registry._registry import Endpoint, Registry

Strategy = Literal["round_robin", "least_outstanding"]


class NoEndpoint(DspotError):
    """No live endpoint is registered for the service."""


@attrs.define
class _Health:
    outstanding: int = 0
    failures: int = 0
    until: float = 0.0


class RegistryClient:
    """Picks an endpoint of one service for each request."""

    def __init__(
        self,
        registry: Registry,
        service: str,
        *,
        strategy: Strategy = "round_robin",
        backoff_base: float = 1.0,
        backoff_max: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        self.registry = registry
        self.service = service
        self.strategy = strategy
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._rng = rng or registry.env.child_rng(f"registry-client:{service}")
        self._health: dict[str, _Health] = {}
        self._next = 0

    def _health_of(self, ep: Endpoint) -> _Health:
        return self._health.setdefault(ep.endpoint, _Health())

    def candidates(self) -> list[Endpoint]:
        """Endpoints not backing off (or, if all are, the one that recovers first)."""
        endpoints = self.registry.resolve(self.service)
        if not endpoints:
            raise NoEndpoint(f"no live endpoint for service {self.service!r}")
        now = self.registry.env.clock.now()
        healthy = [e for e in endpoints if self._health_of(e).until <= now]
        if healthy:
            return healthy
        return [min(endpoints, key=lambda e: (self._health_of(e).until, e.endpoint))]

    def pick(self) -> Endpoint:
        """The endpoint for the next request."""
        choices = self.candidates()
        if self.strategy == "round_robin" or len(choices) == 1:
            ep = choices[self._next % len(choices)]
            self._next += 1
            return ep
        a, b = self._rng.sample(choices, 2)
        return a if self._health_of(a).outstanding <= self._health_of(b).outstanding else b

    def report_failure(self, ep: Endpoint) -> None:
        """Take ``ep`` out for a backoff window."""
        health = self._health_of(ep)
        health.failures += 1
        window = min(self.backoff_max, self.backoff_base * 2 ** (health.failures - 1))
        health.until = self.registry.env.clock.now() + window
        self.registry.env.trace("registry.backoff", endpoint=ep.endpoint, window=window)

    def report_success(self, ep: Endpoint) -> None:
        health = self._health_of(ep)
        health.failures = 0
        health.until = 0.0

    @asynccontextmanager
    async def use(self) -> AsyncIterator[Endpoint]:
        """Pick an endpoint for one request; an exception inside counts as its failure."""
        ep = self.pick()
        health = self._health_of(ep)
        health.outstanding += 1
        try:
            yield ep
        except Exception:
            self.report_failure(ep)
            raise
        else:
            self.report_success(ep)
        finally:
            health.outstanding -= 1

    def outstanding(self, endpoint: str) -> int:
        return self._health.get(endpoint, _Health()).outstanding
