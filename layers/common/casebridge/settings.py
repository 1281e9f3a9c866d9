"""Typed settings, parsed once from the function's environment (template.yaml sets every variable)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from casebridge.errors import ConfigurationError

# Stays far below the receipt TTL (days), so a replay inside the window always meets its receipt.
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
)


def _env(
    name: str,
    default: Any = MISSING,
    *,
    low: float | None = None,
    high: float | None = None,
    above: float | None = None,
    choices: tuple[str, ...] = (),
    url: bool = False,
) -> Any:
    """A setting's field: its environment variable and the checks its value must pass."""
    spec = {"env": name, "low": low, "high": high, "above": above, "choices": choices, "url": url}
    return field(default=default, metadata=spec)


# A frozen dataclass, not a validation library's model: every function (the webhook intake too) parses it at
# start-up, and the intake otherwise loads no such library.
@dataclass(frozen=True)
class Settings:
    cases_table_name: str = _env("CASES_TABLE_NAME")
    tenant_id: str = _env("EIGHTXEIGHT_TENANT_ID")
    contact_center_api: str = _env("EIGHTXEIGHT_API", "chat-gateway-v1", choices=("chat-gateway-v1", "chat-api-v2"))
    event_bus_name: str = _env("EVENT_BUS_NAME", "default")
    outbound_queue_url: str = _env("OUTBOUND_QUEUE_URL", "")
    outbound_dead_letter_queue_url: str = _env("OUTBOUND_DLQ_URL", "")
    contact_center_base_url: str = _env("EIGHTXEIGHT_BASE_URL", "https://api.8x8.com", url=True)
    contact_center_region: str = _env("EIGHTXEIGHT_REGION", "us", choices=("us", "eu", "ca", "ap"))
    channel_id: str = _env("EIGHTXEIGHT_CHANNEL_ID", "")
    queue_id: str = _env("EIGHTXEIGHT_QUEUE_ID", "")  # the channel's queue (availability of a plain open)
    credentials_secret_id: str = _env("EIGHTXEIGHT_SECRET_ARN", "")
    http_timeout_seconds: float = _env("HTTP_TIMEOUT_SECONDS", 5.0, above=0)
    # After a create whose outcome is unknown, 8x8 may still be making the conversation: for this long an opener
    # that finds none waits instead of creating a second one (a lookup that finds it adopts it at once).
    create_settle_seconds: float = _env("CREATE_SETTLE_SECONDS", 30.0, low=0, high=600)
    webhook_tolerance_seconds: int = _env("WEBHOOK_TOLERANCE_SECONDS", 300, low=1, high=MAX_WEBHOOK_TOLERANCE_SECONDS)
    max_send_attempts: int = _env("MAX_SEND_ATTEMPTS", 8, low=1)
    # The outbound queue's maxReceiveCount: the sender dead-letters a message itself (record + MessageFailed)
    # before SQS's own redrive could move it silently.
    outbound_max_receive_count: int = _env("OUTBOUND_MAX_RECEIVE_COUNT", 1000, low=2)
    retry_base_seconds: float = _env("RETRY_BASE_SECONDS", 2.0, above=0)
    retry_cap_seconds: float = _env("RETRY_CAP_SECONDS", 300.0, above=0)
    timeline_ttl_days: int = _env("TIMELINE_TTL_DAYS", 90, low=1)
    webhook_receipt_ttl_days: int = _env("WEBHOOK_RECEIPT_TTL_DAYS", 30, low=1)
    # The outbox sweeper publishes what has been pending longer than this (the request that recorded it had its
    # chance; casebridge.outbox_sweeper).
    outbox_sweep_delay_seconds: int = _env("OUTBOX_SWEEP_DELAY_SECONDS", 30, low=0, high=3600)
    # Attachments (casebridge.attachments): the stack's bucket, its limits, and the agent-attachment copy queue.
    attachments_bucket_name: str = _env("ATTACHMENTS_BUCKET_NAME", "")
    attachment_max_bytes: int = _env("ATTACHMENT_MAX_BYTES", 10 * 1024 * 1024, low=1)
    attachment_max_per_message: int = _env("ATTACHMENT_MAX_PER_MESSAGE", 5, low=1, high=50)
    attachment_content_types: str = _env("ATTACHMENT_CONTENT_TYPES", DEFAULT_ATTACHMENT_CONTENT_TYPES)
    attachment_upload_url_seconds: int = _env("ATTACHMENT_UPLOAD_URL_SECONDS", 900, low=60, high=3600)
    attachment_download_url_seconds: int = _env("ATTACHMENT_DOWNLOAD_URL_SECONDS", 300, low=10, high=3600)
    attachment_retention_days: int = _env("ATTACHMENT_RETENTION_DAYS", 30, low=1)
    attachment_inbound_max_bytes: int = _env("ATTACHMENT_INBOUND_MAX_BYTES", 25 * 1024 * 1024, low=1)
    attachment_copy_queue_url: str = _env("ATTACHMENT_COPY_QUEUE_URL", "")
    # Where the copier may fetch agents' files from (casebridge.attachments.sources): 8x8's file hosts, comma-
    # separated, "*.suffix" allowed (the 8x8 base URL's host always is); `true` also allows http on loopback
    # (the local stack and the emulator), never the default.
    attachment_source_hosts: str = _env("ATTACHMENT_SOURCE_HOSTS", "api.8x8.com")
    attachment_sources_loopback: str = _env("ATTACHMENT_SOURCES_LOOPBACK", "false", choices=("false", "true"))
    # The copy queue's maxReceiveCount: on its last receive the copier marks the attachment failed.
    attachment_copy_max_receives: int = _env("ATTACHMENT_COPY_MAX_RECEIVES", 20, low=1)
    # Pushes to the channel (casebridge.push): the widget WebSocket and the signed webhooks.
    channel_token_secret_id: str = _env("CHANNEL_TOKEN_SECRET_ARN", "")
    channel_token_seconds: int = _env("CHANNEL_TOKEN_SECONDS", 300, low=30, high=3600)
    channel_socket_url: str = _env("CHANNEL_SOCKET_URL", "")
    channel_connections_url: str = _env("CHANNEL_CONNECTIONS_URL", "")
    channel_webhook_url: str = _env("CHANNEL_WEBHOOK_URL", "")
    channel_webhook_secret_id: str = _env("CHANNEL_WEBHOOK_SECRET_ARN", "")
    channel_webhook_queue_url: str = _env("CHANNEL_WEBHOOK_QUEUE_URL", "")
    channel_webhook_dlq_url: str = _env("CHANNEL_WEBHOOK_DLQ_URL", "")
    channel_webhook_max_attempts: int = _env("CHANNEL_WEBHOOK_MAX_ATTEMPTS", 10, low=1, high=50)
    channel_webhook_timeout_seconds: float = _env("CHANNEL_WEBHOOK_TIMEOUT_SECONDS", 10.0, above=0)
    # The escalation (casebridge.escalation): business hours, metrics refresh, timers, hand-back, transcripts.
    business_hours_parameter: str = _env("BUSINESS_HOURS_PARAMETER", "")
    metrics_refresh_seconds: int = _env("METRICS_REFRESH_SECONDS", 5, low=5, high=300)
    max_queued_minutes: int = _env("MAX_QUEUED_MINUTES", 30, low=1, high=1440)
    customer_idle_minutes: int = _env("CUSTOMER_IDLE_MINUTES", 10, low=1, high=1440)
    customer_idle_grace_minutes: int = _env("CUSTOMER_IDLE_GRACE_MINUTES", 2, low=1, high=60)
    post_agent_webhook_id: str = _env("POST_AGENT_WEBHOOK_ID", "")

    @property
    def allowed_attachment_types(self) -> frozenset[str]:
        return frozenset(t.strip().lower() for t in self.attachment_content_types.split(",") if t.strip())

    @property
    def base_url(self) -> str:
        return self.contact_center_base_url.rstrip("/")

    @classmethod
    def required_variables(cls) -> set[str]:
        return {f.metadata["env"] for f in fields(cls) if f.default is MISSING}


