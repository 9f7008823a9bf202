"""Fixtures for the disk tests: trio with a virtual clock, and both disk implementations."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio.testing

from dspot.disk import Disk, LocalDisk, SimDisk


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    """Run async tests on trio in virtual time (a fresh ``MockClock`` per test)."""
    return "trio", {"clock": trio.testing.MockClock(autojump_threshold=0)}


@pytest.fixture
async def sim_disk() -> AsyncIterator[SimDisk]:
    disk = SimDisk(random.Random(1234))
    yield disk
    await disk.aclose()


@pytest.fixture
async def local_disk(tmp_path: Path) -> AsyncIterator[LocalDisk]:
    disk = await LocalDisk.open(tmp_path / "node")
    yield disk
    await disk.aclose()


@pytest.fixture(params=["sim", "local"])
async def disk(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Disk]:
    """Each implementation in turn, for the conformance suite."""
    d: Disk
    if request.param == "sim":
        d = SimDisk(random.Random(1234))
    else:
        d = await LocalDisk.open(tmp_path / "node")
    yield d
    await d.aclose()
