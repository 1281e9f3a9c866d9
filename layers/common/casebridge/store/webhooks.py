"""Webhook receipts (dedupe and replay check) and early events, kept until their conversation's case exists."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from casebridge.store.codec import (
    CASE_SK,
    CONVERSATION_SK,
    EVENT_PREFIX,
    RECEIPT_SK,
    case_pk,
    conversation_pk,
    from_item,
    key,
    receipt_key,
    to_item,
)
from casebridge.store.records import CaseRecord, TimelineEntry, WebhookReceipt

if TYPE_CHECKING:
    pass
from casebridge.store.table import ReceiptExists, TableAccess, entry_read_back


class WebhookItems(TableAccess):
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
        return [entry_read_back(i) for i in answer.get("Items", [])]

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
