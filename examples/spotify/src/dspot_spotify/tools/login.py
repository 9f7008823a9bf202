"""Who the command-line tools sign in as: a token, or a user name and password from the
options, the environment or the terminal."""

from __future__ import annotations

import getpass
import http.client
import os
import sys

import attrs

from dspot_spotify.client import ApiClient, ApiError, ClientError

__all__ = ["Credentials", "credentials_from", "sign_in"]


@attrs.frozen
class Credentials:
    """A bearer token, or a user name and password to log in with."""

    token: str | None = None
    user: str | None = None
    password: str | None = None


def credentials_from(
    user: str | None, password: str | None, token: str | None, *, command: str
) -> Credentials:
    """Credentials from options, else ``DSPOT_TOKEN`` / ``DSPOT_USER`` + ``DSPOT_PASSWORD``;
    asks for a missing password on a terminal."""
    token = token or os.environ.get("DSPOT_TOKEN")
    user = user or os.environ.get("DSPOT_USER")
    password = password or os.environ.get("DSPOT_PASSWORD")
    if token:
        return Credentials(token=token)
    if not user:
        raise ClientError(f"{command} needs --user (and --password) or --token")
    if password is None:
        if not sys.stdin.isatty():
            raise ClientError(f"no password for {user!r}: pass --password or set DSPOT_PASSWORD")
        password = getpass.getpass(f"password for {user}: ")
    return Credentials(user=user, password=password)


def sign_in(server: ApiClient, creds: Credentials) -> None:
    """Use ``creds`` on ``server``: keep the token, or log in; :class:`ClientError` if they
    are refused or the server cannot be reached."""
    if creds.token is not None:
        server.token = creds.token
        return
    try:
        server.login(creds.user or "", creds.password or "")
    except ApiError as e:
        if e.status in (400, 401, 403, 422):
            raise ClientError(f"login as {creds.user!r} refused: {e.detail}") from None
        raise ClientError(f"login at {server.url} failed: {e}") from None
    except (OSError, http.client.HTTPException) as e:
        raise ClientError(server.describe(e)) from None
