"""Sealed account passwords for Subsonic's token auth, kept up to date after sign-ins.

Subsonic apps sign in with ``t = md5(password + salt)``: to check it a node needs the
password in clear, which a scrypt hash cannot give back. So, unless an admin requires app
passwords (:func:`dspot_spotify.catalog.subsonic_account_password`), the catalog keeps each
account password *sealed* with a key derived from the cluster secret (as Navidrome keeps
its users' passwords encrypted with a server key): registration and password changes carry
the sealed copy in their log entry, and an account without one (registered before this
existed, or while app passwords were required) gets it the next time its user proves the
password — a web sign-in or a Subsonic ``p=`` — from :class:`PasswordSealer`, in the
background, without making that sign-in wait.
"""

from __future__ import annotations

import logging

from dspot.http import HTTPError

from dspot_spotify import accounts, catalog
from dspot_spotify.parts import NodeParts
from dspot_spotify.writer import CatalogWriter

__all__ = ["PasswordSealer"]


class PasswordSealer:
    """Seals account passwords for one node: in new entries, and after a sign-in of an
    account the catalog has no sealed copy for (at most one write per user at a time)."""

    def __init__(self, node: NodeParts, writer: CatalogWriter) -> None:
        self.node = node
        self.writer = writer
        log = node.env.log
        self.secrets = accounts.SubsonicSecrets(
            node.credentials,
            lambda user: log(logging.WARNING, "subsonic.credentials_unreadable", user=user),
        )
        self._pending: set[str] = set()

    def seal(self, user_id: str, password: str) -> str:
        """``password`` sealed as ``user_id``'s account password (for a log entry)."""
        return self.secrets.seal_account(user_id, password, token_bytes=self.node.env.secure_token)

    async def for_entry(self, user_id: str, password: str) -> str | None:
        """The sealed copy to put in a registration or password change, or None while the
        cluster requires app passwords (the log drops it then anyway)."""
        if not await self.node.replica.read(catalog.subsonic_account_password):
            return None
        return self.seal(user_id, password)

    def signed_in(self, user: catalog.UserRecord, password: str) -> None:
        """``user`` just proved ``password``: seal it in the background if the catalog has
        no copy that opens. Best effort: on a minority side, or if it fails, the next
        sign-in tries again."""
        background = self.node.background
        if background is None or user.id in self._pending or not self.node.has_quorum():
            return
        if user.sealed_password is not None and self.secrets.account_password(user) == password:
            return
        self._pending.add(user.id)
        background.start_soon(self._seal, user, password)

    async def _seal(self, user: catalog.UserRecord, password: str) -> None:
        node = self.node
        try:
            if not await node.replica.read(catalog.subsonic_account_password):
                return
            entry = catalog.SealPassword(
                actor=user.id,
                at=node.now_ms(),
                user_id=user.id,
                generation=user.token_generation,
                sealed_password=self.seal(user.id, password),
            )
            await self.writer.commit(entry)
            node.env.log(logging.INFO, "subsonic.account_password_sealed", user=user.id)
        except HTTPError as e:  # no quorum, a timeout, a password changed meanwhile
            node.env.log(
                logging.INFO,
                "subsonic.account_password_not_sealed",
                user=user.id,
                status=e.status,
                reason=e.problem.detail,
            )
        finally:
            self._pending.discard(user.id)
