"""DynamoDB access for cases: the single table's key schema and every transaction on it.

Keys (pk / sk):
  CASE#<caseId>            / CASE                       the case: its conversation and live state
  CASE#<caseId>            / EVENT#<receivedMs>#<id>    the case timeline (TTL)
  CASE#<caseId>            / MESSAGE#<messageId>        outbound message delivery record (TTL)
  CASE#<caseId>            / CLIENTMSG#<clientId>       a clientMessageId's message and text hash (TTL)
  CASE#<caseId>            / ATTACHMENT#<id>            an attachment's record (casebridge.attachments; TTL)
  CONVERSATION#<convId>    / CONVERSATION               conversation → case
  CONVERSATION#<convId>    / EVENT#<receivedMs>#<id>    early events: they came before the mapping existed
  WEBHOOK#<tenant>#<id>    / RECEIPT                    webhook receipt: dedupe and replay check (TTL)
  TOKEN#<tenant>           / TOKEN                      the shared 8x8 token (contact_center/token_store.py)

Records and codecs live in records.py and dynamo_codec.py; the clock in clock.py.
"""

from __future__ import annotations

import time
from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from casebridge import aws
from casebridge.clock import now_ms
from casebridge.dynamo_codec import (
    CASE_SK,
    CONVERSATION_SK,
    EVENT_PREFIX,
    RECEIPT_SK,
    case_pk,
    conversation_pk,
    decode_cursor,
    encode_cursor,
    from_item,
    key,
    receipt_key,
    to_item,
)
from casebridge.errors import StoreBusy
from casebridge.models import CaseState
from casebridge.records import CaseRecord, MessageRecord, MessageStatus, TimelineEntry, WebhookReceipt
from casebridge.state import LiveState

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

__all__ = [
    "CaseRecord",
    "CaseStore",
    "MessageRecord",
    "MessageStatus",
    "StaleCase",
    "TimelineEntry",
    "WebhookReceipt",
    "decode_cursor",
    "encode_cursor",
    "now_ms",
]

