"""Webhook receipts (dedupe and replay check) and early events, kept until their conversation's case exists."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from casebridge.clock import now_ms
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

    def get_receipt(self, tenant_id: str, event_id: str, body_sha256: str | None = None) -> dict[str, Any] | None:
        key_ = receipt_key(tenant_id, event_id, body_sha256)
        found = self.client.get_item(TableName=self.table, Key=key_, ConsistentRead=True)
        item = found.get("Item")
        return from_item(item) if item else None

    def flag_body_conflict(self, tenant_id: str, event_id: str) -> None:
        """Mark the event id's first receipt: another body came under the same id (an operator looks at both)."""
        self._conditional_update(
            Key=receipt_key(tenant_id, event_id),
            UpdateExpression="SET bodyConflict = :yes",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues=to_item({":yes": True}),
        )

    # ---- 8x8's signing keys that verified a signature (public keys: a cache of 8x8's key endpoint) ------
    def signing_key(self, kid: str) -> dict[str, Any] | None:
        found = self.client.get_item(TableName=self.table, Key=key(f"WEBHOOK#JWK#{kid}", "JWK"), ConsistentRead=True)
        item = found.get("Item")
        return dict(from_item(item)["jwk"]) if item else None

    def put_signing_key(self, kid: str, jwk: Mapping[str, Any]) -> None:
        item = {"pk": f"WEBHOOK#JWK#{kid}", "sk": "JWK", "jwk": dict(jwk), "storedAt": now_ms()}
        self.client.put_item(TableName=self.table, Item=to_item(item))

    # ---- addresses that delivered a verified event (8x8's own): shared, so a new container keeps key fetches for them
    def trusted_sources(self) -> list[str]:
        found = self.client.get_item(TableName=self.table, Key=key("WEBHOOK#SOURCES", "TRUSTED"), ConsistentRead=True)
        item = found.get("Item")
        return sorted(str(s) for s in from_item(item).get("sources", ())) if item else []

    def put_trusted_source(self, source: str) -> None:
        self.client.update_item(
            TableName=self.table,
            Key=key("WEBHOOK#SOURCES", "TRUSTED"),
            UpdateExpression="ADD sources :source",
            ExpressionAttributeValues={":source": {"SS": [source]}},
        )

    def record_early_event(self, receipt: WebhookReceipt, entry: TimelineEntry) -> bool:
        """Keep an event whose conversation has no case yet; checks the map is still absent, atomically.
        False: the receipt existed. StaleCase: the map appeared meanwhile."""
        _, put = self._timeline_put(conversation_pk(entry.conversation_id), entry)
        try:
            self._transact(
                [
                    self._receipt_put(receipt),
                    put,
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
        """Every event kept under the conversation, page after page: a Query answers at most 1 MB, and early
        entries may be up to 400 KB each (an 8x8 text), so a few fill a page."""
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": to_item({":pk": conversation_pk(conversation_id), ":prefix": EVENT_PREFIX}),
            "ConsistentRead": True,
        }
        found: list[TimelineEntry] = []
        while True:
            answer = self.client.query(**request)
            found.extend(entry_read_back(i) for i in answer.get("Items", []))
            if "LastEvaluatedKey" not in answer:
                return found
            request["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    def lookup_for_webhook(
        self, conversation_id: str, tenant_id: str, event_id: str, body_sha256: str | None = None
    ) -> WebhookLookup:
        """The conversation's case and the event's receipts (the event id's, and this body's when another came
        first): one round trip once this container knows the conversation. The case is read only when no
        receipt is on file for this body."""
        receipts = [receipt_key(tenant_id, event_id)]
        if body_sha256 is not None:
            receipts.append(receipt_key(tenant_id, event_id, body_sha256))
        known_case = self._case_by_conversation.get(conversation_id)
        head = (
            key(case_pk(known_case), CASE_SK) if known_case else key(conversation_pk(conversation_id), CONVERSATION_SK)
        )
        found = self._batch_get([head, *receipts])
        by_sk = {i["sk"]["S"]: i for i in found}
        first = from_item(by_sk[RECEIPT_SK]) if RECEIPT_SK in by_sk else None
        this_sk = receipts[-1]["sk"]["S"] if body_sha256 is not None else None
        this_body = from_item(by_sk[this_sk]) if this_sk and this_sk in by_sk else None
        if known_case:
            case = CaseRecord.from_item(by_sk[CASE_SK]) if CASE_SK in by_sk else None
            return WebhookLookup(known_case, case, first, this_body)
        mapping = by_sk.get(CONVERSATION_SK)
        if mapping is None:
            return WebhookLookup(None, None, first, this_body)
        case_id = mapping["caseId"]["S"]
        self._case_by_conversation[conversation_id] = case_id  # the map never changes once written
        seen = this_body is not None or (first is not None and first.get("bodySha256") in (None, body_sha256))
        return WebhookLookup(case_id, None if seen else self.get_case(case_id), first, this_body)


class WebhookLookup(NamedTuple):
    case_id: str | None
    case: CaseRecord | None
    receipt: dict[str, Any] | None  # the event id's receipt (its first body)
    body_receipt: dict[str, Any] | None = None  # this body's, when another body came first under the event id
