"""Who a Subsonic call is: ``u`` + ``p``, ``u`` + ``t`` + ``s``, or ``apiKey``.

* ``u`` + ``p`` (plain or ``enc:`` + hex): the user's *Subsonic password* or their web
  password (checked with scrypt; recent successes are remembered, since a player sends its
  credentials with every call and scrypt costs ~50 ms);
* ``u`` + ``t`` + ``s`` with ``t = md5(password + s)``: only with the Subsonic password,
  since web passwords are stored as scrypt hashes and cannot be recomputed;
* ``apiKey`` (OpenSubsonic): the user's API key.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import OrderedDict
from typing import Final

from dspot_spotify import accounts, catalog
from dspot_spotify.replica import CatalogReplica
from dspot_spotify.subsonic.protocol import (
    CONFLICTING_AUTH,
    INVALID_API_KEY,
    MISSING_PARAMETER,
    TOKEN_AUTH_UNSUPPORTED,
    WRONG_CREDENTIALS,
    Params,
    SubsonicError,
    decode_password,
)

__all__ = ["SubsonicAuth"]

_WEB_PASSWORD_CACHE: Final = 256


class SubsonicAuth:
    """Checks a call's credentials against the catalog ``replica``."""

    def __init__(self, replica: CatalogReplica, secrets: accounts.SubsonicSecrets) -> None:
        self.replica = replica
        self.secrets = secrets
        self._web_ok: OrderedDict[tuple[str, str, bytes], None] = OrderedDict()

    async def user(self, params: Params) -> catalog.UserRecord:
        """The user the call's credentials name, or the specification's auth error."""
        read = self.replica.read
        api_key = params.get("apiKey")
        username, password = params.get("u"), params.get("p")
        token, salt = params.get("t"), params.get("s")
        if api_key is not None:
            if any(v is not None for v in (username, password, token, salt)):
                raise SubsonicError(CONFLICTING_AUTH, "apiKey cannot be combined with u, p, t or s")
            stored = self.secrets.stored_key(api_key)
            creds = await read(catalog.subsonic_credentials_by_api_key, stored)
            user = None if creds is None else await read(catalog.get_user, creds.user_id)
            if user is None:
                raise SubsonicError(INVALID_API_KEY, "invalid API key")
            return user
        if not username:
            raise SubsonicError(MISSING_PARAMETER, "required parameter is missing: u (or apiKey)")
        if password is not None and (token is not None or salt is not None):
            raise SubsonicError(CONFLICTING_AUTH, "give either p, or t and s, not both")
        if password is not None:
            return await self._password_login(username, decode_password(password))
        if token is None and salt is None:
            raise SubsonicError(
                MISSING_PARAMETER, "required parameter is missing: p, or t and s, or apiKey"
            )
        if not token or not salt:
            missing = "s" if token else "t"
            raise SubsonicError(MISSING_PARAMETER, f"required parameter is missing: {missing}")
        user = await read(catalog.get_user_by_username, username)
        creds = None if user is None else await read(catalog.subsonic_credentials, user.id)
        if user is None or creds is None:
            raise SubsonicError(
                TOKEN_AUTH_UNSUPPORTED,
                "token authentication (t, s) needs the user's Subsonic password "
                "(GET /api/me/subsonic); none is set for this user",
            )
        plain = self.secrets.password(creds)
        if plain is None:
            raise SubsonicError(WRONG_CREDENTIALS, "wrong username or password")
        expected = hashlib.md5((plain + salt).encode(), usedforsecurity=False)
        if not hmac.compare_digest(expected.hexdigest().encode(), token.lower().encode()):
            raise SubsonicError(WRONG_CREDENTIALS, "wrong username or password")
        return user

    async def _password_login(self, username: str, password: str) -> catalog.UserRecord:
        read = self.replica.read
        user = await read(catalog.get_user_by_username, username)
        if user is not None:
            creds = await read(catalog.subsonic_credentials, user.id)
            plain = None if creds is None else self.secrets.password(creds)
            if plain is not None and hmac.compare_digest(plain.encode(), password.encode()):
                return user
            # A web password costs an scrypt hash (~50 ms); remember recent successes.
            key = (user.id, user.password_hash, hashlib.sha256(password.encode()).digest())
            if key in self._web_ok:
                self._web_ok.move_to_end(key)
                return user
        try:
            user = await read(accounts.check_login, username, password)
        except accounts.InvalidCredentials:
            raise SubsonicError(WRONG_CREDENTIALS, "wrong username or password") from None
        key = (user.id, user.password_hash, hashlib.sha256(password.encode()).digest())
        self._web_ok[key] = None
        while len(self._web_ok) > _WEB_PASSWORD_CACHE:
            self._web_ok.popitem(last=False)
        return user
