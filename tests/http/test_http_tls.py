"""TLS: verified HTTPS over every network, TLS 1.2 minimum, handshake timeout."""

from __future__ import annotations

import ssl
from pathlib import Path

import anyio
import pytest
import trustme

from dspot.http import (
    HttpClient,
    HttpClientError,
    HttpServer,
    Request,
    Response,
    Router,
    ServerConfig,
    client_ssl_context,
    connect_websocket,
    server_ssl_context,
)
from dspot.testing import run_with_mock_clock
from tests.http.helpers import Net, Raw, TlsFiles, memory_pair, run_real


def make_app() -> Router:
    app = Router()

    @app.get("/hello")
    async def hello(request: Request) -> Response:
        return Response.text("hello over tls")

    @app.websocket("/ws")
    async def ws_echo(ws: object) -> None:
        from dspot.http import WebSocket

        assert isinstance(ws, WebSocket)
        async for message in ws:
            await ws.send(message)

    return app


def test_https_and_wss(net: Net, tls_files: TlsFiles) -> None:
    async def main() -> None:
        config = ServerConfig(ssl_context=server_ssl_context(tls_files.cert_chain, tls_files.key))
        client_ctx = client_ssl_context(cadata=tls_files.ca_pem)

        async def connect(address: str, *, timeout: float = 10.0) -> object:
            # the certificate names localhost; route it to wherever the server listens
            return await net.connect(real, timeout=timeout)

        async with net.serving(make_app(), config) as (_, real):
            async with HttpClient(connect, ssl_context=client_ctx) as c:  # type: ignore[arg-type]
                r = await c.get("https://localhost:8443/hello")
                assert await r.read() == b"hello over tls"
            async with connect_websocket(
                "wss://localhost:8443/ws",
                connect=connect,  # type: ignore[arg-type]
                ssl_context=client_ctx,
            ) as ws:
                await ws.send("secure")
                assert await ws.receive() == "secure"
            # a client that does not trust the CA refuses the server
            async with HttpClient(connect, ssl_context=client_ssl_context()) as c:  # type: ignore[arg-type]
                with pytest.raises(ssl.SSLCertVerificationError):
                    await c.get("https://localhost:8443/hello")
            # a plain-HTTP client gets no HTTP answer from the TLS port
            raw = Raw(await net.connect(real))
            await raw.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            assert b"hello" not in raw.buf
            assert await raw.closed()

    net.run(main)


def test_server_context_policy(tls_files: TlsFiles) -> None:
    ctx = server_ssl_context(tls_files.cert_chain, tls_files.key)
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert client_ssl_context().minimum_version == ssl.TLSVersion.TLSv1_2
    assert client_ssl_context().verify_mode == ssl.CERT_REQUIRED


def _handshake(server_ctx: ssl.SSLContext, client_max: ssl.TLSVersion, tls: TlsFiles) -> bool:
    """Whether a client capped at ``client_max`` completes a handshake with ``server_ctx``."""

    async def main() -> bool:
        client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client_ctx.load_verify_locations(cadata=tls.ca_pem)
        client_ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        client_ctx.maximum_version = client_max
        client_ctx.set_ciphers("ALL:@SECLEVEL=0")
        server = HttpServer(make_app(), ServerConfig(ssl_context=server_ctx))
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        try:
            async with anyio.create_task_group() as tg:
                await tg.start(server.serve, listener)
                try:
                    async with HttpClient(ssl_context=client_ctx, retries=0) as c:
                        r = await c.get(f"https://localhost:{port}/hello")
                        await r.read()
                        return True
                except (ssl.SSLError, OSError, anyio.BrokenResourceError):
                    return False
                finally:
                    tg.cancel_scope.cancel()
        finally:
            await listener.aclose()
        raise AssertionError("unreachable")

    result: bool = run_real(main)
    return result


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.MINIMUM_SUPPORTED:DeprecationWarning")
def test_tls_1_2_minimum_is_enforced(tls_files: TlsFiles) -> None:
    strict = server_ssl_context(tls_files.cert_chain, tls_files.key)
    assert _handshake(strict, ssl.TLSVersion.TLSv1_2, tls_files)
    assert _handshake(strict, ssl.TLSVersion.TLSv1_3, tls_files)
    permissive = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    permissive.load_cert_chain(tls_files.cert_chain, tls_files.key)
    permissive.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    permissive.set_ciphers("ALL:@SECLEVEL=0")
    if not _handshake(permissive, ssl.TLSVersion.TLSv1_1, tls_files):
        pytest.skip("this OpenSSL cannot speak TLS 1.1 at all, so there is nothing to refuse")
    assert not _handshake(strict, ssl.TLSVersion.TLSv1_1, tls_files)


def test_handshake_timeout(tls_files: TlsFiles) -> None:
    async def main() -> None:
        ctx = server_ssl_context(tls_files.cert_chain, tls_files.key)
        server = HttpServer(make_app(), ServerConfig(ssl_context=ctx, tls_handshake_timeout=7))
        client, server_end = memory_pair()
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.handle_stream, server_end)
            start = anyio.current_time()
            await client.send(b"\x16\x03\x01")  # the start of a ClientHello, then silence
            assert await Raw(client).closed(limit=100)
            assert anyio.current_time() - start == pytest.approx(7)

    run_with_mock_clock(main)


def test_mutual_tls(tmp_path: Path) -> None:
    ca = trustme.CA()
    server_cert = ca.issue_cert("localhost")
    client_cert = ca.issue_cert("node-7")
    stranger = trustme.CA().issue_cert("node-x")
    paths = {}
    for name, cert in [("server", server_cert), ("client", client_cert), ("stranger", stranger)]:
        chain, key = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
        cert.cert_chain_pems[0].write_to_path(str(chain))
        cert.private_key_pem.write_to_path(str(key))
        paths[name] = (str(chain), str(key))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    ca_file = str(tmp_path / "ca.pem")

    async def main() -> None:
        ctx = server_ssl_context(*paths["server"], client_ca=ca_file)
        net = Net("tcp")
        async with net.serving(make_app(), ServerConfig(ssl_context=ctx)) as (_, addr):
            port = addr.rsplit(":", 1)[1]
            url = f"https://localhost:{port}/hello"
            chain, key = paths["client"]
            good = client_ssl_context(ca_file, cert=chain, key=key)
            async with HttpClient(ssl_context=good) as c:
                assert await (await c.get(url)).read() == b"hello over tls"
            for ctx_ in (
                client_ssl_context(ca_file),  # no client certificate
                client_ssl_context(ca_file, cert=paths["stranger"][0], key=paths["stranger"][1]),
            ):
                async with HttpClient(ssl_context=ctx_, retries=0) as c:
                    with pytest.raises((ssl.SSLError, OSError, HttpClientError)):
                        await (await c.get(url)).read()

    run_real(main)
