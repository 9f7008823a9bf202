"""Where a node's expensive work runs, and what it costs inside the simulation.

A node's liveness (probes, token passing, heartbeats) shares one event loop with its users'
requests, so anything slow must not run on that loop. Production sends CPU-heavy work to
worker threads (:data:`~dspot.env.NodeEnv.offload`) and SQL reads to
:class:`~dspot.disk.LocalDisk`'s pool of reader connections.

The simulation runs every node on one trio loop in virtual time, where work costs nothing
unless something charges for it. :class:`SimCpu` is one simulated node's processor: it
prices work with a :class:`CostModel` (a fixed cost per named kind such as ``scrypt``, a
cost per byte for hashing, a SQL statement by the SQLite virtual-machine steps it took) and
charges it to one of two places:

* **a worker** (:meth:`SimCpu.in_worker`): the caller waits the cost while holding one of a
  few worker slots; the node's loop stays free. This is what offloaded work costs.
* **the loop** (:meth:`SimCpu.on_loop`): the node's whole event loop is busy for the cost.
  Work queues behind work already there, as on a real loop, and the node's network I/O
  waits too: :class:`CpuGatedTransport` holds every send and every received chunk until the
  loop is free again. Peers therefore see a stalled node exactly as they would see a real
  one: silent, then answering late.

``SimCpu(inline=True)`` charges offloaded work to the loop instead: the sabotage that shows
what happens when expensive work runs on the event loop.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import anyio
import anyio.abc
import anyio.lowlevel
import attrs

from dspot._wakeup import current_time
from dspot.env import Mechanism
from dspot.transport import Listener, StreamHandler, Transport

__all__ = ["DEFAULT_KIND_COSTS", "CostModel", "CpuGatedTransport", "SimCpu"]

_T = TypeVar("_T")

DEFAULT_KIND_COSTS: Mapping[str, float] = {
    "scrypt": 0.05,  # hashlib.scrypt at N=2**14, r=8: about 50 ms on one core
    "tags": 0.005,  # parsing an audio file's tags
}
"""Seconds one call of a named kind of work stands for (see :class:`CostModel`)."""

DEFAULT_BYTE_COSTS: Mapping[str, float] = {
    "sha256": 1 / 1.0e9,  # about 1 GB/s
}
"""Seconds per byte of a named kind of work, added to its fixed cost."""


@attrs.frozen(hash=False)
class CostModel:
    """What work stands for in virtual seconds.

    Named work (``offload(fn, kind="scrypt")``) costs ``kinds[kind]`` plus ``size`` times
    ``per_byte[kind]``; work of a kind with no entry costs :attr:`offload`. A SQL statement
    costs :attr:`statement` plus :attr:`kstep` per thousand SQLite virtual-machine steps it
    ran (a proxy for rows scanned that also sees full-text searches) plus :attr:`row` per row
    returned. File I/O costs :attr:`file_byte` per byte moved. The defaults are rough
    measurements on a laptop-class core; scenarios scale them to what they want to stress.
    """

    kinds: Mapping[str, float] = attrs.field(factory=lambda: dict(DEFAULT_KIND_COSTS))
    per_byte: Mapping[str, float] = attrs.field(factory=lambda: dict(DEFAULT_BYTE_COSTS))
    offload: float = 50e-6
    statement: float = 10e-6
    kstep: float = 50e-6
    row: float = 2e-6
    file_byte: float = 0.5e-9

    def work(self, kind: str, size: int = 0) -> float:
        """The cost of one piece of named work over ``size`` bytes."""
        return self.kinds.get(kind, self.offload) + size * self.per_byte.get(kind, 0.0)

    def sql(self, statements: int, ksteps: int, rows: int) -> float:
        """The cost of running ``statements`` that took ``ksteps`` thousand VM steps."""
        return statements * self.statement + ksteps * self.kstep + rows * self.row

    def file(self, nbytes: int) -> float:
        """The cost of reading or writing ``nbytes`` of a file."""
        return nbytes * self.file_byte


@attrs.frozen
class LoopSpan:
    """A stretch of virtual time during which a node's loop was busy with one thing."""

    start: float
    end: float
    what: str


class CpuMechanism(Mechanism):
    """What sabotage tests can build a simulated node without (``NodeEnv.disabled``)."""

    OFFLOAD = "cpu.offload"
    """Slow pure work (``env.offload``) runs on worker threads, off the event loop (off:
    :attr:`SimCpu.inline`, the work blocks the loop as running it inline would)."""


