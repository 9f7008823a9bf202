"""HTTP/1.1 (h11) and WebSocket (wsproto) over any dspot transport (re-exports only).

Server: :class:`HttpServer` runs a handler (usually a :class:`Router`) on byte streams from
any listener; :class:`StaticFiles` serves a directory; :func:`representation_response`
answers conditional and Range requests for anything with a size. Client: :class:`HttpClient`,
:func:`connect_websocket`. TLS: :func:`server_ssl_context`, :func:`client_ssl_context`.

    app = Router()

    @app.get("/songs/{song_id}")
    async def song(request: Request) -> Response:
        return Response.json(await catalog.get(request.path_params["song_id"]))

    config = ServerConfig(ssl_context=server_ssl_context(cert, key))
    server = HttpServer(app, config, clock=env.clock)  # no clock: no Date header
    await server.serve(await transport.listen("node1:443"))   # until shutdown()

    async with HttpClient(connect=transport.connect) as client:
        resp = await client.get("http://node2:80/songs/42")
        song = await resp.json(Song)
"""

from dspot.http._client import (
    IDEMPOTENT,
    URL,
    ClientResponse,
    Connector,
    HttpClient,
    HttpClientError,
    HttpProtocolError,
    HTTPStatusError,
    InvalidRequest,
    ReadTimeout,
    ServerDisconnected,
    Timeouts,
    WriteTimeout,
    parse_url,
)
from dspot.http._conditional import evaluate_preconditions, http_date, parse_http_date
from dspot.http._message import (
    Handler,
    Headers,
    Request,
    Response,
    WebSocketSession,
    WebSocketUpgrade,
    json_converter,
)
from dspot.http._problem import PROBLEM_JSON, HTTPError, Problem
from dspot.http._range import (
    ByteRange,
    FileSlice,
    RangeNotSatisfiable,
    ReadSlice,
    bytes_reader,
    file_reader,
    parse_range,
    representation_response,
)
from dspot.http._router import Router
from dspot.http._server import KNOWN_METHODS, SERVED_METHODS, HttpServer, ServerConfig, access_log
from dspot.http._static import StaticFiles, content_type_for, safe_relative_path
from dspot.http._tls import MINIMUM_TLS, client_ssl_context, server_ssl_context
from dspot.http._validate import HttpMechanism, JsonLimits
from dspot.http._websocket import (
    WebSocket,
    WebSocketClosed,
    WebSocketConfig,
    WebSocketHandshakeError,
    connect_websocket,
)

__all__ = [
    "IDEMPOTENT",
    "KNOWN_METHODS",
    "MINIMUM_TLS",
    "PROBLEM_JSON",
    "SERVED_METHODS",
    "URL",
    "ByteRange",
    "ClientResponse",
    "Connector",
    "FileSlice",
    "HTTPError",
    "HTTPStatusError",
    "Handler",
    "Headers",
    "HttpClient",
    "HttpClientError",
    "HttpMechanism",
    "HttpProtocolError",
    "HttpServer",
    "InvalidRequest",
    "JsonLimits",
    "Problem",
    "RangeNotSatisfiable",
    "ReadSlice",
    "ReadTimeout",
    "Request",
    "Response",
    "Router",
    "ServerConfig",
    "ServerDisconnected",
    "StaticFiles",
    "Timeouts",
    "WebSocket",
    "WebSocketClosed",
    "WebSocketConfig",
    "WebSocketHandshakeError",
    "WebSocketSession",
    "WebSocketUpgrade",
    "WriteTimeout",
    "access_log",
    "bytes_reader",
    "client_ssl_context",
    "connect_websocket",
    "content_type_for",
    "evaluate_preconditions",
    "file_reader",
    "http_date",
    "json_converter",
    "parse_http_date",
    "parse_range",
    "parse_url",
    "representation_response",
    "safe_relative_path",
    "server_ssl_context",
]
