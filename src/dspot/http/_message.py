"""Requests, responses and headers as handlers see them.

A :class:`Request` streams its body from the connection on demand (so an upload is never held
whole in memory unless the handler asks for it); a :class:`Response` body is either ``bytes``
or an async iterable of chunks that the server writes with backpressure.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
)
from typing import TYPE_CHECKING, Any, TypeVar, overload
from urllib.parse import parse_qsl, unquote

import attrs
import cattrs
from cattrs.preconf.json import JsonConverter, make_converter

from dspot._json import strict_primitives
from dspot.http._problem import PROBLEM_JSON, HTTPError, Problem
from dspot.http._validate import (
    JsonLimits,
    check_json_content_type,
    parse_int,
    parse_json_body,
)

if TYPE_CHECKING:
    from dspot.http._websocket import WebSocket

T = TypeVar("T")

json_converter: JsonConverter = make_converter()
"""The cattrs converter used for JSON bodies (requests and responses) unless one is passed.

It does not coerce: a ``str`` field refuses ``123`` and ``null``, an ``int`` field ``"7"``.
"""
strict_primitives(json_converter)


def _dumps(obj: Any, converter: JsonConverter) -> str:
    if converter is json_converter and type(obj) in (dict, list):
        # Plain JSON data needs no cattrs: json.dumps alone is several times faster, and it
        # raises TypeError on the first value that needs a hook (attrs, datetime, bytes,
        # sets, plain enums), which then goes the cattrs way. Same text either way.
        with contextlib.suppress(TypeError, ValueError):
            return json.dumps(obj, separators=(",", ":"))
    return converter.dumps(obj, separators=(",", ":"))


@attrs.frozen(init=False)
class Headers:
    """An ordered, case-insensitive, immutable header list (names kept lower-case).

    Values are ``str`` decoded as latin-1, which round-trips every byte HTTP allows.
    """

    items_: tuple[tuple[str, str], ...]

    def __init__(self, items: Headers | Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        if isinstance(items, Headers):
            pairs = items.items_
        elif isinstance(items, Mapping):
            pairs = tuple((k.lower(), v) for k, v in items.items())
        else:
            pairs = tuple((k.lower(), v) for k, v in items)
        object.__setattr__(self, "items_", pairs)

    @classmethod
    def from_raw(cls, raw: Iterable[tuple[bytes, bytes]]) -> Headers:
        """Build from h11/wsproto ``(name, value)`` byte pairs."""
        headers = cls.__new__(cls)
        pairs = tuple((k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in raw)
        object.__setattr__(headers, "items_", pairs)
        return headers

    def raw(self) -> list[tuple[bytes, bytes]]:
        """The ``(name, value)`` byte pairs h11 wants."""
        return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in self.items_]

    @overload
    def get(self, name: str) -> str | None: ...

    @overload
    def get(self, name: str, default: str) -> str: ...

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of ``name`` or ``default``."""
        name = name.lower()
        for k, v in self.items_:
            if k == name:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.items_ if k == name]

    def get_list(self, name: str) -> list[str]:
        """Comma-separated values of every ``name`` header, stripped, empties dropped."""
        return [p.strip() for v in self.get_all(name) for p in v.split(",") if p.strip()]

    def has_token(self, name: str, token: str) -> bool:
        """Whether the comma-separated header ``name`` contains ``token`` (case-insensitive)."""
        token = token.lower()
        return any(p.lower() == token for p in self.get_list(name))

    def set(self, name: str, value: str) -> Headers:
        """A copy with every ``name`` header replaced by one ``name: value``."""
        lname = name.lower()
        return Headers([*((k, v) for k, v in self.items_ if k != lname), (lname, value)])

    def add(self, name: str, value: str) -> Headers:
        return Headers([*self.items_, (name.lower(), value)])

    def setdefault(self, name: str, value: str) -> Headers:
        return self if name in self else self.add(name, value)

    def remove(self, name: str) -> Headers:
        lname = name.lower()
        return Headers([(k, v) for k, v in self.items_ if k != lname])

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and any(k == name.lower() for k, _ in self.items_)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.items_)

    def __len__(self) -> int:
        return len(self.items_)


