"""Who a Subsonic call is: ``u`` + ``p``, ``u`` + ``t`` + ``s``, or ``apiKey``.

* ``u`` + ``t`` + ``s`` with ``t = md5(password + s)`` (what most apps send): the user's
  **account password** — the one they sign in to the web app with — or their *app password*
  (``GET /api/me/subsonic``). Checking it needs the password in clear, so the catalog keeps
  account passwords sealed with a key derived from the cluster secret
  (:mod:`dspot_spotify.sealing`), as Navidrome keeps them encrypted with a server key;
* ``u`` + ``p`` (plain or ``enc:`` + hex): the app password, or the account password
  (checked with scrypt; recent successes are remembered, since a player sends its
  credentials with every call and scrypt costs ~50 ms);
* ``apiKey`` (OpenSubsonic): the user's API key.

When an admin requires app passwords (``PATCH /api/settings``), account passwords are refused
here in every form and their sealed copies are forgotten. A disabled user's credentials all
fail (error 50 once they are otherwise right), and a password change or a disabling ends the
app password and API key too (the user's token generation moved past them).
"""

from __future__ import annotations

import hashlib
import hmac
from collections import OrderedDict
from typing import Final

from dspot_spotify import accounts, catalog
from dspot_spotify.replica import CatalogReplica
from dspot_spotify.sealing import PasswordSealer
from dspot_spotify.subsonic.protocol import (
    CONFLICTING_AUTH,
    INVALID_API_KEY,
    MISSING_PARAMETER,
    NOT_AUTHORIZED,
    TOKEN_AUTH_UNSUPPORTED,
    WRONG_CREDENTIALS,
    Params,
    SubsonicError,
    decode_password,
)

__all__ = ["SubsonicAuth"]

_WEB_PASSWORD_CACHE: Final = 256


def _wrong() -> SubsonicError:
    return SubsonicError(WRONG_CREDENTIALS, "wrong username or password")


def _enabled(user: catalog.UserRecord) -> catalog.UserRecord:
    if user.disabled:
        raise SubsonicError(NOT_AUTHORIZED, "this account is disabled")
    return user


class SubsonicAuth:
    """Checks a call's credentials against the catalog ``replica``."""

    def __init__(self, replica: CatalogReplica, sealer: PasswordSealer) -> None:
        self.replica = replica
        self.sealer = sealer
        self.secrets = sealer.secrets
        self._web_ok: OrderedDict[tuple[str, str, bytes], None] = OrderedDict()

    async def user(self, params: Params) -> catalog.UserRecord:
        """The user the call's credentials name, or the specification's auth error."""
        api_key = params.get("apiKey")
        username, password = params.get("u"), params.get("p")
        token, salt = params.get("t"), params.get("s")
        if api_key is not None:
            if any(v is not None for v in (username, password, token, salt)):
                raise SubsonicError(CONFLICTING_AUTH, "apiKey cannot be combined with u, p, t or s")
            return await self._api_key(api_key)
        if not username:
            raise SubsonicError(MISSING_PARAMETER, "required parameter is missing: u (or apiKey)")
        if password is not None and (token is not None or salt is not None):
            raise SubsonicError(CONFLICTING_AUTH, "give either p, or t and s, not both")
        if password is not None:
            return _enabled(await self._password_login(username, decode_password(password)))
        if token is None and salt is None:
            raise SubsonicError(
                MISSING_PARAMETER, "required parameter is missing: p, or t and s, or apiKey"
            )
        if not token or not salt:
            missing = "s" if token else "t"
            raise SubsonicError(MISSING_PARAMETER, f"required parameter is missing: {missing}")
        return _enabled(await self._token_login(username, token, salt))

    async def _api_key(self, api_key: str) -> catalog.UserRecord:
        read = self.replica.read
        stored = self.secrets.stored_key(api_key)
        creds = await read(catalog.subsonic_credentials_by_api_key, stored)
        user = None if creds is None else await read(catalog.get_user, creds.user_id)
        if creds is None or user is None or not creds.current:
            raise SubsonicError(INVALID_API_KEY, "invalid API key")
        return _enabled(user)

    async def _candidates(self, user: catalog.UserRecord) -> tuple[list[str], bool]:
        """The passwords in clear that sign ``user`` in (app password, account password if
        allowed), and whether account passwords are allowed."""
        read = self.replica.read
        found: list[str] = []
        creds = await read(catalog.subsonic_credentials, user.id)
        if creds is not None and creds.current:
            app = self.secrets.password(creds)
            if app is not None:
                found.append(app)
        allowed = await read(catalog.subsonic_account_password)
        if allowed:
            account = self.secrets.account_password(user)
            if account is not None:
                found.append(account)
        return found, allowed

    async def _token_login(self, username: str, token: str, salt: str) -> catalog.UserRecord:
        user = await self.replica.read(catalog.get_user_by_username, username)
        if user is None:
            raise _wrong()
        candidates, allowed = await self._candidates(user)
        if not candidates:
            if allowed:
                raise SubsonicError(
                    TOKEN_AUTH_UNSUPPORTED,
                    "token authentication (t, s) cannot check this account's password yet: "
                    "sign in once with the password (p, or the web app), or use the app "
                    "password (GET /api/me/subsonic)",
                )
            raise SubsonicError(
                TOKEN_AUTH_UNSUPPORTED,
                "token authentication (t, s) needs the user's app password "
                "(GET /api/me/subsonic); none is set for this user",
            )
        given = token.lower().encode()
        for plain in candidates:
            expected = hashlib.md5((plain + salt).encode(), usedforsecurity=False)
            if hmac.compare_digest(expected.hexdigest().encode(), given):
                return user
        raise _wrong()

    async def _password_login(self, username: str, password: str) -> catalog.UserRecord:
        read = self.replica.read
        user = await read(catalog.get_user_by_username, username)
        allowed = await read(catalog.subsonic_account_password)
        if user is not None:
            creds = await read(catalog.subsonic_credentials, user.id)
            app = None if creds is None or not creds.current else self.secrets.password(creds)
            if app is not None and hmac.compare_digest(app.encode(), password.encode()):
                return user
            if not allowed:
                raise _wrong()
            # An account password costs an scrypt hash (~50 ms); remember recent successes.
            key = (user.id, user.password_hash, hashlib.sha256(password.encode()).digest())
            if key in self._web_ok:
                self._web_ok.move_to_end(key)
                return user
        elif not allowed:
            raise _wrong()
        try:
            user = await read(accounts.check_login, username, password)
        except accounts.InvalidCredentials:
            raise _wrong() from None
        except accounts.AccountDisabled as e:
            raise SubsonicError(NOT_AUTHORIZED, str(e)) from None
        key = (user.id, user.password_hash, hashlib.sha256(password.encode()).digest())
        self._web_ok[key] = None
        while len(self._web_ok) > _WEB_PASSWORD_CACHE:
            self._web_ok.popitem(last=False)
        self.sealer.signed_in(user, password)
        return user
