"""GET /cases/{caseId}/attachments/{id}: a short-lived S3 URL for a file that is in the bucket."""

from __future__ import annotations

from typing import TYPE_CHECKING

from casebridge.attachments.errors import (
    AttachmentCopyFailed,
    AttachmentNotFound,
    AttachmentNotUploaded,
    AttachmentPending,
)
from casebridge.attachments.storage import FAILED, INBOUND, OUTBOUND, PENDING, bucket, require_gateway
from casebridge.clock import now_ms
from casebridge.services import Services

if TYPE_CHECKING:
    from casebridge.business_api.views import AttachmentDownloadView


def download(services: Services, case_id: str, attachment_id: str) -> AttachmentDownloadView:
    """GET /cases/{caseId}/attachments/{id}: a fresh short-lived S3 URL ({url, expiresAt}) for an attachment
    whose file is in the bucket; AttachmentPending while an agent's file is still being copied."""
    require_gateway(services, "attachments")
    record = services.store.get_attachments(case_id, [attachment_id]).get(attachment_id)
    if record is None:
        raise AttachmentNotFound(f"case {case_id} has no attachment {attachment_id}")
    status = record.get("status")
    if record.get("direction") == INBOUND and status == PENDING:
        raise AttachmentPending(
            f"attachment {attachment_id} is still being copied from 8x8; retry shortly", retry_after=2
        )
    if status == FAILED:
        raise AttachmentCopyFailed(f"attachment {attachment_id} could not be copied from 8x8: {record.get('reason')}")
    target = bucket(services)
    if record.get("direction") == OUTBOUND and target.head(str(record["s3Key"])) is None:
        raise AttachmentNotUploaded(f"attachment {attachment_id} was never uploaded")
    expires_in = services.settings.attachment_download_url_seconds
    url = target.download_url(
        str(record["s3Key"]),
        str(record.get("fileName") or attachment_id),
        str(record.get("contentType") or "application/octet-stream"),
        expires_in,
    )
    return {"attachmentId": attachment_id, "url": url, "expiresAt": now_ms() + expires_in * 1000}