_JSON = Headers([("content-type", "application/json")])

Body = bytes | AsyncIterable[bytes]


@attrs.frozen
class Response:
    """What a handler returns. ``body`` is bytes or an async iterable of byte chunks.

    The server adds ``Content-Length`` for a bytes body; a streamed body without one goes out
    chunked (HTTP/1.1) or close-delimited (HTTP/1.0).
    """

    status: int = 200
    headers: Headers = attrs.field(factory=Headers, converter=Headers)
    body: Body = b""

    @classmethod
    def json(
        cls,
        obj: Any,
        status: int = 200,
        *,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        converter: JsonConverter = json_converter,
    ) -> Response:
        """``obj`` (attrs classes, dicts, lists...) as JSON through the cattrs converter."""
        data = _dumps(obj, converter).encode()
        h = Headers(headers).setdefault("content-type", "application/json") if headers else _JSON
        return cls(status, h, data)

    @classmethod
    def text(
        cls,
        text: str,
        status: int = 200,
        *,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        content_type: str = "text/plain; charset=utf-8",
    ) -> Response:
        return cls(status, Headers(headers).setdefault("content-type", content_type), text.encode())

    @classmethod
    def problem(cls, problem: Problem, *, headers: Iterable[tuple[str, str]] = ()) -> Response:
        """A ``application/problem+json`` response for ``problem``."""
        h = Headers(headers).set("content-type", PROBLEM_JSON)
        return cls(problem.status, h, problem.to_json())

    @classmethod
    def from_error(cls, error: HTTPError) -> Response:
        return cls.problem(error.problem, headers=error.headers)


BodyReceiver = Callable[[], Awaitable[bytes]]
"""Returns the next chunk of a request body, ``b""`` at its end."""


async def _no_body() -> bytes:
    return b""


