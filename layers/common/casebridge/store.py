"""DynamoDB data access: one table holds cases, the conversation→case map, timelines, receipts and tokens.

Keys (pk / sk):
  CASE#<caseId>            / CASE                       the case: its conversation and live state
  CASE#<caseId>            / EVENT#<receivedMs>#<id>    the case timeline (TTL)
  CASE#<caseId>            / MESSAGE#<messageId>        outbound message delivery record (TTL)
  CONVERSATION#<convId>    / CONVERSATION               conversation → case
  CONVERSATION#<convId>    / EVENT#<receivedMs>#<id>    events that came before the mapping existed
  WEBHOOK#<tenant>#<id>    / RECEIPT                    webhook dedupe receipt (TTL only cleans up)
  TOKEN#<tenant>           / TOKEN                      the shared 8x8 access token
"""

from __future__ import annotations

import base64
import binascii
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from casebridge import aws
from casebridge.errors import Conflict, InvalidRequest
from casebridge.models import CaseState
from casebridge.state import LiveState

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

_SER = TypeSerializer()
_DES = TypeDeserializer()
CASE_SK = "CASE"
CONVERSATION_SK = "CONVERSATION"


def _item(values: dict[str, Any]) -> dict[str, Any]:
    return {k: _SER.serialize(v) for k, v in values.items() if v is not None}


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _DES.deserialize(v) for k, v in item.items()}


def _key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def case_pk(case_id: str) -> str:
    return f"CASE#{case_id}"


def conversation_pk(conversation_id: str) -> str:
    return f"CONVERSATION#{conversation_id}"


def receipt_key(tenant_id: str, event_id: str) -> dict[str, Any]:
    return _key(f"WEBHOOK#{tenant_id}#{event_id}", "RECEIPT")


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class CaseRecord:
    case_id: str
    conversation_id: str | None = None
    channel_id: str | None = None
    live: LiveState = field(default_factory=LiveState)
    version: int = 0
    created_at: int = 0
    updated_at: int = 0
    opening_until: int = 0

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> CaseRecord:
        p = _plain(item)
        live = LiveState(
            state=CaseState(p.get("state", CaseState.OPEN.value)),
            state_at=int(p.get("stateAt", 0)),
            queue_id=p.get("queueId"),
            queue_name=p.get("queueName"),
            agent_id=p.get("agentId"),
            agent_name=p.get("agentName"),
            transfer_pending=bool(p.get("transferPending", False)),
        )
        return cls(
            case_id=p["caseId"],
            conversation_id=p.get("conversationId"),
            channel_id=p.get("channelId"),
            live=live,
            version=int(p.get("version", 0)),
            created_at=int(p.get("createdAt", 0)),
            updated_at=int(p.get("updatedAt", 0)),
            opening_until=int(p.get("openingUntil", 0)),
        )

    def to_view(self) -> dict[str, Any]:
        return {
            "caseId": self.case_id,
            "conversationId": self.conversation_id,
            "channelId": self.channel_id,
            **self.live.to_view(),
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "stateChangedAt": self.live.state_at or None,
        }


@dataclass(frozen=True)
class TimelineEntry:
    """One normalised event on a case's timeline (also the body of the published event)."""

    event_id: str
    type: str
    conversation_id: str
    occurred_at: int
    received_at: int
    detail: dict[str, Any] = field(default_factory=dict)
    source_event_type: str | None = None  # 8x8's eventType, kept so orphans can be replayed

    @property
    def sort_key(self) -> str:
        return f"EVENT#{self.received_at:013d}#{self.event_id}"

    def to_view(self, case_id: str | None) -> dict[str, Any]:
        return {
            "eventId": self.event_id,
            "type": self.type,
            "caseId": case_id,
            "conversationId": self.conversation_id,
            "occurredAt": self.occurred_at,
            "receivedAt": self.received_at,
            **self.detail,
        }

    def attributes(self, ttl: int) -> dict[str, Any]:
        return {
            "eventId": self.event_id,
            "type": self.type,
            "conversationId": self.conversation_id,
            "occurredAt": self.occurred_at,
            "receivedAt": self.received_at,
            "detail": self.detail or None,
            "sourceEventType": self.source_event_type,
            "expiresAt": ttl,
        }

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> TimelineEntry:
        p = _plain(item)
        return cls(
            event_id=p["eventId"],
            type=p["type"],
            conversation_id=p["conversationId"],
            occurred_at=int(p["occurredAt"]),
            received_at=int(p["receivedAt"]),
            detail=dict(p.get("detail") or {}),
            source_event_type=p.get("sourceEventType"),
        )


