"""Accounts: sign-up entries, password login and token checks against a catalog replica.

Glue between :mod:`dspot_spotify.auth` (hashing, signing) and the replicated catalog
(users, revocations). Every function here is synchronous and takes the replica's
transaction, like the catalog queries.
"""

from __future__ import annotations

from typing import Final

from dspot_spotify import catalog
from dspot_spotify.auth import (
    DEFAULT_SCRYPT,
    InvalidToken,
    ScryptParams,
    TokenBytes,
    TokenClaims,
    TokenSigner,
    hash_password,
    validate_password,
    validate_username,
    verify_password,
)

__all__ = ["InvalidCredentials", "authenticate_token", "check_login", "registration"]

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
    if catalog.is_token_revoked(
        tx, token_id=claims.token_id, user_id=claims.user_id, issued_at=claims.issued_at
    ):
        raise InvalidToken("token revoked")
    return claims
