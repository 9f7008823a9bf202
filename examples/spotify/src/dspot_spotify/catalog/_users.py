"""Catalog handlers for accounts: users, roles, disabling, passwords (and their sealed copies
for Subsonic), Subsonic credentials, token revocation, the account-password setting."""

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
    SealPassword,
    SetSubsonicAccountPassword,
    SetSubsonicCredentials,
    SetUserRole,
    UpdateUser,
)
from dspot_spotify.catalog._rules import (
    Reject,
    actor_of,
    check_id,
    exists,
)
from dspot_spotify.catalog._schema import SETTINGS
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
        "INSERT INTO users (id, username, password_hash, role, created_at, sealed_password) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (e.user_id, username, e.password_hash, e.role, e.at, _sealed(tx, e.sealed_password)),
    )


_SEALED_RE: Final = re.compile(r"^[A-Za-z0-9_-]{16,2048}$")


def _account_passwords_allowed(tx: Tx) -> bool:
    key = "subsonic_account_password"
    row = _one(tx, "SELECT value FROM settings WHERE key = ?", (key,))
    return bool(SETTINGS[key] if row is None else row[0])


def _sealed(tx: Tx, sealed: str | None) -> str | None:
    """The sealed account password to keep: None while the cluster requires app passwords."""
    if sealed is None:
        return None
    if not _SEALED_RE.match(sealed):
        raise Reject("a sealed password must be 16-2048 base64url characters")
    return sealed if _account_passwords_allowed(tx) else None


def _target_user(tx: Tx, user_id: str) -> tuple[str, bool]:
    """The role and disabled state of the user an entry is about (rejected if unknown)."""
    row = _one(tx, "SELECT role, disabled FROM users WHERE id = ?", (user_id,))
    if row is None:
        raise Reject("unknown user", "not_found")
    return str(row[0]), bool(row[1])


def _keep_an_admin(tx: Tx, user_id: str, what: str) -> None:
    """Reject when ``user_id`` is the last enabled admin (``what``: demote, disable)."""
    admins = int(_scalar(tx, "SELECT COUNT(*) FROM users WHERE role = 'admin' AND NOT disabled"))
    role, disabled = _target_user(tx, user_id)
    if role == "admin" and not disabled and admins <= 1:
        raise Reject(f"cannot {what} the last admin", "conflict")


def _bump_generation(tx: Tx, user_id: str) -> None:
    """End every session and Subsonic app credential of the user."""
    _exec(tx, "UPDATE users SET token_generation = token_generation + 1 WHERE id = ?", (user_id,))


def _set_user_role(tx: Tx, e: SetUserRole) -> None:
    _update_user(tx, UpdateUser(actor=e.actor, at=e.at, user_id=e.user_id, role=e.role))


def _update_user(tx: Tx, e: UpdateUser) -> None:
    actor = actor_of(tx, e)
    if not actor.admin:
        raise Reject("only an admin may change users", "forbidden")
    if e.role is not None and e.role not in ("admin", "user"):
        raise Reject("role must be admin or user")
    if e.disabled is not None and not isinstance(e.disabled, bool):
        raise Reject("disabled must be true or false")
    role, disabled = _target_user(tx, e.user_id)
    if e.role == "user" and role == "admin":
        _keep_an_admin(tx, e.user_id, "demote")
    if e.disabled and not disabled:
        if e.user_id == actor.id:
            raise Reject("an admin cannot disable their own account", "conflict")
        _keep_an_admin(tx, e.user_id, "disable")
        _bump_generation(tx, e.user_id)
    if e.role is not None:
        _exec(tx, "UPDATE users SET role = ? WHERE id = ?", (e.role, e.user_id))
    if e.disabled is not None:
        _exec(tx, "UPDATE users SET disabled = ? WHERE id = ?", (int(e.disabled), e.user_id))


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
        "UPDATE users SET password_hash = ?, sealed_password = ? WHERE id = ?",
        (e.password_hash, _sealed(tx, e.sealed_password), e.user_id),
    )
    _bump_generation(tx, e.user_id)


def _seal_password(tx: Tx, e: SealPassword) -> None:
    actor = actor_of(tx, e)
    if actor.id != e.user_id:
        raise Reject("only the user may seal their own password", "forbidden")
    if not _account_passwords_allowed(tx):
        raise Reject("Subsonic apps must use app passwords on this cluster", "conflict")
    current = int(_scalar(tx, "SELECT token_generation FROM users WHERE id = ?", (e.user_id,)))
    if e.generation != current:
        raise Reject("the password changed since it was checked", "conflict")
    _exec(
        tx,
        "UPDATE users SET sealed_password = ? WHERE id = ?",
        (_sealed(tx, e.sealed_password), e.user_id),
    )


def _set_subsonic_account_password(tx: Tx, e: SetSubsonicAccountPassword) -> None:
    if not actor_of(tx, e).admin:
        raise Reject("only an admin may change the cluster's settings", "forbidden")
    if not isinstance(e.allowed, bool):
        raise Reject("allowed must be true or false")
    _exec(
        tx,
        "INSERT INTO settings (key, value) VALUES ('subsonic_account_password', ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (int(e.allowed),),
    )
    if not e.allowed:
        _exec(tx, "UPDATE users SET sealed_password = NULL")


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
    if e.first and _one(
        tx,
        "SELECT 1 FROM subsonic_credentials c JOIN users u ON u.id = c.user_id "
        "WHERE c.user_id = ? AND c.generation >= u.token_generation",
        (e.user_id,),
    ):
        raise Reject("the user has Subsonic credentials already", "conflict")
    _exec(
        tx,
        "INSERT INTO subsonic_credentials (user_id, password, api_key, updated_at, generation) "
        "SELECT ?, ?, ?, ?, token_generation FROM users WHERE id = ? "
        "ON CONFLICT (user_id) DO UPDATE SET password = excluded.password, "
        "api_key = excluded.api_key, updated_at = excluded.updated_at, "
        "generation = excluded.generation",
        (e.user_id, e.password, e.api_key, e.at, e.user_id),
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
    UpdateUser: _update_user,
    ChangePassword: _change_password,
    SealPassword: _seal_password,
    SetSubsonicAccountPassword: _set_subsonic_account_password,
    SetSubsonicCredentials: _set_subsonic_credentials,
    RevokeToken: _revoke_token,
}
