"""The escalation's own attributes on the case item (`CASE#<id>` / `CASE`), beside the live state and never in its
version: what the timers and hand-back already did, so each fact is published once per occasion.

  onQueueTimeout      notify | handback (the open's option)
  customerActiveAt    the customer's last delivered message (epoch ms)
  idleWarnedFor       the customerActiveAt a CustomerIdle was sent for
  queueTimeoutFor     the queued period (its changedAt) a QueueTimeout was sent for
  handedBackFor       the agent-left (its stateAt) a HandedBack was sent for
  waitSent            the last WaitUpdate's figures, and waitSentAt when it went out
  transcriptFor       the close (its changedAt) a transcript was written for
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from casebridge.store.codec import CASE_SK, case_pk, from_item, key, to_item
from casebridge.store.table import TableAccess


@dataclass(frozen=True)
class Marks:
    on_queue_timeout: str = "notify"
    customer_active_at: int = 0
    idle_warned_for: int | None = None
    queue_timeout_for: int | None = None
    handed_back_for: int | None = None
    wait_sent: str | None = None
    wait_sent_at: int = 0
    transcript_for: int | None = None

    @classmethod
    def from_item(cls, raw: dict[str, Any]) -> Marks:
        p = from_item(raw)

        def number(name: str) -> int | None:
            return int(p[name]) if p.get(name) is not None else None

        return cls(
            on_queue_timeout=str(p.get("onQueueTimeout") or "notify"),
            customer_active_at=number("customerActiveAt") or 0,
            idle_warned_for=number("idleWarnedFor"),
            queue_timeout_for=number("queueTimeoutFor"),
            handed_back_for=number("handedBackFor"),
            wait_sent=p.get("waitSent"),
            wait_sent_at=number("waitSentAt") or 0,
            transcript_for=number("transcriptFor"),
        )


def read_marks(table: TableAccess, case_id: str) -> Marks:
    found = table.client.get_item(TableName=table.table, Key=key(case_pk(case_id), CASE_SK), ConsistentRead=True)
    return Marks.from_item(found.get("Item") or {})


def set_marks(table: TableAccess, case_id: str, **values: Any) -> None:
    """SET the given attributes (camelCase names) on an existing case; no version change."""
    names = {f"#{k}": k for k in values}
    table.client.update_item(
        TableName=table.table,
        Key=key(case_pk(case_id), CASE_SK),
        UpdateExpression="SET " + ", ".join(f"#{k} = :{k}" for k in values),
        ConditionExpression="attribute_exists(pk)",
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=to_item({f":{k}": v for k, v in values.items()}),
    )


def raise_mark(table: TableAccess, case_id: str, name: str, value: int) -> bool:
    """SET name = value unless it already holds value or more (a later occasion). False: nothing to do."""
    try:
        table.client.update_item(
            TableName=table.table,
            Key=key(case_pk(case_id), CASE_SK),
            UpdateExpression="SET #n = :v",
            ConditionExpression="attribute_exists(pk) AND (attribute_not_exists(#n) OR #n < :v)",
            ExpressionAttributeNames={"#n": name},
            ExpressionAttributeValues=to_item({":v": value}),
        )
    except ClientError as error:
        if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return False
        raise
    return True


def leave_sweep(table: TableAccess, case_id: str, version: int) -> None:
    """Take a handled case out of the sparse index (unless it changed since: then the next sweep looks again)."""
    try:
        table.client.update_item(
            TableName=table.table,
            Key=key(case_pk(case_id), CASE_SK),
            UpdateExpression="REMOVE sweepShard",
            ConditionExpression="version = :v",
            ExpressionAttributeValues=to_item({":v": version}),
        )
    except ClientError as error:
        if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
