"""Replicated, content-addressed blob store (re-exports only).

See ``_store.py`` for the theory of operation, ``_local.py`` for a node's own copies and
``_view.py`` for the scripted membership view used by tests and scenarios.
"""

from dspot.blobstore._hashing import BlockHasher, is_content_address
from dspot.blobstore._local import Copy, CorruptCopy, IntegrityError, LocalBlobs, Tombstoned
from dspot.blobstore._placement import BlobPlacement, Replication
from dspot.blobstore._store import (
    BlobInfo,
    BlobStats,
    BlobStore,
    BlobStoreConfig,
    BlobStoreError,
    BlobUnavailable,
    DeleteIncomplete,
    PutResult,
    UploadFailed,
)
from dspot.blobstore._view import ScriptedMembership, StaticView

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
    "ScriptedMembership",
    "StaticView",
    "Tombstoned",
    "UploadFailed",
    "is_content_address",
]
