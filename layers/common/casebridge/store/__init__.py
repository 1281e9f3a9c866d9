"""DynamoDB access for cases: the single table's key schema and every transaction on it.

Keys (pk / sk):
  CASE#<caseId>            / CASE                       the case: its conversation and live state
  CASE#<caseId>            / EVENT#S<sequence:012d>     the case timeline, in commit order (TTL); the case's
                                                        timelineSeq is the last sequence given
  CASE#<caseId>            / EVENT#<receivedMs>#<id>    timeline entries written before sequences (sort first)
  CASE#<caseId>            / MESSAGE#<messageId>        outbound message delivery record (TTL)
  CASE#<caseId>            / CLIENTMSG#<clientId>       a clientMessageId's message and text hash (TTL)
  CASE#<caseId>            / ATTACHMENT#<id>            an attachment's record (casebridge.attachments; TTL)
  CONVERSATION#<convId>    / CONVERSATION               conversation → case
  CONVERSATION#<convId>    / EVENT#<receivedMs>#<id>    early events: they came before the mapping existed
  WEBHOOK#<tenant>#<id>    / RECEIPT                    webhook receipt: dedupe and replay check (TTL)
  TOKEN#<tenant>           / TOKEN                      the shared 8x8 token (contact_center/token_store.py)
  CASE#<caseId>            / CONNECTION#<connectionId>  a widget's WebSocket connection (store/push.py; TTL)
  CONNECTION#<connId>      / CONNECTION                 connection → case (store/push.py; TTL)
  CASE#<caseId>            / PUSH#WEBHOOK               the signed webhook's cursor (store/push.py)

The parts: cases.py, webhooks.py, messages.py over table.py; the stored records in records.py and the
item/key/cursor codecs in codec.py. The clock lives in casebridge/clock.py.
"""

from __future__ import annotations

from casebridge.clock import now_ms
from casebridge.store.cases import CaseItems
from casebridge.store.codec import decode_cursor, encode_cursor
from casebridge.store.messages import MessageItems
from casebridge.store.push import PushItems
from casebridge.store.records import (
    CaseRecord,
    MessageRecord,
    MessageStatus,
    OpeningAttempt,
    TimelineEntry,
    WebhookReceipt,
)
from casebridge.store.table import ReceiptExists, StaleCase, TableAccess
from casebridge.store.webhooks import WebhookItems

__all__ = [
    "CaseRecord",
    "CaseStore",
    "MessageRecord",
    "MessageStatus",
    "OpeningAttempt",
    "ReceiptExists",
    "StaleCase",
    "TableAccess",
    "TimelineEntry",
    "WebhookReceipt",
    "decode_cursor",
    "encode_cursor",
    "now_ms",
]


class CaseStore(PushItems, CaseItems, WebhookItems, MessageItems):
    """All of the table's access for cases, in parts by what they hold (cases, webhooks,
    messages, pushes) over one plumbing (table): one client, one key schema, one way to write transactions."""
