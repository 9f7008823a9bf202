"""The blob store's exceptions (re-exported by :mod:`dspot.blobstore`)."""

from __future__ import annotations

from dspot.errors import DspotError


class BlobStoreError(DspotError):
    """Base class of blob store failures."""


class UploadFailed(BlobStoreError):
    """Fewer than ``write_quorum`` replicas committed the upload; nothing was acknowledged."""


class BlobUnavailable(BlobStoreError):
    """No reachable replica could serve the blob (or the rest of it)."""


class DeleteIncomplete(BlobStoreError):
    """Some owner did not record the tombstone; retry the delete."""


class CorruptCopy(DspotError):
    """A stored copy no longer matches its checksums."""


class Tombstoned(DspotError):
    """The blob was deleted after this copy's upload started: the delete wins."""


class IntegrityError(DspotError):
    """Uploaded bytes do not match the hash, size or chunk count they were sent with."""
