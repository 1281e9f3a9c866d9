"""What a webhook receipt keeps of a body it did not act on: its shape, ids and states, for an operator to see what
8x8 sent, and never the customer's personal data or anyone's text (names, emails, phones, IPs, messages).

Strings are kept only under keys that name ids or 8x8's own vocabulary; every other string becomes REDACTED.
Numbers, booleans and nulls are kept. A body that is not JSON keeps only its length. Deduplication and replay
checks need none of it: they use the body's hash, kept beside it.
"""

from __future__ import annotations

import json
from typing import Any

REDACTED = "<redacted>"
# 8x8's vocabulary and ids: what an operator needs to recognise an event, and nothing personal.
_KEPT_KEYS = frozenset(
    {
        "eventType",
        "messageType",
        "notificationVersion",
        "type",
        "state",
        "change",
        "memberType",
        "contentType",
        "channel",
        "language",
        "id",
        "isEcho",
    }
)


def _kept_key(name: str, depth: int) -> bool:
    # `name` directly under `data` is 8x8's subtype (ACTIVITY's name); deeper it is a person's name.
    return name in _KEPT_KEYS or name.endswith("Id") or (name == "name" and depth == 1)


def _redact(value: Any, key: str | None, depth: int) -> Any:
    if isinstance(value, dict):
        return {k: _redact(v, str(k), depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v, key, depth) for v in value]
    if isinstance(value, str) and not (key is not None and _kept_key(key, depth - 1)):
        return REDACTED
    return value


def kept_body(body: bytes, limit: int) -> str:
    """The body as a receipt keeps it (at most `limit` bytes of UTF-8)."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return f"<not JSON: {len(body)} bytes>"
    try:
        redacted = _redact(payload, None, 0)
    except RecursionError:
        return f"<nested too deep: {len(body)} bytes>"
    text = body.decode("utf-8", errors="replace") if redacted == payload else json.dumps(redacted, ensure_ascii=False)
    return text.encode("utf-8")[:limit].decode("utf-8", errors="ignore")
