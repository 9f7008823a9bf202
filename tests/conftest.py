"""Shared fixtures: run async tests on trio, over the simulated network or real TCP."""

from __future__ import annotations

import random
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest
import trio
import trio.testing

from dspot import tls
from dspot.testing import run_with_mock_clock
from dspot.transport import SimNetwork, TcpTransport, Transport


class Net:
    """Makes transports of one kind and runs a test body on the right clock.

    ``memory`` runs under trio's MockClock (virtual time jumps when all tasks wait);
    ``tcp`` and ``tls`` use the real clock and loopback sockets, on trio; ``tcp-asyncio`` the
    same on asyncio, where accepted TCP streams are dspot's ``ProtocolStream`` (TLS over it
    is covered by the HTTP suite's ``transport-tcp-asyncio`` runs).
    """

    def __init__(self, kind: str, tmp_path: Any) -> None:
        self.backend = "asyncio" if kind.endswith("-asyncio") else "trio"
        kind = kind.removesuffix("-asyncio")
        self.kind = kind
        self.sim = SimNetwork(random.Random(1)) if kind == "memory" else None
        self._server_ssl: ssl.SSLContext | None = None
        self._client_ssl: ssl.SSLContext | None = None
        if kind == "tls":
            import trustme

            ca = trustme.CA()
            cert = ca.issue_cert("127.0.0.1", "localhost")
            self._server_ssl = tls.server_context(*_write_pem(tmp_path, cert))
            ca_file = tmp_path / "ca.pem"
            ca.cert_pem.write_to_path(str(ca_file))
            self._client_ssl = tls.client_context(ca_file)

    def transport(self, name: str) -> Transport:
        if self.sim is not None:
            return self.sim.transport(name)
        return TcpTransport(server_ssl=self._server_ssl, client_ssl=self._client_ssl)

    def address(self, name: str, port: int = 0) -> str:
        return f"{name}:{port}" if self.sim is not None else f"127.0.0.1:{port}"

    def run(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        if self.sim is not None:
            return run_with_mock_clock(fn)
        if self.backend == "asyncio":
            return anyio.run(fn, backend="asyncio")
        return trio.run(fn)


def _write_pem(tmp_path: Any, cert: Any) -> tuple[str, str]:
    certfile = tmp_path / "server.pem"
    keyfile = tmp_path / "server.key"
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    cert.private_key_pem.write_to_path(str(keyfile))
    return str(certfile), str(keyfile)


@pytest.fixture(params=["memory", "tcp", "tls", "tcp-asyncio"])
def net(request: pytest.FixtureRequest, tmp_path: Any) -> Net:
    return Net(request.param, tmp_path)


@pytest.fixture
def simnet(tmp_path: Any) -> Net:
    return Net("memory", tmp_path)
