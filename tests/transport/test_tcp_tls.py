"""TCP and TLS specifics: handshake timeout, mutual TLS, untrusted certificates."""

from __future__ import annotations

import ssl
from pathlib import Path

import anyio
import anyio.abc
import pytest
import trustme

from dspot import tls
from dspot.errors import ConnectTimeout, HandshakeFailed
from dspot.transport import TcpTransport


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, str]:
    ca = trustme.CA()
    other_ca = trustme.CA()
    files: dict[str, str] = {}
    for name, pem in {
        "ca": ca.cert_pem,
        "other_ca": other_ca.cert_pem,
    }.items():
        files[name] = str(tmp_path / f"{name}.pem")
        pem.write_to_path(files[name])
    for name, issuer in (("server", ca), ("client", ca), ("stranger", other_ca)):
        cert = issuer.issue_cert("127.0.0.1", "localhost", f"{name}.dspot")
        files[name] = str(tmp_path / f"{name}.pem")
        files[f"{name}_key"] = str(tmp_path / f"{name}.key")
        cert.cert_chain_pems[0].write_to_path(files[name])
        cert.private_key_pem.write_to_path(files[f"{name}_key"])
    return files


async def _hello(stream: anyio.abc.ByteStream) -> None:
    async with stream:
        await stream.send(b"hello")


async def _serve_once(server: TcpTransport, client: TcpTransport) -> bytes:
    listener = await server.listen("127.0.0.1:0")
    got: bytes | BaseException = b""
    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, _hello)
        try:
            stream = await client.connect(listener.address, timeout=5)
            try:
                got = await stream.receive()
            finally:
                await anyio.aclose_forcefully(stream)
        except Exception as exc:  # re-raised below, outside the task group
            got = exc
        await listener.aclose()
        tg.cancel_scope.cancel()
    if isinstance(got, BaseException):
        raise got
    return got


def test_tls_server_verified_by_client(pki: dict[str, str]) -> None:
    server = TcpTransport(server_ssl=tls.server_context(pki["server"], pki["server_key"]))
    client = TcpTransport(client_ssl=tls.client_context(pki["ca"]))
    assert anyio.run(_serve_once, server, client, backend="trio") == b"hello"


def test_server_from_another_ca_is_rejected(pki: dict[str, str]) -> None:
    server = TcpTransport(server_ssl=tls.server_context(pki["stranger"], pki["stranger_key"]))
    client = TcpTransport(client_ssl=tls.client_context(pki["ca"]))
    with pytest.raises(HandshakeFailed):
        anyio.run(_serve_once, server, client, backend="trio")


def test_mutual_tls_requires_a_client_certificate_from_the_cluster_ca(
    pki: dict[str, str],
) -> None:
    server = TcpTransport(
        server_ssl=tls.server_context(pki["server"], pki["server_key"], client_ca=pki["ca"])
    )
    member = TcpTransport(
        client_ssl=tls.client_context(pki["ca"], certfile=pki["client"], keyfile=pki["client_key"])
    )
    assert anyio.run(_serve_once, server, member, backend="trio") == b"hello"

    anonymous = TcpTransport(client_ssl=tls.client_context(pki["ca"]))
    stranger = TcpTransport(
        client_ssl=tls.client_context(
            pki["ca"], certfile=pki["stranger"], keyfile=pki["stranger_key"]
        )
    )
    for outsider in (anonymous, stranger):
        # TLS 1.3 reports a refused client certificate after the handshake, on first read.
        with pytest.raises(
            (HandshakeFailed, anyio.BrokenResourceError, ssl.SSLError, anyio.EndOfStream)
        ):
            anyio.run(_serve_once, server, outsider, backend="trio")


def test_every_context_refuses_tls_below_1_2(pki: dict[str, str]) -> None:
    # OpenSSL's own floor varies by distribution; dspot sets its floor explicitly.
    contexts = [
        tls.server_context(pki["server"], pki["server_key"]),
        tls.server_context(pki["server"], pki["server_key"], client_ca=pki["ca"]),
        tls.client_context(pki["ca"]),
        tls.client_context(pki["ca"], certfile=pki["client"], keyfile=pki["client_key"]),
    ]
    for ctx in contexts:
        assert ctx.minimum_version >= ssl.TLSVersion.TLSv1_2


def test_silent_peer_cannot_hold_a_tls_handshake(pki: dict[str, str]) -> None:
    """A client that connects and says nothing is dropped after the handshake timeout."""

    async def main() -> None:
        server = TcpTransport(
            server_ssl=tls.server_context(pki["server"], pki["server_key"]),
            handshake_timeout=0.3,
        )
        listener = await server.listen("127.0.0.1:0")
        handled: list[bool] = []

        async def record(stream: anyio.abc.ByteStream) -> None:
            handled.append(True)
            await stream.aclose()

        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, record)
            silent = await TcpTransport().connect(listener.address)
            with anyio.fail_after(5):
                with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                    await silent.receive()  # the server gives up and closes
            await silent.aclose()
            await listener.aclose()
            tg.cancel_scope.cancel()
        assert handled == []

    anyio.run(main, backend="trio")


def test_client_handshake_timeout_is_a_connect_timeout() -> None:
    async def main() -> None:
        plain = await TcpTransport().listen("127.0.0.1:0")  # accepts TCP, never speaks TLS

        async def mute(stream: anyio.abc.ByteStream) -> None:
            async with stream:
                await anyio.sleep(10)

        async with anyio.create_task_group() as tg:
            tg.start_soon(plain.serve, mute)
            client = TcpTransport(client_ssl=tls.client_context())
            with pytest.raises(ConnectTimeout):
                await client.connect(plain.address, timeout=0.3)
            await plain.aclose()
            tg.cancel_scope.cancel()

    anyio.run(main, backend="trio")
