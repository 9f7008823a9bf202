"""Errors by kind: a caller catches one PeerUnavailable, whatever broke underneath."""

from __future__ import annotations

import ssl

import anyio
import anyio.abc
import pytest
import trustme

from dspot import tls
from dspot.errors import (
    CertificateRejected,
    ConnectionReset,
    FrameError,
    PeerUnavailable,
    RemoteProtocolError,
    RpcError,
    RpcUnavailable,
)
from dspot.http import HttpClient, HttpProtocolError, ServerDisconnected, Timeouts
from dspot.rpc import NO_RETRY, RpcNode
from dspot.transport import TcpTransport
from tests.conftest import Net
from tests.helpers.rpc import Echo, make_env


def test_the_hierarchy_keeps_the_builtin_names_working() -> None:
    assert issubclass(RpcUnavailable, RpcError) and issubclass(RpcUnavailable, PeerUnavailable)
    assert issubclass(ConnectionReset, anyio.BrokenResourceError)
    assert issubclass(ConnectionReset, PeerUnavailable)
    assert issubclass(CertificateRejected, ssl.SSLCertVerificationError)
    assert issubclass(FrameError, RemoteProtocolError)
    assert issubclass(ServerDisconnected, PeerUnavailable)
    assert issubclass(HttpProtocolError, RemoteProtocolError)


async def _closed_port(net: Net) -> str:
    listener = await net.transport("gone").listen(net.address("gone"))
    address = listener.address
    await listener.aclose()
    return address


def test_nobody_listening_is_peer_unavailable_for_transport_rpc_and_http(net: Net) -> None:
    async def main() -> None:
        address = await _closed_port(net)
        with pytest.raises(PeerUnavailable):
            await net.transport("me").connect(address, timeout=2)
        async with RpcNode(make_env(net, "me")) as rpc:
            with pytest.raises(PeerUnavailable):
                await rpc.call(address, Echo("x"), timeout=3, retry=NO_RETRY)
        if net.kind == "tcp":  # the HTTP client over plain TCP
            async with HttpClient(retries=0) as client:
                with pytest.raises(PeerUnavailable):
                    await client.get(f"http://{address}/")

    net.run(main)


def test_an_untrusted_certificate_is_peer_unavailable_and_still_an_ssl_error(
    tmp_path: object,
) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")

    async def main() -> None:
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(server_ctx)
        listener = await TcpTransport(server_ssl=server_ctx).listen("127.0.0.1:0")

        async def serve(stream: anyio.abc.ByteStream) -> None:
            await anyio.aclose_forcefully(stream)

        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, serve)
            stranger = TcpTransport(client_ssl=tls.client_context(None))  # system roots only
            with pytest.raises(CertificateRejected) as err:
                await stranger.connect(listener.address, timeout=5)
            assert isinstance(err.value, PeerUnavailable | ssl.SSLCertVerificationError)
            await listener.aclose()
            tg.cancel_scope.cancel()

    anyio.run(main, backend="trio")


async def _one_shot_server(reply: bytes, *, task_status: anyio.abc.TaskStatus[str]) -> None:
    """Answers the first connection with ``reply`` and closes it."""
    listener = await TcpTransport().listen("127.0.0.1:0")

    async def serve(stream: anyio.abc.ByteStream) -> None:
        await stream.receive()
        await stream.send(reply)
        await anyio.aclose_forcefully(stream)

    task_status.started(listener.address)
    try:
        await listener.serve(serve)
    finally:
        await listener.aclose()


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nshort", ServerDisconnected),
        (b"", ServerDisconnected),
        (b"SSH-2.0-OpenSSH\r\n\r\n", HttpProtocolError),
    ],
    ids=["closed_mid_body", "closed_before_response", "not_http"],
)
def test_http_client_failures_are_typed(reply: bytes, error: type[Exception]) -> None:
    async def main() -> None:
        async with anyio.create_task_group() as tg:
            address = await tg.start(_one_shot_server, reply)
            async with HttpClient(retries=0, timeouts=Timeouts(read=5)) as client:
                with pytest.raises(error):
                    resp = await client.get(f"http://{address}/")
                    await resp.read()
            tg.cancel_scope.cancel()

    anyio.run(main, backend="trio")
