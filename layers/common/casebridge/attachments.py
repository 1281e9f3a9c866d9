"""Attachments both ways, through the stack's private S3 bucket (Chat Gateway only; GATEWAY.md §2.5, §3.3).

Customer and bot files: `POST /cases/{caseId}/attachments` records the attachment and answers a pre-signed S3 PUT
URL (content type and length are signed headers, so S3 refuses any other); `POST /messages` with the ids checks
each object with one HEAD before the message is accepted (never uploaded, too big, not what was declared, another
case's id: a 4xx now, never a failure later). Delivery streams each object from S3 into 8x8's multipart upload
and records 8x8's id on the attachment, so a retried delivery does not upload it again.

Agent files: 8x8's pre-signed URLs expire, so the intake gives each one a casebridge id (derived from 8x8's, so a
retried webhook maps to the same one), records it `pending` and queues a copy job; the copier streams the file
into the bucket (falling back to GET …/attachments/{id}/content when the URL no longer answers) and marks it
`ready`. `GET /cases/{caseId}/attachments/{id}` then redirects to a short-lived S3 GET URL.

Keys: `cases/<caseId>/outbound/<id>` and `cases/<caseId>/inbound/<id>`; records: pk CASE#<caseId>,
sk ATTACHMENT#<id> (store.py).
"""

from __future__ import annotations

import json
import mimetypes
import secrets
import uuid
from collections.abc import Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any, Protocol, cast

import requests
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import BotoCoreError, ClientError
from botocore.response import StreamingBody

from casebridge import aws
from casebridge.business_api.views import AttachmentDownloadView, AttachmentUploadView
from casebridge.clock import now_ms
from casebridge.contact_center import http
from casebridge.contact_center.base import CHAT_GATEWAY_V1
from casebridge.errors import (
    CasebridgeError,
    ConfigurationError,
    ContactCenterError,
    InvalidRequest,
    PayloadTooLarge,
    UnsupportedByContactCenterApi,
)
from casebridge.observability import MetricUnit, logger, metrics
from casebridge.outbound_queue import OutboundMessage
from casebridge.services import Services

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from casebridge.business_api.models import AttachmentUploadRequest  # annotations only (the intake loads no models)

OUTBOUND = "outbound"
INBOUND = "inbound"
AWAITING_UPLOAD = "awaiting_upload"
PENDING = "pending"
READY = "ready"
FAILED = "failed"
_NAMESPACE = uuid.UUID("0b7c6a52-3d1e-4d5e-9c39-2f0a4e6b8d11")
_COPY_BATCH = 10  # SQS SendMessageBatch's limit
# Bounded memory while copying: S3 gets the file in parts of this size, one at a time (no parallel parts).
_PART_BYTES = 8 * 1024 * 1024
_TRANSFER = TransferConfig(
    multipart_threshold=_PART_BYTES, multipart_chunksize=_PART_BYTES, max_concurrency=1, use_threads=False
)


# ---- errors the business sees -------------------------------------------------------------------------------
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


class CopyFailed(Exception):
    """An agent attachment cannot be copied, and retrying will not change that (too big, gone at 8x8)."""


def require_gateway(services: Services, what: str) -> None:
    """A 400 at request time, before anything is accepted, when the configured 8x8 API cannot do `what`."""
    api = services.contact_center.api
    if api != CHAT_GATEWAY_V1:
        raise UnsupportedByContactCenterApi(
            f"{what} need the Chat Gateway (EightByEightApi=chat-gateway-v1); the configured 8x8 API is {api}"
        )


# ---- S3 ---------------------------------------------------------------------------------------------------------
def outbound_key(case_id: str, attachment_id: str) -> str:
    return f"cases/{case_id}/{OUTBOUND}/{attachment_id}"


def inbound_key(case_id: str, attachment_id: str) -> str:
    return f"cases/{case_id}/{INBOUND}/{attachment_id}"


def content_disposition(file_name: str) -> str:
    """attachment; filename="ascii fallback"; filename*=UTF-8''percent-encoded (RFC 6266)."""
    from urllib.parse import quote  # noqa: PLC0415 - only on download

    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in file_name) or "file"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(file_name, safe='')}"


