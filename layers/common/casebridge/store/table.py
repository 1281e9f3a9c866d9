"""The single table's plumbing, shared by the store's parts: the client, TTLs, conditional writes,
transactions and the items they are made of (state update, timeline entry, receipt, message record), batched
reads. The key schema is documented in store.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from casebridge import aws
from casebridge.clock import now_ms, sleep, wall_time
from casebridge.errors import StoreBusy
from casebridge.observability import MetricUnit, logger, metrics
from casebridge.state import LiveState
from casebridge.store.codec import (
    CASE_SK,
    OUTBOX_SHARD,
    case_pk,
    from_item,
    key,
    receipt_key,
    to_item,
)
from casebridge.store.item_size import CARDS_DROPPED, MAX_ITEM_BYTES, TEXT_TRUNCATED, fit_entry, item_size
from casebridge.store.records import (
    CaseRecord,
    MessageRecord,
    TimelineEntry,
    WebhookReceipt,
    live_fields,
    state_events_item,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef


# Cases in these states carry `sweepShard`, the key of the table's sparse ActiveCasesIndex; the sweep removes it
# once nothing is due (a closed case after its transcript).
SWEPT_STATES = frozenset({"queued", "with_agent", "agent_left", "closed"})
SWEEP_SHARD = "ACTIVE"
BATCH_GET_MAX_KEYS = 100  # DynamoDB's limit for one BatchGetItem
# An outbox entry belongs to the request that recorded it for this long (`outboxHeldUntil` on the entry): only
# that request publishes it, unless it lets go (its publish failed). Longer than any function that records
# events can run (the outbound sender's 90 s timeout; a test checks template.yaml) plus clock skew, so a
# flusher never publishes what a live recorder is about to publish. A recorder that died is covered after it.
OUTBOX_HOLD_MS = 150_000
# The opener's turn to take in what follows its conversation, before the case's other requests do it (they would
# only compete with it for the case's sequence); the outbox sweeper does it regardless.
TAKE_IN_HOLD_MS = 30_000
_THROTTLED = {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"}


def plain(value: Any) -> Any:
    """DynamoDB hands numbers back as Decimal, which json.dumps refuses; as they were written instead."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def entry_read_back(item: dict[str, Any]) -> TimelineEntry:
    """A timeline entry read back to be published (outbox, early events): its detail must serialise."""
    entry = TimelineEntry.from_item(item)
    return replace(entry, detail=plain(entry.detail))


def next_on_timeline(case: CaseRecord, entry: TimelineEntry) -> TimelineEntry:
    """The entry as the case's next timeline entry. The write that records it raises the case's counter to this
    sequence under the case's version check, so sequences are assigned in commit order, once each."""
    return replace(entry, sequence=case.timeline_seq + 1)


class StaleCase(Exception):
    """The case changed between read and conditional write: read again and retry."""


class ReceiptExists(Exception):
    """The webhook receipt is already on file: the event was handled before."""


def throttled(error: ClientError) -> bool:
    if error.response["Error"]["Code"] in _THROTTLED:
        return True
    reasons = error.response.get("CancellationReasons") or []
    return any(r.get("Code") in ("ThrottlingError", "ProvisionedThroughputExceeded") for r in reasons)


