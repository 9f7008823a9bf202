"""Service registry: TTL leases that ride on membership metadata.

**Why membership metadata and not the token-ring log.** A registration is soft state about
a running process: it is true only while that process is up and renewing, it must keep
working on a minority side of a partition (where the log is read-only), and it must vanish
with its node. Gossip spreads it to every member in a few rounds with no quorum, and a dead
member's metadata stops counting the moment it is declared dead. The token-ring log is for
durable, totally ordered facts (the catalog); putting heartbeats in it would make every
renewal a quorum write and would stop renewals during a partition.

**Leases.** Each registration is stored in the owner's metadata under ``svc/<service>/<id>``
as JSON ``{"endpoint", "meta", "expires"}``, where ``expires`` is the owner's wall clock
plus the TTL at its last renewal. The owner renews every ``ttl * renew_fraction``. A
resolver returns an endpoint only if its owner is ALIVE in the resolver's view and the lease
has not expired by the resolver's clock, so an endpoint is never handed out after its lease
ran out (clock skew between nodes adds to that bound; NTP keeps it small on a LAN).
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Protocol

import anyio
import anyio.abc
import attrs
from anyio.streams.memory import MemoryObjectReceiveStream

from dspot.env import Mechanism, NodeEnv
from dspot.membership import Member, MembershipEvent, MemberState

PREFIX = "svc/"
_PARSED_MAX = 4096
"""Parsed leases a registry remembers before it forgets them all (a few per member and
service at any time; old ones pile up as owners renew)."""


class PublishingView(Protocol):
    """What the registry needs of membership: a view plus publishing our own metadata."""

    @property
    def self_id(self) -> str: ...

    def members(self) -> list[Member]: ...

    def get(self, node_id: str) -> Member | None: ...

    def update_meta(self, meta: Mapping[str, str]) -> None: ...

    def subscribe(
        self,
    ) -> Any:  # AbstractAsyncContextManager[MemoryObjectReceiveStream[MembershipEvent]]
        ...


@attrs.frozen
class Endpoint:
    """One registered instance of a service."""

    service: str
    instance: str
    endpoint: str
    node_id: str
    expires: float
    meta: Mapping[str, str] = attrs.field(factory=dict)


@attrs.define
class _Registration:
    service: str
    instance: str
    endpoint: str
    meta: dict[str, str]
    ttl: float


def _key(service: str, instance: str) -> str:
    return f"{PREFIX}{service}/{instance}"


def _parse(member: Member, key: str, value: str) -> Endpoint | None:
    _, _, rest = key.partition(PREFIX)
    service, sep, instance = rest.rpartition("/")
    if not sep or not service:
        return None
    try:
        data = json.loads(value)
        return Endpoint(
            service=service,
            instance=instance,
            endpoint=str(data["endpoint"]),
            node_id=member.node_id,
            expires=float(data["expires"]),
            meta={str(k): str(v) for k, v in dict(data.get("meta", {})).items()},
        )
    except (ValueError, KeyError, TypeError):
        return None  # a malformed entry from a newer or broken peer is ignored


class RegistryMechanism(Mechanism):
    """What sabotage tests can build a :class:`Registry` without (``NodeEnv.disabled``)."""

    EXPIRY = "registry.expiry"
    """Resolve skips endpoints whose lease ran out (off: a hung service stays resolved)."""
    RENEW = "registry.renew"
    """A running registry renews its leases before they run out (off: each lease is
    published once and lapses after one TTL)."""


class Registry:
    """Registers this node's services and resolves everyone's.

    Run it with ``await tg.start(registry.run)`` so leases get renewed; resolving works
    without running.
    """

    def __init__(
        self,
        env: NodeEnv,
        view: PublishingView,
        *,
        default_ttl: float = 10.0,
        renew_fraction: float = 1 / 3,
    ) -> None:
        self.env = env
        self.view = view
        self.default_ttl = default_ttl
        self.renew_fraction = renew_fraction
        self._mine: dict[str, _Registration] = {}
        self._changed = anyio.Event()
        self._tg: anyio.abc.TaskGroup | None = None
        self._parsed: dict[tuple[str, str, str], Endpoint | None] = {}
        """Leases already parsed, by (owner, key, JSON value): a gateway resolves on every
        request, and a lease's text changes only when its owner renews it."""

    # -- publishing --------------------------------------------------------------------------

    def register(
        self,
        service: str,
        endpoint: str,
        *,
        instance: str | None = None,
        meta: Mapping[str, str] | None = None,
        ttl: float | None = None,
    ) -> str:
        """Publish ``endpoint`` for ``service`` under a lease; returns the instance id."""
        if "/" in service or not service:
            raise ValueError(f"bad service name {service!r}")
        inst = instance or f"{self.view.self_id}-{len(self._mine) + 1}"
        self._mine[_key(service, inst)] = _Registration(
            service, inst, endpoint, dict(meta or {}), ttl or self.default_ttl
        )
        self._publish()
        return inst

    def deregister(self, service: str, instance: str) -> None:
        """Withdraw a registration at once (it disappears as the update spreads)."""
        if self._mine.pop(_key(service, instance), None) is not None:
            self._publish()

    def _publish(self) -> None:
        me = self.view.get(self.view.self_id)
        base = {k: v for k, v in (me.meta if me else {}).items() if not k.startswith(PREFIX)}
        now = self.env.clock.wall()
        for key, reg in self._mine.items():
            base[key] = json.dumps(
                {"endpoint": reg.endpoint, "meta": reg.meta, "expires": now + reg.ttl},
                sort_keys=True,
            )
            self.env.trace("registry.renew", key=key, expires=now + reg.ttl)
        self.view.update_meta(base)
        self._changed.set()
        self._changed = anyio.Event()

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Renew this node's leases until cancelled."""
        task_status.started()
        if not self.env.enabled(RegistryMechanism.RENEW):
            await anyio.sleep_forever()
        while True:
            if self._mine:
                interval = min(r.ttl for r in self._mine.values()) * self.renew_fraction
                await anyio.sleep(interval)
                if self._mine:
                    self._publish()
            else:
                await self._changed.wait()

    # -- resolving ---------------------------------------------------------------------------

    def resolve(self, service: str) -> list[Endpoint]:
        """Live, unexpired endpoints of ``service``, ordered by node id then instance."""
        now = self.env.clock.wall()
        expiry = self.env.enabled(RegistryMechanism.EXPIRY)
        found: list[Endpoint] = []
        prefix = f"{PREFIX}{service}/"
        parsed = self._parsed
        for member in self.view.members():
            if member.state is not MemberState.ALIVE:
                continue
            for key in sorted(k for k in member.meta if k.startswith(prefix)):
                value = member.meta[key]
                memo = (member.node_id, key, value)
                try:
                    ep = parsed[memo]
                except KeyError:
                    if len(parsed) >= _PARSED_MAX:
                        parsed.clear()  # renewals leave old texts behind; start over
                    ep = parsed[memo] = _parse(member, key, value)
                if ep is None or ep.service != service:
                    continue
                if expiry and ep.expires < now:
                    continue
                found.append(ep)
        return found

    @asynccontextmanager
    async def watch(self, service: str) -> AsyncIterator[MemoryObjectReceiveStream[list[Endpoint]]]:
        """A stream of ``service``'s endpoint list: now, then whenever it changes (a member
        event or a lease running out)."""
        send, receive = anyio.create_memory_object_stream[list[Endpoint]](16)

        async def pump(events: MemoryObjectReceiveStream[MembershipEvent]) -> None:
            last: list[tuple[str, str, str]] | None = None
            while True:
                current = self.resolve(service)
                keys = [(e.node_id, e.instance, e.endpoint) for e in current]
                if keys != last:
                    last = keys
                    await send.send(current)
                # Wake on the next membership event, or when the next lease runs out.
                soonest = min((e.expires for e in current), default=None)
                wait = math.inf if soonest is None else soonest - self.env.clock.wall() + 1e-3
                with anyio.move_on_after(max(0.0, wait)):
                    await events.receive()

        async with self.view.subscribe() as events, anyio.create_task_group() as tg:
            tg.start_soon(pump, events)
            try:
                yield receive
            finally:
                tg.cancel_scope.cancel()
                send.close()
                receive.close()
