"""Accounts: sign-up entries, password login and token checks against a catalog replica.

Glue between :mod:`dspot_spotify.auth` (hashing, signing) and the replicated catalog
(users, revocations). Every function here is synchronous and takes the replica's
transaction, like the catalog queries.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Final

from dspot_spotify import catalog
from dspot_spotify.auth import (
    DEFAULT_SCRYPT,
    CredentialBox,
    InvalidToken,
    ScryptParams,
    SealedValueError,
    TokenBytes,
    TokenClaims,
    TokenSigner,
    hash_password,
    validate_password,
    validate_username,
    verify_password,
)

__all__ = [
    "InvalidCredentials",
    "SubsonicSecrets",
    "authenticate_token",
    "check_login",
    "check_not_revoked",
    "registration",
]

# Checked when the username does not exist, so a miss costs as much as a wrong password
# (no user enumeration by timing). Its password is unknowable: the salt is all zeros and the
# key is not the scrypt of any password we know of.
_DUMMY_HASH: Final = (
    f"scrypt${DEFAULT_SCRYPT.n}${DEFAULT_SCRYPT.r}${DEFAULT_SCRYPT.p}$"
    "AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
)


class InvalidCredentials(ValueError):
    """Wrong username or password (HTTP 401); deliberately does not say which."""


def registration(
    username: str,
    password: str,
    *,
    user_id: str,
    at: int,
    token_bytes: TokenBytes,
    role: catalog.Role = "user",
    actor: str | None = None,
    params: ScryptParams = DEFAULT_SCRYPT,
) -> catalog.RegisterUser:
    """The log entry that registers a user; :class:`~dspot_spotify.auth.CredentialError`
    if the username or password breaks the rules (checked before the slow hash)."""
    canon = validate_username(username)
    validate_password(password, username=canon)
    return catalog.RegisterUser(
        actor=actor,
        at=at,
        user_id=user_id,
        username=canon,
        role=role,
        password_hash=hash_password(password, token_bytes=token_bytes, params=params),
    )


def check_login(tx: catalog.Tx, username: str, password: str) -> catalog.UserRecord:
    """The user whose username and password these are, else :class:`InvalidCredentials`."""
    user = catalog.get_user_by_username(tx, username)
    ok = verify_password(password, user.password_hash if user else _DUMMY_HASH)
    if user is None or not ok:
        raise InvalidCredentials("wrong username or password")
    return user


def authenticate_token(
    tx: catalog.Tx, signer: TokenSigner, token: str, *, now_ms: int
) -> TokenClaims:
    """The claims of a genuine, unexpired, unrevoked token, else :class:`InvalidToken`."""
    claims = signer.verify(token, now_ms=now_ms)
    check_not_revoked(tx, claims)
    return claims


def check_not_revoked(tx: catalog.Tx, claims: TokenClaims) -> None:
    """:class:`InvalidToken` if the (signature-checked) token was revoked, its user removed,
    or it was issued before the user's last password change."""
    if catalog.is_token_revoked(
        tx, token_id=claims.token_id, user_id=claims.user_id, issued_at=claims.issued_at
    ):
        raise InvalidToken("token revoked")


class SubsonicSecrets:
    """Makes and opens users' Subsonic passwords and API keys with the cluster's credential
    box (:class:`~dspot_spotify.auth.CredentialBox`).

    Subsonic's token scheme (``t = md5(password + salt)``) needs the plain password on every
    node: the log and every replica hold it *sealed*, and only a keyed hash of the API key
    (which is derived from the password, so it can be shown again). ``on_unreadable`` hears
    of a password that does not open (sealed under another cluster secret).
    """

    SECRET_BYTES: Final = 18  # 24 base64url characters

    def __init__(self, box: CredentialBox, on_unreadable: Callable[[str], None]) -> None:
        self.box = box
        self.on_unreadable = on_unreadable

    def password(self, creds: catalog.SubsonicCredentials) -> str | None:
        """The Subsonic password in clear, or None when it does not open."""
        try:
            return self.box.open(creds.password, owner=creds.user_id)
        except SealedValueError:
            self.on_unreadable(creds.user_id)
            return None

    def api_key(self, user_id: str, password: str) -> str:
        """The user's API key: a keyed hash of their Subsonic password (rotates with it)."""
        return self.box.tag(f"api-key\0{user_id}\0{password}")

    def stored_key(self, api_key: str) -> str:
        """How an API key is stored in the catalog (to look it up)."""
        return self.box.tag(api_key)

    def new(
        self, user_id: str, *, at: int, token_bytes: TokenBytes
    ) -> tuple[catalog.SetSubsonicCredentials, str]:
        """The log entry that gives ``user_id`` a new Subsonic password, and that password."""
        raw = token_bytes(self.SECRET_BYTES)
        password = base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
        entry = catalog.SetSubsonicCredentials(
            actor=user_id,
            at=at,
            user_id=user_id,
            password=self.box.seal(password, owner=user_id, nonce=token_bytes(12)),
            api_key=self.box.tag(self.api_key(user_id, password)),
        )
        return entry, password