@dataclass(frozen=True)
class MessageRecord:
    message_id: str
    status: str  # sending (an attempt is in flight) | pending (retry deferred) | sent | failed
    attempts: int = 0
    ambiguous_attempts: int = 0


def encode_cursor(sort_key: str) -> str:
    return base64.urlsafe_b64encode(sort_key.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidRequest("'after' is not a cursor this API returned") from None
    if not raw.startswith("EVENT#") or len(raw) > 300:
        raise InvalidRequest("'after' is not a cursor this API returned")
    return raw


class StaleCase(Exception):
    """The case changed between read and conditional write: read again and retry."""


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
        found = self.client.get_item(
            TableName=self.table, Key=_key(case_pk(case_id), CASE_SK), ConsistentRead=True
        ).get("Item")
        return CaseRecord.from_item(found) if found else None

    def claim_opening(self, case_id: str, lease_ms: int) -> bool:
        """Take the right to create the case's 8x8 conversation. One winner, enforced by DynamoDB."""
        now = now_ms()
        try:
            self.client.update_item(
                TableName=self.table,
                Key=_key(case_pk(case_id), CASE_SK),
                UpdateExpression="SET caseId = :case, openingUntil = :until, updatedAt = :now,"
                " createdAt = if_not_exists(createdAt, :now), #state = if_not_exists(#state, :open),"
                " version = if_not_exists(version, :zero)",
                ConditionExpression="attribute_not_exists(conversationId) AND "
                "(attribute_not_exists(openingUntil) OR openingUntil < :now)",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues=_item(
                    {":case": case_id, ":until": now + lease_ms, ":now": now, ":open": CaseState.OPEN.value, ":zero": 0}
                ),
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def release_claim(self, case_id: str) -> None:
        self.client.update_item(
            TableName=self.table,
            Key=_key(case_pk(case_id), CASE_SK),
            UpdateExpression="REMOVE openingUntil",
            ConditionExpression="attribute_exists(caseId)",
        )

    def record_conversation(self, case_id: str, conversation_id: str, channel_id: str) -> None:
        """Bind the case to its conversation, and the conversation to its case, in one transaction."""
        now = now_ms()
        self.client.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": self.table,
                        "Key": _key(case_pk(case_id), CASE_SK),
                        "UpdateExpression": "SET conversationId = :conv, channelId = :channel, updatedAt = :now"
                        " REMOVE openingUntil",
                        "ConditionExpression": "attribute_not_exists(conversationId)",
                        "ExpressionAttributeValues": _item(
                            {":conv": conversation_id, ":channel": channel_id, ":now": now}
                        ),
                    }
                },
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": _item(
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

    def _state_update(self, case: CaseRecord, live: LiveState) -> TransactWriteItemTypeDef:
        values: dict[str, Any] = {
            ":state": live.state.value,
            ":at": live.state_at,
            ":tp": live.transfer_pending,
            ":now": now_ms(),
            ":next": case.version + 1,
            ":v": case.version,
        }
        sets = ["#state = :state", "stateAt = :at", "transferPending = :tp", "updatedAt = :now", "version = :next"]
        removes = []
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
        return {
            "Update": {
                "TableName": self.table,
                "Key": _key(case_pk(case.case_id), CASE_SK),
                "UpdateExpression": expression,
                "ConditionExpression": "version = :v"
                if case.version
                else "attribute_not_exists(version) OR version = :v",
                "ExpressionAttributeNames": {"#state": "state"},
                "ExpressionAttributeValues": _item(values),
            }
        }

    def _timeline_put(self, pk: str, entry: TimelineEntry) -> TransactWriteItemTypeDef:
        item = {"pk": pk, "sk": entry.sort_key, **entry.attributes(self._ttl(self.timeline_ttl_seconds))}
        return {"Put": {"TableName": self.table, "Item": _item(item)}}

    def _receipt_put(self, tenant_id: str, event_id: str) -> TransactWriteItemTypeDef:
        item = {
            **_plain(receipt_key(tenant_id, event_id)),
            "receivedAt": now_ms(),
            "expiresAt": self._ttl(self.receipt_ttl_seconds),
        }
        return {
            "Put": {"TableName": self.table, "Item": _item(item), "ConditionExpression": "attribute_not_exists(pk)"}
        }

    def _transact(self, items: list[TransactWriteItemTypeDef]) -> bool:
        """Run a transaction whose first item is the receipt. False: that receipt already existed."""
        try:
            self.client.transact_write_items(TransactItems=items)
        except ClientError as error:
            if error.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            reasons = [r.get("Code") for r in error.response.get("CancellationReasons", [])]
            if reasons and reasons[0] == "ConditionalCheckFailed":
                return False
            if "ConditionalCheckFailed" in reasons:
                raise StaleCase from error
            raise
        return True

    def record_case_event(
        self, case: CaseRecord, entry: TimelineEntry, live: LiveState | None, receipt: tuple[str, str] | None = None
    ) -> bool:
        """Timeline entry + state change (+ webhook receipt) at once. False: the receipt existed (duplicate)."""
        items: list[TransactWriteItemTypeDef] = []
        if receipt:
            items.append(self._receipt_put(*receipt))
        items.append(self._timeline_put(case_pk(case.case_id), entry))
        if live is not None:
            items.append(self._state_update(case, live))
        return self._transact(items)

    def record_orphan_event(self, tenant_id: str, event_id: str, entry: TimelineEntry) -> bool:
        """Keep an event whose conversation has no case yet; checks the map is still absent, atomically."""
        return self._transact(
            [
                self._receipt_put(tenant_id, event_id),
                self._timeline_put(conversation_pk(entry.conversation_id), entry),
                {
                    "ConditionCheck": {
                        "TableName": self.table,
                        "Key": _key(conversation_pk(entry.conversation_id), CONVERSATION_SK),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ]
        )

    def orphan_events(self, conversation_id: str) -> list[TimelineEntry]:
        answer = self.client.query(
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues=_item({":pk": conversation_pk(conversation_id), ":prefix": "EVENT#"}),
            ConsistentRead=True,
        )
        return [TimelineEntry.from_item(i) for i in answer.get("Items", [])]

    def drop_orphan(self, entry: TimelineEntry) -> None:
        self.client.delete_item(TableName=self.table, Key=_key(conversation_pk(entry.conversation_id), entry.sort_key))

    def lookup_for_webhook(
        self, conversation_id: str, tenant_id: str, event_id: str
    ) -> tuple[str | None, CaseRecord | None, bool]:
        """(caseId, case, receipt exists): one round trip once this container knows the conversation."""
        known_case = self._case_by_conversation.get(conversation_id)
        if known_case:
            found = self._batch_get([_key(case_pk(known_case), CASE_SK), receipt_key(tenant_id, event_id)])
            case = next((CaseRecord.from_item(i) for i in found if i["sk"]["S"] == CASE_SK), None)
            return known_case, case, any(i["sk"]["S"] == "RECEIPT" for i in found)
        keys = [_key(conversation_pk(conversation_id), CONVERSATION_SK), receipt_key(tenant_id, event_id)]
        found = self._batch_get(keys)
        receipt_seen = any(i["sk"]["S"] == "RECEIPT" for i in found)
        mapping = next((i for i in found if i["sk"]["S"] == CONVERSATION_SK), None)
        if mapping is None or receipt_seen:
            return (mapping["caseId"]["S"] if mapping else None), None, receipt_seen
        case_id = mapping["caseId"]["S"]
        self._case_by_conversation[conversation_id] = case_id  # the map never changes once written
        return case_id, self.get_case(case_id), False

    def _batch_get(self, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        request: dict[str, Any] = {self.table: {"Keys": keys, "ConsistentRead": True}}
        for _ in range(5):
            answer = self.client.batch_get_item(RequestItems=request)
            found.extend(answer.get("Responses", {}).get(self.table, []))
            request = dict(answer.get("UnprocessedKeys") or {})
            if not request:
                return found
            time.sleep(0.05)
        raise Conflict("DynamoDB is throttling reads; retry shortly", retry_after=1)

    # ---- timeline ----------------------------------------------------------------------------
    def list_timeline(self, case_id: str, after: str | None, limit: int) -> tuple[list[TimelineEntry], str | None]:
        values = {":pk": case_pk(case_id), ":prefix": "EVENT#"}
        condition = "pk = :pk AND begins_with(sk, :prefix)"
        if after:
            condition = "pk = :pk AND sk > :after"
            values = {":pk": case_pk(case_id), ":after": decode_cursor(after)}
        answer = self.client.query(
            TableName=self.table,
            KeyConditionExpression=condition,
            ExpressionAttributeValues=_item(values),
            Limit=limit,
            ConsistentRead=True,
        )
        entries = [TimelineEntry.from_item(i) for i in answer.get("Items", []) if i["sk"]["S"].startswith("EVENT#")]
        next_cursor = encode_cursor(entries[-1].sort_key) if entries else after
        return entries, next_cursor

    # ---- outbound messages -------------------------------------------------------------------
    def lookup_for_delivery(self, case_id: str, message_id: str) -> tuple[CaseRecord | None, MessageRecord | None]:
        found = self._batch_get([_key(case_pk(case_id), CASE_SK), _key(case_pk(case_id), f"MESSAGE#{message_id}")])
        case = next((CaseRecord.from_item(i) for i in found if i["sk"]["S"] == CASE_SK), None)
        message = next((_plain(i) for i in found if i["sk"]["S"].startswith("MESSAGE#")), None)
        record = None
        if message:
            record = MessageRecord(
                message_id, message["status"], int(message.get("attempts", 0)), int(message.get("ambiguousAttempts", 0))
            )
        return case, record

    def record_message(self, case_id: str, message: MessageRecord, conversation_id: str | None) -> None:
        self.client.put_item(
            TableName=self.table,
            Item=_item(
                {
                    "pk": case_pk(case_id),
                    "sk": f"MESSAGE#{message.message_id}",
                    "status": message.status,
                    "attempts": message.attempts,
                    "ambiguousAttempts": message.ambiguous_attempts,
                    "conversationId": conversation_id,
                    "updatedAt": now_ms(),
                    "expiresAt": self._ttl(self.timeline_ttl_seconds),
                }
            ),
        )

    # ---- shared 8x8 token --------------------------------------------------------------------
    def get_token(self, tenant_id: str) -> dict[str, Any] | None:
        found = self.client.get_item(
            TableName=self.table, Key=_key(f"TOKEN#{tenant_id}", "TOKEN"), ConsistentRead=True
        ).get("Item")
        return _plain(found) if found else None

    def lease_token_refresh(self, tenant_id: str, lease_ms: int) -> bool:
        now = now_ms()
        try:
            self.client.update_item(
                TableName=self.table,
                Key=_key(f"TOKEN#{tenant_id}", "TOKEN"),
                UpdateExpression="SET leaseUntil = :until",
                ConditionExpression="attribute_not_exists(leaseUntil) OR leaseUntil < :now",
                ExpressionAttributeValues=_item({":until": now + lease_ms, ":now": now}),
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def put_token(self, tenant_id: str, access_token: str, expires_at_ms: int) -> None:
        self.client.put_item(
            TableName=self.table,
            Item=_item(
                {
                    "pk": f"TOKEN#{tenant_id}",
                    "sk": "TOKEN",
                    "accessToken": access_token,
                    "tokenExpiresAt": expires_at_ms,
                    "expiresAt": expires_at_ms // 1000 + 3600,
                    "leaseUntil": 0,
                }
            ),
        )

    def drop_token(self, tenant_id: str, access_token: str) -> None:
        try:
            self.client.delete_item(
                TableName=self.table,
                Key=_key(f"TOKEN#{tenant_id}", "TOKEN"),
                ConditionExpression="accessToken = :token",
                ExpressionAttributeValues=_item({":token": access_token}),
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
