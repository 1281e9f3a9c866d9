"""Is anyone there to answer, and when: a queue's availability (business hours + Real-time Metrics).

`reason`: `closed` (outside the queue's business hours: no metrics call), `open`, `no-agents` (open, but 8x8
counts no eligible agent: nobody logged in and off break), `unknown` (metrics configured but unavailable, or
the hours document unreadable: said, never guessed; `open` is then null). Without analytics credentials the
hours still apply and every figure is null.

The figures are shared by every container through the table: one item per queue (`QUEUE#<id>` / `METRICS`)
holds the last answer and a refresh lease. A caller that finds the figures older than the refresh interval
takes the lease (a conditional write that only one caller per interval can win) and asks 8x8; the others wait
for its answer. So 8x8 sees at most one metrics call per queue per interval (8x8's own refresh: 5 s), however
many callers and containers.

**The estimate** (8x8 gives no expected wait, ESCALATION.md §2): with W waiting, A agents available now, E
eligible agents and H the queue's average handling time of the last 30 minutes,
`estimatedWaitSeconds = 0` when A > W (an agent is free for the next customer), else `ceil((W + 1 - A) * H / E)`
(the customer's place in the line, served by E agents each freeing up every H on average). Without H it is the
queue's average wait of the last 30 minutes (the figure 8x8's own Cognigy node uses); without both, null.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from casebridge.escalation.hours import BusinessHours, WeeklyHours
from casebridge.escalation.metrics import MetricsUnavailable, QueueFigures, QueueMetricsSource
from casebridge.observability import MetricUnit, logger, metrics
from casebridge.store.codec import from_item, key, to_item
from casebridge.store.table import TableAccess

METRICS_SK = "METRICS"
ITEM_TTL_SECONDS = 3600  # the item outlives no queue by much: expired ones are DynamoDB's to delete


def metrics_pk(queue_id: str) -> str:
    return f"QUEUE#{queue_id}"


@dataclass(frozen=True)
class Figures:
    """What the table holds for a queue: the figures of one refresh, or its failure."""

    fetched_at: int  # epoch ms, the refresh's start (its lease)
    figures: QueueFigures | None  # None: that refresh failed


def estimate_wait_seconds(figures: QueueFigures) -> int | None:
    waiting, available, eligible = figures.waiting, figures.available, figures.eligible
    if waiting is not None and available is not None and available > waiting:
        return 0
    if waiting is not None and eligible and figures.average_handling_ms is not None:
        ahead = waiting + 1 - (available or 0)
        return math.ceil(ahead * figures.average_handling_ms / eligible / 1000)
    if figures.average_wait_ms is not None:
        return math.ceil(figures.average_wait_ms / 1000)
    return None


class QueueFiguresCache:
    """The per-queue figures, shared across containers (see the module's docstring)."""

    def __init__(
        self,
        table: TableAccess,
        source: QueueMetricsSource,
        *,
        refresh_ms: int = 5000,
        wait_for_peer_s: float = 6.0,
        clock: Any = time.time,
    ) -> None:
        self.table = table
        self.source = source
        self.refresh_ms = refresh_ms
        self.wait_for_peer_s = wait_for_peer_s
        self.clock = clock

    def _now(self) -> int:
        return int(self.clock() * 1000)

    def _read(self, queue_id: str) -> Figures | None:
        found = self.table.client.get_item(
            TableName=self.table.table, Key=key(metrics_pk(queue_id), METRICS_SK), ConsistentRead=True
        ).get("Item")
        if not found:
            return None
        item = from_item(found)
        if item.get("fetchedAt") is None:
            return None
        figures = None if item.get("failed") else QueueFigures.from_item(item)
        return Figures(int(item["fetchedAt"]), figures)

    def _fresh(self, found: Figures | None) -> bool:
        return found is not None and self._now() - found.fetched_at < self.refresh_ms

    def _lease(self, queue_id: str, now: int) -> bool:
        try:
            self.table.client.update_item(
                TableName=self.table.table,
                Key=key(metrics_pk(queue_id), METRICS_SK),
                UpdateExpression="SET leaseUntil = :until, expiresAt = :ttl",
                ConditionExpression="attribute_not_exists(leaseUntil) OR leaseUntil <= :now",
                ExpressionAttributeValues=to_item(
                    {":until": now + self.refresh_ms, ":now": now, ":ttl": int(time.time()) + ITEM_TTL_SECONDS}
                ),
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def _store(self, queue_id: str, fetched_at: int, figures: QueueFigures | None) -> None:
        item = {
            "pk": metrics_pk(queue_id),
            "sk": METRICS_SK,
            "fetchedAt": fetched_at,
            "leaseUntil": fetched_at + self.refresh_ms,
            "expiresAt": int(time.time()) + ITEM_TTL_SECONDS,
            **({"failed": True} if figures is None else figures.to_item()),
        }
        self.table.client.put_item(TableName=self.table.table, Item=to_item(item))

    def get(self, queue_id: str) -> Figures:
        found = self._read(queue_id)
        if self._fresh(found):
            assert found is not None
            return found
        now = self._now()
        if self._lease(queue_id, now):
            figures: QueueFigures | None
            try:
                figures = self.source.queue_figures(queue_id)
                metrics.add_metric(name="QueueMetricsFetched", unit=MetricUnit.Count, value=1)
            except MetricsUnavailable as error:
                logger.warning("queue metrics unavailable", extra={"queueId": queue_id, "why": str(error)})
                metrics.add_metric(name="QueueMetricsUnavailable", unit=MetricUnit.Count, value=1)
                figures = None
            self._store(queue_id, now, figures)
            return Figures(now, figures)
        # A peer holds this interval's lease: its answer is coming (or it died: then say unknown).
        seen = found.fetched_at if found is not None else -1
        deadline = time.monotonic() + self.wait_for_peer_s
        while time.monotonic() < deadline:
            time.sleep(0.05)
            found = self._read(queue_id)
            if found is not None and found.fetched_at > seen:
                return found
        return Figures(now, None)


@dataclass(frozen=True)
class Availability:
    queue_id: str
    open: bool | None
    reason: str  # open | closed | no-agents | unknown
    figures: QueueFigures | None
    as_of: int
    hours: WeeklyHours | None = None

    @property
    def refusable(self) -> bool:
        """Known to have nobody to answer: closed, or open with no eligible agent. `unknown` never refuses."""
        return self.reason in ("closed", "no-agents")

    def view(self) -> dict[str, Any]:
        figures = self.figures
        return {
            "queueId": self.queue_id,
            "open": self.open,
            "reason": self.reason,
            "agentsAvailable": figures.available if figures else None,
            "waiting": figures.waiting if figures else None,
            "longestWaitSeconds": math.ceil(figures.longest_wait_ms / 1000)
            if figures and figures.longest_wait_ms is not None
            else None,
            "estimatedWaitSeconds": estimate_wait_seconds(figures) if figures else None,
            "asOf": self.as_of,
            "hours": self.hours.describe() if self.hours else None,
        }


def decide(
    queue_id: str,
    hours: BusinessHours | None,
    cache: QueueFiguresCache | None,
    now_ms: int,
) -> Availability:
    """`hours` None: the hours document could not be read (unknown). `cache` None: no analytics credentials."""
    if hours is None:
        return Availability(queue_id, None, "unknown", None, now_ms)
    week = hours.for_queue(queue_id)
    if week is not None and not week.is_open(now_ms):
        return Availability(queue_id, False, "closed", None, now_ms, week)
    if cache is None:
        return Availability(queue_id, True, "open", None, now_ms, week)
    try:
        found = cache.get(queue_id)
    except Exception:  # the table itself failing must not turn an answerable question into a 5xx either
        logger.exception("queue figures could not be read")
        return Availability(queue_id, None, "unknown", None, now_ms, week)
    figures = found.figures
    if figures is None:
        return Availability(queue_id, None, "unknown", None, found.fetched_at, week)
    nobody = figures.eligible == 0 if figures.eligible is not None else figures.available == 0
    if nobody:
        return Availability(queue_id, False, "no-agents", figures, found.fetched_at, week)
    return Availability(queue_id, True, "open", figures, found.fetched_at, week)