class AttachmentBucket:
    """The stack's attachment bucket (aws.s3_client signs its pre-signed URLs with SigV4)."""

    client = aws.InjectableClient(aws.s3_client)

    def __init__(self, name: str, client: S3Client | None = None) -> None:
        self.name = name
        self.client = client

    def upload_url(self, key: str, content_type: str, size: int, expires_in: int) -> str:
        # ContentType and ContentLength become signed headers: S3 refuses a PUT with any other type or size.
        return self.client.generate_presigned_url(
            "put_object",
            Params={"Bucket": self.name, "Key": key, "ContentType": content_type, "ContentLength": size},
            ExpiresIn=expires_in,
            HttpMethod="PUT",
        )

    def download_url(self, key: str, file_name: str, content_type: str, expires_in: int) -> str:
        return self.client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.name,
                "Key": key,
                "ResponseContentDisposition": content_disposition(file_name),
                "ResponseContentType": content_type,
            },
            ExpiresIn=expires_in,
        )

    def head(self, key: str) -> dict[str, Any] | None:
        try:
            answer = self.client.head_object(Bucket=self.name, Key=key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return dict(answer)

    def open(self, key: str, etag: str | None) -> StreamingBody:
        """The object's streaming body (read as 8x8's upload reads it, never whole in a variable here)."""
        params: dict[str, Any] = {"Bucket": self.name, "Key": key}
        if etag:
            params["IfMatch"] = etag
        try:
            body = self.client.get_object(**params)["Body"]
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            if code in ("404", "NoSuchKey", "NotFound"):
                raise AttachmentStorageError(
                    "the attachment is no longer in the bucket (expired?); the message cannot be sent", retryable=False
                ) from error
            if code in ("412", "PreconditionFailed"):
                raise AttachmentStorageError(
                    "the attachment was replaced after the message was accepted; the message is not sent",
                    retryable=False,
                ) from error
            raise AttachmentStorageError(f"the attachment could not be read from the bucket ({code})") from error
        except BotoCoreError as error:
            raise AttachmentStorageError("the attachment could not be read from the bucket") from error
        return body

    def put_stream(self, key: str, stream: _Readable, content_type: str, file_name: str) -> None:
        """Stream into the bucket: parts of 8 MiB, one at a time (a small file is one PUT)."""
        self.client.upload_fileobj(
            cast("IO[Any]", stream),
            self.name,
            key,
            ExtraArgs={"ContentType": content_type, "ContentDisposition": content_disposition(file_name)},
            Config=_TRANSFER,
        )


def bucket(services: Services) -> AttachmentBucket:
    """The bucket of these services (one client per container, like the other AWS clients)."""
    name = services.settings.attachments_bucket_name
    if not name:
        raise ConfigurationError("ATTACHMENTS_BUCKET_NAME is not configured (the stack's attachment bucket)")
    cached = vars(services).get("_attachment_bucket")
    if not isinstance(cached, AttachmentBucket) or cached.name != name:
        cached = AttachmentBucket(name)
        vars(services)["_attachment_bucket"] = cached
    return cached


# ---- customer and bot attachments: upload URL, check at accept, delivery ------------------------------------
def create_upload(services: Services, case_id: str, request: AttachmentUploadRequest) -> AttachmentUploadView:
    """POST /cases/{caseId}/attachments → {attachmentId, uploadUrl, uploadMethod, uploadHeaders, expiresAt}."""
    require_gateway(services, "attachments")
    settings = services.settings
    content_type = request.content_type.lower()
    allowed = settings.allowed_attachment_types
    if content_type not in allowed:
        raise AttachmentTypeNotAllowed(
            f"attachments of type {content_type} are not accepted; allowed: {', '.join(sorted(allowed))}"
        )
    if request.size > settings.attachment_max_bytes:
        raise AttachmentTooLarge(
            f"the attachment declares {request.size} bytes; at most {settings.attachment_max_bytes} are accepted"
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


# ---- agent attachments: intake, copier, download ----------------------------------------------------------------
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


class _Readable(Protocol):
    def read(self, amt: int | None = None, /) -> bytes: ...


class _Capped:
    """A read-only stream that stops with CopyFailed past `limit` bytes, and counts what went through."""

    def __init__(self, raw: _Readable, limit: int) -> None:
        self.raw = raw
        self.limit = limit
        self.count = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = self.raw.read(None if size is None or size < 0 else size)
        self.count += len(chunk)
        if self.count > self.limit:
            raise CopyFailed(f"the agent's file is larger than {self.limit} bytes")
        return chunk


def _media_type(response: requests.Response, file_name: str) -> str:
    given = (response.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
    if given and given not in ("application/octet-stream", "binary/octet-stream"):
        return given
    guessed, _ = mimetypes.guess_type(file_name)
    return guessed or given or "application/octet-stream"


def _from_url(url: str, timeout: float) -> requests.Response | None:
    """8x8's pre-signed URL, streamed; None when it does not serve the file (expired, refused, unreachable)."""
    try:
        http.require_safe_base_url(url)  # https (or this machine): the file never travels in cleartext
    except ConfigurationError:
        logger.warning("agent attachment URL is not https; using the API instead")
        return None
    try:
        response = requests.get(url, stream=True, timeout=(min(timeout, 3.05), max(timeout, 30.0)))
    except requests.RequestException:
        logger.warning("agent attachment URL unreachable; using the API instead")
        return None
    if response.status_code != 200:
        logger.info("agent attachment URL answered %s; using the API instead", response.status_code)
        response.close()
        return None
    return response


def copy_agent_attachment(services: Services, job: Mapping[str, Any], receive_count: int) -> str:
    """One copy job: 8x8 → the bucket, then the record `ready`. Returns copied, duplicate, gone or failed.
    Raises on a failure a retry may fix (the queue brings the job back; on its last receive it is also marked
    failed, so GET answers instead of waiting forever, and SQS moves it to the copy dead-letter queue)."""
    case_id, attachment_id = str(job["caseId"]), str(job["attachmentId"])
    logger.append_keys(caseId=case_id, attachmentId=attachment_id)
    record = services.store.get_attachments(case_id, [attachment_id]).get(attachment_id)
    if record is None:
        logger.warning("copy job for an attachment with no record (expired?); dropped")
        return "gone"
    if record.get("status") == READY:
        return "duplicate"
    settings = services.settings
    try:
        size, media_type = _copy(services, job, str(record["s3Key"]))
    except CopyFailed as error:
        _mark_failed(services, case_id, attachment_id, str(error))
        logger.error("agent attachment cannot be copied", extra={"reason": str(error)})
        return "failed"
    except Exception as error:
        if receive_count >= settings.attachment_copy_max_receives:
            _mark_failed(services, case_id, attachment_id, f"copy failed after {receive_count} attempts: {error}")
            logger.error("agent attachment copy failed for the last time; to the copy dead-letter queue")
        raise
    services.store.update_attachment(
        case_id,
        attachment_id,
        {"status": READY, "contentType": media_type, "size": size, "copiedAt": now_ms()},
    )
    metrics.add_metric(name="AgentAttachmentsCopied", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="AgentAttachmentBytesCopied", unit=MetricUnit.Bytes, value=size)
    logger.info("agent attachment copied into the bucket", extra={"size": size})
    return "copied"


def _mark_failed(services: Services, case_id: str, attachment_id: str, reason: str) -> None:
    services.store.update_attachment(
        case_id, attachment_id, {"status": FAILED, "reason": reason[:500]}, unless_status=READY
    )
    metrics.add_metric(name="AgentAttachmentCopiesFailed", unit=MetricUnit.Count, value=1)


def _copy(services: Services, job: Mapping[str, Any], key: str) -> tuple[int, str]:
    timeout = services.settings.http_timeout_seconds
    url = job.get("url")
    response = _from_url(str(url), timeout) if url else None
    if response is None:
        try:
            response = services.contact_center.download_attachment(
                str(job["conversationId"]), str(job["contactCenterId"])
            )
        except ContactCenterError as error:
            if error.upstream_status == 404:
                raise CopyFailed("8x8 no longer has the agent's file") from error
            raise
    with response:
        file_name = str(job.get("fileName") or job["contactCenterId"])
        media_type = _media_type(response, file_name)
        declared = response.headers.get("Content-Length")
        limit = services.settings.attachment_inbound_max_bytes
        if declared and declared.isdigit() and int(declared) > limit:
            raise CopyFailed(f"the agent's file is larger than {limit} bytes")
        response.raw.decode_content = True
        stream = _Capped(response.raw, limit)
        bucket(services).put_stream(key, stream, media_type, file_name)
    return stream.count, media_type


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
