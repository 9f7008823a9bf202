"""Replicated, content-addressed blob store (re-exports only).

See ``_core.py`` for the theory of operation and the safety argument (the decisions, with
no I/O), ``_store.py`` for the driver around them, and ``_local.py`` for a node's own
copies. Tests and scenarios script membership with :mod:`dspot.testing`.
"""

from dspot.blobstore._config import BlobInfo, BlobStats, BlobStoreConfig, PutResult
from dspot.blobstore._errors import (
    BlobStoreError,
    BlobUnavailable,
    CorruptCopy,
    DeleteIncomplete,
    IntegrityError,
    Tombstoned,
    UploadFailed,
)
from dspot.blobstore._hashing import BlockHasher, is_content_address
from dspot.blobstore._local import Copy, LocalBlobs
from dspot.blobstore._placement import BlobPlacement, Replication
from dspot.blobstore._store import BlobStore

__all__ = [
    "BlobInfo",
    "BlobPlacement",
    "BlobStats",
    "BlobStore",
    "BlobStoreConfig",
    "BlobStoreError",
    "BlobUnavailable",
    "BlockHasher",
    "Copy",
    "CorruptCopy",
    "DeleteIncomplete",
    "IntegrityError",
    "LocalBlobs",
    "PutResult",
    "Replication",
    "Tombstoned",
    "UploadFailed",
    "is_content_address",
]
