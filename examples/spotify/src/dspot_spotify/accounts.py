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
    "AccountDisabled",
    "InvalidCredentials",
    "SubsonicSecrets",
    "UserNotApplied",
    "authenticate_token",
    "check_login",
    "check_new_account",
    "check_not_revoked",
    "login_verdict",
    "registration",
    "stored_hash",
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


class AccountDisabled(ValueError):
    """The right password of a user an admin disabled (HTTP 403): said only to someone who
    proved the password."""


class UserNotApplied(LookupError):
    """A genuine token of a user this replica has not applied yet (HTTP 503, retry).

    Users are never deleted, so a signed token naming a user the replica does not have was
    issued by a node further along the log: this one is behind, the token is not revoked.
    """


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
    password_hash: str | None = None,
) -> catalog.RegisterUser:
    """The log entry that registers a user; :class:`~dspot_spotify.auth.CredentialError`
    if the username or password breaks the rules (checked before the slow hash).

    ``password_hash``: the password's hash made elsewhere (off the event loop), after
    :func:`check_new_account` accepted it; otherwise it is hashed here."""
    canon = check_new_account(username, password)
    if password_hash is None:
        password_hash = hash_password(password, token_bytes=token_bytes, params=params)
    return catalog.RegisterUser(
        actor=actor,
        at=at,
        user_id=user_id,
        username=canon,
        role=role,
        password_hash=password_hash,
    )


def check_new_account(username: str, password: str) -> str:
    """The canonical username, if ``username`` and ``password`` follow the rules
    (:class:`~dspot_spotify.auth.CredentialError` otherwise)."""
    canon = validate_username(username)
    validate_password(password, username=canon)
    return canon


def check_login(tx: catalog.Tx, username: str, password: str) -> catalog.UserRecord:
    """The user whose username and password these are, else :class:`InvalidCredentials`
    (or :class:`AccountDisabled` for the right password of a disabled user).

    Hashes inside the caller's transaction: a node checks sign-ins with
    :class:`~dspot_spotify.signin.SignIn` instead, which reads the user, then hashes off the
    event loop outside any transaction."""
    user = catalog.get_user_by_username(tx, username)
    return login_verdict(user, verify_password(password, stored_hash(user)))


def stored_hash(user: catalog.UserRecord | None) -> str:
    """The hash to check a password against: the user's, or (no such user) one no password
    matches, so a miss costs as much as a wrong password."""
    return user.password_hash if user is not None else _DUMMY_HASH


def login_verdict(user: catalog.UserRecord | None, ok: bool) -> catalog.UserRecord:
    """``user`` if the password was right (``ok``) and the account is enabled, else
    :class:`InvalidCredentials` or :class:`AccountDisabled`."""
    if user is None or not ok:
        raise InvalidCredentials("wrong username or password")
    if user.disabled:
        raise AccountDisabled("this account is disabled")
    return user


def authenticate_token(
    tx: catalog.Tx, signer: TokenSigner, token: str, *, now_ms: int
) -> TokenClaims:
    """The claims of a genuine, unexpired, unrevoked token, else :class:`InvalidToken`
    (:class:`UserNotApplied` when this replica does not know its user yet)."""
    claims = signer.verify(token, now_ms=now_ms)
    check_not_revoked(tx, claims)
    return claims


def check_not_revoked(tx: catalog.Tx, claims: TokenClaims) -> None:
    """:class:`InvalidToken` if the (signature-checked) token was revoked, its user disabled,
    or it is of an older token generation (a password change since);
    :class:`UserNotApplied` if this replica does not know its user yet."""
    revoked = catalog.token_revoked(
        tx,
        token_id=claims.token_id,
        user_id=claims.user_id,
        issued_at=claims.issued_at,
        generation=claims.generation,
    )
    if revoked is None:
        raise UserNotApplied(claims.user_id)
    if revoked:
        raise InvalidToken("token revoked")


class SubsonicSecrets:
    """Makes and opens users' Subsonic passwords and API keys, and sealed copies of account
    passwords, with the cluster's credential box (:class:`~dspot_spotify.auth.CredentialBox`).

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

    def account_password(self, user: catalog.UserRecord) -> str | None:
        """The user's account password in clear from its sealed copy, or None (no copy, or
        one that does not open)."""
        if user.sealed_password is None:
            return None
        try:
            return self.box.open(user.sealed_password, owner=f"account\0{user.id}")
        except SealedValueError:
            self.on_unreadable(user.id)
            return None

    def seal_account(self, user_id: str, password: str, *, token_bytes: TokenBytes) -> str:
        """``password`` sealed as the account password of ``user_id`` (bound to that use, so
        it never opens as the user's app password, nor the other way round)."""
        return self.box.seal(password, owner=f"account\0{user_id}", nonce=token_bytes(12))

    def api_key(self, user_id: str, password: str) -> str:
        """The user's API key: a keyed hash of their Subsonic password (rotates with it)."""
        return self.box.tag(f"api-key\0{user_id}\0{password}")

    def stored_key(self, api_key: str) -> str:
        """How an API key is stored in the catalog (to look it up)."""
        return self.box.tag(api_key)

    def new(
        self, user_id: str, *, at: int, token_bytes: TokenBytes, first: bool = False
    ) -> tuple[catalog.SetSubsonicCredentials, str]:
        """The log entry that gives ``user_id`` a new Subsonic password (``first``: only if
        they have none that works), and that password."""
        raw = token_bytes(self.SECRET_BYTES)
        password = base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
        entry = catalog.SetSubsonicCredentials(
            actor=user_id,
            at=at,
            user_id=user_id,
            password=self.box.seal(password, owner=user_id, nonce=token_bytes(12)),
            api_key=self.box.tag(self.api_key(user_id, password)),
            first=first,
        )
        return entry, password
