"""DynamoDB item codecs and keys of the single table (the key schema is documented in store.py)."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from casebridge.errors import InvalidRequest

_SER = TypeSerializer()
_DES = TypeDeserializer()
CASE_SK = "CASE"
CONVERSATION_SK = "CONVERSATION"
RECEIPT_SK = "RECEIPT"
EVENT_PREFIX = "EVENT#"
OUTBOX_SHARD = "OUTBOX"  # outboxShard of every case with a pending outbox entry (PendingOutboxIndex)
OUTBOX_INDEX = "PendingOutboxIndex"
# Timeline entries with a sequence sort after every entry written before sequences ("EVENT#<epoch ms>#..."):
# "S" sorts after every digit, so a cursor from before still pages on, through the older entries first.
SEQUENCE_PREFIX = EVENT_PREFIX + "S"


def to_item(values: dict[str, Any]) -> dict[str, Any]:
    return {k: _SER.serialize(v) for k, v in values.items() if v is not None}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _DES.deserialize(v) for k, v in item.items()}


def key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def case_pk(case_id: str) -> str:
    return f"CASE#{case_id}"


def conversation_pk(conversation_id: str) -> str:
    return f"CONVERSATION#{conversation_id}"


def receipt_key(tenant_id: str, event_id: str, body_sha256: str | None = None) -> dict[str, Any]:
    """The event id's receipt (its first body), or with `body_sha256` the receipt of another body that came
    later under the same event id (a suspect: 8x8's signature covers only a CRC32 of the body)."""
    sort_key = RECEIPT_SK if body_sha256 is None else f"{RECEIPT_SK}#{body_sha256}"
    return key(f"WEBHOOK#{tenant_id}#{event_id}", sort_key)


def sequence_sort_key(sequence: int) -> str:
    return f"{SEQUENCE_PREFIX}{sequence:012d}"


def encode_cursor(sort_key: str) -> str:
    return base64.urlsafe_b64encode(sort_key.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidRequest("'after' is not a cursor this API returned") from None
    if not raw.startswith(EVENT_PREFIX) or len(raw) > 300:
        raise InvalidRequest("'after' is not a cursor this API returned")
    return raw
