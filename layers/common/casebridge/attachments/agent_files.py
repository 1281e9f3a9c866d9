"""Agent files at the intake: a casebridge id for each, a `pending` record, and a queued copy job."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from casebridge import aws
from casebridge.attachments.storage import INBOUND, PENDING, inbound_key
from casebridge.clock import now_ms
from casebridge.observability import MetricUnit, metrics
from casebridge.services import Services

_NAMESPACE = uuid.UUID("0b7c6a52-3d1e-4d5e-9c39-2f0a4e6b8d11")
_COPY_BATCH = 10  # SQS SendMessageBatch's limit


def inbound_attachment_id(case_id: str, conversation_id: str, contact_center_id: str) -> str:
    """casebridge's id of an agent attachment: the same for every delivery of the same 8x8 event."""
    return "in-" + uuid.uuid5(_NAMESPACE, f"{case_id}\n{conversation_id}\n{contact_center_id}").hex


def copies_configured(services: Services) -> bool:
    settings = services.settings
    return bool(settings.attachments_bucket_name and settings.attachment_copy_queue_url)


def take_in_agent_attachments(
    services: Services, case_id: str, conversation_id: str, detail: Mapping[str, Any]
) -> dict[str, Any]:
    """An AgentMessage's attachments as casebridge references ({attachmentId, fileName, type, status}), each
    recorded `pending` with its copy job queued. Called before the event is published or recorded: a failure
    here makes 8x8 retry, and the retry maps to the same ids."""
    attachments = detail.get("attachments") or []
    if not attachments or not copies_configured(services):
        return dict(detail)
    settings = services.settings
    references = []
    jobs = []
    for item in attachments:
        contact_center_id = str(item["id"])
        attachment_id = inbound_attachment_id(case_id, conversation_id, contact_center_id)
        file_name = str(item.get("fileName") or contact_center_id)
        services.store.put_attachment(
            case_id,
            attachment_id,
            {
                "direction": INBOUND,
                "status": PENDING,
                "fileName": file_name,
                "type": item.get("type"),
                "contactCenterId": contact_center_id,
                "contactCenterConversationId": conversation_id,
                "s3Key": inbound_key(case_id, attachment_id),
                "createdAt": now_ms(),
            },
            settings.attachment_retention_days * 86400,
        )
        jobs.append(
            {
                "caseId": case_id,
                "attachmentId": attachment_id,
                "conversationId": conversation_id,
                "contactCenterId": contact_center_id,
                "fileName": file_name,
                "type": item.get("type"),
                "url": item.get("url"),
            }
        )
        reference = {"attachmentId": attachment_id, "fileName": file_name, "status": PENDING}
        if item.get("type"):
            reference["type"] = str(item["type"])
        references.append(reference)
    enqueue_copies(services, jobs)
    metrics.add_metric(name="AgentAttachmentsQueued", unit=MetricUnit.Count, value=len(jobs))
    return {**detail, "attachments": references}


def enqueue_copies(services: Services, jobs: Sequence[Mapping[str, Any]]) -> None:
    client = aws.sqs_client()
    for start in range(0, len(jobs), _COPY_BATCH):
        batch = jobs[start : start + _COPY_BATCH]
        answer = client.send_message_batch(
            QueueUrl=services.settings.attachment_copy_queue_url,
            Entries=[
                {"Id": str(i), "MessageBody": json.dumps(job, separators=(",", ":"))} for i, job in enumerate(batch)
            ],
        )
        if answer.get("Failed"):
            raise RuntimeError(f"{len(answer['Failed'])} attachment copy jobs could not be queued")
