"""A node's password checks: throttled, and never on the event loop nor inside a read.

:meth:`SignIn.check` asks the :class:`~dspot_spotify.throttle.LoginThrottle` first (a key
that failed too often gets :class:`~dspot_spotify.throttle.Throttled` before anything is
hashed), reads the user from a replica snapshot, then hashes through the bounded
:class:`~dspot_spotify.throttle.PasswordHasher` (``env.offload``) outside any transaction.
Membership probes and token passing therefore never wait behind a password.

:attr:`~dspot_spotify.config.Sabotage.HASH_ON_LOOP` puts the hash back where it used to be:
inside a transaction on the database's writer lock, on the event loop (for tests that show
what that does to liveness).
"""

from __future__ import annotations

from typing import Final

from dspot.disk import Database
from dspot.env import NodeEnv
from dspot.http import HTTPError, Request

from dspot_spotify import accounts, catalog
from dspot_spotify.auth import ScryptParams
from dspot_spotify.replica import CatalogReplica
from dspot_spotify.throttle import (
    HASH_KIND,
    HashersBusy,
    LoginThrottle,
    PasswordHasher,
    ThrottleConfig,
    Throttled,
)

__all__ = ["SignIn", "client_address", "throttle_error"]

_FORWARDED_FOR: Final = "x-forwarded-for"


def client_address(request: Request) -> str:
    """Who is asking: the address the gateway saw (``X-Forwarded-For``, which it always
    replaces), else the connection's peer address. Nodes serve plain HTTP on a private
    network; only the gateway faces clients."""
    forwarded = request.headers.get(_FORWARDED_FOR)
    if forwarded:
        return forwarded.rsplit(",", 1)[-1].strip()
    return (request.client or "").rpartition(":")[0].strip("[]") or "unknown"


def throttle_error(e: Throttled | HashersBusy) -> HTTPError:
    """The HTTP answer to a throttled sign-in: 429 (this client or username) or 503 (the
    node's password hashers are all busy), with ``Retry-After``."""
    if isinstance(e, Throttled):
        return HTTPError(429, str(e), headers=[("retry-after", e.retry_after_header)])
    return HTTPError(503, str(e), headers=[("retry-after", "1")])


class SignIn:
    """Checks passwords for one node (see the module)."""

    def __init__(
        self,
        env: NodeEnv,
        replica: CatalogReplica,
        db: Database,
        config: ThrottleConfig,
        *,
        on_loop: bool = False,
    ) -> None:
        self._env = env
        self._replica = replica
        self._db = db
        self._on_loop = on_loop
        self.throttle = LoginThrottle(config, env.clock.now)
        self.hasher = PasswordHasher(env.offload, limit=config.hash_limit, queue=config.hash_queue)

    async def check(self, username: str, password: str, *, address: str) -> catalog.UserRecord:
        """The user these credentials sign in, else
        :class:`~dspot_spotify.accounts.InvalidCredentials`,
        :class:`~dspot_spotify.accounts.AccountDisabled` (right password),
        :class:`~dspot_spotify.throttle.Throttled` or
        :class:`~dspot_spotify.throttle.HashersBusy`. Failures count against ``username``
        and ``address``."""
        self.throttle.check(username, address)
        suspicious = self.throttle.suspicious(username, address)
        try:
            user = await self.verify(username, password, suspicious=suspicious)
        except accounts.InvalidCredentials:
            self.throttle.failed(username, address)
            raise
        self.throttle.succeeded(username)
        return user

    async def verify(
        self, username: str, password: str, *, suspicious: bool = False
    ) -> catalog.UserRecord:
        """As :meth:`check` without the throttle (for callers that count failures of
        several kinds of credentials themselves, as Subsonic's); ``suspicious`` attempts
        hash with fewer slots (:class:`~dspot_spotify.throttle.PasswordHasher`)."""
        if self._on_loop:
            return await self._verify_on_loop(username, password)
        user = await self._replica.read(catalog.get_user_by_username, username)
        hashed = accounts.stored_hash(user)
        ok = await self.hasher.verify(password, hashed, suspicious=suspicious)
        return accounts.login_verdict(user, ok)

    async def _verify_on_loop(self, username: str, password: str) -> catalog.UserRecord:
        """Sabotage: the hash inside a write transaction, on the loop (the old design)."""
        cpu = self._env.cpu
        async with self._db.transaction(sync=False) as tx:
            if cpu is not None:  # the simulation: the hash holds the loop for its cost
                await cpu.on_loop(cpu.costs.work(HASH_KIND), HASH_KIND)
            return accounts.check_login(tx, username, password)

    async def hash(self, password: str, params: ScryptParams) -> str:
        """A new hash of ``password``, off the loop (:class:`HashersBusy` when overloaded)."""
        return await self.hasher.hash(password, token_bytes=self._env.secure_token, params=params)
