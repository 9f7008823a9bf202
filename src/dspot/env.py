"""The node environment: everything a node reads from the outside world.

Library code takes its clock, randomness, ids, transport, disk, logger and tracer from a
:class:`NodeEnv` and never from globals, so the simulation can substitute virtual time, a
seeded RNG and simulated I/O and replay a run exactly.
"""

from __future__ import annotations

import enum
import logging
import random
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import anyio
import anyio.to_thread
import attrs

if TYPE_CHECKING:
    from dspot.cpu import SimCpu
    from dspot.disk import Disk
    from dspot.transport import Transport


class Clock(Protocol):
    """Monotonic time for timers plus wall time for timestamps shown to people."""

    def now(self) -> float:
        """Monotonic seconds; under the simulation this is virtual time."""
        ...

    def wall(self) -> float:
        """Seconds since the Unix epoch (virtual in the simulation)."""
        ...


@attrs.frozen
class EventLoopClock:
    """The event loop's clock. In the simulation (and under trio's ``MockClock``) it is
    virtual time.

    ``wall_base`` anchors :meth:`wall`: production passes the real epoch once at startup
    (:func:`real_wall_base`); the simulation passes a fixed instant.
    """

    wall_base: float = 1_767_225_600.0  # 2026-01-01T00:00:00Z

    def now(self) -> float:
        return anyio.current_time()

    def wall(self) -> float:
        return self.wall_base + anyio.current_time()


def real_wall_base() -> float:
    """Offset that makes :meth:`EventLoopClock.wall` real epoch time. Call inside the loop.

    The only place dspot reads the system wall clock; the simulation never calls it.
    """
    return time.time() - anyio.current_time()


class IdGenerator:
    """GUIDs drawn from a seeded RNG, so the simulation's ids replay exactly."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def uuid(self) -> uuid.UUID:
        """A random (version 4) UUID from this generator's RNG."""
        return uuid.UUID(int=self._rng.getrandbits(128), version=4)

    def __call__(self) -> str:
        return str(self.uuid())

    def token(self, nbytes: int = 16) -> bytes:
        """Random bytes (nonces, call ids) from the same RNG."""
        return self._rng.randbytes(nbytes)


class Tracer(Protocol):
    """Receives structured events; the simulation hashes them to prove replay."""

    def __call__(self, kind: str, /, **fields: Any) -> None: ...


def null_tracer(kind: str, /, **fields: Any) -> None:
    """A tracer that drops every event (production default)."""


_T = TypeVar("_T")


class Offload(Protocol):
    """Runs a slow pure function (checksums, password hashes, tag parsing) off the event loop
    and returns its result.

    ``kind`` names the work (``"scrypt"``, ``"sha256"``) and ``size`` is how many bytes it
    covers: production ignores both; the simulation prices the work by them (see
    :class:`dspot.cpu.CostModel`).
    """

    def __call__(
        self, fn: Callable[..., _T], /, *args: Any, kind: str = "", size: int = 0
    ) -> Awaitable[_T]: ...


async def run_inline(fn: Callable[..., _T], /, *args: Any, kind: str = "", size: int = 0) -> _T:
    """:data:`Offload` that runs ``fn`` on the event loop at no virtual cost (unit tests)."""
    return fn(*args)


async def run_in_thread(fn: Callable[..., _T], /, *args: Any, kind: str = "", size: int = 0) -> _T:
    """:data:`Offload` for real processes: a worker thread, so the work overlaps the event
    loop (hashlib, scrypt and SQLite release the GIL while they work)."""
    return await anyio.to_thread.run_sync(fn, *args)


class Mechanism(enum.Enum):
    """A resilience mechanism a node can be built without: for sabotage tests only.

    Each primitive declares its mechanisms as a subclass (``RpcMechanism`` in
    :mod:`dspot.rpc`, ...) and reads :meth:`NodeEnv.enabled` when it is built. A test that
    wants to see a checker catch the bug a mechanism prevents runs nodes with that mechanism
    in :attr:`NodeEnv.disabled`; :func:`production_env` refuses any.
    """


