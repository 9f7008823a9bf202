"""Built-in scenarios; importing this package registers them."""

from dspot.sim.scenarios import rpc as rpc

__all__ = ["rpc"]
