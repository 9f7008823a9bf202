"""Service registry with TTL leases on membership metadata, and a load-balancing client."""

from dspot.registry._client import NoEndpoint, RegistryClient, Strategy
from dspot.registry._registry import Endpoint, PublishingView, Registry, RegistryMechanism

__all__ = [
    "Endpoint",
    "NoEndpoint",
    "PublishingView",
    "Registry",
    "RegistryClient",
    "RegistryMechanism",
    "Strategy",
]
