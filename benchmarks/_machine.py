"""The machine line every benchmark prints above its table."""

from __future__ import annotations

import os
import platform


def machine_line() -> str:
    cpu = platform.processor() or platform.machine()
    return (
        f"machine: {cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )
