"""Catalog handlers for accounts: users, roles, passwords, Subsonic credentials, token
revocation."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from dspot_spotify.auth import CredentialError, is_password_hash, validate_username
from dspot_spotify.catalog._entries import (
    ChangePassword,
    Entry,
    RegisterUser,
    RevokeToken,
    SetSubsonicCredentials,
    SetUserRole,
)
from dspot_spotify.catalog._rules import (
    Reject,
    actor_of,
    check_id,
    exists,
)
from dspot_spotify.catalog._sql import Tx
from dspot_spotify.catalog._sql import exec_ as _exec
from dspot_spotify.catalog._sql import one as _one
from dspot_spotify.catalog._sql import scalar as _scalar


def _register_user(tx: Tx, e: RegisterUser) -> None:
    check_id(e.user_id, "user id")
    try:
        username = validate_username(e.username)
    except CredentialError as exc:
        raise Reject(str(exc)) from None
    if e.role not in ("admin", "user"):
        raise Reject("role must be admin or user")
    if not is_password_hash(e.password_hash):
        raise Reject("password hash is not a valid scrypt hash")
    users = int(_scalar(tx, "SELECT COUNT(*) FROM users"))
    if users and e.actor is None:
        if e.role != "user":
            raise Reject("only an admin may register admins", "forbidden")
    elif users:
        if not actor_of(tx, e).admin:
            raise Reject("only an admin may register users for others", "forbidden")
    elif e.actor is not None:
        raise Reject("unknown actor", "unauthenticated")
    if exists(tx, "users", e.user_id):
        raise Reject("user id already exists", "conflict")
    if _one(tx, "SELECT 1 FROM users WHERE username = ?", (username,)) is not None:
        raise Reject("username is taken", "conflict")
    _exec(
        tx,
        "INSERT INTO users (id, username, password_hash, role, created_at) VALUES (?, ?, ?, ?, ?)",
        (e.user_id, username, e.password_hash, e.role, e.at),
    )


def _set_user_role(tx: Tx, e: SetUserRole) -> None:
    actor = actor_of(tx, e)
    if not actor.admin:
        raise Reject("only an admin may change roles", "forbidden")
    if e.role not in ("admin", "user"):
        raise Reject("role must be admin or user")
    row = _one(tx, "SELECT role FROM users WHERE id = ?", (e.user_id,))
    if row is None:
        raise Reject("unknown user", "not_found")
    if row[0] == "admin" and e.role == "user":
        admins = int(_scalar(tx, "SELECT COUNT(*) FROM users WHERE role = 'admin'"))
        if admins <= 1:
            raise Reject("cannot demote the last admin", "conflict")
    _exec(tx, "UPDATE users SET role = ? WHERE id = ?", (e.role, e.user_id))


def _change_password(tx: Tx, e: ChangePassword) -> None:
    actor = actor_of(tx, e)
    if actor.id != e.user_id and not actor.admin:
        raise Reject("only the user or an admin may change a password", "forbidden")
    if not exists(tx, "users", e.user_id):
        raise Reject("unknown user", "not_found")
    if not is_password_hash(e.password_hash):
        raise Reject("password hash is not a valid scrypt hash")
    _exec(
        tx,
        "UPDATE users SET password_hash = ?, tokens_valid_after = ? WHERE id = ?",
        (e.password_hash, e.at, e.user_id),
    )


_SUBSONIC_SECRET_RE: Final = re.compile(r"^[A-Za-z0-9_-]{16,128}$")


def _set_subsonic_credentials(tx: Tx, e: SetSubsonicCredentials) -> None:
    actor = actor_of(tx, e)
    if actor.id != e.user_id and not actor.admin:
        raise Reject("only the user or an admin may set Subsonic credentials", "forbidden")
    if not exists(tx, "users", e.user_id):
        raise Reject("unknown user", "not_found")
    for value, what in ((e.password, "Subsonic password"), (e.api_key, "API key")):
        if not _SUBSONIC_SECRET_RE.match(value):
            raise Reject(f"{what} must be 16-128 characters of A-Z, a-z, 0-9, '-' and '_'")
    if _one(
        tx,
        "SELECT 1 FROM subsonic_credentials WHERE api_key = ? AND user_id != ?",
        (e.api_key, e.user_id),
    ):
        raise Reject("API key already in use", "conflict")
    _exec(
        tx,
        "INSERT INTO subsonic_credentials (user_id, password, api_key, updated_at) "
        "VALUES (?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET password = excluded.password, "
        "api_key = excluded.api_key, updated_at = excluded.updated_at",
        (e.user_id, e.password, e.api_key, e.at),
    )


def _revoke_token(tx: Tx, e: RevokeToken) -> None:
    actor = actor_of(tx, e)
    if actor.id != e.user_id and not actor.admin:
        raise Reject("only the token's user or an admin may revoke it", "forbidden")
    check_id(e.token_id, "token id")
    _exec(tx, "DELETE FROM revoked_tokens WHERE expires_at <= ?", (e.at,))  # prune
    if e.expires_at > e.at:
        _exec(
            tx,
            "INSERT OR IGNORE INTO revoked_tokens (token_id, user_id, expires_at) VALUES (?, ?, ?)",
            (e.token_id, e.user_id, e.expires_at),
        )


HANDLERS: Final[Mapping[type[Entry], Any]] = {
    RegisterUser: _register_user,
    SetUserRole: _set_user_role,
    ChangePassword: _change_password,
    SetSubsonicCredentials: _set_subsonic_credentials,
    RevokeToken: _revoke_token,
}
