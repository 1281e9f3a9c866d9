"""Delivery of customer and bot files to 8x8: streamed from the bucket into 8x8's upload, once per conversation."""

from __future__ import annotations

from typing import IO, cast

from casebridge.attachments.errors import AttachmentStorageError
from casebridge.attachments.storage import bucket
from casebridge.clock import now_ms
from casebridge.observability import MetricUnit, metrics
from casebridge.outbound_queue import OutboundMessage
from casebridge.services import Services


def deliver_attachments(services: Services, conversation_id: str, message: OutboundMessage) -> list[str]:
    """Upload the message's attachments to the conversation (streamed from S3) and return 8x8's ids, in order.
    An attachment already uploaded to this conversation by an earlier attempt is not uploaded again."""
    wanted = [str(a["attachmentId"]) for a in message.attachments]
    records = services.store.get_attachments(message.caseId, wanted)
    target = bucket(services)
    ids = []
    for attachment in message.attachments:
        attachment_id = str(attachment["attachmentId"])
        record = records.get(attachment_id)
        if record is None:
            raise AttachmentStorageError(
                f"attachment {attachment_id}'s record expired before delivery; the message cannot be sent",
                retryable=False,
            )
        if record.get("contactCenterId") and record.get("contactCenterConversationId") == conversation_id:
            ids.append(str(record["contactCenterId"]))
            continue
        body = target.open(str(record["s3Key"]), str(attachment.get("etag") or "") or None)
        try:
            # The streaming body itself: requests reads it into its multipart body (8x8 takes no chunked upload).
            contact_center_id = services.contact_center.upload_attachment(
                conversation_id,
                message.authorType,
                str(attachment["fileName"]),
                str(attachment["contentType"]),
                cast("IO[bytes]", body),
            )
        finally:
            body.close()
        services.store.update_attachment(
            message.caseId,
            attachment_id,
            {
                "contactCenterId": contact_center_id,
                "contactCenterConversationId": conversation_id,
                "uploadedAt": now_ms(),
            },
        )
        metrics.add_metric(name="AttachmentsUploaded", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="AttachmentBytesUploaded", unit=MetricUnit.Bytes, value=int(attachment.get("size", 0)))
        ids.append(contact_center_id)
    return ids
