"""Maps method and path to handlers, with ``{name}`` and ``{name:path}`` parameters.

Matching is per path segment on the percent-decoded segments, so ``%2F`` inside a segment
never splits it. An unknown path is 404; a known path with another method is 405 with
``Allow``; ``HEAD`` falls back to ``GET``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from urllib.parse import unquote

import attrs

from dspot.http._message import (
    Handler,
    Request,
    Response,
    WebSocketSession,
    WebSocketUpgrade,
)
from dspot.http._problem import HTTPError

_PARAM = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)(?::(path))?\}$")


def _compile(segments: tuple[str, ...]) -> tuple[tuple[str, str | None, bool], ...]:
    """Each segment as ``(literal, parameter name or None, is a {name:path})``, parsed once."""
    out: list[tuple[str, str | None, bool]] = []
    for seg in segments:
        m = _PARAM.match(seg)
        out.append((seg, m.group(1), m.group(2) == "path") if m else (seg, None, False))
    return tuple(out)


@attrs.frozen
class _Route:
    segments: tuple[str, ...]  # literal text, or "{name}" / "{name:path}"
    handlers: dict[str, Handler]
    template: str = attrs.field(init=False)
    _compiled: tuple[tuple[str, str | None, bool], ...] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "template", "/" + "/".join(self.segments))
        object.__setattr__(self, "_compiled", _compile(self.segments))

    def match(self, parts: list[str]) -> dict[str, str] | None:
        compiled = self._compiled
        if len(parts) < len(compiled) - (1 if compiled and compiled[-1][2] else 0):
            return None
        params: dict[str, str] = {}
        for i, (literal, name, rest) in enumerate(compiled):
            if rest:
                params[name or ""] = "/".join(parts[i:])
                return params
            if i >= len(parts):
                return None
            if name is not None:
                if not parts[i]:
                    return None
                params[name] = parts[i]
            elif literal != parts[i]:
                return None
        return params if len(parts) == len(compiled) else None


def _split(path: str) -> tuple[str, ...]:
    if not path.startswith("/"):
        raise ValueError(f"route path must start with '/': {path!r}")
    return tuple(path[1:].split("/"))


class Router:
    """A handler that dispatches to registered routes (first registered wins)."""

    def __init__(self) -> None:
        self._routes: list[_Route] = []

    def add(self, methods: str | Iterable[str], path: str, handler: Handler) -> None:
        """Register ``handler`` for ``methods`` (``"*"`` = any) at ``path``."""
        segments = _split(path)
        for i, seg in enumerate(segments):
            m = _PARAM.match(seg)
            if m and m.group(2) == "path" and i != len(segments) - 1:
                raise ValueError("a {name:path} parameter must be the last segment")
        ms = [methods] if isinstance(methods, str) else list(methods)
        for route in self._routes:
            if route.segments == segments:
                route.handlers.update({m.upper(): handler for m in ms})
                return
        self._routes.append(_Route(segments, {m.upper(): handler for m in ms}))

    def routes(self) -> list[tuple[str, str]]:
        """Every registered ``(METHOD, path template)``, in registration order (``"*"`` for
        any method; the implicit ``HEAD`` of a ``GET`` is not listed). For API documents and
        tests that compare them with what is served."""
        return [
            (method, "/" + "/".join(route.segments))
            for route in self._routes
            for method in route.handlers
        ]

    def route(
        self, path: str, methods: str | Iterable[str] = "GET"
    ) -> Callable[[Handler], Handler]:
        """Decorator form of :meth:`add`."""

        def deco(handler: Handler) -> Handler:
            self.add(methods, path, handler)
            return handler

        return deco

    def get(self, path: str) -> Callable[[Handler], Handler]:
        return self.route(path, "GET")

    def post(self, path: str) -> Callable[[Handler], Handler]:
        return self.route(path, "POST")

    def put(self, path: str) -> Callable[[Handler], Handler]:
        return self.route(path, "PUT")

    def delete(self, path: str) -> Callable[[Handler], Handler]:
        return self.route(path, "DELETE")

    def patch(self, path: str) -> Callable[[Handler], Handler]:
        return self.route(path, "PATCH")

    def mount(self, prefix: str, handler: Handler, methods: str | Iterable[str] = "*") -> None:
        """Send every request under ``prefix`` to ``handler``.

        The rest of the path is in ``request.path_params["path"]``.
        """
        self.add(methods, prefix.rstrip("/") + "/{path:path}", handler)

    def websocket(
        self, path: str, *, subprotocol: str | None = None
    ) -> Callable[[WebSocketSession], WebSocketSession]:
        """Decorator: run the session for WebSocket upgrades at ``path`` (426 otherwise)."""

        def deco(session: WebSocketSession) -> WebSocketSession:
            async def upgrade(request: Request) -> Response:
                if not request.is_websocket_upgrade:
                    raise HTTPError(
                        426, "this resource speaks WebSocket", headers=[("upgrade", "websocket")]
                    )
                return WebSocketUpgrade(session=session, subprotocol=subprotocol)

            self.add("GET", path, upgrade)
            return session

        return deco

    async def __call__(self, request: Request) -> Response:
        parts = [unquote(p) if "%" in p else p for p in request.raw_path[1:].split("/")]
        allowed: set[str] = set()
        for route in self._routes:
            params = route.match(parts)
            if params is None:
                continue
            handler = route.handlers.get(request.method) or route.handlers.get("*")
            if handler is None and request.method == "HEAD":
                handler = route.handlers.get("GET")
            if handler is not None:
                request.path_params = params
                request.route = route.template
                return await handler(request)
            allowed.update(route.handlers)
        if allowed:
            if "GET" in allowed:
                allowed.add("HEAD")
            allow = ", ".join(sorted(allowed))
            raise HTTPError(405, f"{request.method} not allowed here", headers=[("allow", allow)])
        raise HTTPError(404, f"no resource at {request.path}")
