"""Signed webhooks to a channel hosted off AWS (Standard Webhooks: `webhook-id` = the event's eventId,
`webhook-timestamp`, `webhook-signature`, signed by the `standardwebhooks` package).

The fan-out puts each case event on the case's FIFO group; the sender takes a case's group one message at a
time and delivers the case's timeline after the webhook's cursor, in order, each entry until the channel
answers 2xx. A queue message is only a wake-up for its case: whatever it names, the delivery goes from the
cursor to the newest entry, so a message that arrives late, twice, or after a later one changes nothing.

A failure that may pass (timeout, connection error, 408, 429, 5xx) keeps the case's head message on the queue
with a delay (capped exponential backoff with full jitter, or the channel's Retry-After when longer); other
4xx, and a retryable failure after the attempt budget, dead-letter the event (ChannelDeliveryFailed) and the
case goes on with the next one. Other cases are other groups: a failing channel case holds up only itself.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import random
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from aws_lambda_powertools.utilities import parameters
from standardwebhooks.webhooks import Webhook

from casebridge import aws
from casebridge.errors import ConfigurationError
from casebridge.observability import MetricUnit, logger, metrics
from casebridge.outbound_queue import MAX_VISIBILITY_S
from casebridge.push.frames import entry_frame
from casebridge.services import Services
from casebridge.settings import Settings

RETRY_AFTER_CAP_SECONDS = 3600.0
PAGE = 25
SEND_MARGIN_MS = 2_000
RETRYABLE_STATUSES = frozenset({408, 429})
PARALLEL_CASES = 10  # a batch holds at most 10 messages
_sessions = threading.local()


@dataclass(frozen=True)
class WebhookJob:
    """One queue message: a wake-up for its case (and the frame itself, for events not on the timeline)."""

    case_id: str
    sequence: int
    event: dict[str, Any]
    message_id: str
    receipt_handle: str


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    retryable: bool = False
    retry_after: float | None = None
    reason: str = ""


class DeliveryDeferred(Exception):
    def __init__(self, delay: float) -> None:
        super().__init__(f"deferred {delay:.1f}s")
        self.delay = delay


def check_webhook_url(url: str) -> str:
    """https only, except to this machine (the local stack's receiver)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname:
        host = parts.hostname
        if host == "localhost" or _is_loopback(host):
            return url
    raise ConfigurationError("CHANNEL_WEBHOOK_URL must be an https:// URL (http:// only to this machine)")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def signer(settings: Settings) -> Webhook:
    if not settings.channel_webhook_secret_id:
        raise ConfigurationError("CHANNEL_WEBHOOK_SECRET_ARN is not configured (the webhook signing secret)")
    secret = parameters.get_secret(settings.channel_webhook_secret_id, max_age=300)
    return Webhook(secret if isinstance(secret, str) else secret.decode())


def session() -> requests.Session:
    """One connection pool per thread of the container (cases of a batch are delivered side by side)."""
    found: requests.Session | None = getattr(_sessions, "session", None)
    if found is None:
        found = requests.Session()
        found.trust_env = False
        _sessions.session = found
    return found


def backoff_seconds(settings: Settings, attempt: int, rng: random.Random | None = None) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2^(attempt-1))] (RETRY_BASE_SECONDS, RETRY_CAP_SECONDS)."""
    ceiling = min(settings.retry_cap_seconds, settings.retry_base_seconds * (2 ** max(0, attempt - 1)))
    return (rng or random).uniform(0, ceiling)


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds (a number, or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return min(float(value), RETRY_AFTER_CAP_SECONDS)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(0.0, seconds), RETRY_AFTER_CAP_SECONDS)


def post_event(url: str, timeout: float, hook: Webhook, frame: dict[str, Any]) -> Outcome:
    """POST one event, signed. Never raises for the channel's answers or network failures: they are outcomes."""
    now = datetime.now(UTC)
    body = json.dumps(
        {"type": frame.get("type"), "timestamp": now.isoformat().replace("+00:00", "Z"), "data": frame},
        separators=(",", ":"),
    ).encode()
    event_id = str(frame.get("eventId"))
    headers = {
        "content-type": "application/json",
        "user-agent": "casebridge-webhooks/1",
        "webhook-id": event_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": hook.sign(msg_id=event_id, timestamp=now, data=body),
    }
    try:
        answer = session().post(
            check_webhook_url(url), data=body, headers=headers, timeout=timeout, allow_redirects=False
        )
    except requests.RequestException as error:
        return Outcome(False, retryable=True, reason=f"{type(error).__name__}")
    status = answer.status_code
    if 200 <= status < 300:
        return Outcome(True)
    retryable = status >= 500 or status in RETRYABLE_STATUSES
    retry_after = retry_after_seconds(answer.headers.get("retry-after"))
    return Outcome(False, retryable=retryable, retry_after=retry_after, reason=f"HTTP {status}")


