"""User management (admins): list users, change a user's roles or disable them, set a new
password; and the cluster's settings (the Subsonic sign-in policy).

A change takes effect on every node as soon as that node has applied its log entry:
disabling a user or setting their password raises their token generation (every session
and Subsonic app password of theirs stops working), and roles are read from the catalog on
every request.
"""

from __future__ import annotations

from typing import Final, Literal

import attrs
from dspot.http import HTTPError, Request, Response

from dspot_spotify import catalog
from dspot_spotify.api.accounts import roles_of, set_password
from dspot_spotify.api.context import Api
from dspot_spotify.api.route import BAD_REQUEST, CONFLICT, FORBIDDEN, INVALID, NOT_FOUND, Route
from dspot_spotify.api.schema import json_schema
from dspot_spotify.api.wire import read_json

__all__ = [
    "ROUTES",
    "PasswordReset",
    "ServerSettings",
    "SettingsPatch",
    "UserList",
    "UserPatch",
    "UserRow",
]

RoleName = Literal["admin", "user"]


@attrs.frozen(kw_only=True)
class UserRow:
    """A user as the admins' list shows them (``admin`` in ``roles``: an admin)."""

    id: str
    username: str
    roles: tuple[RoleName, ...]
    disabled: bool
    created_at: int = attrs.field(
        metadata=json_schema(description="milliseconds since the Unix epoch")
    )

    @classmethod
    def of(cls, user: catalog.UserRecord) -> UserRow:
        return cls(
            id=user.id,
            username=user.username,
            roles=roles_of(user.role),
            disabled=user.disabled,
            created_at=user.created_at,
        )


@attrs.frozen(kw_only=True)
class UserList:
    """Every user, by username."""

    users: tuple[UserRow, ...]


@attrs.frozen(kw_only=True)
class UserPatch:
    """What to change of a user; a field left out stays as it is. ``roles`` with ``admin``
    makes an admin, without it a plain user; disabling ends every session of the user."""

    roles: tuple[RoleName, ...] | None = None
    disabled: bool | None = None


@attrs.frozen(kw_only=True)
class PasswordReset:
    """A new password for a user."""

    password: str


@attrs.frozen(kw_only=True)
class ServerSettings:
    """Settings of the whole cluster."""

    subsonic_account_password: bool = attrs.field(
        metadata=json_schema(
            description="Subsonic apps may sign in with account passwords (kept sealed with "
            "a key derived from the cluster secret); false: only app passwords and API keys"
        )
    )


@attrs.frozen(kw_only=True)
class SettingsPatch:
    """The settings to change; a field left out stays as it is."""

    subsonic_account_password: bool | None = None


async def _target(api: Api, request: Request) -> catalog.UserRecord:
    return await api.found("user", catalog.get_user, request.path_params["user_id"])


async def list_users(api: Api, request: Request) -> Response:
    await api.admin(request)
    users = await api.read(catalog.all_users)
    return api.reply(UserList(users=tuple(UserRow.of(u) for u in users)))


async def update_user(api: Api, request: Request) -> Response:
    patch = await read_json(request, UserPatch)
    if patch.roles is None and patch.disabled is None:
        raise HTTPError(422, "nothing to change: give roles, disabled or both")
    _, admin = await api.admin(request)
    user = await _target(api, request)
    role: catalog.Role | None = None
    if patch.roles is not None:
        role = "admin" if "admin" in patch.roles else "user"
    entry = catalog.UpdateUser(
        actor=admin.id,
        at=api.node.now_ms(),
        user_id=user.id,
        role=role,
        disabled=patch.disabled,
    )
    pos = await api.writer.commit(entry)
    return api.reply(UserRow.of(await _target(api, request)), position=pos)


async def reset_password(api: Api, request: Request) -> Response:
    reset = await read_json(request, PasswordReset)
    _, admin = await api.admin(request)
    user = await _target(api, request)
    return api.written(await set_password(api, user, reset.password, actor=admin.id))


async def settings(api: Api, request: Request) -> Response:
    await api.authenticate(request)
    return api.reply(await _settings(api))


async def _settings(api: Api) -> ServerSettings:
    allowed = await api.read(catalog.subsonic_account_password)
    return ServerSettings(subsonic_account_password=allowed)


async def change_settings(api: Api, request: Request) -> Response:
    patch = await read_json(request, SettingsPatch)
    _, admin = await api.admin(request)
    pos: catalog.LogPosition | None = None
    if patch.subsonic_account_password is not None:
        entry = catalog.SetSubsonicAccountPassword(
            actor=admin.id, at=api.node.now_ms(), allowed=patch.subsonic_account_password
        )
        pos = await api.writer.commit(entry)
    return api.reply(await _settings(api), position=pos)


USER: Final = "/api/users/{user_id}"
ROUTES: Final = (
    Route(
        method="GET",
        path="/api/users",
        handler=list_users,
        summary="Every user (admins only)",
        tag="users",
        reply=UserList,
        errors=(FORBIDDEN,),
    ),
    Route(
        method="PATCH",
        path=USER,
        handler=update_user,
        summary="Change a user's roles or disable them (admins only; the last enabled admin "
        "stays one, and no admin disables themselves)",
        tag="users",
        body=UserPatch,
        reply=UserRow,
        write=True,
        errors=(BAD_REQUEST, FORBIDDEN, NOT_FOUND, CONFLICT, INVALID),
    ),
    Route(
        method="POST",
        path=f"{USER}/password",
        handler=reset_password,
        summary="Set a user's password (admins only); every session of theirs ends",
        tag="users",
        body=PasswordReset,
        ok=204,
        ok_description="Set",
        write=True,
        errors=(BAD_REQUEST, FORBIDDEN, NOT_FOUND, INVALID),
    ),
    Route(
        method="GET",
        path="/api/settings",
        handler=settings,
        summary="The cluster's settings",
        tag="users",
        reply=ServerSettings,
    ),
    Route(
        method="PATCH",
        path="/api/settings",
        handler=change_settings,
        summary="Change the cluster's settings (admins only)",
        tag="users",
        body=SettingsPatch,
        reply=ServerSettings,
        write=True,
        errors=(BAD_REQUEST, FORBIDDEN, INVALID),
    ),
)
