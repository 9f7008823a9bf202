"""The machine line every benchmark prints above its table, and stopping the server
processes a benchmark starts."""

from __future__ import annotations

import os
import platform
import subprocess


def machine_line() -> str:
    cpu = platform.processor() or platform.machine()
    return (
        f"machine: {cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def stop(proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """Terminate ``proc``; kill it if it has not exited ``timeout`` seconds later."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