_THROTTLED = {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"}


def _plain(value: Any) -> Any:
    """DynamoDB hands numbers back as Decimal, which json.dumps refuses; as they were written instead."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _entry_read_back(item: dict[str, Any]) -> TimelineEntry:
    """A timeline entry read back to be published (outbox, early events): its detail must serialise."""
    entry = TimelineEntry.from_item(item)
    return replace(entry, detail=_plain(entry.detail))


class StaleCase(Exception):
    """The case changed between read and conditional write: read again and retry."""


class ReceiptExists(Exception):
    """The webhook receipt is already on file: the event was handled before."""


def _throttled(error: ClientError) -> bool:
    if error.response["Error"]["Code"] in _THROTTLED:
        return True
    reasons = error.response.get("CancellationReasons") or []
    return any(r.get("Code") in ("ThrottlingError", "ProvisionedThroughputExceeded") for r in reasons)


class CaseStore:
    def __init__(
        self,
        table_name: str,
        client: DynamoDBClient | None = None,
        timeline_ttl_days: int = 90,
        receipt_ttl_days: int = 30,
    ) -> None:
        self.table = table_name
        self._client = client
        self.timeline_ttl_seconds = timeline_ttl_days * 86400
        self.receipt_ttl_seconds = receipt_ttl_days * 86400
        self._case_by_conversation: dict[str, str] = {}

    @property
    def client(self) -> DynamoDBClient:
        if self._client is None:
            self._client = aws.dynamodb_client()
        return self._client

    def _ttl(self, seconds: int) -> int:
        return int(time.time()) + seconds

    # ---- cases -------------------------------------------------------------------------------
    def get_case(self, case_id: str) -> CaseRecord | None:
        found = self.client.get_item(TableName=self.table, Key=key(case_pk(case_id), CASE_SK), ConsistentRead=True).get(
            "Item"
        )
        return CaseRecord.from_item(found) if found else None

    def _conditional_update(self, **request: Any) -> bool:
        """An UpdateItem whose condition failing is an answer (False), not an error."""
        try:
            self.client.update_item(TableName=self.table, **request)
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            if _throttled(error):
                raise StoreBusy("DynamoDB is throttling; retry shortly", retry_after=1) from error
            raise
        return True

    def claim_opening(self, case_id: str, lease_ms: int) -> bool:
        """Take the right to create the case's 8x8 conversation. One winner, enforced by DynamoDB."""
        now = now_ms()
        return self._conditional_update(
            Key=key(case_pk(case_id), CASE_SK),
            UpdateExpression="SET caseId = :case, openingUntil = :until, updatedAt = :now,"
            " createdAt = if_not_exists(createdAt, :now), #state = if_not_exists(#state, :open),"
            " version = if_not_exists(version, :zero)",
            ConditionExpression="attribute_not_exists(conversationId) AND "
            "(attribute_not_exists(openingUntil) OR openingUntil < :now)",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues=to_item(
                {":case": case_id, ":until": now + lease_ms, ":now": now, ":open": CaseState.OPEN.value, ":zero": 0}
            ),
        )

    def release_claim(self, case_id: str, *, ambiguous: bool = False) -> None:
        """Give the claim back. `ambiguous`: 8x8 may have created the conversation, so whoever claims next
        looks it up before creating another."""
        expression = "REMOVE openingUntil" + (" SET openingAmbiguous = :yes" if ambiguous else "")
        request: dict[str, Any] = {
            "Key": key(case_pk(case_id), CASE_SK),
            "UpdateExpression": expression,
            "ConditionExpression": "attribute_exists(caseId)",
        }
        if ambiguous:
            request["ExpressionAttributeValues"] = to_item({":yes": True})
        self._conditional_update(**request)

    def record_conversation(
        self,
        case_id: str,
        conversation_id: str,
        channel_id: str,
        *,
        open_request_hash: str | None = None,
        routing: dict[str, str] | None = None,
    ) -> None:
        """Bind the case to its conversation, and the conversation to its case, in one transaction."""
        now = now_ms()
        values: dict[str, Any] = {":conv": conversation_id, ":channel": channel_id, ":now": now}
        sets = ["conversationId = :conv", "channelId = :channel", "updatedAt = :now"]
        for attribute, value in (("openRequestHash", open_request_hash), ("routing", routing)):
            if value is not None:
                sets.append(f"{attribute} = :{attribute}")
                values[f":{attribute}"] = value
        self._transact(
            [
                {
                    "Update": {
                        "TableName": self.table,
                        "Key": key(case_pk(case_id), CASE_SK),
                        "UpdateExpression": "SET " + ", ".join(sets) + " REMOVE openingUntil, openingAmbiguous",
                        "ConditionExpression": "attribute_not_exists(conversationId)",
                        "ExpressionAttributeValues": to_item(values),
                    }
                },
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": to_item(
                            {
                                "pk": conversation_pk(conversation_id),
                                "sk": CONVERSATION_SK,
                                "caseId": case_id,
                                "createdAt": now,
                            }
                        ),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ]
        )

    def set_open_request_hash(self, case: CaseRecord, open_request_hash: str) -> bool:
        """After 8x8 took new customer data for the case. False: the case changed meanwhile."""
        return self._conditional_update(
            Key=key(case_pk(case.case_id), CASE_SK),
            UpdateExpression="SET openRequestHash = :hash, updatedAt = :now",
            ConditionExpression="version = :v",
            ExpressionAttributeValues=to_item({":hash": open_request_hash, ":now": now_ms(), ":v": case.version}),
        )

    def _state_update(
        self, case: CaseRecord, live: LiveState, pending_sort_key: str | None = None
    ) -> TransactWriteItemTypeDef:
        """The case's new live state, checked against the version read. `pending_sort_key` also puts a
        timeline entry on the case's outbox (one operation: a transaction may touch an item only once)."""
        values: dict[str, Any] = {
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
            "#state = :state",
            "stateAt = :at",
            "changedAt = :changed",
            "transferPending = :tp",
            "reopenRequested = :reopen",
            "updatedAt = :now",
            "version = :next",
        ]
        removes = [] if live.reopen_requested else ["reopenBy"]
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

    def _timeline_put(self, pk: str, entry: TimelineEntry) -> TransactWriteItemTypeDef:
        item = {"pk": pk, "sk": entry.sort_key, **entry.attributes(self._ttl(self.timeline_ttl_seconds))}
        return {"Put": {"TableName": self.table, "Item": to_item(item)}}

    def _receipt_put(self, receipt: WebhookReceipt) -> TransactWriteItemTypeDef:
        item = {
            **from_item(receipt_key(receipt.tenant_id, receipt.event_id)),
            "bodySha256": receipt.body_sha256,
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
                if _throttled(error):
                    raise StoreBusy("DynamoDB is throttling; retry shortly", retry_after=1) from error
                raise
            reasons = [r.get("Code") for r in error.response.get("CancellationReasons", [])]
            if receipt_first and reasons and reasons[0] == "ConditionalCheckFailed":
                raise ReceiptExists from error
            if "ConditionalCheckFailed" in reasons:
                raise StaleCase from error
            if _throttled(error) or "TransactionConflict" in reasons:
                raise StoreBusy("DynamoDB is busy with this case; retry shortly", retry_after=1) from error
            raise

    def record_case_event(
        self,
        case: CaseRecord,
        entry: TimelineEntry,
        live: LiveState | None,
        receipt: WebhookReceipt | None = None,
        *,
        pending_publish: bool = False,
    ) -> bool:
        """Timeline entry + state change (+ webhook receipt) at once. False: the receipt existed (duplicate).
        `pending_publish`: the entry is published after this write; until then the case lists it (outbox)."""
        items: list[TransactWriteItemTypeDef] = []
        if receipt:
            items.append(self._receipt_put(receipt))
        items.append(self._timeline_put(case_pk(case.case_id), entry))
        pending = entry.sort_key if pending_publish else None
        if live is not None or pending_publish:
            # Without a state change the version check still guards the outbox entry against a lost update.
            items.append(self._state_update(case, live or case.live, pending))
        try:
            self._transact(items, receipt_first=receipt is not None)
        except ReceiptExists:
            return False
        return True

    def mark_published(self, case_id: str, sort_keys: set[str]) -> None:
        """The entries reached the bus: take them off the case's outbox."""
        self.client.update_item(
            TableName=self.table,
            Key=key(case_pk(case_id), CASE_SK),
            UpdateExpression="DELETE pendingPublish :sks",
            ExpressionAttributeValues=to_item({":sks": sort_keys}),
        )

    def timeline_entries(self, case_id: str, sort_keys: set[str]) -> list[TimelineEntry]:
        found = self._batch_get([key(case_pk(case_id), sk) for sk in sorted(sort_keys)])
        return sorted((_entry_read_back(i) for i in found), key=lambda e: e.sort_key)

    def request_reopen(self, case: CaseRecord, message_id: str) -> bool:
        """A message asks 8x8 for a new interaction: the next QUEUED reopens even a closed case.
        False: the case changed meanwhile."""
        return self._conditional_update(
            Key=key(case_pk(case.case_id), CASE_SK),
            UpdateExpression="SET reopenRequested = :yes, reopenBy = :by, updatedAt = :now, version = :next",
            ConditionExpression="version = :v",
            ExpressionAttributeValues=to_item(
                {":yes": True, ":by": message_id, ":now": now_ms(), ":next": case.version + 1, ":v": case.version}
            ),
        )

    # ---- webhooks ----------------------------------------------------------------------------
    def record_receipt(self, receipt: WebhookReceipt) -> bool:
        """A receipt alone (verify, unhandled and malformed events). False: it existed."""
        try:
            self._transact([self._receipt_put(receipt)], receipt_first=True)
        except ReceiptExists:
            return False
        return True

    def get_receipt(self, tenant_id: str, event_id: str) -> dict[str, Any] | None:
        found = self.client.get_item(TableName=self.table, Key=receipt_key(tenant_id, event_id), ConsistentRead=True)
        item = found.get("Item")
        return from_item(item) if item else None

    def record_early_event(self, receipt: WebhookReceipt, entry: TimelineEntry) -> bool:
        """Keep an event whose conversation has no case yet; checks the map is still absent, atomically.
        False: the receipt existed. StaleCase: the map appeared meanwhile."""
        try:
            self._transact(
                [
                    self._receipt_put(receipt),
                    self._timeline_put(conversation_pk(entry.conversation_id), entry),
                    {
                        "ConditionCheck": {
                            "TableName": self.table,
                            "Key": key(conversation_pk(entry.conversation_id), CONVERSATION_SK),
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                ],
                receipt_first=True,
            )
        except ReceiptExists:
            return False
        return True

    def early_events(self, conversation_id: str) -> list[TimelineEntry]:
        answer = self.client.query(
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues=to_item({":pk": conversation_pk(conversation_id), ":prefix": EVENT_PREFIX}),
            ConsistentRead=True,
        )
        return [_entry_read_back(i) for i in answer.get("Items", [])]

    def drop_early_event(self, entry: TimelineEntry) -> None:
        self.client.delete_item(TableName=self.table, Key=key(conversation_pk(entry.conversation_id), entry.sort_key))

    def lookup_for_webhook(
        self, conversation_id: str, tenant_id: str, event_id: str
    ) -> tuple[str | None, CaseRecord | None, dict[str, Any] | None]:
        """(caseId, case, receipt on file): one round trip once this container knows the conversation."""
        known_case = self._case_by_conversation.get(conversation_id)
        if known_case:
            found = self._batch_get([key(case_pk(known_case), CASE_SK), receipt_key(tenant_id, event_id)])
            case = next((CaseRecord.from_item(i) for i in found if i["sk"]["S"] == CASE_SK), None)
            return known_case, case, next((from_item(i) for i in found if i["sk"]["S"] == RECEIPT_SK), None)
        found = self._batch_get(
            [key(conversation_pk(conversation_id), CONVERSATION_SK), receipt_key(tenant_id, event_id)]
        )
        receipt = next((from_item(i) for i in found if i["sk"]["S"] == RECEIPT_SK), None)
        mapping = next((i for i in found if i["sk"]["S"] == CONVERSATION_SK), None)
        if mapping is None or receipt is not None:
            return (mapping["caseId"]["S"] if mapping else None), None, receipt
        case_id = mapping["caseId"]["S"]
        self._case_by_conversation[conversation_id] = case_id  # the map never changes once written
        return case_id, self.get_case(case_id), None

    def _batch_get(self, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        request: dict[str, Any] = {self.table: {"Keys": keys, "ConsistentRead": True}}
        for _ in range(5):
            try:
                answer = self.client.batch_get_item(RequestItems=request)
            except ClientError as error:
                if _throttled(error):
                    raise StoreBusy("DynamoDB is throttling reads; retry shortly", retry_after=1) from error
                raise
            found.extend(answer.get("Responses", {}).get(self.table, []))
            request = dict(answer.get("UnprocessedKeys") or {})
            if not request:
                return found
            time.sleep(0.05)
        raise StoreBusy("DynamoDB is throttling reads; retry shortly", retry_after=1)

    # ---- timeline ----------------------------------------------------------------------------
    def list_timeline(self, case_id: str, after: str | None, limit: int) -> tuple[list[TimelineEntry], str | None]:
        values = {":pk": case_pk(case_id), ":prefix": EVENT_PREFIX}
        condition = "pk = :pk AND begins_with(sk, :prefix)"
        if after:
            condition = "pk = :pk AND sk > :after"
            values = {":pk": case_pk(case_id), ":after": decode_cursor(after)}
        answer = self.client.query(
            TableName=self.table,
            KeyConditionExpression=condition,
            ExpressionAttributeValues=to_item(values),
            Limit=limit,
            ConsistentRead=True,
        )
        entries = [TimelineEntry.from_item(i) for i in answer.get("Items", []) if i["sk"]["S"].startswith(EVENT_PREFIX)]
        next_cursor = encode_cursor(entries[-1].sort_key) if entries else after
        return entries, next_cursor

    # ---- outbound messages -------------------------------------------------------------------
    def lookup_for_delivery(self, case_id: str, message_id: str) -> tuple[CaseRecord | None, MessageRecord | None]:
        found = self._batch_get([key(case_pk(case_id), CASE_SK), key(case_pk(case_id), f"MESSAGE#{message_id}")])
        case = next((CaseRecord.from_item(i) for i in found if i["sk"]["S"] == CASE_SK), None)
        item = next((i for i in found if i["sk"]["S"].startswith("MESSAGE#")), None)
        return case, (MessageRecord.from_item(message_id, item) if item else None)

    def _message_item(self, case_id: str, message: MessageRecord, conversation_id: str | None) -> dict[str, Any]:
        return to_item(
            {
                "pk": case_pk(case_id),
                "sk": f"MESSAGE#{message.message_id}",
                "status": message.status.value,
                "attempts": message.attempts,
                "ambiguousAttempts": message.ambiguous_attempts,
                "redrive": message.redrive,
                "conversationId": conversation_id,
                "updatedAt": now_ms(),
                "expiresAt": self._ttl(self.timeline_ttl_seconds),
            }
        )

    def record_message(self, case_id: str, message: MessageRecord, conversation_id: str | None) -> None:
        self.client.put_item(TableName=self.table, Item=self._message_item(case_id, message, conversation_id))

    def record_message_failed(
        self, case: CaseRecord, message: MessageRecord, conversation_id: str | None, entry: TimelineEntry
    ) -> None:
        """The failed record and its MessageFailed entry (on the case's outbox) at once: a redelivery finds
        both or neither. StaleCase: the case changed, read it again."""
        self._transact(
            [
                {"Put": {"TableName": self.table, "Item": self._message_item(case.case_id, message, conversation_id)}},
                self._timeline_put(case_pk(case.case_id), entry),
                self._state_update(case, case.live, entry.sort_key),
            ]
        )

    def claim_client_message_id(
        self, case_id: str, client_message_id: str, message_id: str, text_sha256: str
    ) -> dict[str, Any] | None:
        """Remember which message a clientMessageId named. Returns the earlier claim when there was one."""
        item_key = key(case_pk(case_id), f"CLIENTMSG#{client_message_id}")
        try:
            self.client.put_item(
                TableName=self.table,
                Item={
                    **item_key,
                    **to_item(
                        {
                            "messageId": message_id,
                            "textSha256": text_sha256,
                            "expiresAt": self._ttl(self.timeline_ttl_seconds),
                        }
                    ),
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            found = self.client.get_item(TableName=self.table, Key=item_key, ConsistentRead=True).get("Item")
            return from_item(found) if found else None
        return None

    # ---- attachments (casebridge.attachments) --------------------------------------------------
    def put_attachment(self, case_id: str, attachment_id: str, values: dict[str, Any], ttl_seconds: int) -> bool:
        """Record an attachment once; False when it is on file already (a retried webhook, a reused id)."""
        item = {**key(case_pk(case_id), f"ATTACHMENT#{attachment_id}")}
        item.update(to_item({**values, "attachmentId": attachment_id, "expiresAt": self._ttl(ttl_seconds)}))
        try:
            self.client.put_item(TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(pk)")
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            if _throttled(error):
                raise StoreBusy("DynamoDB is throttling; retry shortly", retry_after=1) from error
            raise
        return True

    def get_attachments(self, case_id: str, attachment_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The case's attachment records by id (ids of other cases are simply not found)."""
        if not attachment_ids:
            return {}
        found = self._batch_get([key(case_pk(case_id), f"ATTACHMENT#{i}") for i in dict.fromkeys(attachment_ids)])
        return {str(p["attachmentId"]): p for p in map(from_item, found)}

    def update_attachment(
        self, case_id: str, attachment_id: str, values: dict[str, Any], *, unless_status: str | None = None
    ) -> bool:
        """Set fields of an existing attachment record; False when it is gone or already has `unless_status`."""
        names = {f"#f{i}": name for i, name in enumerate(values)}
        placeholders = {f":v{i}": value for i, value in enumerate(values.values())}
        condition = "attribute_exists(pk)"
        if unless_status is not None:
            names["#status"] = "status"
            placeholders[":unless"] = unless_status
            condition += " AND #status <> :unless"
        return self._conditional_update(
            Key=key(case_pk(case_id), f"ATTACHMENT#{attachment_id}"),
            UpdateExpression="SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(values))),
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=to_item(placeholders),
        )
