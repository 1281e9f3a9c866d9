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

The parts: store_cases.py, store_webhooks.py, store_messages.py over store_table.py. Records and codecs live in
records.py and dynamo_codec.py; the clock in clock.py.
"""

from __future__ import annotations

from casebridge.clock import now_ms
from casebridge.dynamo_codec import decode_cursor, encode_cursor
from casebridge.records import CaseRecord, MessageRecord, MessageStatus, TimelineEntry, WebhookReceipt
from casebridge.store_cases import CaseItems
from casebridge.store_messages import MessageItems
from casebridge.store_table import ReceiptExists, StaleCase, TableAccess
from casebridge.store_webhooks import WebhookItems

__all__ = [
    "CaseRecord",
    "CaseStore",
    "MessageRecord",
    "MessageStatus",
    "ReceiptExists",
    "StaleCase",
    "TableAccess",
    "TimelineEntry",
    "WebhookReceipt",
    "decode_cursor",
    "encode_cursor",
    "now_ms",
]


class CaseStore(CaseItems, WebhookItems, MessageItems):
    """All of the table's access for cases, in parts by what they hold (store_cases, store_webhooks,
    store_messages) over one plumbing (store_table): one client, one key schema, one way to write transactions."""
