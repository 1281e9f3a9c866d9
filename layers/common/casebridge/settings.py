"""Typed settings, parsed once from the function's environment (template.yaml sets every variable)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationError

from casebridge.errors import ConfigurationError

MAX_WEBHOOK_TOLERANCE_SECONDS = 900
# Images, PDF, plain text/CSV and the common office formats (template.yaml's AttachmentContentTypes default).
DEFAULT_ATTACHMENT_CONTENT_TYPES = ",".join(
    (
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "application/pdf",
        "text/plain",
        "text/csv",
        "application/msword",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.ms-excel",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.ms-powerpoint",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    )
)  # stays far below the receipt TTL (days), so a replay always meets its receipt


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    contact_center_api: Literal["chat-gateway-v1", "chat-api-v2"] = Field(
        alias="EIGHTXEIGHT_API", default="chat-gateway-v1"
    )
    cases_table_name: str = Field(alias="CASES_TABLE_NAME", min_length=1)
    event_bus_name: str = Field(alias="EVENT_BUS_NAME", default="default")
    outbound_queue_url: str = Field(alias="OUTBOUND_QUEUE_URL", default="")
    outbound_dead_letter_queue_url: str = Field(alias="OUTBOUND_DLQ_URL", default="")
    contact_center_base_url: HttpUrl = Field(alias="EIGHTXEIGHT_BASE_URL", default=HttpUrl("https://api.8x8.com"))
    contact_center_region: Literal["us", "eu", "ca", "ap"] = Field(alias="EIGHTXEIGHT_REGION", default="us")
    tenant_id: str = Field(alias="EIGHTXEIGHT_TENANT_ID", min_length=1)
    channel_id: str = Field(alias="EIGHTXEIGHT_CHANNEL_ID", default="")
    credentials_secret_id: str = Field(alias="EIGHTXEIGHT_SECRET_ARN", default="")
    http_timeout_seconds: float = Field(alias="HTTP_TIMEOUT_SECONDS", default=5.0, gt=0)
    webhook_tolerance_seconds: int = Field(
        alias="WEBHOOK_TOLERANCE_SECONDS", default=300, gt=0, le=MAX_WEBHOOK_TOLERANCE_SECONDS
    )
    max_send_attempts: int = Field(alias="MAX_SEND_ATTEMPTS", default=8, ge=1)
    # The outbound queue's maxReceiveCount: the sender dead-letters a message itself (record + MessageFailed)
    # before SQS's own redrive could move it silently.
    outbound_max_receive_count: int = Field(alias="OUTBOUND_MAX_RECEIVE_COUNT", default=1000, ge=2)
    retry_base_seconds: float = Field(alias="RETRY_BASE_SECONDS", default=2.0, gt=0)
    retry_cap_seconds: float = Field(alias="RETRY_CAP_SECONDS", default=300.0, gt=0)
    timeline_ttl_days: int = Field(alias="TIMELINE_TTL_DAYS", default=90, ge=1)
    webhook_receipt_ttl_days: int = Field(alias="WEBHOOK_RECEIPT_TTL_DAYS", default=30, ge=1)
    # Attachments (casebridge.attachments): the stack's bucket, its limits, and the agent-attachment copy queue.
    attachments_bucket_name: str = Field(alias="ATTACHMENTS_BUCKET_NAME", default="")
    attachment_max_bytes: int = Field(alias="ATTACHMENT_MAX_BYTES", default=10 * 1024 * 1024, gt=0)
    attachment_max_per_message: int = Field(alias="ATTACHMENT_MAX_PER_MESSAGE", default=5, ge=1, le=50)
    attachment_content_types: str = Field(alias="ATTACHMENT_CONTENT_TYPES", default=DEFAULT_ATTACHMENT_CONTENT_TYPES)
    attachment_upload_url_seconds: int = Field(alias="ATTACHMENT_UPLOAD_URL_SECONDS", default=900, ge=60, le=3600)
    attachment_download_url_seconds: int = Field(alias="ATTACHMENT_DOWNLOAD_URL_SECONDS", default=300, ge=10, le=3600)
    attachment_retention_days: int = Field(alias="ATTACHMENT_RETENTION_DAYS", default=30, ge=1)
    attachment_inbound_max_bytes: int = Field(alias="ATTACHMENT_INBOUND_MAX_BYTES", default=25 * 1024 * 1024, gt=0)
    attachment_copy_queue_url: str = Field(alias="ATTACHMENT_COPY_QUEUE_URL", default="")
    # The copy queue's maxReceiveCount: on its last receive the copier marks the attachment failed.
    attachment_copy_max_receives: int = Field(alias="ATTACHMENT_COPY_MAX_RECEIVES", default=20, ge=1)

    @property
    def allowed_attachment_types(self) -> frozenset[str]:
        return frozenset(t.strip().lower() for t in self.attachment_content_types.split(",") if t.strip())

    @property
    def base_url(self) -> str:
        return str(self.contact_center_base_url).rstrip("/")


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    try:
        return Settings.model_validate({k: v for k, v in env.items() if v != ""})
    except ValidationError as error:
        # Not a pydantic ValidationError to the caller: the API would answer it as the client's 400.
        names = sorted({".".join(map(str, e["loc"])) for e in error.errors(include_url=False)})
        raise ConfigurationError(f"the function's environment is missing or invalid: {', '.join(names)}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings of this container, parsed on first use (never at import time)."""
    return load_settings()