def deliver_case(services: Services, job: WebhookJob, hook: Webhook) -> int:
    """The case's timeline after the webhook's cursor, in order. Returns the events delivered or given up.
    DeliveryDeferred: an event failed in a way that may pass; the job comes back after the delay."""
    store, settings, case_id = services.store, services.settings, job.case_id
    if not job.sequence:  # not on the timeline (AgentTyping): one attempt, never retried (late is worse than none)
        outcome = post_event(settings.channel_webhook_url, settings.channel_webhook_timeout_seconds, hook, job.event)
        if not outcome.delivered:
            metrics.add_metric(name="ChannelTypingNotDelivered", unit=MetricUnit.Count, value=1)
        return int(outcome.delivered)
    # Whatever sequence the job names, the case goes from its cursor to its newest entry (a job for an event
    # delivered already finds nothing new; a late or repeated one changes nothing).
    cursor = store.webhook_cursor(case_id)
    done = 0
    sent = cursor.sent_seq
    while True:
        entries = store.timeline_after(case_id, sent, PAGE)
        for entry in entries:
            frame = entry_frame(entry, case_id)
            outcome = post_event(settings.channel_webhook_url, settings.channel_webhook_timeout_seconds, hook, frame)
            if outcome.delivered:
                store.webhook_sent(case_id, entry.sequence)
            else:
                attempts = (cursor.attempts if cursor.failing_seq == entry.sequence else 0) + 1
                if outcome.retryable and attempts < settings.channel_webhook_max_attempts:
                    store.webhook_failed(case_id, entry.sequence, attempts)
                    delay = max(backoff_seconds(settings, attempts), outcome.retry_after or 0.0)
                    logger.warning(
                        "channel webhook failed; retried later",
                        extra={
                            "caseId": case_id,
                            "eventId": entry.event_id,
                            "reason": outcome.reason,
                            "attempt": attempts,
                        },
                    )
                    metrics.add_metric(name="ChannelDeliveryRetried", unit=MetricUnit.Count, value=1)
                    raise DeliveryDeferred(delay)
                dead_letter(services, case_id, entry.sequence, frame, outcome.reason, attempts)
                store.webhook_sent(case_id, entry.sequence)  # it gives up its place; the case goes on
            done += 1
            sent = entry.sequence
        if len(entries) < PAGE:
            return done


def dead_letter(
    services: Services, case_id: str, sequence: int, frame: dict[str, Any], reason: str, attempts: int
) -> None:
    body = {"caseId": case_id, "sequence": sequence, "event": frame, "reason": reason, "attempts": attempts}
    aws.sqs_client().send_message(
        QueueUrl=services.settings.channel_webhook_dlq_url,
        MessageBody=json.dumps(body, separators=(",", ":")),
        MessageGroupId=case_id,
        MessageDeduplicationId=hashlib.sha256(f"dlq#{case_id}#{sequence}".encode()).hexdigest(),
    )
    logger.error(
        "channel webhook gave up on an event; dead-lettered",
        extra={"caseId": case_id, "eventId": frame.get("eventId"), "reason": reason, "attempts": attempts},
    )
    metrics.add_metric(name="ChannelDeliveryFailed", unit=MetricUnit.Count, value=1)


def deliver_batch(services: Services, jobs: Sequence[WebhookJob], remaining_ms: Callable[[], int]) -> list[str]:
    """A FIFO batch: each case's messages in order, the cases side by side (a slow channel answer for one case
    never holds up another case of the same batch). Returns the message ids to give back: the head of a case
    whose delivery was deferred (with its delay set on the queue), and those not attempted for lack of time. The
    rest of a deferred case's messages are done: the head's retry delivers their events too."""
    settings = services.settings
    hook = signer(settings)
    by_case: dict[str, list[WebhookJob]] = {}
    for job in jobs:
        by_case.setdefault(job.case_id, []).append(job)
    if not by_case:
        return []
    with ThreadPoolExecutor(max_workers=min(PARALLEL_CASES, len(by_case))) as pool:
        answers = list(
            pool.map(lambda case_jobs: _deliver_jobs(services, hook, case_jobs, remaining_ms), by_case.values())
        )
    return [message_id for answer in answers for message_id in answer]


def _deliver_jobs(
    services: Services, hook: Webhook, jobs: list[WebhookJob], remaining_ms: Callable[[], int]
) -> list[str]:
    """One case's messages of a batch, in order; stops at the first that must come back."""
    settings = services.settings
    needed_ms = int(settings.channel_webhook_timeout_seconds * 1000) + SEND_MARGIN_MS
    for job in jobs:
        if remaining_ms() < needed_ms:
            _defer(settings, job, 0)
            return [job.message_id]
        try:
            deliver_case(services, job, hook)
        except DeliveryDeferred as wait:
            _defer(settings, job, wait.delay)
            return [job.message_id]
        except Exception:
            logger.exception(
                "channel webhook delivery failed unexpectedly; the case's message returns",
                extra={"caseId": job.case_id},
            )
            return [job.message_id]
    return []


def _defer(settings: Settings, job: WebhookJob, seconds: float) -> None:
    aws.sqs_client().change_message_visibility(
        QueueUrl=settings.channel_webhook_queue_url,
        ReceiptHandle=job.receipt_handle,
        VisibilityTimeout=max(0, min(int(seconds), MAX_VISIBILITY_S)),
    )
