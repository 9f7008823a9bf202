"""Built-in scenarios: importing this package imports (and so registers) every module in it.

Importing it (or one of its modules) binds the name ``dspot.sim.scenarios`` to this package,
where ``dspot.sim`` exports a function of that name: the package is callable too, and does
what the function does, so ``from dspot.sim import scenarios; scenarios()`` works whatever
was imported first.
"""

import importlib
import pkgutil
import sys
import types
from typing import Any


class _CallablePackage(types.ModuleType):
    def __call__(self) -> Any:
        from dspot.sim._scenario import scenarios

        return scenarios()


sys.modules[__name__].__class__ = _CallablePackage

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    importlib.import_module(f"{__name__}.{_info.name}")
