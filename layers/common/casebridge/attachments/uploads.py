"""Customer and bot files: the upload URL, and the check of each file when a message carrying it is accepted."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from casebridge.attachments.errors import (
    AttachmentDoesNotMatch,
    AttachmentNotFound,
    AttachmentNotUploaded,
    AttachmentTooLarge,
    AttachmentTypeNotAllowed,
    TooManyAttachments,
)
from casebridge.attachments.storage import AWAITING_UPLOAD, OUTBOUND, bucket, outbound_key, require_gateway
from casebridge.clock import now_ms
from casebridge.observability import MetricUnit, logger, metrics
from casebridge.services import Services

if TYPE_CHECKING:
    from casebridge.business_api.models import AttachmentUploadRequest  # annotations only (the intake loads no models)
    from casebridge.business_api.views import AttachmentUploadView


def create_upload(services: Services, case_id: str, request: AttachmentUploadRequest) -> AttachmentUploadView:
    """POST /cases/{caseId}/attachments → {attachmentId, uploadUrl, uploadMethod, uploadHeaders, expiresAt}."""
    require_gateway(services, "attachments")
    settings = services.settings
    content_type = request.content_type.lower()
    allowed = settings.allowed_attachment_types
    if content_type not in allowed:
        raise AttachmentTypeNotAllowed(
            f"attachments of type {content_type} are not accepted; allowed: {', '.join(sorted(allowed))}",
            details={"allowedTypes": sorted(allowed)},
        )
    if request.size > settings.attachment_max_bytes:
        raise AttachmentTooLarge(
            f"the attachment declares {request.size} bytes; at most {settings.attachment_max_bytes} are accepted",
            details={"maxBytes": settings.attachment_max_bytes},
        )
    target = bucket(services)
    attachment_id = secrets.token_urlsafe(16)
    key = outbound_key(case_id, attachment_id)
    created = now_ms()
    services.store.put_attachment(
        case_id,
        attachment_id,
        {
            "direction": OUTBOUND,
            "status": AWAITING_UPLOAD,
            "fileName": request.file_name,
            "contentType": content_type,
            "size": request.size,
            "s3Key": key,
            "createdAt": created,
        },
        settings.attachment_retention_days * 86400,
    )
    expires_in = settings.attachment_upload_url_seconds
    url = target.upload_url(key, content_type, request.size, expires_in)
    metrics.add_metric(name="AttachmentUploadsOffered", unit=MetricUnit.Count, value=1)
    logger.info("attachment upload offered", extra={"attachmentId": attachment_id, "size": request.size})
    return {
        "attachmentId": attachment_id,
        "uploadUrl": url,
        "uploadMethod": "PUT",
        "uploadHeaders": {"Content-Type": content_type},
        "expiresAt": created + expires_in * 1000,
    }


def check_for_message(services: Services, case_id: str, attachment_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The attachments of a message being accepted, each checked against its S3 object (one HEAD each).
    Returns what the queued message carries: [{attachmentId, fileName, contentType, size, etag}]."""
    if not attachment_ids:
        return []
    require_gateway(services, "attachments")
    settings = services.settings
    if len(attachment_ids) > settings.attachment_max_per_message:
        raise TooManyAttachments(
            f"a message may carry at most {settings.attachment_max_per_message} attachments; "
            f"this one has {len(attachment_ids)}"
        )
    records = services.store.get_attachments(case_id, list(attachment_ids))
    target = bucket(services)
    checked = []
    for attachment_id in attachment_ids:
        record = records.get(attachment_id)
        if record is None or record.get("direction") != OUTBOUND:
            raise AttachmentNotFound(
                f"attachment {attachment_id} is not one of case {case_id}'s uploads "
                "(create it with POST /cases/{caseId}/attachments)"
            )
        head = target.head(str(record["s3Key"]))
        if head is None:
            raise AttachmentNotUploaded(
                f"attachment {attachment_id} was never uploaded: PUT the file to its uploadUrl first"
            )
        size = int(head.get("ContentLength", 0))
        declared = int(record["size"])
        if size > settings.attachment_max_bytes:
            raise AttachmentTooLarge(
                f"attachment {attachment_id} holds {size} bytes; at most {settings.attachment_max_bytes} are accepted"
            )
        if size != declared:
            raise AttachmentDoesNotMatch(f"attachment {attachment_id} holds {size} bytes but {declared} were declared")
        stored_type = str(head.get("ContentType") or "").split(";", 1)[0].strip().lower()
        if stored_type != record["contentType"]:
            raise AttachmentTypeNotAllowed(
                f"attachment {attachment_id} was uploaded as {stored_type or 'no type'}, "
                f"not the declared {record['contentType']}"
            )
        checked.append(
            {
                "attachmentId": attachment_id,
                "fileName": str(record["fileName"]),
                "contentType": stored_type,
                "size": size,
                "etag": str(head.get("ETag") or ""),
            }
        )
    return checked
