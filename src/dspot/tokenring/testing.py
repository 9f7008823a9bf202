"""Ring views for tests, simulations and benchmarks that run no real membership.

:class:`StaticView` is a fixed membership whose live set the caller scripts by hand;
:class:`OracleView` asks a callback (the simulation's ground truth) who is up.
"""

from dspot.tokenring._testing import OracleView, StaticView

__all__ = ["OracleView", "StaticView"]
