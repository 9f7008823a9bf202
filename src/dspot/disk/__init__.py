"""Node-local durable storage: a SQLite database plus named immutable files.

:class:`SimDisk` runs inside the deterministic simulation (crash loses unsynced writes);
:class:`LocalDisk` is the production implementation (SQLite WAL + fsynced files).

This module only re-exports; the code lives in the private modules next to it.
"""

from dspot.disk._base import (
    Database,
    Disk,
    DiskFault,
    DiskStats,
    FileWriter,
    ReadTransaction,
    Row,
    Transaction,
    validate_name,
)
from dspot.disk._local import READER_CACHE_KIB, LocalDisk
from dspot.disk._sim import SimDisk

__all__ = [
    "READER_CACHE_KIB",
    "Database",
    "Disk",
    "DiskFault",
    "DiskStats",
    "FileWriter",
    "LocalDisk",
    "ReadTransaction",
    "Row",
    "SimDisk",
    "Transaction",
    "validate_name",
]
