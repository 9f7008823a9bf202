"""Fixtures of the HTTP tests (the helpers themselves are in :mod:`tests.http.helpers`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.http.helpers import NET_KINDS, Net, TlsFiles, close_memory_streams, make_tls_files


@pytest.fixture(params=NET_KINDS)
def net(request: pytest.FixtureRequest) -> Net:
    """The server suite runs over TCP (real clock) and the simulated network (virtual)."""
    return Net(request.param)


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(autouse=True)
def _close_memory_streams() -> Iterator[None]:
    yield
    close_memory_streams()
