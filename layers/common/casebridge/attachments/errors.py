"""The errors of attachments: what the business sees, and the copier's own."""

from __future__ import annotations

from casebridge.errors import CasebridgeError, ContactCenterError, InvalidRequest, PayloadTooLarge


class AttachmentNotFound(CasebridgeError):
    status_code = 404
    code = "AttachmentNotFound"


class AttachmentNotUploaded(CasebridgeError):
    status_code = 409
    code = "AttachmentNotUploaded"


class AttachmentPending(CasebridgeError):
    status_code = 409
    code = "AttachmentPending"


class AttachmentTooLarge(PayloadTooLarge):
    code = "AttachmentTooLarge"


class AttachmentTypeNotAllowed(CasebridgeError):
    status_code = 415
    code = "AttachmentTypeNotAllowed"


class AttachmentDoesNotMatch(CasebridgeError):
    """The uploaded object is not what was declared (size)."""

    status_code = 422
    code = "AttachmentDoesNotMatch"


class TooManyAttachments(InvalidRequest):
    code = "TooManyAttachments"


class AttachmentCopyFailed(CasebridgeError):
    """casebridge could not copy the agent's file from 8x8 (after its retries)."""

    status_code = 502
    code = "AttachmentCopyFailed"


class AttachmentStorageError(ContactCenterError):
    """During delivery: the attachment could not be read from the bucket. Goes through the delivery's retry and
    dead-letter path like an 8x8 failure (retryable unless the object is gone or changed)."""

    code = "AttachmentStorageError"


class AttachmentStorageBusy(CasebridgeError):
    """The attachment bucket throttled or failed for now (SlowDown, 5xx, a dropped connection): retry shortly."""

    status_code = 503
    code = "AttachmentStorageBusy"


class CopyFailed(Exception):
    """An agent attachment cannot be copied, and retrying will not change that (too big, gone at 8x8)."""