@attrs.define(eq=False)
class Request:
    """An incoming request. The body is read lazily with :meth:`stream`, :meth:`body` or
    :meth:`json` (once; :meth:`body` caches).

    ``path`` is percent-decoded; ``raw_path`` is as sent. ``path_params`` and ``route`` are
    filled in by the router. ``max_body_size`` (from :class:`ServerConfig`) may be raised by
    a handler before it reads, for an upload route; a larger declared or actual body raises
    413.
    """

    method: str
    target: str
    headers: Headers = attrs.field(factory=Headers)
    http_version: str = "1.1"
    client: str | None = None
    path_params: dict[str, str] = attrs.field(factory=dict)
    route: str | None = None
    """The path template of the route that matched (``"/songs/{song_id}"``), set by the
    router; None until then or when nothing matched (for metrics and logs)."""
    max_body_size: int = 16 * 1024 * 1024
    json_limits: JsonLimits = attrs.field(factory=JsonLimits)
    """Limits :meth:`json` applies unless given others (from :class:`ServerConfig`)."""
    json_guard: bool = True
    """False: :meth:`json` parses without checking limits first (sabotage tests only)."""
    _receive: BodyReceiver = _no_body
    _body: bytes | None = None
    _consumed: bool = False

    @property
    def raw_path(self) -> str:
        path = self.target.split("?", 1)[0]
        if "://" in path:  # absolute-form target
            rest = path.split("://", 1)[1]
            path = "/" + rest.split("/", 1)[1] if "/" in rest else "/"
        return path or "/"

    @property
    def path(self) -> str:
        return unquote(self.raw_path)

    @property
    def query_string(self) -> str:
        return self.target.split("?", 1)[1] if "?" in self.target else ""

    @property
    def query(self) -> dict[str, str]:
        """Query parameters (last value wins)."""
        return dict(parse_qsl(self.query_string, keep_blank_values=True))

    @overload
    def query_int(self, name: str, default: int, *, minimum: int, maximum: int) -> int: ...

    @overload
    def query_int(
        self, name: str, default: None = None, *, minimum: int, maximum: int
    ) -> int | None: ...

    def query_int(
        self, name: str, default: int | None = None, *, minimum: int, maximum: int
    ) -> int | None:
        """Query parameter ``name`` as an integer in ``[minimum, maximum]`` (400 otherwise);
        ``default`` when it is absent or empty."""
        text = self.query.get(name)
        if not text:
            return default
        return parse_int(text, f"query parameter {name!r}", minimum=minimum, maximum=maximum)

    @overload
    def header_int(self, name: str, default: int, *, minimum: int, maximum: int) -> int: ...

    @overload
    def header_int(
        self, name: str, default: None = None, *, minimum: int, maximum: int
    ) -> int | None: ...

    def header_int(
        self, name: str, default: int | None = None, *, minimum: int, maximum: int
    ) -> int | None:
        """Header ``name`` as an integer in ``[minimum, maximum]`` (400 otherwise);
        ``default`` when it is absent."""
        text = self.headers.get(name)
        if text is None:
            return default
        return parse_int(text.strip(), f"header {name!r}", minimum=minimum, maximum=maximum)

    @property
    def is_websocket_upgrade(self) -> bool:
        return (
            self.method == "GET"
            and self.headers.has_token("connection", "upgrade")
            and (self.headers.get("upgrade") or "").lower() == "websocket"
        )

    async def stream(self) -> AsyncIterator[bytes]:
        """Yield the body in chunks as they arrive (raises 413 past ``max_body_size``)."""
        if self._body is not None:
            if self._body:
                yield self._body
            return
        if self._consumed:
            raise RuntimeError("request body already consumed")
        self._consumed = True
        declared = self.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_size:
            raise HTTPError(413, f"request body exceeds {self.max_body_size} bytes")
        total = 0
        while chunk := await self._receive():
            total += len(chunk)
            if total > self.max_body_size:
                raise HTTPError(413, f"request body exceeds {self.max_body_size} bytes")
            yield chunk

    async def body(self) -> bytes:
        """The whole body (at most ``max_body_size`` bytes)."""
        if self._body is None:
            self._body = b"".join([c async for c in self.stream()])
        return self._body

    async def json(
        self,
        cls: type[T],
        *,
        converter: JsonConverter = json_converter,
        limits: JsonLimits | None = None,
    ) -> T:
        """The body as JSON structured into ``cls``, within ``limits`` (default
        :attr:`json_limits`): 415 for a ``Content-Type`` that is not JSON, 413 when too large,
        400 when not UTF-8 JSON or nested too deep, 422 when it does not fit ``cls``."""
        limits = limits or self.json_limits
        check_json_content_type(self.headers.get("content-type"), limits)
        if self._body is None:
            allowed = self.max_body_size
            self.max_body_size = min(allowed, limits.max_size)
            try:
                await self.body()
            finally:
                self.max_body_size = allowed
        assert self._body is not None
        raw = parse_json_body(self._body, limits, guarded=self.json_guard)
        try:
            return converter.structure(raw, cls)
        except (cattrs.BaseValidationError, ValueError, TypeError, KeyError) as e:
            errors = (
                cattrs.transform_error(e) if isinstance(e, cattrs.BaseValidationError) else [str(e)]
            )
            raise HTTPError(422, "; ".join(errors), extensions={"errors": errors}) from None


WebSocketSession = Callable[["WebSocket"], Awaitable[None]]
"""Runs one accepted WebSocket until it returns; the server then closes the socket."""


@attrs.frozen
class WebSocketUpgrade(Response):
    """Returned by a handler to accept a WebSocket upgrade and run ``session`` on it.

    The router returns it for routes added with :meth:`Router.websocket`; a request that is
    not an upgrade gets 426 instead.
    """

    status: int = 101
    session: WebSocketSession | None = None
    subprotocol: str | None = None


Handler = Callable[[Request], Awaitable[Response]]
"""An HTTP endpoint: takes a request, returns a response (or raises :class:`HTTPError`)."""
