"""Node environments for tests on the simulated network."""

from __future__ import annotations

import logging
import random

from dspot.disk import SimDisk
from dspot.env import NodeEnv
from dspot.transport import SimNetwork


def env_for(net: SimNetwork, name: str) -> NodeEnv:
    """Node ``name``'s environment on ``net``: a simulated disk, randomness seeded by name."""
    return NodeEnv(
        node_id=name,
        transport=net.transport(name),
        disk=SimDisk(random.Random(name)),
        rng=random.Random(f"env:{name}"),
        logger=logging.getLogger(f"dspot.test.{name}"),
    )
