"""8x8 Analytics for Contact Center, Real-time Metrics v5: a queue's figures (ESCALATION.md §1).

Its own OAuth (an Admin Console key + secret with the `analytics realtime-api` product, optional keys of the
stack's credentials secret), not the Gateway's key. The answer is parsed loosely, as 8x8 documents it loosely:
one item or a list of one (E5), values as numbers, numeric strings or null (E4), durations in ms (E6).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

import requests
from aws_lambda_powertools.utilities import parameters

from casebridge.contact_center import http
from casebridge.contact_center.tokens import TokenProvider

BASE_PATH = "/analytics/cc/v5/realtime-metrics"
REGION_PREFIX = {"us": "", "eu": "/eu", "ap": "/au", "ca": "/ca"}
QUEUE_METRICS = (
    "availableIdle.rt",
    "eligible.rt",
    "interactionsWaitInQueue.rt",
    "interactionsLongestWaitInQueue.rt",
    "interactionsAvgWaitTime.int-30m",
    "avgHandlingTime.int-30m",
)


class MetricsUnavailable(Exception):
    """Real-time Metrics did not answer with figures (error, timeout, bad shape): the reason is `unknown`."""


@dataclass(frozen=True)
class QueueFigures:
    """One queue's figures as 8x8 gave them; None where 8x8 sent no usable value."""

    available: int | None = None  # availableIdle.rt
    eligible: int | None = None  # eligible.rt
    waiting: int | None = None  # interactionsWaitInQueue.rt
    longest_wait_ms: int | None = None  # interactionsLongestWaitInQueue.rt
    average_wait_ms: int | None = None  # interactionsAvgWaitTime.int-30m
    average_handling_ms: int | None = None  # avgHandlingTime.int-30m

    def to_item(self) -> dict[str, int]:
        return {name: value for name, value in self.__dict__.items() if value is not None}

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> QueueFigures:
        return cls(**{name: int(item[name]) for name in cls.__dataclass_fields__ if item.get(name) is not None})


class QueueMetricsSource(Protocol):
    def queue_figures(self, queue_id: str) -> QueueFigures: ...


def _number(value: Any) -> int | None:
    """E4: a number, a numeric string, or nothing usable (null, arrays, text)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, (int, float)) and math.isfinite(value) and 0 <= value < 2**53:
        return int(value)  # NaN, infinities and negatives are no figures
    return None


def parse_queue_metrics(payload: Any, queue_id: str) -> QueueFigures:
    """The queue's item from an array (as 8x8's doc shows) or the object itself (as its OAS says)."""
    items = payload if isinstance(payload, list) else [payload]
    chosen = next((i for i in items if isinstance(i, dict) and str(i.get("id")) == queue_id), None)
    if chosen is None and len(items) == 1 and isinstance(items[0], dict) and "id" not in items[0]:
        chosen = items[0]
    if chosen is None or not isinstance(chosen.get("metrics"), list):
        raise MetricsUnavailable("the metrics answer holds no metrics for the queue")
    values = {str(m.get("key")): m.get("value") for m in chosen["metrics"] if isinstance(m, dict)}
    return QueueFigures(
        available=_number(values.get("availableIdle.rt")),
        eligible=_number(values.get("eligible.rt")),
        waiting=_number(values.get("interactionsWaitInQueue.rt")),
        longest_wait_ms=_number(values.get("interactionsLongestWaitInQueue.rt")),
        average_wait_ms=_number(values.get("interactionsAvgWaitTime.int-30m")),
        average_handling_ms=_number(values.get("avgHandlingTime.int-30m")),
    )


@dataclass(frozen=True)
class AnalyticsCredentials:
    key: str
    secret: str
    tenant_info: str | None = None


def analytics_credentials(secret_id: str) -> AnalyticsCredentials | None:
    """The optional analyticsKey/analyticsSecret (and analyticsTenantInfo, E1) of the credentials secret, cached
    5 minutes. None when absent: the stack runs without figures."""
    if not secret_id:
        return None
    raw = parameters.get_secret(secret_id, max_age=300)
    try:
        values = json.loads(raw if isinstance(raw, str) else raw.decode())
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(values, dict):
        return None
    key, secret = values.get("analyticsKey"), values.get("analyticsSecret")
    if not isinstance(key, str) or not key or not isinstance(secret, str) or not secret:
        return None
    tenant_info = values.get("analyticsTenantInfo")
    return AnalyticsCredentials(key, secret, tenant_info if isinstance(tenant_info, str) and tenant_info else None)


class RealtimeMetricsClient:
    """GET /queues/{id} of Real-time Metrics v5 under a Bearer token from `tokens`."""

    def __init__(
        self,
        base_url: str,
        region: str,
        tokens: TokenProvider,
        tenant_info: Callable[[], str | None] = lambda: None,
        *,
        timeout: float = 5.0,
        session: requests.Session | None = None,
    ) -> None:
        self.root = http.require_safe_base_url(base_url) + REGION_PREFIX.get(region, "") + BASE_PATH
        self.tokens = tokens
        self.tenant_info = tenant_info
        self.timeout = timeout
        self.session = session or http.new_session()

    def queue_figures(self, queue_id: str) -> QueueFigures:
        try:
            token = self.tokens.get()
            headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
            tenant_info = self.tenant_info()
            if tenant_info:
                headers["X-Tenant-Info"] = tenant_info
            answer = self.session.get(
                f"{self.root}/queues/{quote(queue_id, safe='')}",
                params=[("metrics", name) for name in QUEUE_METRICS],
                headers=headers,
                timeout=self.timeout,
            )
        except Exception as error:  # any failure (token, network) means "no figures now", never a 5xx
            raise MetricsUnavailable(f"Real-time Metrics unreachable: {type(error).__name__}") from error
        if answer.status_code == 401:
            self.tokens.invalidate(token)
        if answer.status_code != 200:
            raise MetricsUnavailable(f"Real-time Metrics answered {answer.status_code}")
        try:
            payload = answer.json()
        except ValueError:
            raise MetricsUnavailable("Real-time Metrics answered with no JSON") from None
        return parse_queue_metrics(payload, queue_id)
