"""The copier: one agent file from 8x8 into the bucket, then its record `ready` (or `failed`)."""

from __future__ import annotations

import mimetypes
from collections.abc import Mapping
from typing import Any

import requests

from casebridge.attachments import sources
from casebridge.attachments.errors import CopyFailed
from casebridge.attachments.sources import SourcePolicy, SourceRefused
from casebridge.attachments.storage import FAILED, READY, Readable, bucket
from casebridge.clock import now_ms
from casebridge.errors import ContactCenterError
from casebridge.observability import MetricUnit, logger, metrics
from casebridge.services import Services


class _Capped:
    """A read-only stream that stops with CopyFailed past `limit` bytes, and counts what went through."""

    def __init__(self, raw: Readable, limit: int) -> None:
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


def _policy(services: Services) -> SourcePolicy:
    settings = services.settings
    return SourcePolicy.from_settings(
        settings.attachment_source_hosts, settings.base_url, settings.attachment_sources_loopback == "true"
    )


def _from_url(policy: SourcePolicy, url: str, timeout: float) -> requests.Response | None:
    """8x8's pre-signed URL, streamed; None when it does not serve the file (not one of 8x8's file hosts, expired,
    refused, unreachable): the API's content endpoint is asked instead."""
    try:
        response = sources.fetch(policy, url, timeout)
    except SourceRefused as refused:
        logger.warning("agent attachment URL refused; using the API instead", extra={"reason": str(refused)})
        return None
    except requests.RequestException:
        logger.warning("agent attachment URL unreachable; using the API instead")
        return None
    if response.status_code != 200:
        logger.info("agent attachment URL answered %s; using the API instead", response.status_code)
        response.close()
        return None
    return response


def _from_api(services: Services, job: Mapping[str, Any]) -> requests.Response:
    """GET …/content from 8x8's API (with 8x8's credentials, which never follow a redirect: contact_center.http)."""
    try:
        return services.contact_center.download_attachment(str(job["conversationId"]), str(job["contactCenterId"]))
    except ContactCenterError as error:
        if error.upstream_status == 404:
            raise CopyFailed("8x8 no longer has the agent's file") from error
        raise


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
    policy = _policy(services)
    url = job.get("url")
    response = _from_url(policy, str(url), timeout) if url else None
    if response is None:
        response = _from_api(services, job)
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