def _mechanisms(value: Iterable[Mechanism]) -> frozenset[Mechanism]:
    return frozenset(value)


def _production_refuses_sabotage(env: NodeEnv, _: Any, disabled: frozenset[Mechanism]) -> None:
    if disabled and env.production:
        names = ", ".join(sorted(m.value for m in disabled))
        raise ValueError(f"a production environment cannot disable mechanisms ({names})")


@attrs.define
class NodeEnv:
    """What one node may use: from :func:`production_env` or from the simulation."""

    node_id: str
    transport: Transport
    disk: Disk
    rng: random.Random
    clock: Clock = attrs.field(factory=EventLoopClock)
    logger: logging.Logger = attrs.field(factory=lambda: logging.getLogger("dspot"))
    trace: Tracer = null_tracer
    entropy: Callable[[int], bytes] | None = None
    """Unpredictable bytes for nonces and tokens; ``None`` draws them from ``rng`` (simulation)."""
    offload: Offload = run_inline
    """Where CPU-heavy pure work runs: a worker thread in production; in the simulation the
    node's :class:`~dspot.cpu.SimCpu` charges its cost in virtual time and runs it inline (no
    threads, so replay stays exact)."""
    cpu: SimCpu | None = None
    """The simulation's model of this node's processor; ``None`` in production (the real one).
    Code that measures the loop itself (:class:`~dspot.looplag.LoopLagMonitor`) consults it."""
    """Where CPU-heavy pure work runs: inline in the simulation (no threads, so replay stays
    exact), a worker thread in production."""
    production: bool = attrs.field(default=False, on_setattr=attrs.setters.frozen)
    """Set by :func:`production_env`; such an env refuses :attr:`disabled` mechanisms."""
    disabled: frozenset[Mechanism] = attrs.field(
        default=frozenset(), converter=_mechanisms, validator=_production_refuses_sabotage
    )
    """Mechanisms this node is built without (sabotage tests only; empty in production)."""
    ids: IdGenerator = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.ids = IdGenerator(self.rng)

    def enabled(self, mechanism: Mechanism) -> bool:
        """Whether ``mechanism`` is on (always, except in a sabotage test)."""
        return mechanism not in self.disabled

    def secure_token(self, nbytes: int = 16) -> bytes:
        """Bytes an attacker cannot predict in production (deterministic in the simulation)."""
        if self.entropy is not None:
            return self.entropy(nbytes)
        return self.rng.randbytes(nbytes)

    def child_rng(self, purpose: str) -> random.Random:
        """An independent RNG for one component, derived deterministically from this env's."""
        return random.Random(f"{self.rng.getrandbits(64)}:{purpose}")

    def log(self, level: int, event: str, **fields: Any) -> None:
        """Log a structured event (``event key=value ...``) tagged with the node id."""
        if self.logger.isEnabledFor(level):
            detail = " ".join(f"{k}={v!r}" for k, v in fields.items())
            self.logger.log(level, "%s %s %s", self.node_id, event, detail)


def production_env(
    node_id: str,
    transport: Transport,
    disk: Disk,
    *,
    seed: int | None = None,
    logger: logging.Logger | None = None,
    wall: Callable[[], float] = real_wall_base,
) -> NodeEnv:
    """An env for a real process. Call inside the event loop.

    ``seed=None`` seeds the RNG from the operating system, the one place dspot asks for
    real entropy.
    """
    rng = (
        random.Random(seed)
        if seed is not None
        else random.Random(random.SystemRandom().getrandbits(128))
    )
    return NodeEnv(
        node_id=node_id,
        transport=transport,
        disk=disk,
        rng=rng,
        clock=EventLoopClock(wall_base=wall()),
        logger=logger or logging.getLogger(f"dspot.{node_id}"),
        entropy=secrets.token_bytes,
        offload=run_in_thread,
        production=True,
    )
