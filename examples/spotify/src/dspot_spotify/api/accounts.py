"""Accounts: register (the cluster's first user becomes its admin), log in and out, who I
am, changing my password, and my Subsonic client credentials.

Session lifecycle: logging out revokes the presented token; changing a password (here, or an
admin's reset in :mod:`~dspot_spotify.api.users`) raises the user's token generation, so
every token and Subsonic app password of that user stops working on every node as soon as
the node has applied the entry. A new sign-in gets a token of the new generation.
"""

from __future__ import annotations

from typing import Final

import attrs
from dspot.http import HTTPError, Request, Response

from dspot_spotify import accounts, catalog
from dspot_spotify.api.context import Api
from dspot_spotify.api.route import (
    BAD_REQUEST,
    CONFLICT,
    FORBIDDEN,
    INVALID,
    UNAUTHORIZED,
    UNAVAILABLE,
    Route,
)
from dspot_spotify.api.schema import json_schema
from dspot_spotify.api.wire import read_json
from dspot_spotify.auth import CredentialError, hash_password, validate_password

__all__ = [
    "ROUTES",
    "Credentials",
    "Me",
    "PasswordChange",
    "Session",
    "SubsonicCredentials",
    "roles_of",
    "subsonic_secrets",
]


@attrs.frozen(kw_only=True)
class Credentials:
    """A username and password."""

    username: str
    password: str


@attrs.frozen(kw_only=True)
class Me:
    """Who a token belongs to. ``roles`` says the same as ``role`` as a list (``admin`` in
    it: an admin)."""

    user_id: str
    username: str
    role: catalog.Role
    roles: tuple[catalog.Role, ...]


def roles_of(role: str) -> tuple[catalog.Role, ...]:
    """A stored role as the ``roles`` list: ``("user", "admin")`` or ``("user",)``."""
    return ("user", "admin") if role == "admin" else ("user",)


@attrs.frozen(kw_only=True)
class PasswordChange:
    """My current password and the new one."""

    old: str
    new: str


@attrs.frozen(kw_only=True)
class Session(Me):
    """A signed-in user and their bearer token."""

    token: str


@attrs.frozen(kw_only=True)
class SubsonicCredentials:
    """My password and API key for Subsonic clients."""

    username: str
    password: str
    api_key: str
    updated_at: int
    path: str = attrs.field(metadata=json_schema(description="where the Subsonic API is served"))
    account_password: bool = attrs.field(
        metadata=json_schema(
            description="whether Subsonic apps may also sign in with the account password "
            "(else an admin requires app passwords)"
        )
    )


def subsonic_secrets(api: Api) -> accounts.SubsonicSecrets:
    """The node's maker and opener of Subsonic credentials."""
    return api.sealer.secrets


def _session(api: Api, user_id: str, username: str, role: str, generation: int) -> Session:
    issued = api.node.signer.issue(user_id, now_ms=api.node.now_ms(), generation=generation)
    return Session(
        token=issued.token,
        user_id=user_id,
        username=username,
        role="admin" if role == "admin" else "user",
        roles=roles_of(role),
    )


async def register(api: Api, request: Request) -> Response:
    creds = await read_json(request, Credentials)
    writer = api.writer
    writer.require_quorum()
    node = api.node
    try:
        entry = accounts.registration(
            creds.username,
            creds.password,
            user_id=node.env.ids(),
            at=node.now_ms(),
            token_bytes=node.env.secure_token,
            params=node.config.scrypt,
        )
    except CredentialError as e:
        raise HTTPError(422, str(e)) from None
    sealed = await api.sealer.for_entry(entry.user_id, creds.password)
    entry = attrs.evolve(entry, sealed_password=sealed)
    if await api.read(catalog.user_count) == 0:
        # The first user of a new cluster becomes its admin. If someone else got there
        # first, the log rejects this entry as forbidden and we register a plain user.
        admin = attrs.evolve(entry, role="admin")
        pos = await writer.submit(admin)
        result = await writer.result(pos)
        if result.status == "applied":
            entry = admin
        elif result.code == "forbidden":
            pos = await writer.commit(entry)
        else:
            await writer.outcome(pos)  # raises the rejection
    else:
        pos = await writer.commit(entry)
    session = _session(api, entry.user_id, entry.username, entry.role, 0)
    return api.reply(session, 201, position=pos)


async def login(api: Api, request: Request) -> Response:
    creds = await read_json(request, Credentials)
    await api.writer.catch_up(request)
    try:
        user = await api.read(accounts.check_login, creds.username, creds.password)
    except accounts.InvalidCredentials as e:
        raise HTTPError(401, str(e)) from None
    except accounts.AccountDisabled as e:
        raise HTTPError(403, str(e)) from None
    api.sealer.signed_in(user, creds.password)
    return api.reply(_session(api, user.id, user.username, user.role, user.token_generation))


async def logout(api: Api, request: Request) -> Response:
    """Revoke the presented token (on every node, once the entry is applied there)."""
    claims = await api.authenticate(request)
    entry = catalog.RevokeToken(
        actor=claims.user_id,
        at=api.node.now_ms(),
        token_id=claims.token_id,
        user_id=claims.user_id,
        expires_at=claims.expires_at,
    )
    return api.written(await api.writer.commit(entry))


async def me(api: Api, request: Request) -> Response:
    _, user = await api.user(request)
    role: catalog.Role = "admin" if user.role == "admin" else "user"
    return api.reply(Me(user_id=user.id, username=user.username, role=role, roles=roles_of(role)))