def _parse(spec: Mapping[str, Any], kind: str, raw: str) -> Any:
    value: Any = raw
    if kind in ("int", "float"):
        number = float(raw) if kind == "float" else int(raw, 10)
        if spec["low"] is not None and number < spec["low"]:
            raise ValueError
        if spec["high"] is not None and number > spec["high"]:
            raise ValueError
        if spec["above"] is not None and number <= spec["above"]:
            raise ValueError
        value = number
    if spec["choices"] and raw not in spec["choices"]:
        raise ValueError
    if spec["url"]:
        parsed = urlsplit(raw)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError
    return value


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    wrong: list[str] = []
    for spec_field in fields(Settings):
        spec = spec_field.metadata
        raw = env.get(spec["env"], "").strip()
        if not raw:
            if spec_field.default is MISSING:
                wrong.append(spec["env"])
            continue
        try:
            values[spec_field.name] = _parse(spec, str(spec_field.type), raw)
        except ValueError:
            wrong.append(spec["env"])
    if wrong:
        # A ConfigurationError (500), never the caller's 400: the function's own environment is at fault.
        raise ConfigurationError(f"the function's environment is missing or invalid: {', '.join(sorted(wrong))}")
    return Settings(**values)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings of this container, parsed on first use (never at import time)."""
    return load_settings()
