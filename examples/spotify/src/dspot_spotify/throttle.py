"""Throttles for what is expensive or guessable: password checks and uploads.

* :class:`LoginThrottle` counts failed sign-ins per username and per client address. After a
  few free failures each further one doubles how long that key must wait before its next
  attempt (up to a cap); while it waits, attempts are answered ``429`` with ``Retry-After``
  before any password is hashed, so a flood costs the node almost nothing. A success clears
  the username's count (not the address's: one good account must not reset an attacker's
  budget). Keys are forgotten after a quiet spell, and at most ``max_keys`` are kept.
* :class:`PasswordHasher` runs password hashes through ``env.offload`` (worker threads in
  production, charged virtual time in the simulation), never on the event loop, with at most
  ``limit`` at a time; past ``limit + queue`` waiting it refuses at once
  (:class:`HashersBusy`, a ``503``) instead of queueing without bound.
* :class:`UploadSlots` bounds how many uploads one user runs at once.

All three are sans-I/O about time: they take the node's clock, so virtual time tests them.
"""

from __future__ import annotations

import contextlib
import math
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Final

import anyio
import attrs
from dspot.env import Offload

from dspot_spotify.auth import ScryptParams, TokenBytes, hash_password, verify_password

__all__ = [
    "HashersBusy",
    "LoginThrottle",
    "PasswordHasher",
    "ThrottleConfig",
    "ThrottlePolicy",
    "Throttled",
    "UploadSlots",
]


class Throttled(Exception):
    """Too many recent failures (or uploads): retry after :attr:`retry_after` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    @property
    def retry_after_header(self) -> str:
        """``Retry-After`` in whole seconds (at least 1)."""
        return str(max(1, math.ceil(self.retry_after)))


class HashersBusy(Exception):
    """Every password-hash slot is taken and the queue is full: the node is overloaded."""


@attrs.frozen(kw_only=True)
class ThrottlePolicy:
    """Backoff for one kind of key: ``free`` failures cost nothing, then failure number
    ``free + k`` blocks the key for ``min(cap, base * 2**(k-1))`` seconds."""

    free: int = 5
    base: float = 1.0
    cap: float = 300.0

    def delay(self, failures: int) -> float:
        """Seconds a key with ``failures`` recent failures must wait (0: none)."""
        extra = failures - self.free
        if extra <= 0:
            return 0.0
        return min(self.cap, self.base * 2.0 ** min(extra - 1, 62))


@attrs.frozen(kw_only=True)
class ThrottleConfig:
    """How sign-ins, password hashes and uploads are throttled (see the module)."""

    username: ThrottlePolicy = ThrottlePolicy(free=5)
    address: ThrottlePolicy = ThrottlePolicy(free=20)
    """Higher: many users may share one address (a NAT, the same office)."""
    forget_after: float = 900.0
    """A key with no failure for this long starts again from zero."""
    max_keys: int = 100_000
    """Keys remembered at most (the least recently failed go first)."""
    hash_limit: int = 4
    """Password hashes run at once on one node (each takes a core for ~50 ms)."""
    hash_queue: int = 64
    """Password checks that may wait for a slot; beyond, 503 at once."""
    uploads_per_user: int = 2
    """Uploads one user may run at once on one node (429 beyond)."""


@attrs.define
class _Failures:
    count: int
    last: float
    blocked_until: float


class LoginThrottle:
    """Failed sign-ins per username and per client address (see the module)."""

    def __init__(self, config: ThrottleConfig, now: Callable[[], float]) -> None:
        self.config = config
        self._now = now
        self._keys: OrderedDict[tuple[str, str], _Failures] = OrderedDict()
        self.refused = 0
        """Attempts answered 429 so far (for metrics)."""

    def _keys_of(self, username: str, address: str) -> list[tuple[tuple[str, str], ThrottlePolicy]]:
        c = self.config
        return [(("user", username.strip().lower()), c.username), (("addr", address), c.address)]

    def _live(self, key: tuple[str, str], now: float) -> _Failures | None:
        entry = self._keys.get(key)
        if entry is not None and now - entry.last >= self.config.forget_after:
            del self._keys[key]
            return None
        return entry

    def check(self, username: str, address: str) -> None:
        """Raise :class:`Throttled` if either key must still wait (nothing is hashed then)."""
        now = self._now()
        wait = 0.0
        for key, _ in self._keys_of(username, address):
            entry = self._live(key, now)
            if entry is not None:
                wait = max(wait, entry.blocked_until - now)
        if wait > 0:
            self.refused += 1
            raise Throttled("too many failed sign-ins: wait before trying again", wait)

    def suspicious(self, username: str, address: str) -> bool:
        """Whether this attempt comes with recent failures: of the username, or from an
        address already past its free ones. Such attempts hash with fewer slots, so a flood
        never takes the slot that someone else's sign-in needs."""
        now = self._now()
        (user_key, _), (addr_key, addr_policy) = self._keys_of(username, address)
        user, addr = self._live(user_key, now), self._live(addr_key, now)
        return user is not None or (addr is not None and addr.count >= addr_policy.free)

    def failed(self, username: str, address: str) -> None:
        """Count one failed sign-in against both keys."""
        now = self._now()
        for key, policy in self._keys_of(username, address):
            entry = self._live(key, now) or _Failures(0, now, now)
            entry.count += 1
            entry.last = now
            entry.blocked_until = now + policy.delay(entry.count)
            self._keys[key] = entry
            self._keys.move_to_end(key)
        while len(self._keys) > self.config.max_keys:
            self._keys.popitem(last=False)

    def succeeded(self, username: str) -> None:
        """A correct password: the username starts again from zero."""
        self._keys.pop(("user", username.strip().lower()), None)

    def __len__(self) -> int:
        return len(self._keys)


