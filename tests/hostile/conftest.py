"""One real service (two nodes and the gateway) shared by the hostile-input tests."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from tests.hostile.processes import Service, running_service


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    if sys.platform == "win32":  # pragma: no cover
        pytest.skip("POSIX process groups")
    with running_service(tmp_path_factory.mktemp("hostile")) as svc:
        yield svc


@pytest.fixture
def serving(service: Service) -> Iterator[Service]:
    """The service, checked serving before and after the test (all members alive)."""
    service.wait_serving()
    yield service
    service.wait_serving()