async def change_my_password(api: Api, request: Request) -> Response:
    """Check the old password, set the new one: every token of the user (this one too) and
    their Subsonic app password stop working."""
    change = await read_json(request, PasswordChange)
    _, user = await api.user(request)
    try:
        await api.read(accounts.check_login, user.username, change.old)
    except accounts.InvalidCredentials:
        raise HTTPError(403, "the current password is wrong") from None
    return api.written(await set_password(api, user, change.new, actor=user.id))


async def set_password(
    api: Api, user: catalog.UserRecord, password: str, *, actor: str
) -> catalog.LogPosition:
    """Commit ``password`` as ``user``'s new one (422 if it breaks the rules), written by
    ``actor`` (the user, or an admin)."""
    node = api.node
    try:
        validate_password(password, username=user.username)
    except CredentialError as e:
        raise HTTPError(422, str(e)) from None
    api.writer.require_quorum()  # before the slow hash
    entry = catalog.ChangePassword(
        actor=actor,
        at=node.now_ms(),
        user_id=user.id,
        password_hash=hash_password(
            password, token_bytes=node.env.secure_token, params=node.config.scrypt
        ),
        sealed_password=await api.sealer.for_entry(user.id, password),
    )
    return await api.writer.commit(entry)


async def my_subsonic(api: Api, request: Request) -> Response:
    """My Subsonic username, password and API key (made on first use, and again after a
    password change; then the answer carries the write's ``X-Log-Position``)."""
    claims = await api.authenticate(request)
    creds = await api.read(catalog.subsonic_credentials, claims.user_id)
    secrets = subsonic_secrets(api)
    password = None if creds is None or not creds.current else secrets.password(creds)
    if creds is not None and password is not None:
        return api.reply(await _subsonic(api, creds, password))
    return await _new_subsonic(api, claims.user_id, first=creds is None or not creds.current)


async def rotate_subsonic(api: Api, request: Request) -> Response:
    """A new Subsonic password and API key (the old ones stop working)."""
    claims = await api.authenticate(request)
    return await _new_subsonic(api, claims.user_id)


async def _new_subsonic(api: Api, user_id: str, *, first: bool = False) -> Response:
    """Store a new pair and answer it; ``first`` (made on first use): if another node made
    one meanwhile (the web app asks from two places at start), answer that one instead."""
    secrets = subsonic_secrets(api)
    node = api.node
    entry, password = secrets.new(
        user_id, at=node.now_ms(), token_bytes=node.env.secure_token, first=first
    )
    writer = api.writer
    writer.require_quorum()
    position = await writer.submit(entry)
    result = await writer.result(position)
    creds = await api.read(catalog.subsonic_credentials, user_id)
    if result.status == "rejected":
        stored = None if creds is None else secrets.password(creds)
        if not first or result.code != "conflict" or creds is None or stored is None:
            await writer.outcome(position)  # raises the rejection
            raise HTTPError(500, "a rejected write was not reported")
        password = stored
    if creds is None:  # committed and applied above, so this is a broken replica
        raise HTTPError(500, "Subsonic credentials vanished after they were stored")
    return api.reply(await _subsonic(api, creds, password), position=position)


async def _subsonic(
    api: Api, creds: catalog.SubsonicCredentials, password: str
) -> SubsonicCredentials:
    return SubsonicCredentials(
        username=creds.username,
        password=password,
        api_key=subsonic_secrets(api).api_key(creds.user_id, password),
        updated_at=creds.updated_at,
        path="/rest",
        account_password=await api.read(catalog.subsonic_account_password),
    )


ROUTES: Final = (
    Route(
        method="POST",
        path="/api/auth/register",
        handler=register,
        summary="Register a user (the cluster's first user becomes its admin)",
        tag="auth",
        auth=False,
        body=Credentials,
        ok=201,
        ok_description="Registered; a token for the new user",
        reply=Session,
        write=True,
        errors=(BAD_REQUEST, CONFLICT, INVALID),
    ),
    Route(
        method="POST",
        path="/api/auth/login",
        handler=login,
        summary="Log in with username and password",
        tag="auth",
        auth=False,
        body=Credentials,
        ok_description="A token (403: the account is disabled)",
        reply=Session,
        errors=(BAD_REQUEST, UNAUTHORIZED, FORBIDDEN, INVALID),
    ),
    Route(
        method="POST",
        path="/api/auth/logout",
        handler=logout,
        summary="Log out: revoke the presented token",
        tag="auth",
        ok=204,
        ok_description="Revoked (on every node once it has applied the write)",
        write=True,
    ),
    Route(
        method="GET",
        path="/api/me",
        handler=me,
        summary="Who the token belongs to",
        tag="auth",
        reply=Me,
    ),
    Route(
        method="POST",
        path="/api/me/password",
        handler=change_my_password,
        summary="Change my password; every token and Subsonic app password of mine stops "
        "working (sign in again)",
        tag="auth",
        body=PasswordChange,
        ok=204,
        ok_description="Changed",
        write=True,
        errors=(BAD_REQUEST, FORBIDDEN, INVALID),
    ),
    Route(
        method="GET",
        path="/api/me/subsonic",
        handler=my_subsonic,
        summary="My Subsonic client credentials (created on first use)",
        tag="subsonic",
        reply=SubsonicCredentials,
        write=True,
        errors=(UNAVAILABLE,),
    ),
    Route(
        method="POST",
        path="/api/me/subsonic/rotate",
        handler=rotate_subsonic,
        summary="New Subsonic password and API key (the old ones stop working)",
        tag="subsonic",
        reply=SubsonicCredentials,
        write=True,
        errors=(UNAVAILABLE,),
    ),
)