HASH_KIND: Final = "scrypt"
"""The offload kind of a password hash (what the simulation's cost model prices)."""


class PasswordHasher:
    """Hashes and checks passwords off the event loop, at most ``limit`` at a time.

    Checks marked ``suspicious`` (see :meth:`LoginThrottle.suspicious`) share ``limit - 1``
    of the slots, so one is always left for everyone else: a flood of wrong passwords
    queues behind itself, not in front of a user who types theirs right.
    """

    def __init__(self, offload: Offload, *, limit: int, queue: int) -> None:
        self._offload = offload
        self._slots = anyio.CapacityLimiter(limit)
        self._suspicious = anyio.CapacityLimiter(max(1, limit - 1))
        self._queue = queue
        self.busy_refusals = 0
        """Checks refused because every slot and the queue were taken (for metrics)."""

    def _waiting(self) -> int:
        return self._slots.statistics().tasks_waiting + self._suspicious.statistics().tasks_waiting

    @contextlib.asynccontextmanager
    async def _slot(self, suspicious: bool = False) -> AsyncIterator[None]:
        if self._waiting() >= self._queue:
            self.busy_refusals += 1
            raise HashersBusy("too many password checks at once; retry shortly")
        async with contextlib.AsyncExitStack() as stack:
            if suspicious:
                await stack.enter_async_context(self._suspicious)
            await stack.enter_async_context(self._slots)
            yield

    async def verify(self, password: str, encoded: str, *, suspicious: bool = False) -> bool:
        """Whether ``password`` matches ``encoded`` (as
        :func:`~dspot_spotify.auth.verify_password`)."""
        async with self._slot(suspicious):
            return await self._offload(verify_password, password, encoded, kind=HASH_KIND)

    async def hash(self, password: str, *, token_bytes: TokenBytes, params: ScryptParams) -> str:
        """A new hash of ``password`` (see :func:`~dspot_spotify.auth.hash_password`)."""
        salt = token_bytes(params.salt_len)  # drawn on the loop: the env's RNG is not shared

        def run() -> str:
            return hash_password(password, token_bytes=lambda _n: salt, params=params)

        async with self._slot():
            return await self._offload(run, kind=HASH_KIND)


class UploadSlots:
    """At most ``per_user`` uploads of one user at a time on this node."""

    def __init__(self, per_user: int) -> None:
        self.per_user = per_user
        self._running: dict[str, int] = {}

    @contextlib.contextmanager
    def slot(self, user_id: str) -> Iterator[None]:
        """Hold one of ``user_id``'s upload slots (:class:`Throttled` when none is left)."""
        self.acquire(user_id)
        try:
            yield
        finally:
            self.release(user_id)

    def acquire(self, user_id: str) -> None:
        """Take a slot for ``user_id``, or :class:`Throttled` when they have none left."""
        if self._running.get(user_id, 0) >= self.per_user:
            raise Throttled(
                f"at most {self.per_user} uploads at once per user: wait for one to finish", 1.0
            )
        self._running[user_id] = self._running.get(user_id, 0) + 1

    def release(self, user_id: str) -> None:
        """Give back a slot taken by :meth:`acquire`."""
        left = self._running.get(user_id, 0) - 1
        if left > 0:
            self._running[user_id] = left
        else:
            self._running.pop(user_id, None)

    def running(self, user_id: str) -> int:
        """Uploads ``user_id`` runs now."""
        return self._running.get(user_id, 0)
