"""``python -m dspot.http``: serve a directory over HTTP or HTTPS.

Prints ``serving http(s)://HOST:PORT`` once listening (``--port 0`` picks a free port) and
shuts down gracefully on SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence

import anyio

from dspot.env import EventLoopClock, real_wall_base
from dspot.http._server import HttpServer, ServerConfig
from dspot.http._static import StaticFiles
from dspot.http._tls import server_ssl_context
from dspot.logs import background_logging
from dspot.transport import TcpTransport, join_address


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m dspot.http", description=__doc__)
    p.add_argument("--root", required=True, help="directory to serve")
    p.add_argument("--port", type=int, required=True, help="port (0 = any free port)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--tls-cert", help="PEM certificate chain: serve HTTPS")
    p.add_argument("--tls-key", help="PEM private key (if not in --tls-cert)")
    p.add_argument("--spa", action="store_true", help="serve index.html for unknown routes")
    p.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    p.add_argument("--quiet", action="store_true", help="no access log")
    args = p.parse_args(argv)
    if args.tls_key and not args.tls_cert:
        p.error("--tls-key needs --tls-cert")
    return args


async def serve(args: argparse.Namespace) -> None:
    ssl_context = server_ssl_context(args.tls_cert, args.tls_key) if args.tls_cert else None
    server = HttpServer(
        StaticFiles(args.root, spa=args.spa),
        ServerConfig(ssl_context=ssl_context),
        clock=EventLoopClock(wall_base=real_wall_base()),
    )
    # dspot's TCP listener: on asyncio its streams are the lean ProtocolStream, and plain
    # HTTP sends files with sendfile(2).
    listener = await TcpTransport().listen(join_address(args.host, args.port))
    scheme = "https" if ssl_context else "http"
    print(f"serving {scheme}://{listener.address}", flush=True)
    try:
        async with anyio.create_task_group() as tg:
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                tg.start_soon(server.serve, listener)
                async for _ in signals:
                    break
            await server.shutdown()
            tg.cancel_scope.cancel()
    finally:
        await listener.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    level = logging.WARNING if args.quiet else logging.INFO
    with background_logging(sys.stderr, level=level, fmt="%(asctime)s %(name)s %(message)s"):
        anyio.run(serve, args, backend=args.backend)
    return 0


if __name__ == "__main__":
    sys.exit(main())
