"""What every REST handler shares: the node, the catalog writer, authentication, paging,
and turning an attrs object into a JSON answer.

**Authentication.** Everything but register, login, ``/healthz``, ``/metrics`` and the
OpenAPI document needs ``Authorization: Bearer <token>`` (401 otherwise). Only what a
browser loads without headers (a song's stream and cover, the event WebSocket) also takes
the token as ``?token=<token>``: an opt-in per route, since a URL ends up in histories and
logs. The token's signature and expiry are checked first, so a forged token is refused at
once; then the request waits for its ``X-Log-Position`` (a user registered there may be
unknown here until then), then the replica says whether the token was revoked. A replica
that does not know the token's user yet (the client sent no position, or it was not reached
in time) answers 503 ``behind`` with ``Retry-After``, not 401: users are never deleted, so
the token is genuine and this replica is behind the node that issued it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Concatenate, Final, ParamSpec, TypeVar

from dspot.http import HTTPError, Request, Response

from dspot_spotify import accounts, catalog
from dspot_spotify.api.wire import API_JSON, IntParam
from dspot_spotify.auth import InvalidToken, TokenClaims
from dspot_spotify.config import Sabotage
from dspot_spotify.parts import NodeParts
from dspot_spotify.sealing import PasswordSealer
from dspot_spotify.writer import BEHIND, LOG_POSITION_HEADER, CatalogWriter, format_position

__all__ = ["LIMIT", "MAX_PAGE", "PAGE", "Api"]

P = ParamSpec("P")
T = TypeVar("T")
U = TypeVar("U")

MAX_PAGE: Final = 1_000_000
PAGE: Final = IntParam("page", 1, 1, MAX_PAGE, "1-based page number")
LIMIT: Final = IntParam(
    "limit", 50, 1, 1000, f"items per page (more than {catalog.MAX_LIMIT} give {catalog.MAX_LIMIT})"
)
_CHALLENGE: Final = [("www-authenticate", 'Bearer realm="dspot"')]


class Api:
    """The REST API of one node: the parts its handlers use."""

    def __init__(
        self,
        node: NodeParts,
        writer: CatalogWriter | None = None,
        sealer: PasswordSealer | None = None,
    ) -> None:
        self.node = node
        self.writer = writer or CatalogWriter(node)
        self.sealer = sealer or PasswordSealer(node, self.writer)

    async def authenticate(
        self, request: Request, *, allow_query_token: bool = False
    ) -> TokenClaims:
        """The claims of the request's bearer token (401 without a valid one)."""
        header = request.headers.get("authorization")
        if header is None and allow_query_token and "token" in request.query:
            scheme, token = "bearer", request.query["token"]
        else:
            scheme, _, token = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise HTTPError(401, "a bearer token is required", headers=_CHALLENGE)
        node = self.node
        try:
            claims = node.signer.verify(token.strip(), now_ms=node.now_ms())
            await self.writer.catch_up(request)
            await self.read(accounts.check_not_revoked, claims)
        except InvalidToken as e:
            raise HTTPError(401, str(e), headers=_CHALLENGE) from None
        except accounts.UserNotApplied:
            if Sabotage.REVOKE_UNKNOWN_USERS in node.config.sabotage:
                raise HTTPError(401, "token revoked", headers=_CHALLENGE) from None
            raise HTTPError(
                503,
                "this replica has not applied this account yet",
                headers=[("retry-after", "1")],
                extensions={"code": BEHIND},
            ) from None
        return claims

    async def user(
        self, request: Request, *, allow_query_token: bool = False
    ) -> tuple[TokenClaims, catalog.UserRecord]:
        """The claims of the request's token and the user they name (401 as
        :meth:`authenticate`)."""
        claims = await self.authenticate(request, allow_query_token=allow_query_token)
        user = await self.read(catalog.get_user, claims.user_id)
        if user is None:  # authenticate() found the user; only a broken replica gets here
            raise HTTPError(401, "unknown user", headers=_CHALLENGE)
        return claims, user

    async def admin(self, request: Request) -> tuple[TokenClaims, catalog.UserRecord]:
        """As :meth:`user`, and 403 unless that user is an admin."""
        claims, user = await self.user(request)
        if not user.admin:
            raise HTTPError(403, "only admins may do this")
        return claims, user

    async def read(
        self, fn: Callable[Concatenate[catalog.Tx, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """A catalog read on this node's replica."""
        return await self.node.replica.read(fn, *args, **kwargs)

    async def found(self, what: str, fn: Callable[[catalog.Tx, str], T | None], item_id: str) -> T:
        """``fn(tx, item_id)`` from the replica; 404 ``no {what} {id}`` when it is None."""
        found = await self.read(fn, item_id)
        if found is None:
            raise HTTPError(404, f"no {what} {item_id}")
        return found

    async def song(self, song_id: str) -> catalog.SongView:
        """The song ``song_id`` (404 if there is none)."""
        return await self.found("song", catalog.get_song, song_id)

    async def paged(
        self,
        request: Request,
        query: Callable[..., catalog.Page[T]],
        item: Callable[[T], U],
        *args: Any,
        **filters: Any,
    ) -> catalog.Page[U]:
        """One page of a catalog listing, ``page`` and ``limit`` from the query string; a
        value the catalog refuses (a sort it does not know) is a 422."""
        try:
            page = await self.node.replica.read(
                query, *args, page=PAGE.read(request), limit=LIMIT.read(request), **filters
            )
        except ValueError as e:
            raise HTTPError(422, str(e)) from None
        return page.map(item)

    def reply(
        self,
        body: Any,
        status: int = 200,
        *,
        position: catalog.LogPosition | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> Response:
        """``body`` (an attrs object) as JSON, with the ``X-Log-Position`` of a write."""
        extra = list(headers)
        if position is not None:
            extra.append((LOG_POSITION_HEADER, format_position(position)))
        return Response.json(body, status, headers=extra, converter=API_JSON)

    def written(self, position: catalog.LogPosition) -> Response:
        """204 after a write (a delete), with its ``X-Log-Position``."""
        return Response(204, [(LOG_POSITION_HEADER, format_position(position))])
