"""Outbound messages: delivery records, MessageFailed with its record, clientMessageId claims, attachment records."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from casebridge.store.codec import (
    CASE_SK,
    case_pk,
    from_item,
    key,
    to_item,
)
from casebridge.store.records import CaseRecord, MessageRecord, TimelineEntry

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef
from casebridge.store.table import TableAccess, plain


class MessageItems(TableAccess):
    # ---- outbound messages -------------------------------------------------------------------
    def lookup_for_delivery(self, case_id: str, message_id: str) -> tuple[CaseRecord | None, MessageRecord | None]:
        found = self._batch_get([key(case_pk(case_id), CASE_SK), key(case_pk(case_id), f"MESSAGE#{message_id}")])
        case = next((CaseRecord.from_item(i) for i in found if i["sk"]["S"] == CASE_SK), None)
        item = next((i for i in found if i["sk"]["S"].startswith("MESSAGE#")), None)
        record = MessageRecord.from_item(message_id, item) if item else None
        if record and record.parked_event:  # read back to be published: its detail must serialise
            record = replace(
                record, parked_event=replace(record.parked_event, detail=plain(record.parked_event.detail))
            )
        return case, record

    def record_message(self, case_id: str, message: MessageRecord, conversation_id: str | None) -> None:
        self.client.put_item(TableName=self.table, Item=self._message_item(case_id, message, conversation_id))

    def record_message_failed(
        self, case: CaseRecord, message: MessageRecord, conversation_id: str | None, entry: TimelineEntry
    ) -> TimelineEntry:
        """The failed record and its MessageFailed entry (on the case's outbox) at once: a redelivery finds
        both or neither. Returns the entry as recorded (with its sequence). StaleCase: the case changed."""
        recorded, timeline_items = self._on_timeline(case, entry, None, pending_publish=True)
        record: TransactWriteItemTypeDef = {
            "Put": {"TableName": self.table, "Item": self._message_item(case.case_id, message, conversation_id)}
        }
        self._transact([record, *timeline_items])
        return recorded

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

    # ---- what casebridge posted (the Gateway echoes every post back as a MESSAGE) --------------------
    def record_posted(self, case_id: str, fingerprint: str) -> None:
        """Before a post: the message's fingerprint (casebridge.events.message_fingerprint), so its echo is known."""
        item = {
            "pk": case_pk(case_id),
            "sk": f"POSTED#{fingerprint}",
            "expiresAt": self._ttl(self.timeline_ttl_seconds),
        }
        self.client.put_item(TableName=self.table, Item=to_item(item))

    def was_posted(self, case_id: str, fingerprint: str) -> bool:
        found = self.client.get_item(
            TableName=self.table, Key=key(case_pk(case_id), f"POSTED#{fingerprint}"), ConsistentRead=True
        )
        return "Item" in found

    # ---- attachments (casebridge.attachments) --------------------------------------------------
    def put_attachment(self, case_id: str, attachment_id: str, values: dict[str, Any], ttl_seconds: int) -> bool:
        """Record an attachment once; False when it is on file already (a retried webhook, a reused id)."""
        item = {**key(case_pk(case_id), f"ATTACHMENT#{attachment_id}")}
        item.update(to_item({**values, "attachmentId": attachment_id, "expiresAt": self._ttl(ttl_seconds)}))
        return self._conditional(self.client.put_item, Item=item, ConditionExpression="attribute_not_exists(pk)")

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