class SimCpu:
    """One simulated node's processor: an event loop that can be busy, and worker threads.

    ``workers`` bounds how much charged work overlaps (the thread pool and cores of a real
    node); ``inline=True`` charges offloaded work to the loop instead (sabotage).
    """

    def __init__(
        self, costs: CostModel | None = None, *, workers: int = 4, inline: bool = False
    ) -> None:
        self.costs = costs if costs is not None else CostModel()
        self.inline = inline
        self.workers = workers
        self._slots = anyio.CapacityLimiter(workers)
        self.busy_until = 0.0
        """Virtual time until which the loop is busy with work already charged to it."""
        self.loop_seconds = 0.0
        """Total virtual seconds charged to the loop (this incarnation)."""
        self.worker_seconds = 0.0
        """Total virtual seconds charged to workers (this incarnation)."""
        self._spans: collections.deque[LoopSpan] = collections.deque(maxlen=64)

    # -- charging --------------------------------------------------------------------------

    async def offload(
        self, fn: Callable[..., _T], /, *args: Any, kind: str = "", size: int = 0
    ) -> _T:
        """:data:`~dspot.env.Offload` for the simulation: charge the work, then run ``fn``.

        The result comes back after the work's cost, from a worker (the loop stays free),
        or from the loop itself when :attr:`inline`.
        """
        cost = self.costs.work(kind, size)
        if self.inline:
            await self.on_loop(cost, kind or getattr(fn, "__name__", "work"))
        else:
            await self.in_worker(cost)
        return fn(*args)

    async def in_worker(self, seconds: float) -> None:
        """Hold a worker slot for ``seconds``, then wait for the loop to pick the result up."""
        slots = self._slots
        try:
            # A free worker is taken without the two extra trips through the loop that
            # ``acquire`` makes (the sleep below is the checkpoint); the hottest call of a
            # blob-store simulation.
            slots.acquire_nowait()
        except anyio.WouldBlock:
            await slots.acquire()
        try:
            self.worker_seconds += seconds
            if seconds > 0:
                await anyio.sleep(seconds)
            else:
                await anyio.lowlevel.checkpoint()
        finally:
            slots.release()
        await self.resume()

    async def on_loop(self, seconds: float, what: str) -> None:
        """Keep the node's loop busy for ``seconds`` (after work already queued on it)."""
        now = current_time()
        start = max(now, self.busy_until)
        end = start + seconds
        self.busy_until = end
        self.loop_seconds += seconds
        if seconds > 0:
            self._spans.append(LoopSpan(start, end, what))
            await anyio.sleep_until(end)
        else:
            await anyio.lowlevel.checkpoint()

    async def resume(self) -> None:
        """Wait until the loop has done the work queued on it so far (no-op when idle).

        Work charged after this call started does not delay it: a loop runs what is ready
        in order, so a message that arrived during a stall is handled when that stall ends.
        """
        until = self.busy_until
        if until > current_time():
            await anyio.sleep_until(until)

    def stalled(self) -> bool:
        """Whether the loop is busy right now."""
        return self.busy_until > current_time()

    def busy_with(self, start: float, end: float) -> str:
        """What kept the loop busy between ``start`` and ``end`` (``""`` if nothing known).

        Names the kinds of the charged spans overlapping that stretch, longest share first,
        with a count when one kind repeats (``"scrypt x6, sql"``).
        """
        share: dict[str, float] = {}
        count: dict[str, int] = {}
        for span in self._spans:
            overlap = min(end, span.end) - max(start, span.start)
            if overlap > 0:
                share[span.what] = share.get(span.what, 0.0) + overlap
                count[span.what] = count.get(span.what, 0) + 1
        ranked = sorted(share, key=lambda w: (-share[w], w))
        return ", ".join(w if count[w] == 1 else f"{w} x{count[w]}" for w in ranked)

    def reset(self) -> None:
        """The process died: its loop and workers start idle in the next incarnation."""
        self.busy_until = 0.0
        self.loop_seconds = self.worker_seconds = 0.0
        self._spans.clear()
        self._slots = anyio.CapacityLimiter(self.workers)


class _GatedStream(anyio.abc.ByteStream):
    """A byte stream whose owner's loop must be free before bytes go out or come in."""

    def __init__(self, inner: anyio.abc.ByteStream, cpu: SimCpu) -> None:
        self._inner = inner
        self._cpu = cpu
        self._nowait: Callable[[bytes], bool] | None = getattr(inner, "send_nowait", None)

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return self._inner.extra_attributes

    async def receive(self, max_bytes: int = 65536) -> bytes:
        data = await self._inner.receive(max_bytes)
        await self._cpu.resume()
        return data

    async def send(self, item: bytes) -> None:
        await self._cpu.resume()
        await self._inner.send(item)

    def send_nowait(self, item: bytes) -> bool:
        """What the inner stream's ``send_nowait`` does while the loop is free; ``False``
        (nothing sent) while it is busy or when the inner stream has no such method."""
        if self._nowait is None or self._cpu.stalled():
            return False
        return self._nowait(item)

    async def send_eof(self) -> None:
        await self._inner.send_eof()

    async def aclose(self) -> None:
        await self._inner.aclose()


class _GatedListener:
    def __init__(self, inner: Listener, cpu: SimCpu) -> None:
        self._inner = inner
        self._cpu = cpu

    @property
    def address(self) -> str:
        return self._inner.address

    async def serve(self, handler: StreamHandler) -> None:
        cpu = self._cpu

        async def gated(stream: anyio.abc.ByteStream) -> None:
            await cpu.resume()  # accepting a connection is loop work too
            await handler(_GatedStream(stream, cpu))

        await self._inner.serve(gated)

    async def aclose(self) -> None:
        await self._inner.aclose()


class CpuGatedTransport:
    """A :class:`~dspot.transport.Transport` whose streams wait for the node's loop.

    Wraps the simulated transport of a node whose processor is ``cpu``: while
    :meth:`SimCpu.on_loop` keeps the loop busy, nothing the node sends leaves and nothing it
    receives is handed to its code, so a node stalled by its own work goes quiet.
    """

    def __init__(self, inner: Transport, cpu: SimCpu) -> None:
        self.inner = inner
        self.cpu = cpu

    async def connect(self, address: str, *, timeout: float = 10.0) -> anyio.abc.ByteStream:
        stream = await self.inner.connect(address, timeout=timeout)
        await self.cpu.resume()
        return _GatedStream(stream, self.cpu)

    async def listen(self, address: str) -> Listener:
        return _GatedListener(await self.inner.listen(address), self.cpu)
