"""Accounts: register (the cluster's first user becomes its admin), log in, who I am, and my
Subsonic client credentials."""

from __future__ import annotations

import logging
from typing import Final

import attrs
from dspot.http import HTTPError, Request, Response

from dspot_spotify import accounts, catalog
from dspot_spotify.api.context import Api
from dspot_spotify.api.route import (
    BAD_REQUEST,
    CONFLICT,
    INVALID,
    UNAUTHORIZED,
    UNAVAILABLE,
    Route,
)
from dspot_spotify.api.schema import json_schema
from dspot_spotify.api.wire import read_json
from dspot_spotify.auth import CredentialError

__all__ = ["ROUTES", "Credentials", "Me", "Session", "SubsonicCredentials", "subsonic_secrets"]


@attrs.frozen(kw_only=True)
class Credentials:
    """A username and password."""

    username: str
    password: str


@attrs.frozen(kw_only=True)
class Me:
    """Who a token belongs to."""

    user_id: str
    username: str
    role: catalog.Role


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


def subsonic_secrets(api: Api) -> accounts.SubsonicSecrets:
    """The node's maker and opener of Subsonic credentials."""
    log = api.node.env.log
    return accounts.SubsonicSecrets(
        api.node.credentials,
        lambda user: log(logging.WARNING, "subsonic.credentials_unreadable", user=user),
    )


def _session(api: Api, user_id: str, username: str, role: catalog.Role) -> Session:
    issued = api.node.signer.issue(user_id, now_ms=api.node.now_ms())
    return Session(token=issued.token, user_id=user_id, username=username, role=role)


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
    session = _session(api, entry.user_id, entry.username, entry.role)
    return api.reply(session, 201, position=pos)


async def login(api: Api, request: Request) -> Response:
    creds = await read_json(request, Credentials)
    await api.writer.catch_up(request)
    try:
        user = await api.read(accounts.check_login, creds.username, creds.password)
    except accounts.InvalidCredentials as e:
        raise HTTPError(401, str(e)) from None
    role: catalog.Role = "admin" if user.role == "admin" else "user"
    return api.reply(_session(api, user.id, user.username, role))


async def me(api: Api, request: Request) -> Response:
    claims = await api.authenticate(request)
    user = await api.read(catalog.get_user, claims.user_id)
    if user is None:  # authenticate() found the user; only a broken replica gets here
        raise HTTPError(401, "unknown user")
    role: catalog.Role = "admin" if user.role == "admin" else "user"
    return api.reply(Me(user_id=user.id, username=user.username, role=role))


async def my_subsonic(api: Api, request: Request) -> Response:
    """My Subsonic username, password and API key (made on first use; then the answer
    carries the write's ``X-Log-Position``)."""
    claims = await api.authenticate(request)
    creds = await api.read(catalog.subsonic_credentials, claims.user_id)
    secrets = subsonic_secrets(api)
    password = None if creds is None else secrets.password(creds)
    if creds is not None and password is not None:
        return api.reply(_subsonic(secrets, creds, password))
    return await _new_subsonic(api, claims.user_id)


async def rotate_subsonic(api: Api, request: Request) -> Response:
    """A new Subsonic password and API key (the old ones stop working)."""
    claims = await api.authenticate(request)
    return await _new_subsonic(api, claims.user_id)


async def _new_subsonic(api: Api, user_id: str) -> Response:
    secrets = subsonic_secrets(api)
    node = api.node
    entry, password = secrets.new(user_id, at=node.now_ms(), token_bytes=node.env.secure_token)
    position = await api.writer.commit(entry)
    creds = await api.read(catalog.subsonic_credentials, user_id)
    if creds is None:  # committed and applied above, so this is a broken replica
        raise HTTPError(500, "Subsonic credentials vanished after they were stored")
    return api.reply(_subsonic(secrets, creds, password), position=position)


def _subsonic(
    secrets: accounts.SubsonicSecrets, creds: catalog.SubsonicCredentials, password: str
) -> SubsonicCredentials:
    return SubsonicCredentials(
        username=creds.username,
        password=password,
        api_key=secrets.api_key(creds.user_id, password),
        updated_at=creds.updated_at,
        path="/rest",
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
        ok_description="A token",
        reply=Session,
        errors=(BAD_REQUEST, UNAUTHORIZED, INVALID),
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