class TableAccess:
    client = aws.InjectableClient(aws.dynamodb_client)

    def __init__(
        self,
        table_name: str,
        client: DynamoDBClient | None = None,
        timeline_ttl_days: int = 90,
        receipt_ttl_days: int = 30,
    ) -> None:
        self.table = table_name
        self.client = client  # None: the container's shared client
        self.timeline_ttl_seconds = timeline_ttl_days * 86400
        self.receipt_ttl_seconds = receipt_ttl_days * 86400
        self._case_by_conversation: dict[str, str] = {}

    def _ttl(self, seconds: int) -> int:
        return int(wall_time()) + seconds

    def get_case(self, case_id: str) -> CaseRecord | None:
        try:
            answer = self.client.get_item(TableName=self.table, Key=key(case_pk(case_id), CASE_SK), ConsistentRead=True)
        except ClientError as error:
            if throttled(error):
                raise StoreBusy("DynamoDB is throttling reads; retry shortly", retry_after=1) from error
            raise
        found = answer.get("Item")
        return CaseRecord.from_item(found) if found else None

    def _conditional_update(self, **request: Any) -> bool:
        """An UpdateItem whose condition failing is an answer (False), not an error."""
        return self._conditional(self.client.update_item, **request)

    def _conditional(self, write: Callable[..., Any], **request: Any) -> bool:
        """A conditional write (UpdateItem or PutItem): False when its condition fails; throttling is StoreBusy."""
        try:
            write(TableName=self.table, **request)
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            if throttled(error):
                raise StoreBusy("DynamoDB is throttling; retry shortly", retry_after=1) from error
            raise
        return True

    def _state_update(
        self, case: CaseRecord, live: LiveState, pending_sort_key: str | None = None, *, sequence: int | None = None
    ) -> TransactWriteItemTypeDef:
        """The case's new live state, checked against the version read. `pending_sort_key` also puts a
        timeline entry on the case's outbox, `sequence` raises the timeline counter to the entry's sequence (one
        operation: a transaction may touch an item only once)."""
        values: dict[str, Any] = {
            ":case": case.case_id,
            ":state": live.state.value,
            ":at": live.state_at,
            ":changed": live.changed_at,
            ":tp": live.transfer_pending,
            ":reopen": live.reopen_requested,
            ":now": now_ms(),
            ":next": case.version + 1,
            ":v": case.version,
        }
        sets = [
            "caseId = :case",
            "createdAt = if_not_exists(createdAt, :now)",
            "#state = :state",
            "stateAt = :at",
            "changedAt = :changed",
            "transferPending = :tp",
            "reopenRequested = :reopen",
            "updatedAt = :now",
            "version = :next",
        ]
        if sequence is not None:
            sets.append("timelineSeq = :seq")
            values[":seq"] = sequence
        if pending_sort_key is not None:
            # On the sweeper's sparse index while anything is pending, since the oldest pending entry.
            sets += ["outboxShard = :outbox", "outboxSince = if_not_exists(outboxSince, :now)"]
            values[":outbox"] = OUTBOX_SHARD
        removes = [] if live.reopen_requested else ["reopenBy"]
        # The escalation's sparse index (casebridge/escalation/timers.py): cases its sweep must look at.
        if live.state.value in SWEPT_STATES:
            sets.append("sweepShard = :sweep")
            values[":sweep"] = SWEEP_SHARD
        else:
            removes.append("sweepShard")
        for attr, value in (
            ("queueId", live.queue_id),
            ("queueName", live.queue_name),
            ("agentId", live.agent_id),
            ("agentName", live.agent_name),
        ):
            if value is None:
                removes.append(attr)
            else:
                sets.append(f"{attr} = :{attr}")
                values[f":{attr}"] = value
        if live.events:
            # 8x8's events since the last reset point and the state before them: a late one is folded in its place.
            sets += ["stateEvents = :events", "stateBase = :base"]
            values[":events"] = state_events_item(live)
            values[":base"] = live_fields(live.base or live)
        else:
            removes += ["stateEvents", "stateBase"]
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        if pending_sort_key is not None:
            expression += " ADD pendingPublish :pending"
            values[":pending"] = {pending_sort_key}
        return {
            "Update": {
                "TableName": self.table,
                "Key": key(case_pk(case.case_id), CASE_SK),
                "UpdateExpression": expression,
                "ConditionExpression": "version = :v"
                if case.version
                else "attribute_not_exists(version) OR version = :v",
                "ExpressionAttributeNames": {"#state": "state"},
                "ExpressionAttributeValues": to_item(values),
            }
        }

    def _on_timeline(
        self, case: CaseRecord, entry: TimelineEntry, live: LiveState | None, *, pending_publish: bool
    ) -> tuple[TimelineEntry, list[TransactWriteItemTypeDef]]:
        """The entry as the case's next timeline entry, and the two items that record it in one transaction: the
        entry, and the case's update (state change, outbox mark, counter raised to the entry's sequence)."""
        entry, put = self._timeline_put(case_pk(case.case_id), next_on_timeline(case, entry), held=pending_publish)
        pending = entry.sort_key if pending_publish else None
        return entry, [put, self._state_update(case, live or case.live, pending, sequence=entry.sequence)]

    def _timeline_put(
        self, pk: str, entry: TimelineEntry, *, held: bool = False
    ) -> tuple[TimelineEntry, TransactWriteItemTypeDef]:
        """The entry's item, and the entry as that item records it: cut to DynamoDB's item limit if it would
        exceed it (8x8's texts and cards have no length limit; a write over the limit would fail every retry)."""
        item = self._timeline_item(pk, entry, held)
        if item_size(item) > MAX_ITEM_BYTES:
            entry = fit_entry(entry, lambda e: self._timeline_item(pk, e, held))
            item = self._timeline_item(pk, entry, held)
            cut = sorted(set(entry.detail) & {TEXT_TRUNCATED, CARDS_DROPPED})
            logger.warning("timeline entry cut to DynamoDB's item limit", extra={"eventId": entry.event_id, "cut": cut})
            metrics.add_metric(name="TimelineEntriesCut", unit=MetricUnit.Count, value=1)
        return entry, {"Put": {"TableName": self.table, "Item": item}}

    def _timeline_item(self, pk: str, entry: TimelineEntry, held: bool) -> dict[str, Any]:
        item = {"pk": pk, "sk": entry.sort_key, **entry.attributes(self._ttl(self.timeline_ttl_seconds))}
        if held:  # on the case's outbox, this request's to publish (OUTBOX_HOLD_MS)
            item["outboxHeldUntil"] = now_ms() + OUTBOX_HOLD_MS
        return to_item(item)

    def _receipt_put(self, receipt: WebhookReceipt) -> TransactWriteItemTypeDef:
        item = {
            **from_item(
                receipt_key(receipt.tenant_id, receipt.event_id, receipt.body_sha256 if receipt.body_conflict else None)
            ),
            "bodySha256": receipt.body_sha256,
            "bodyConflict": receipt.body_conflict or None,
            "eventType": receipt.event_type or None,
            "conversationId": receipt.conversation_id,
            "outcome": receipt.outcome,
            "keptBody": receipt.kept_body,
            "receivedAt": now_ms(),
            "expiresAt": self._ttl(self.receipt_ttl_seconds),
        }
        return {
            "Put": {"TableName": self.table, "Item": to_item(item), "ConditionExpression": "attribute_not_exists(pk)"}
        }

    def _transact(self, items: list[TransactWriteItemTypeDef], *, receipt_first: bool = False) -> None:
        """Run a transaction. Raises ReceiptExists (first item was the receipt and it existed), StaleCase (a
        version check failed), or StoreBusy (throttled)."""
        try:
            self.client.transact_write_items(TransactItems=items)
        except ClientError as error:
            if error.response["Error"]["Code"] != "TransactionCanceledException":
                if throttled(error):
                    raise StoreBusy("DynamoDB is throttling; retry shortly", retry_after=1) from error
                raise
            reasons = [r.get("Code") for r in error.response.get("CancellationReasons", [])]
            if receipt_first and reasons and reasons[0] == "ConditionalCheckFailed":
                raise ReceiptExists from error
            if "ConditionalCheckFailed" in reasons:
                raise StaleCase from error
            if throttled(error) or "TransactionConflict" in reasons:
                raise StoreBusy("DynamoDB is busy with this case; retry shortly", retry_after=1) from error
            raise

    def _batch_get(self, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The items of `keys`, any number of them: BatchGetItem takes 100 keys a call."""
        found: list[dict[str, Any]] = []
        for start in range(0, len(keys), BATCH_GET_MAX_KEYS):
            found.extend(self._batch_get_page(keys[start : start + BATCH_GET_MAX_KEYS]))
        return found

    def _batch_get_page(self, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        request: dict[str, Any] = {self.table: {"Keys": keys, "ConsistentRead": True}}
        for _ in range(5):
            try:
                answer = self.client.batch_get_item(RequestItems=request)
            except ClientError as error:
                if throttled(error):
                    raise StoreBusy("DynamoDB is throttling reads; retry shortly", retry_after=1) from error
                raise
            found.extend(answer.get("Responses", {}).get(self.table, []))
            request = dict(answer.get("UnprocessedKeys") or {})
            if not request:
                return found
            sleep(0.05)
        raise StoreBusy("DynamoDB is throttling reads; retry shortly", retry_after=1)

    def _message_item(self, case_id: str, message: MessageRecord, conversation_id: str | None) -> dict[str, Any]:
        return to_item(
            {
                "pk": case_pk(case_id),
                "sk": f"MESSAGE#{message.message_id}",
                "status": message.status.value,
                "attempts": message.attempts,
                "ambiguousAttempts": message.ambiguous_attempts,
                "redrive": message.redrive,
                "queueMessageId": message.queue_message_id or None,
                "conversationId": conversation_id,
                "updatedAt": now_ms(),
                "expiresAt": self._ttl(self.timeline_ttl_seconds),
                "parkedEvent": (
                    {k: v for k, v in message.parked_event.attributes(0).items() if v is not None}
                    if message.parked_event
                    else None
                ),
            }
        )
